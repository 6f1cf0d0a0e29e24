"""Green I/O for client-side field level encryption: KMS requests that park the greenlet.

PyMongo's ``ClientEncryption`` asks libmongocrypt what to do and performs the I/O for it
through an ``_EncryptionIO`` object. Its key vault reads and writes go through the key vault
``MongoClient`` - green already when that is a greenmotor client's - but its requests to a
remote key management service (AWS, Azure, GCP, KMIP) use PyMongo's own blocking code:
DNS, ``connect``, the TLS handshake and ``recv`` on a blocking socket, and ``time.sleep``
between retries. Run on the loop's thread, one slow KMS would freeze every other operation.

This module gives those few calls green forms, per object, without touching PyMongo:

* :class:`GreenEncryptionIO` is ``_EncryptionIO`` whose ``kms_request`` connects with
  :func:`~greenmotor.green_socket.green_socket_interface` (DNS in the loop's executor,
  non-blocking connect and TLS handshake), reads through a :class:`KmsSocket`, and sleeps
  with :func:`greenmotor.green_pool.sleep`; the TLS context with the system's CA
  certificates (for providers without ``kms_tls_options``) is loaded once, in the loop's
  executor, instead of on every request. A ``kms_connect_callback`` (user code, likely
  blocking: e.g. ``HTTPProxyKMSConnect``) runs in the loop's executor, and the TLS handshake
  over the socket it returns is green. Starting ``mongocryptd`` (auto encryption) runs in
  the executor too.
* :class:`GreenClientEncryption` is ``ClientEncryption`` built with a GreenEncryptionIO:
  what :class:`~greenmotor.MotorClientEncryption` wraps.
* :class:`GreenEncrypter` is the automatic-encryption ``_Encrypter`` built with a
  GreenEncryptionIO and a green ``mongocryptd`` client, for a greenmotor client given
  ``auto_encryption_opts``.

Outside a DriverGreenlet every green call behaves as the blocking one it replaces, so these
objects also work from plain threads. A plain ``pymongo.encryption.ClientEncryption`` is
unchanged: the replacements live in copies of PyMongo's functions
(:func:`~greenmotor.pymongo_hooks.with_globals`), not in PyMongo's modules; the table in
:mod:`greenmotor.pymongo_hooks` lists them with greenmotor's other changes to PyMongo.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, cast

from pymongo.daemon import _spawn_daemon
from pymongo.ssl_support import get_ssl_context
from pymongo.synchronous._kms_connect import _connect_kms
from pymongo.synchronous.encryption import ClientEncryption, _Encrypter, _EncryptionIO

from greenmotor.core import call_in_executor
from greenmotor.green_socket import GreenSocket, green_socket_interface, green_tls_handshake
from greenmotor.pymongo_hooks import GreenTime, green_mongo_client, with_globals

__all__ = [
    "GreenClientEncryption",
    "GreenEncrypter",
    "GreenEncryptionIO",
    "KmsSocket",
    "connect_kms",
]


class KmsSocket(GreenSocket):
    """A GreenSocket with the ``recv`` that PyMongo's KMS exchange reads replies with.

    ::

        sock = KmsSocket(tls_socket, timeout=10.0)
        sock.sendall(kms_context.message)
        data = sock.recv(kms_context.bytes_needed)   # b"" once the peer has closed
    """

    __slots__ = ()

    def recv(self, bufsize: int) -> bytes:
        buffer = bytearray(bufsize)
        try:
            received = self.recv_into(buffer)
        except TimeoutError:
            if isinstance(self._sock, ssl.SSLSocket):
                # PyMongo puts the message in its error; a blocking TLS socket says this.
                raise TimeoutError("The read operation timed out") from None
            raise
        return bytes(buffer[:received])


def _configured_socket(address: tuple[str, Any], options: Any) -> KmsSocket:
    """PyMongo's ``_configured_socket`` (connect, then TLS with ``options``), green."""
    # green_socket_interface wraps a GreenSocket; PyMongo's annotation names a socket.
    green = cast(GreenSocket, green_socket_interface(address, options).sock)
    return KmsSocket(green._sock, green.gettimeout())


