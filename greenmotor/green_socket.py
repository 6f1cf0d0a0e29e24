"""The green socket: what PyMongo's connection factory returns for a greenmotor pool.

PyMongo reads and writes a connection through a handful of socket methods (``recv_into``,
``sendall``, ``settimeout``, ``gettimeout``, ``fileno``, ``close``). :class:`GreenSocket`
offers exactly those over a non-blocking socket:

* in a DriverGreenlet, a read or write that would block parks the greenlet until the loop
  sees the file descriptor ready (``add_reader``/``add_writer``, removed again after every
  wait), so the loop keeps running;
* anywhere else (PyMongo's monitor and kill-cursors threads share pooled sockets) it waits
  with ``poll()``, i.e. it behaves as the blocking socket PyMongo expects.

Either way a timeout behaves exactly as on a blocking socket, because PyMongo relies on it:
``None`` waits forever, ``0.0`` tries once and raises ``BlockingIOError`` (or the SSL
"want read/write" error), and ``t > 0`` raises ``TimeoutError("timed out")`` after t seconds.

:func:`green_socket_interface` replaces ``pymongo.pool_shared._configured_socket_interface``
for greenmotor pools: DNS in the loop's executor, a non-blocking connect bounded by
connectTimeoutMS or the CSOT deadline, and the TLS handshake with the ``SSLContext`` PyMongo
built (SNI, hostname check, session reuse), all without blocking the loop.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import ssl
import threading
import time
from typing import Any, TypeVar

from pymongo import _csot, network_layer
from pymongo.errors import ConfigurationError, _OperationCancelled
from pymongo.helpers_shared import _get_timeout_details
from pymongo.network_layer import NetworkingInterface
from pymongo.pool_shared import (
    _CancellationContext,
    _get_ssl_session,
    _raise_connection_failure,
    _set_keepalive_times,
)

from greenmotor.core import Wakeup, call_in_executor, current_driver_greenlet

_READ, _WRITE = select.POLLIN | select.POLLPRI, select.POLLOUT
_WANT_IO = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _wanted_event(exc: BaseException, default: int) -> int:
    """Which readiness an interrupted call waits for (TLS can read while writing)."""
    if isinstance(exc, ssl.SSLWantReadError):
        return _READ
    if isinstance(exc, ssl.SSLWantWriteError):
        return _WRITE
    return default


def wait_for_fd(
    fd: int, event: int, timeout: float | None, cancellation: GreenCancellation | None = None
) -> bool:
    """Wait until fd is ready for event (POLLIN or POLLOUT); False if timeout passed first.

    Parks the DriverGreenlet if we are in one, else blocks the thread in poll(). A
    ``cancellation`` that is cancelled meanwhile ends a parked wait at once (returns False).
    """
    glet = current_driver_greenlet()
    if glet is None:
        poller = select.poll()  # not select(): it fails for descriptors >= 1024
        poller.register(fd, event | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(None if timeout is None else max(timeout, 0.0) * 1000))
    loop = glet.loop
    wakeup = Wakeup()
    # asyncio's public add_reader first checks the fd against its transports (a weak-value
    # dict look-up, a measurable share of a quick operation); our sockets are never
    # transports, so use the registration it then calls, where the loop has it.
    if event == _WRITE:
        add = getattr(loop, "_add_writer", loop.add_writer)
        remove = getattr(loop, "_remove_writer", loop.remove_writer)
    else:
        add = getattr(loop, "_add_reader", loop.add_reader)
        remove = getattr(loop, "_remove_reader", loop.remove_reader)
    add(fd, wakeup.fire, True)
    if cancellation is not None:
        cancellation.wakeup = wakeup
    try:
        return wakeup.wait(timeout)  # type: ignore[no-any-return]
    finally:
        remove(fd)
        if cancellation is not None:
            cancellation.wakeup = None


class GreenCancellation(_CancellationContext):
    """A connection's cancel flag that also wakes the greenlet parked on its socket.

    PyMongo cancels in-use connections from its monitor thread when a server goes away
    (``Pool.reset(interrupt_connections=True)``); sync PyMongo notices within its 0.5 s read
    poll. A parked greenlet needs no poll: the cancel resumes it through the loop.
    """

    def __init__(self) -> None:
        super().__init__()
        self.wakeup: Wakeup | None = None

    def cancel(self) -> None:
        super().cancel()
        wakeup = self.wakeup
        if wakeup is not None:
            wakeup.fire_threadsafe(False)


def receive_data(conn: Any, length: int, deadline: float | None) -> memoryview:
    """PyMongo's ``network_layer.receive_data`` for greenmotor connections.

    Same contract - ``length`` bytes, ``TimeoutError("timed out")`` at the deadline,
    ``_OperationCancelled`` once the connection is cancelled, ``OSError`` when the peer
    closes - but a parked greenlet waits for data, the deadline or the cancel, where sync
    PyMongo wakes every 0.5 s to poll the cancel flag: 10,000 parked operations would
    otherwise wake 20,000 times a second for nothing. Off the loop, PyMongo's own loop runs.
    The socket layer does the reading (:meth:`GreenSocket.receive_exactly`).
    """
    if current_driver_greenlet() is None:
        return network_layer.receive_data(conn, length, deadline)
    sock: GreenSocket = conn.conn.sock
    return sock.receive_exactly(length, deadline, conn.cancel_context)


class GreenSocket:
    """A non-blocking socket (plain or TLS) that PyMongo can use as a blocking one.

    ::

        sock = GreenSocket(socket.create_connection(("127.0.0.1", 27017)))
        sock.settimeout(5.0)
        sock.sendall(message)          # parks the greenlet, or blocks off the loop
        n = sock.recv_into(buffer)     # TimeoutError("timed out") after 5 s of silence

    The loop watches the descriptor for reading from the first green read on: registered
    once, it stays registered between waits (a wait only sets which Wakeup a readable
    socket fires), which saves an ``epoll_ctl`` add and delete, and asyncio's bookkeeping
    for both, on every wait. Should it become readable while nobody waits (the peer closed,
    or another thread reads it), the watch ends and the next green read starts it again.
    :meth:`close` ends it before closing, on the loop's thread.
    """

    __slots__ = ("_sock", "_timeout", "_watch", "_reader", "_closed")

    def __init__(self, sock: socket.socket | ssl.SSLSocket, timeout: float | None = None):
        sock.setblocking(False)
        self._sock = sock
        self._timeout = timeout
        # (loop, its thread's id, descriptor) while the loop watches it for reading.
        self._watch: tuple[Any, int, int] | None = None
        self._reader: Wakeup | None = None  # the wait a readable socket resumes
        self._closed = False  # closed from another thread; the real close is the loop's

    def __repr__(self) -> str:
        fd = self.fileno()
        state = "closed" if fd == -1 else f"fd={fd}"
        watched = ", watched" if self._watch is not None else ""
        return f"<GreenSocket {state}{watched} timeout={self._timeout!r}>"

    def _wait(
        self, event: int, timeout: float | None, cancellation: GreenCancellation | None = None
    ) -> bool:
        """wait_for_fd for this socket; reads in a greenlet use the persistent watch."""
        glet = current_driver_greenlet()
        if glet is None or event != _READ:
            return wait_for_fd(self._sock.fileno(), event, timeout, cancellation)
        watch = self._watch
        if watch is None or watch[0] is not glet.loop:
            if watch is not None and not self._unwatch_here():
                # Watched by a loop of another thread: wait the plain way.
                return wait_for_fd(self._sock.fileno(), event, timeout, cancellation)
            loop = glet.loop
            fd = self._sock.fileno()
            add = getattr(loop, "_add_reader", loop.add_reader)
            add(fd, self._readable)
            self._watch = (loop, glet.thread_id, fd)
        wakeup = self._reader = Wakeup()
        if cancellation is not None:
            cancellation.wakeup = wakeup
        try:
            return wakeup.wait(timeout)  # type: ignore[no-any-return]
        finally:
            self._reader = None
            if cancellation is not None:
                cancellation.wakeup = None

    def receive_exactly(
        self, length: int, deadline: float | None, cancellation: GreenCancellation
    ) -> memoryview:
        """``length`` bytes, in a DriverGreenlet (see :func:`receive_data`).

        While it waits, a parked greenlet holds only the empty buffer: the memoryview is made
        once data has come, and the wait happens outside the ``except`` clause, so the
        would-block exception and its traceback are not kept alive for as long as it waits.
        """
        buf = bytearray(length)
        view: memoryview | None = None  # for reading into the rest of buf
        recv_into = self._sock.recv_into
        received = 0
        while received < length:
            if cancellation.cancelled:
                raise _OperationCancelled("operation cancelled")
            try:
                if view is None:
                    chunk = recv_into(buf)
                else:
                    chunk = recv_into(view[received:])
            except _WANT_IO as exc:
                event = _wanted_event(exc, _READ)
            except InterruptedError:
                continue
            except OSError:
                if cancellation.cancelled:
                    raise _OperationCancelled("operation cancelled") from None
                raise
            else:
                if chunk == 0:
                    raise OSError("connection closed")
                received += chunk
                if view is None:
                    view = memoryview(buf)
                continue
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise TimeoutError("timed out") from None
            ready = self._wait(event, timeout, cancellation)
            if not ready and not cancellation.cancelled:
                raise TimeoutError("timed out") from None
        return memoryview(buf) if view is None else view

    def _readable(self) -> None:  # the loop's reader callback
        reader = self._reader
        if reader is None:
            self._unwatch_here()  # nobody waits: don't spin on a closed peer
            return
        reader.fire(True)
        if self._reader is reader:
            # Still parked: this loop iteration had run its share of greenmotor work, and the
            # resume waits for a later one (core._Turns). Until then the loop would report
            # the socket readable on every iteration - under load, dozens of times per
            # reply. Stop watching now; the next wait starts the watch again.
            self._unwatch_here()

    def _unwatch_here(self, unless_running: bool = False) -> bool:
        """End the loop's watch, if that loop belongs to this thread (or is closed); with
        ``unless_running``, also if it belongs to another thread but is not running."""
        watch = self._watch
        if watch is None:
            return True
        loop, thread_id, fd = watch
        if loop.is_closed():
            self._watch = None
            return True
        if thread_id != threading.get_ident() and not (unless_running and not loop.is_running()):
            return False
        self._watch = None
        remove = getattr(loop, "_remove_reader", loop.remove_reader)
        remove(fd)
        return True

    def _close_on_loop(self) -> None:
        self._unwatch_here()
        self._sock.close()

    def __del__(self) -> None:
        if self._closed:  # closed from another thread, and its loop stopped before closing it
            self._sock.close()

    # The socket API PyMongo uses.
    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def fileno(self) -> int:
        if self._closed:
            return -1
        return self._sock.fileno()  # -1 once closed, which PyMongo checks for

    def close(self) -> None:
        if self._unwatch_here(unless_running=True):
            self._sock.close()
            return
        # Watched by a loop running in another thread (PyMongo closes connections from its
        # monitor and maintenance threads too): that loop's selector is not ours to touch.
        # Look closed now; the loop ends its watch and closes the descriptor, so its number
        # is not reused while still registered there.
        if not self._closed:
            self._closed = True
            loop = self._watch[0]  # type: ignore[index]
            try:
                loop.call_soon_threadsafe(self._close_on_loop)
            except RuntimeError:  # the loop closed meanwhile
                self._sock.close()

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        deadline = None
        while True:
            try:
                return self._sock.recv_into(buffer, nbytes)
            except InterruptedError:
                continue
            except _WANT_IO as exc:
                deadline = self._wait_or_raise(exc, _wanted_event(exc, _READ), deadline)

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        deadline = None  # like a blocking socket, the timeout bounds the whole sendall
        while view:
            try:
                sent = self._sock.send(view)
            except InterruptedError:
                continue
            except _WANT_IO as exc:
                deadline = self._wait_or_raise(exc, _wanted_event(exc, _WRITE), deadline)
            else:
                view = view[sent:]

    def _wait_or_raise(
        self, exc: BaseException, event: int, deadline: float | None
    ) -> float | None:
        """Wait for the socket, honouring the blocking-socket timeout; return the deadline."""
        timeout = self._timeout
        if timeout is None:
            self._wait(event, None)
            return None
        if timeout == 0.0:
            raise exc  # a non-blocking try that found nothing, as PyMongo expects
        now = time.monotonic()
        if deadline is None:
            deadline = now + timeout
        if now >= deadline or not self._wait(event, deadline - now):
            raise TimeoutError("timed out")
        return deadline

    def do_handshake(self) -> None:
        """Complete the TLS handshake of a wrapped socket within the timeout."""
        deadline = None
        while True:
            try:
                self._sock.do_handshake()  # type: ignore[union-attr]
                return
            except InterruptedError:
                continue
            except _WANT_IO as exc:
                deadline = self._wait_or_raise(exc, _wanted_event(exc, _READ), deadline)

    def __getattr__(self, name: str) -> Any:
        # Everything else (getpeercert, version, cipher, session, ...) is the real socket's.
        return getattr(self._sock, name)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def getaddrinfo(host: str, port: int, family: int, type: int) -> list[Any]:
    """socket.getaddrinfo that resolves names in the loop's executor when in a greenlet."""
    if _is_ip_literal(host):
        return socket.getaddrinfo(host, port, family=family, type=type)
    return call_in_executor(socket.getaddrinfo, host, port, family, type)


