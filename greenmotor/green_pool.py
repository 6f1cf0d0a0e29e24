"""Green waits inside PyMongo: its pool, server selection, and sleeps.

Sync PyMongo waits on ``threading.Condition`` objects (the pool's maxPoolSize and
maxConnecting queues, the topology's server-selection condition) and calls ``time.sleep``
between retries. On the loop's thread a real wait there freezes every other operation, and
for the pool queues it deadlocks: the greenlet that would return the connection can't run.

* :class:`GreenCondition` is a ``threading.Condition`` whose ``wait`` parks a DriverGreenlet
  and blocks any other caller as usual. ``notify`` may come from any thread (monitor
  threads call ``Topology.on_change``); the parked greenlet is then resumed by a loop
  callback, never switched into from the notifier.
* :class:`GreenPool` is PyMongo's ``Pool`` with those conditions and with
  :func:`~greenmotor.green_socket.green_socket_interface` as its connection factory.
* :func:`client_hooks` gives the keyword arguments that make a ``MongoClient`` use them -
  the hooks PyMongo offers for this (``_pool_class``, ``_condition_class``), so only the
  greenmotor client's own pools and topology change.
"""

from __future__ import annotations

import asyncio
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from pymongo import network_layer
from pymongo.synchronous import client_session, mongo_client
from pymongo.synchronous.pool import Connection, Pool

from greenmotor import green_socket
from greenmotor.core import Wakeup, current_driver_greenlet, wait_for_future


class GreenCondition(threading.Condition):
    """A Condition that a DriverGreenlet waits on by switching to the loop.

    ::

        cond = GreenCondition(threading.Lock())
        with cond:
            cond.wait(timeout=1.0)   # in a DriverGreenlet: the loop keeps running

    Same contract as ``threading.Condition``: ``wait`` returns True if notified, False on
    timeout, and must be called with the lock held.
    """

    def __repr__(self) -> str:
        return f"<GreenCondition waiters={len(self._waiters)}>"  # type: ignore[attr-defined]

    def wait(self, timeout: float | None = None) -> bool:
        if current_driver_greenlet() is None:
            return super().wait(timeout)
        if not self._is_owned():  # type: ignore[attr-defined]
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _GreenWaiter()
        self._waiters.append(waiter)  # type: ignore[attr-defined]
        saved = self._release_save()  # type: ignore[attr-defined]
        notified = False
        try:
            notified = waiter.wakeup.wait(timeout)
        except BaseException:
            # Cancelled (CancelledError thrown in). If notify() had already chosen this
            # waiter, its wake-up is lost with us: pass it to the next waiter, or that one
            # sleeps on although, say, a pooled connection is free.
            self._acquire_restore(saved)  # type: ignore[attr-defined]
            if waiter.released:
                self.notify()
            else:
                self._discard(waiter)
            raise
        # The lock guards short sections without I/O, so this never waits long.
        self._acquire_restore(saved)  # type: ignore[attr-defined]
        if not notified:
            # A notify that raced the timer still counts, as it would for a thread.
            notified = waiter.released
            if not notified:
                self._discard(waiter)
        return notified

    def _discard(self, waiter: _GreenWaiter) -> None:
        try:
            self._waiters.remove(waiter)  # type: ignore[attr-defined]
        except ValueError:
            pass


class _GreenWaiter:
    """Stands in the Condition's waiter queue where a real thread would put a lock.

    ``Condition.notify`` calls ``release()`` on the waiters it wakes, from whatever thread
    notifies; a second release must raise RuntimeError, as a released lock's would.
    """

    __slots__ = ("wakeup", "released")

    def __init__(self) -> None:
        self.wakeup = Wakeup()
        self.released = False

    def release(self) -> None:
        if self.released:
            raise RuntimeError("release unlocked lock")
        self.released = True
        self.wakeup.fire_threadsafe(True)


def sleep(seconds: float) -> None:
    """time.sleep that parks a DriverGreenlet instead of blocking the loop."""
    if current_driver_greenlet() is None:
        time.sleep(seconds)
    else:
        Wakeup().wait(seconds, timeout_value=None)


def _with_globals(func: Callable[..., Any], **replacements: Any) -> Callable[..., Any]:
    """A copy of func whose global names in ``replacements`` resolve to other objects.

    This is how one PyMongo method gets a green helper without touching PyMongo's module:
    the original function, and every plain MongoClient using it, is unchanged.
    """
    namespace = dict(func.__globals__)
    namespace.update(replacements)
    clone = types.FunctionType(
        func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__
    )
    clone.__kwdefaults__ = func.__kwdefaults__
    clone.__qualname__ = func.__qualname__
    clone.__doc__ = func.__doc__
    return clone


class GreenConnection(Connection):
    """PyMongo's Connection, reading through :func:`green_socket.receive_data`."""

    receive_message = _with_globals(
        Connection.receive_message,
        receive_message=_with_globals(
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

    _green_connect = _with_globals(
        Pool.connect,
        _configured_socket_interface=green_socket.green_socket_interface,
        Connection=GreenConnection,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_sdam:
            self.size_cond = GreenCondition(self.lock)
            self._max_connecting_cond = GreenCondition(self.lock)

    def connect(self, handler: Any = None) -> Any:
        if self.is_sdam:
            return super().connect(handler)
        return self._green_connect(handler)


class GreenMongoClient(mongo_client.MongoClient):
    """PyMongo's MongoClient whose first operation never blocks the loop on DNS.

    With a ``mongodb+srv://`` URI, opening the client looks up SRV and TXT records through
    dnspython, which blocks. In a DriverGreenlet the opening runs in the loop's executor
    instead, once: operations that arrive meanwhile wait for the same opening.

    Its ``__name__`` stays "MongoClient": PyMongo names the client's class in messages and
    reprs, and greenmotor's users should read exactly what PyMongo's read.
    """

    _opening: asyncio.Future | None = None

    def _get_topology(self) -> Any:
        if self._opened or not self._resolve_srv_info["is_srv"]:
            return super()._get_topology()
        glet = current_driver_greenlet()
        if glet is None:
            return super()._get_topology()
        if self._opening is None:
            self._opening = glet.loop.run_in_executor(None, super()._get_topology)
        opening = self._opening
        try:
            return wait_for_future(opening)
        except BaseException:
            if opening.done() and self._opening is opening:
                self._opening = None  # a failed look-up may be retried by the next operation
            raise


GreenMongoClient.__name__ = "MongoClient"


class _GreenTime:
    """The ``time`` module as PyMongo's retry loops see it: ``sleep`` is green in a greenlet.

    Outside greenmotor's greenlets ``sleep`` is ``time.sleep`` itself, so plain clients keep
    their exact behaviour.
    """

    sleep = staticmethod(sleep)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def install_green_sleeps() -> None:
    """Route the back-off sleeps of PyMongo's retry loops through :func:`sleep`."""
    for module in (mongo_client, client_session):
        if not isinstance(module.time, _GreenTime):
            module.time = _GreenTime()  # type: ignore[assignment,attr-defined]


def client_hooks() -> dict[str, Any]:
    """MongoClient keyword arguments that make its pools and topology green."""
    return {"_pool_class": GreenPool, "_condition_class": GreenCondition}
