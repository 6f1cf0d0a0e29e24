"""A second socket layer: GreenSocket's interface over ``tornado.iostream.IOStream``.

greenmotor's default layer, :class:`~greenmotor.green_socket.GreenSocket`, reads and writes a
non-blocking socket itself and parks the greenlet on the loop's readiness callbacks.
:class:`IOStreamSocket` offers the same interface to PyMongo but hands every green read and
write to a Tornado ``IOStream`` and parks the greenlet on the Future that the stream returns:
the design of the original Motor's greenlet era. It is here to be measured against the raw
layer (``doc/how-it-works.rst`` has the figures and why the raw layer stays the default) and
for applications that want Tornado's own stream code under their connections.

Select it before the client opens connections, in code or in the environment::

    import greenmotor.green_socket
    greenmotor.green_socket.use_socket_layer("iostream")   # or "raw", the default

    # or: GREENMOTOR_SOCKET_LAYER=iostream python app.py

Semantics are GreenSocket's: in a DriverGreenlet a wait parks the greenlet; elsewhere
(PyMongo's monitor and maintenance threads) the socket blocks with ``poll()``; a timeout
raises ``TimeoutError("timed out")``. An IOStream cannot abandon a read or write in
progress, so a green wait that times out or is cancelled closes the connection - which
PyMongo does anyway after any network error on it.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any

from pymongo.errors import _OperationCancelled
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError

from greenmotor.core import DriverGreenlet, Wakeup, current_driver_greenlet
from greenmotor.green_socket import GreenCancellation, GreenSocket

__all__ = ["IOStreamSocket"]

_WANT_TLS = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Stream(IOStream):
    """An IOStream over a socket that may be a TLS socket whose handshake is done.

    IOStream treats only ``BlockingIOError`` as "try again later"; a TLS socket says the
    same with ``SSLWantReadError``/``SSLWantWriteError``.
    """

    def read_from_fd(self, buf: bytearray | memoryview) -> int | None:
        try:
            return self.socket.recv_into(buf, len(buf))
        except (BlockingIOError, *_WANT_TLS):
            return None
        finally:
            del buf

    def write_to_fd(self, data: memoryview) -> int:
        try:
            return self.socket.send(data)
        except _WANT_TLS:
            return 0
        finally:
            del data


class IOStreamSocket(GreenSocket):
    """A connection's socket whose green reads and writes go through a Tornado IOStream.

    ::

        sock = IOStreamSocket(socket.create_connection(("127.0.0.1", 27017)), timeout=5.0)
        sock.sendall(message)          # in a greenlet: IOStream.write, the greenlet parked
        n = sock.recv_into(buffer)     # IOStream.read_into(partial=True)

    The stream is made by the first green read or write, on that greenlet's loop; until then
    (and off the loop, always) the socket behaves exactly as a GreenSocket.
    """

    __slots__ = ("_stream", "_stream_thread")

    def __init__(self, sock: socket.socket | ssl.SSLSocket, timeout: float | None = None):
        super().__init__(sock, timeout)
        self._stream: _Stream | None = None
        self._stream_thread = 0

    def __repr__(self) -> str:
        fd = self.fileno()
        state = "closed" if fd == -1 else f"fd={fd}"
        stream = "" if self._stream is None else ", streaming"
        return f"<IOStreamSocket {state}{stream} timeout={self._timeout!r}>"

    def _stream_for(self, glet: DriverGreenlet) -> _Stream:
        stream = self._stream
        if stream is None:
            self._unwatch_here()  # a GreenSocket wait (TLS handshake) may have watched it
            # IOLoop.current() on the loop's thread is the IOLoop over glet.loop. A handler it
            # still holds for this descriptor's number is a dead socket's (closed from another
            # thread while this loop was stopped, see close()): this socket owns the number now.
            IOLoop.current().remove_handler(self._sock.fileno())
            stream = self._stream = _Stream(self._sock)
            self._stream_thread = glet.thread_id
        elif stream.closed():
            raise OSError("connection closed")
        return stream

    def _await(
        self,
        future: Any,
        timeout: float | None,
        cancellation: GreenCancellation | None = None,
    ) -> Any:
        """Park until the stream's future is done; its result. Closes the stream if the
        wait ends otherwise (timeout, cancellation, an exception thrown in)."""
        if not future.done():
            wakeup = Wakeup()
            future.add_done_callback(wakeup.fire)
            if cancellation is not None:
                cancellation.wakeup = wakeup
            finished = False
            try:
                wakeup.wait(timeout)
                finished = future.done()
            finally:
                if cancellation is not None:
                    cancellation.wakeup = None
                if not finished:
                    future.remove_done_callback(wakeup.fire)
                    self._stream.close()  # type: ignore[union-attr]
                    future.exception()  # retrieved: no "exception never retrieved" log
            if not finished:
                if cancellation is not None and cancellation.cancelled:
                    raise _OperationCancelled("operation cancelled")
                raise TimeoutError("timed out")
        try:
            return future.result()
        except StreamClosedError as exc:
            if exc.real_error is not None:
                raise exc.real_error from None
            return 0  # the peer closed: what recv_into says at end of stream

    def _green_timeout(self) -> float | None:
        timeout = self._timeout
        if timeout == 0.0:
            raise BlockingIOError("the socket timeout is 0: a green wait is not allowed")
        return timeout

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        glet = current_driver_greenlet()
        if glet is None or self._timeout == 0.0:
            return super().recv_into(buffer, nbytes)
        view = memoryview(buffer).cast("B")
        if nbytes:
            view = view[:nbytes]
        stream = self._stream_for(glet)
        return self._await(stream.read_into(view, partial=True), self._green_timeout())  # type: ignore[arg-type,no-any-return]

    def sendall(self, data: Any) -> None:
        glet = current_driver_greenlet()
        if glet is None or self._timeout == 0.0:
            super().sendall(data)
            return
        stream = self._stream_for(glet)
        if self._await(stream.write(memoryview(data)), self._green_timeout()) == 0:
            raise OSError("connection closed")

    def receive_exactly(
        self, length: int, deadline: float | None, cancellation: GreenCancellation
    ) -> memoryview:
        """``length`` bytes read through the stream (PyMongo's receive_data, green)."""
        glet = current_driver_greenlet()
        assert glet is not None
        if cancellation.cancelled:
            raise _OperationCancelled("operation cancelled")
        buf = bytearray(length)
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            raise TimeoutError("timed out")
        stream = self._stream_for(glet)
        try:
            received = self._await(stream.read_into(buf), timeout, cancellation)
        except OSError:
            if cancellation.cancelled:
                raise _OperationCancelled("operation cancelled") from None
            raise
        if received == 0:
            raise OSError("connection closed")
        return memoryview(buf)

    def fileno(self) -> int:
        if self._closed:
            return -1
        stream = self._stream
        if stream is not None and stream.closed():
            return -1
        return self._sock.fileno()

    def close(self) -> None:
        stream = self._stream
        if stream is None:
            super().close()
            return
        if self._closed or stream.closed():
            return
        io_loop: IOLoop = stream.io_loop
        if threading.get_ident() == self._stream_thread:
            stream.close()
            return
        # The stream belongs to the loop's thread; close it there (see GreenSocket.close).
        self._closed = True
        if not _loop_running(io_loop):
            # Its loop is stopped and may be closing in its own thread right now (a client
            # closed in greenmotor's closing thread after run_sync's last line): touching the
            # IOLoop's handler tables from here would race with that. Close only the OS socket;
            # the loop drops its registration when it closes (or runs) next.
            self._sock.close()
            return
        try:
            io_loop.add_callback(stream.close)
        except RuntimeError:
            self._sock.close()


def _loop_running(io_loop: IOLoop) -> bool:
    asyncio_loop = getattr(io_loop, "asyncio_loop", None)
    return asyncio_loop is not None and asyncio_loop.is_running()