def _connect_timeout(options: Any) -> float | None:
    timeout = _csot.remaining()
    if timeout is None:
        connect_timeout: float | None = options.connect_timeout  # PoolOptions'
        return connect_timeout
    if timeout <= 0:
        raise TimeoutError("timed out")
    return timeout


def _connect_tcp(address: tuple[str, int], options: Any) -> GreenSocket:
    """Resolve and connect like PyMongo's own factory, without blocking the loop."""
    host, port = address
    if host.endswith(".sock"):
        unix = socket.socket(socket.AF_UNIX)
        try:
            sock = GreenSocket(unix, _connect_timeout(options))
            _green_connect(sock, host)
        except BaseException:
            unix.close()
            raise
        return sock
    # PyMongo skips IPv6 for 'localhost' to avoid slow connects; so do we.
    family = socket.AF_INET if host == "localhost" or not socket.has_ipv6 else socket.AF_UNSPEC
    err: OSError | None = None
    for af, socktype, proto, _, sa in getaddrinfo(host, port, family, socket.SOCK_STREAM):
        raw = socket.socket(af, socktype, proto)  # non-inheritable by default (PEP 446)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
            _set_keepalive_times(raw)
            sock = GreenSocket(raw, _connect_timeout(options))
            _green_connect(sock, sa)
            return sock
        except OSError as exc:
            err = exc
            raw.close()
        except BaseException:  # a cancellation thrown in while connecting
            raw.close()
            raise
    raise err if err is not None else OSError("getaddrinfo failed")