def _wrap_socket_tls(sock: Any, address: tuple[str, Any], options: Any) -> KmsSocket:
    """PyMongo's ``_wrap_socket_tls`` with a green handshake: same errors, same checks.

    ``sock`` is the connected socket a ``kms_connect_callback`` returned (maybe a tunnel
    through a proxy); TLS, SNI and certificate checks target the KMS ``address``.
    """
    ssl_context = options._ssl_context
    if ssl_context is None:
        return KmsSocket(sock, options.socket_timeout)
    tls = green_tls_handshake(sock, sock, address, options, KmsSocket)
    tls.settimeout(options.socket_timeout)
    return tls


# PyMongo's _connect_kms, unchanged but for how it connects and wraps TLS.
_green_connect_kms = with_globals(
    _connect_kms, _configured_socket=_configured_socket, _wrap_socket_tls=_wrap_socket_tls
)


def connect_kms(
    address: tuple[str, Any],
    opts: Any,
    kms_connect_callback: Callable[[Any], Any] | None,
    timeout: float,
) -> KmsSocket:
    """PyMongo's ``_connect_kms`` (same arguments, checks and errors), green.

    The user's ``kms_connect_callback`` may block (PyMongo's own ``HTTPProxyKMSConnect``
    does): it runs in the loop's executor while the greenlet waits.
    """
    callback = None
    if kms_connect_callback is not None:

        def callback(context: Any) -> Any:
            return call_in_executor(kms_connect_callback, context)

    # The copy connects with this module's _configured_socket and _wrap_socket_tls, which
    # return KmsSockets; PyMongo's annotation names what its own functions return.
    return cast(KmsSocket, _green_connect_kms(address, opts, callback, timeout))


# get_ssl_context arguments -> the context; see _get_ssl_context.
_default_contexts: dict[tuple[Any, ...], Any] = {}


def _get_ssl_context(*args: Any) -> Any:
    """PyMongo's ``get_ssl_context``, made off the loop once per set of arguments.

    ``kms_request`` builds a context with the system's CA certificates for every request to
    a provider without ``kms_tls_options``; loading them takes ~60 ms of the calling thread.
    The context holds no per-connection state, so one serves every request.
    """
    context = _default_contexts.get(args)
    if context is None:
        context = _default_contexts[args] = call_in_executor(get_ssl_context, *args)
    return context


def _spawn_daemon_off_loop(args: Any) -> None:
    # Spawning mongocryptd waits for a helper interpreter to start and exit (up to 10 s).
    call_in_executor(_spawn_daemon, args)


class GreenEncryptionIO(_EncryptionIO):
    """``_EncryptionIO`` whose KMS requests and mongocryptd spawning don't block the loop."""

    kms_request = with_globals(
        _EncryptionIO.kms_request,
        _connect_kms=connect_kms,
        get_ssl_context=_get_ssl_context,
        time=GreenTime(),  # its retry back-off sleep is green
    )
    spawn = with_globals(_EncryptionIO.spawn, _spawn_daemon=_spawn_daemon_off_loop)


class GreenClientEncryption(ClientEncryption[Any]):
    """PyMongo's ``ClientEncryption`` (same arguments and behaviour) with green KMS I/O.

    Give it a key vault client whose own I/O is green (a greenmotor client's ``delegate``)
    and call it inside a DriverGreenlet: then nothing it does blocks the loop.
    """

    __init__ = with_globals(ClientEncryption.__init__, _EncryptionIO=GreenEncryptionIO)


class GreenEncrypter(_Encrypter):
    """PyMongo's automatic-encryption ``_Encrypter`` with green KMS and mongocryptd I/O.

    For a greenmotor client made with ``auto_encryption_opts``: PyMongo's own ``_Encrypter``
    (what ``MongoClient`` builds) asks mongocryptd through a plain ``MongoClient``, whose
    server selection blocks the loop for up to 10 s per attempt when mongocryptd is absent,
    and spawns mongocryptd with a blocking wait. Key vault and collection-info reads use the
    encrypted client itself (or the ``key_vault_client`` given), green already.
    """

    __init__ = with_globals(
        _Encrypter.__init__,
        _EncryptionIO=GreenEncryptionIO,
        MongoClient=green_mongo_client,  # mongocryptd's client, green like greenmotor's
    )
