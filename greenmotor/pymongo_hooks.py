"""Every change greenmotor makes to PyMongo's behaviour, in one place.

greenmotor runs PyMongo's own synchronous code; it changes only where that code would block
the loop. Each change below is checked against the installed PyMongo at import by
:mod:`greenmotor.pymongo_check` (which names the private places they rely on). A plain
``pymongo.MongoClient`` behaves exactly as before: nothing here alters PyMongo's classes or
functions; the changes live in subclasses and in copies of PyMongo's functions.

Per client - only a greenmotor client's objects change (made by :func:`green_mongo_client`):

* **connection pools**: ``_pool_class=GreenPool``, a keyword PyMongo offers for this.
  :class:`GreenPool` waits on green queues (:class:`~greenmotor.green_pool.GreenCondition`)
  and its ``connect`` is a copy of ``Pool.connect`` using
  :func:`~greenmotor.green_socket.green_socket_interface` and :class:`GreenConnection`.
  Monitor pools (used by PyMongo's monitor threads) stay plain.
* **reads**: :class:`GreenConnection`'s ``receive_message`` is a copy reading through
  :func:`~greenmotor.green_socket.receive_data`; its cancel flag is green.
* **server selection**: ``_condition_class=GreenCondition``, offered by PyMongo too.
* **opening a** ``mongodb+srv://`` **client**: :class:`GreenMongoClient` looks up the SRV
  and TXT records in a thread of its own.
* **client-side encryption**: :mod:`greenmotor.green_kms` has copies of PyMongo's KMS
  request, mongocryptd spawning and ``_Encrypter`` set-up; ``MotorClient`` puts its
  ``GreenEncrypter`` in place of the ``_Encrypter`` PyMongo built.

Process-wide - one change, made when the first greenmotor client is created:

* ``pymongo.synchronous.mongo_client.time`` and ``pymongo.synchronous.client_session.time``
  (the retry back-off and ``with_transaction`` sleeps) become a :class:`GreenTime`. In a
  DriverGreenlet its ``sleep`` parks the greenlet; anywhere else it *is* ``time.sleep``, and
  every other attribute is the ``time`` module's, so plain clients sleep exactly as before.

The swap is process-wide because those sleeps are module-level calls in methods that
greenmotor does not otherwise copy; copying the client and session classes' methods to
rebind one global would be a far larger hook for the same effect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import types
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pymongo import network_layer
from pymongo.synchronous import client_session, mongo_client
from pymongo.synchronous.pool import Connection, Pool

from greenmotor import green_socket
from greenmotor.core import current_driver_greenlet, wait_for_future
from greenmotor.green_pool import GreenCondition, sleep

__all__ = [
    "GreenConnection",
    "GreenMongoClient",
    "GreenPool",
    "GreenTime",
    "green_mongo_client",
    "install_green_sleeps",
    "with_globals",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def with_globals(func: _F, **replacements: Any) -> _F:
    """A copy of ``func`` whose global names in ``replacements`` resolve to other objects.

    This is how one PyMongo function gets a green helper without touching PyMongo's module:
    the original function, and every plain MongoClient using it, is unchanged::

        green_connect = with_globals(Pool.connect, Connection=GreenConnection)
    """
    namespace = dict(func.__globals__)
    namespace.update(replacements)
    clone = types.FunctionType(
        func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__
    )
    clone.__kwdefaults__ = func.__kwdefaults__
    clone.__qualname__ = func.__qualname__
    clone.__doc__ = func.__doc__
    return cast(_F, clone)


# The attributes PyMongo's Connection sets on every connection (PyMongo 4.x). It sets more
# than CPython's shared-key instance dicts hold (30), so each connection would carry a
# 1.6 KB dict of its own; as slots of GreenConnection they take 8 bytes each. An attribute
# not listed (another PyMongo version's) lands in the instance dict, as before. Names that
# are class attributes of Connection (defaults, properties) are left out: a slot would
# hide them.
_CONNECTION_FIELDS = (
    "conn", "pool_ref", "address", "id", "is_sdam", "closed", "creation_time",
    "last_checkin_time", "performed_handshake", "is_writable", "max_wire_version",
    "max_bson_size", "max_message_size", "max_write_batch_size", "supports_sessions",
    "hello_ok", "is_mongos", "listeners", "_telemetry", "compression_settings",
    "compression_context", "socket_checker", "oidc_token_gen_id", "negotiated_mechs",
    "auth_ctx", "pool_gen", "generation", "ready", "cancel_context", "opts", "more_to_come",
    "service_id", "server_connection_id", "pinned_txn", "pinned_cursor", "active",
    "last_timeout", "connect_rtt", "_cluster_time", "logical_session_timeout_minutes",
    "is_repl", "is_standalone",
)  # fmt: skip


class GreenConnection(Connection):
    """PyMongo's Connection, reading through :func:`green_socket.receive_data`."""

    __slots__ = tuple(name for name in _CONNECTION_FIELDS if not hasattr(Connection, name))

    receive_message = with_globals(
        Connection.receive_message,
        receive_message=with_globals(
            network_layer.receive_message, receive_data=green_socket.receive_data
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cancel_context = green_socket.GreenCancellation()


class GreenPool(Pool):
    """PyMongo's connection pool with green wait queues, sockets and connections.

    Monitor pools (``is_sdam``) are only used by PyMongo's monitor threads and stay plain.
    """

    _green_connect = with_globals(
        Pool.connect,
        _configured_socket_interface=green_socket.green_socket_interface,
        Connection=GreenConnection,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_sdam:
            self.size_cond = GreenCondition(self.lock)
            self._max_connecting_cond = GreenCondition(self.lock)

    def connect(self, handler: Any = None) -> Connection:
        if self.is_sdam:
            return super().connect(handler)
        return self._green_connect(handler)


class GreenMongoClient(mongo_client.MongoClient[Any]):
    """PyMongo's MongoClient whose first operation never blocks the loop on DNS.

    With a ``mongodb+srv://`` URI, opening the client looks up SRV and TXT records through
    dnspython, which blocks. In a DriverGreenlet the opening runs in a thread instead, once:
    operations that arrive meanwhile, from any loop or thread, wait for the same opening.

    Its ``__name__`` stays "MongoClient": PyMongo names the client's class in messages and
    reprs, and greenmotor's users should read exactly what PyMongo's read.
    """

    # The opening in progress: a thread's Future, so greenlets of any loop and thread can
    # wait for it (each through a Future of its own loop).
    _opening: concurrent.futures.Future[Any] | None = None
    _opening_lock = threading.Lock()

    def _get_topology(self) -> Any:
        if self._opened or not self._resolve_srv_info["is_srv"]:
            return super()._get_topology()
        glet = current_driver_greenlet()
        if glet is None:
            return super()._get_topology()
        with self._opening_lock:
            opening = self._opening
            if opening is None:
                opening = self._opening = concurrent.futures.Future()
                threading.Thread(
                    target=self._open_in_thread, args=(opening,), name="greenmotor-srv", daemon=True
                ).start()
        try:
            return wait_for_future(asyncio.wrap_future(opening, loop=glet.loop))
        except BaseException:
            with self._opening_lock:
                if opening.done() and self._opening is opening:
                    self._opening = None  # a failed look-up may be retried by the next one
            raise

    def _open_in_thread(self, opening: concurrent.futures.Future[Any]) -> None:
        """The blocking opening (SRV and TXT look-ups), in a short-lived thread."""
        try:
            opening.set_result(super()._get_topology())
        except BaseException as exc:  # handed to every waiting operation
            opening.set_exception(exc)


GreenMongoClient.__name__ = "MongoClient"


class GreenTime:
    """The ``time`` module as PyMongo's retry loops see it: ``sleep`` is green in a greenlet.

    Outside greenmotor's greenlets ``sleep`` is ``time.sleep`` itself, so plain clients keep
    their exact behaviour::

        GreenTime().monotonic()   # time.monotonic()
        GreenTime().sleep(0.1)    # parks a DriverGreenlet; elsewhere time.sleep(0.1)
    """

    sleep = staticmethod(sleep)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def __repr__(self) -> str:
        return "<GreenTime: the time module with a green sleep>"


def install_green_sleeps() -> None:
    """Route the back-off sleeps of PyMongo's retry loops through :func:`green_pool.sleep`.

    The one process-wide change (see the table above); idempotent.
    """
    for module in (mongo_client, client_session):
        globals_of_module = vars(module)  # rebinding the module's global name "time"
        if not isinstance(globals_of_module["time"], GreenTime):
            globals_of_module["time"] = GreenTime()


def green_mongo_client(*args: Any, **kwargs: Any) -> GreenMongoClient:
    """A PyMongo client (PyMongo's arguments) whose pools, waits and sleeps are green."""
    install_green_sleeps()
    kwargs.setdefault("_pool_class", GreenPool)  # or a subclass (MotorClient checks it)
    kwargs["_condition_class"] = GreenCondition
    return GreenMongoClient(*args, **kwargs)