def _green_connect(sock: GreenSocket, sa: Any) -> None:
    code = sock._sock.connect_ex(sa)
    if code in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
        timeout = sock.gettimeout()
        if not wait_for_fd(sock.fileno(), _WRITE, timeout):
            raise TimeoutError("timed out")
        code = sock._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        # What a blocking connect raises (ConnectionRefusedError: "Connection refused"...).
        raise OSError(code, os.strerror(code))


_GS = TypeVar("_GS", bound=GreenSocket)


def green_tls_handshake(
    sock: Any,
    raw: socket.socket,
    address: tuple[str, Any],
    options: Any,
    socket_class: type[_GS],
    *,
    session: Any = None,
) -> _GS:
    """Wrap the connected ``raw`` socket in TLS with PyMongo's ``options`` and shake hands
    greenly: PyMongo's errors and certificate checks, SNI for ``address``'s host.

    ``sock`` (``raw`` or its GreenSocket) is closed if the handshake fails. Used for server
    connections (with the pool's TLS ``session`` to resume) and for KMS connections.
    """
    ssl_context = options._ssl_context
    if not isinstance(ssl_context, ssl.SSLContext):
        sock.close()
        raise ConfigurationError(
            "greenmotor supports TLS through Python's ssl module only; uninstall PyOpenSSL "
            f"(PyMongo built a {type(ssl_context).__name__})"
        )
    host = address[0]
    wrapped: ssl.SSLSocket | None = None  # takes raw's descriptor: close it, not only raw

    def abandon() -> None:
        sock.close()
        if wrapped is not None:
            wrapped.close()

    try:
        wrapped = ssl_context.wrap_socket(
            raw, server_hostname=host, session=session, do_handshake_on_connect=False
        )
        tls = socket_class(wrapped, sock.gettimeout())
        tls.do_handshake()
    except ssl.CertificateError:
        abandon()
        raise
    except (OSError, ssl.SSLError) as exc:
        abandon()
        _raise_connection_failure(
            address, exc, "SSL handshake failed: ", timeout_details=_get_timeout_details(options)
        )
    except BaseException:  # a cancellation thrown in during the handshake
        abandon()
        raise
    if (
        ssl_context.verify_mode
        and not ssl_context.check_hostname
        and not options.tls_allow_invalid_hostnames
    ):
        # PyMongo turns check_hostname off for IP literals on old Pythons; check by hand then.
        # (ssl.match_hostname is gone from Python 3.12, where this branch cannot be reached.)
        try:
            ssl.match_hostname(tls.getpeercert(), hostname=host)  # type: ignore[attr-defined,unused-ignore]
        except ssl.CertificateError:
            tls.close()
            raise
    return tls


