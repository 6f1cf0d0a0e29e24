"""Green waits inside PyMongo: its pool's queues, server selection, and sleeps.

Sync PyMongo waits on ``threading.Condition`` objects (the pool's maxPoolSize and
maxConnecting queues, the topology's server-selection condition) and calls ``time.sleep``
between retries. On the loop's thread a real wait there freezes every other operation, and
for the pool queues it deadlocks: the greenlet that would return the connection can't run.

* :class:`GreenCondition` is a ``threading.Condition`` whose ``wait`` parks a DriverGreenlet
  and blocks any other caller as usual. ``notify`` may come from any thread (monitor
  threads call ``Topology.on_change``); the parked greenlet is then resumed by a loop
  callback, never switched into from the notifier.
* :func:`sleep` is ``time.sleep`` that parks a DriverGreenlet instead.

How they get into PyMongo (the pool class, the topology's condition class, the retry
loops' ``time`` module) is :mod:`greenmotor.pymongo_hooks`' job.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, Any

from greenmotor.core import Wakeup, current_driver_greenlet


class GreenCondition(threading.Condition):
    """A Condition that a DriverGreenlet waits on by switching to the loop.

    ::

        cond = GreenCondition(threading.Lock())
        with cond:
            cond.wait(timeout=1.0)   # in a DriverGreenlet: the loop keeps running

    Same contract as ``threading.Condition``: ``wait`` returns True if notified, False on
    timeout, and must be called with the lock held.
    """

    if TYPE_CHECKING:  # threading.Condition's private API, which typeshed leaves out
        _waiters: collections.deque[Any]

        def _is_owned(self) -> bool: ...
        def _release_save(self) -> Any: ...
        def _acquire_restore(self, saved: Any) -> None: ...

    def __repr__(self) -> str:
        return f"<GreenCondition waiters={len(self._waiters)}>"

    def wait(self, timeout: float | None = None) -> bool:
        if current_driver_greenlet() is None:
            return super().wait(timeout)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _GreenWaiter()
        self._waiters.append(waiter)
        saved = self._release_save()
        notified = False
        try:
            notified = waiter.wakeup.wait(timeout)
        except BaseException:
            # Cancelled (CancelledError thrown in). If notify() had already chosen this
            # waiter, its wake-up is lost with us: pass it to the next waiter, or that one
            # sleeps on although, say, a pooled connection is free.
            self._acquire_restore(saved)
            if waiter.released:
                self.notify()
            else:
                self._discard(waiter)
            raise
        # The lock guards short sections without I/O, so this never waits long.
        self._acquire_restore(saved)
        if not notified:
            # A notify that raced the timer still counts, as it would for a thread.
            notified = waiter.released
            if not notified:
                self._discard(waiter)
        return notified

    def _discard(self, waiter: _GreenWaiter) -> None:
        try:
            self._waiters.remove(waiter)
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