SOCKET_LAYERS = ("raw", "iostream")

#: The socket layer of connections opened from now on: "raw" (:class:`GreenSocket`, the
#: default) or "iostream" (:class:`greenmotor.iostream_socket.IOStreamSocket`). Set it with
#: :func:`use_socket_layer` or the ``GREENMOTOR_SOCKET_LAYER`` environment variable.
socket_layer = "raw"


def use_socket_layer(name: str) -> None:
    """Make connections opened from now on use socket layer ``name`` ("raw" or "iostream").

    ::

        greenmotor.green_socket.use_socket_layer("iostream")
    """
    global socket_layer
    if name not in SOCKET_LAYERS:
        raise ValueError(
            f"unknown greenmotor socket layer {name!r}; choose one of {', '.join(SOCKET_LAYERS)}"
        )
    socket_layer = name


if os.environ.get("GREENMOTOR_SOCKET_LAYER"):
    use_socket_layer(os.environ["GREENMOTOR_SOCKET_LAYER"])


def _layered(sock: GreenSocket) -> GreenSocket:
    """``sock`` (connected, TLS done) in the selected socket layer."""
    if socket_layer == "raw":
        return sock
    from greenmotor.iostream_socket import IOStreamSocket

    sock._unwatch_here()
    return IOStreamSocket(sock._sock, sock.gettimeout())


def green_socket_interface(
    address: tuple[str, int], options: Any, ssl_session_cache: list[Any] | None = None
) -> NetworkingInterface:
    """greenmotor's replacement for PyMongo's ``_configured_socket_interface``."""
    sock = _connect_tcp(address, options)
    ssl_context = options._ssl_context
    if ssl_context is None:
        sock = _layered(sock)
        sock.settimeout(options.socket_timeout)
        return NetworkingInterface(sock)  # type: ignore[arg-type]  # duck-typed socket
    session = ssl_session_cache[0] if ssl_session_cache is not None else None
    tls = green_tls_handshake(sock, sock._sock, address, options, GreenSocket, session=session)
    if ssl_session_cache is not None:
        new_session = _get_ssl_session(tls._sock)
        if new_session is not None:
            ssl_session_cache[0] = new_session
    tls = _layered(tls)
    tls.settimeout(options.socket_timeout)
    return NetworkingInterface(tls)  # type: ignore[arg-type]  # duck-typed socket
