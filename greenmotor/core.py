"""The greenlet bridge: synchronous PyMongo code running in child greenlets of the loop's thread.

Everything greenmotor does without blocking rests on three things in this module:

* :class:`DriverGreenlet` - one in-flight operation. It is a child of the greenlet that runs
  the event loop (the "hub"), carries the loop it belongs to, and runs in a *copy* of the
  caller's contextvars, so ``pymongo.timeout()``, bound sessions and listeners see the
  caller's context.
* :func:`spawn` - start a call in a new DriverGreenlet and hand back an ``asyncio.Future[Any]``.
  The greenlet runs at once, on the caller's stack, until it would block; then it switches
  to the hub and the caller gets its Future.
* :class:`Wakeup` - how a parked DriverGreenlet is resumed: a socket becoming ready, a timer,
  a condition notified from another thread, or a Future finishing all fire one Wakeup.

Example (inside a coroutine running on the loop)::

    import time
    future = spawn(asyncio.get_running_loop(), time.monotonic)
    print(await future)

Code that is *not* in a DriverGreenlet (PyMongo's monitor threads, or plain code on the
loop thread) never parks: the green primitives built on this module fall back to ordinary
blocking behaviour there, which is what keeps a plain ``pymongo.MongoClient`` unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import heapq
import itertools
import math
import threading
import weakref
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import Any, Generic, TypeVar, cast

import greenlet

_T = TypeVar("_T")
# A call for a DriverGreenlet: (function, positional arguments, keyword arguments).
_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

__all__ = [
    "DriverGreenlet",
    "GreenmotorUsageError",
    "Wakeup",
    "call_in_executor",
    "cancel_abandoned",
    "current_driver_greenlet",
    "in_flight",
    "resume_handed_over",
    "spawn",
    "wait_for_future",
]


class GreenmotorUsageError(RuntimeError):
    """greenmotor was called in a way that cannot work; the message says the right usage."""


class DriverGreenlet(greenlet.greenlet):
    """A child greenlet of the loop's thread that runs synchronous PyMongo calls, one at a time.

    It delivers a call's outcome to ``future``, which :func:`spawn` attaches when the call
    first parks (a call that never parks gets a :class:`_ReadyFuture` instead). Cancelling
    that Future throws ``asyncio.CancelledError`` into the greenlet, from a loop callback,
    so PyMongo's own clean-up (closing the connection, restoring pool counters) runs before
    the call ends.

    A greenlet whose call is over waits (idle) for the next call on its thread, up to
    :data:`IDLE_GREENLETS` of them: a new greenlet costs a new Python frame stack (an mmap,
    page faults, an munmap when it dies) and cold caches, a reused one costs neither.
    """

    parent: greenlet.greenlet  # the hub of the thread that runs it; never None

    # Slots, not an instance dict: 224 bytes less per greenlet (every pending operation has
    # one). Other attributes still work: greenlet's own __dict__ takes them.
    __slots__ = ("thread_id", "loop", "idle", "future", "_call", "_outcome")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        super().__init__(parent=greenlet.getcurrent())
        self.thread_id = threading.get_ident()
        self._prepare(loop, (fn, args, kwargs))

    def _prepare(self, loop: asyncio.AbstractEventLoop, call: _Call) -> None:
        self.loop: asyncio.AbstractEventLoop = loop
        self.idle = False  # between calls, waiting for the next one
        self.future: asyncio.Future[Any] | None = None
        # The call not started yet; None once it runs.
        self._call: _Call | None = call
        # (ok, result or exception) of a call that ended before it had a Future.
        self._outcome: tuple[bool, Any] | None = None
        # A copy of the caller's context per call (a new greenlet would otherwise start
        # with an empty one and lose pymongo.timeout(), sessions, operation ids).
        self.gr_context = contextvars.copy_context()

    def __repr__(self) -> str:
        if self.dead:
            state = "dead"
        elif self.idle:
            state = "idle"
        else:
            state = "not started" if self._call is not None else "running"
        return f"<DriverGreenlet {state} on {self.loop!r}>"

    def run(self) -> None:  # what the first greenlet.switch() starts
        idle = _idle_greenlets()
        while True:
            fn, args, kwargs = self._call  # type: ignore[misc]
            self._call = None
            try:
                # A call spelt out for the usual shapes: f(*args, **kwargs) enters the
                # callee through a C call, a plain call does not (CPython 3.11+), and every
                # C call level under a parked greenlet is ~400 bytes more of its saved C
                # stack, for as long as it waits.
                if kwargs:
                    value = fn(*args, **kwargs)
                elif not args:
                    value = fn()
                elif len(args) == 1:
                    value = fn(args[0])
                elif len(args) == 2:
                    value = fn(args[0], args[1])
                else:
                    value = fn(*args)
                outcome: tuple[bool, Any] = (True, value)
                del value
            except BaseException as exc:  # every outcome goes to the Future
                if isinstance(exc, StopIteration):  # can't be a Future's exception
                    exc = StopAsyncIteration(*exc.args)
                outcome = (False, exc)
            finally:
                in_flight.discard(self)
            del fn, args, kwargs
            future = self.future
            if future is None:  # never parked: spawn() makes the Future
                self._outcome = outcome
            elif not future.done():
                # Unhook the cancellation callback first: a done-callback still attached
                # costs one more loop callback per operation.
                future.remove_done_callback(self.cancel_if_needed)
                _settle(future, outcome)
            del outcome, future
            if len(idle) >= IDLE_GREENLETS:
                return
            # Idle until spawn() hands over the next call (it switches in after _prepare).
            self.loop = None  # type: ignore[assignment]  # no reference to old loops
            self.future = self.gr_context = None
            self.idle = True
            idle.append(self)
            try:
                self.parent.switch()
            except greenlet.GreenletExit:  # collected at exit
                return
            if self._call is None:  # resumed without a call: a bug elsewhere; end here
                return

    def cancel_if_needed(self, future: asyncio.Future[Any]) -> None:
        # A Future done-callback runs as a loop callback, i.e. on the hub: the one place a
        # parked greenlet may be thrown into.
        if not future.cancelled() or future is not self.future:
            return
        if self._call is not None:  # its start was deferred (see _Turns): it never runs
            self._call = None
            in_flight.discard(self)
            if self:  # a reused greenlet: idle again
                self.loop = None  # type: ignore[assignment]
                self.future = None
                self.idle = True
                _idle_greenlets().append(self)
        elif not self.dead:
            self.throw(asyncio.CancelledError("the greenmotor operation's Future was cancelled"))
            resume_handed_over()  # its clean-up may have returned a pooled connection

    def start_deferred(self) -> None:
        """Start a call whose start :func:`spawn` deferred to a later loop iteration."""
        if self._call is not None:
            self.switch()
            resume_handed_over()


#: Idle DriverGreenlets kept per thread for the next calls (see DriverGreenlet).
IDLE_GREENLETS = 64

_idle_by_thread = threading.local()


def _idle_greenlets() -> list[DriverGreenlet]:
    """This thread's idle DriverGreenlets, the most recently used last."""
    idle: list[DriverGreenlet] | None = getattr(_idle_by_thread, "greenlets", None)
    if idle is None:
        idle = _idle_by_thread.greenlets = []
    return idle


def _driver_greenlet(loop: asyncio.AbstractEventLoop, call: _Call) -> DriverGreenlet:
    """An idle DriverGreenlet of this thread prepared for ``call``, or a new one."""
    idle = _idle_greenlets()
    while idle:
        glet = idle.pop()
        if glet.dead:
            continue
        current = greenlet.getcurrent()
        if glet.parent is not current:
            glet.parent = current
        glet._prepare(loop, call)
        return glet
    return DriverGreenlet(loop, *call)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    ok, value = outcome
    if ok:
        future.set_result(value)
    elif isinstance(value, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(value)


class _ReadyFuture(asyncio.Future[Any]):
    """The Future of an operation that finished without waiting: awaiting it yields once.

    A finished ``asyncio.Future`` does not suspend the coroutine awaiting it, so a coroutine
    whose operations never wait (unacknowledged writes, replies already in the socket's
    buffer) would run on and on while other coroutines' replies and the loop's timers wait.
    Awaiting this one first gives the loop one turn (a bare ``yield``, which an asyncio Task
    answers by rescheduling itself behind what is ready), then returns the outcome. Waiting
    operations pay nothing: their coroutine was going to be suspended anyway.
    """

    def __await__(self) -> Any:
        yield  # one loop iteration: other ready callbacks, I/O and due timers run first
        return self.result()

    __iter__ = __await__


# Strong references to every greenlet that has started and not finished. A suspended
# greenlet that is garbage-collected gets GreenletExit thrown in at an arbitrary point,
# which would leave PyMongo's pool counters and connections half-updated.
in_flight: set[DriverGreenlet] = set()


def current_driver_greenlet() -> DriverGreenlet | None:
    """The DriverGreenlet we are running in, or None on any other greenlet or thread."""
    current = greenlet.getcurrent()
    return current if type(current) is DriverGreenlet else None


def spawn(
    loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> asyncio.Future[Any]:
    """Run ``fn(*args, **kwargs)`` in a new DriverGreenlet; return a Future of its outcome.

    Must be called on the loop's thread, outside any DriverGreenlet. The call starts
    immediately and runs until it first needs to wait, so quick work costs no extra loop
    iteration. If it never waits, the Future is already done, and awaiting it still yields
    to the loop once (see :class:`_ReadyFuture`): a coroutine cannot run ahead of the others.
    """
    if type(greenlet.getcurrent()) is DriverGreenlet:
        raise GreenmotorUsageError(
            "a greenmotor method was called from inside greenmotor's own greenlet (for example "
            "from a PyMongo event listener or a sync callback). Schedule it on the loop "
            "instead: IOLoop.current().add_callback(...)"
        )
    glet = _driver_greenlet(loop, (fn, args, kwargs))
    if in_flight:
        turns = _turns_of(loop)
        if turns.used_up():
            # This loop iteration has run its share of greenmotor work: start in a later one.
            in_flight.add(glet)
            deferred = glet.future = loop.create_future()
            deferred.add_done_callback(glet.cancel_if_needed)
            turns.defer(glet.start_deferred)
            return deferred
    in_flight.add(glet)
    glet.switch()
    resume_handed_over()
    outcome = glet._outcome
    if outcome is not None:  # finished without waiting
        glet._outcome = None
        future: asyncio.Future[Any] = _ReadyFuture(loop=loop)
        _settle(future, outcome)
        return future
    future = glet.future = loop.create_future()
    future.add_done_callback(glet.cancel_if_needed)
    return future


def call_in_executor(fn: Callable[..., _T], *args: Any) -> _T:
    """Run ``fn(*args)`` in the loop's default executor, parking the DriverGreenlet meanwhile.

    For blocking calls with no green form (DNS look-ups). Outside a DriverGreenlet it simply
    calls fn.
    """
    glet = current_driver_greenlet()
    if glet is None:
        return fn(*args)
    return wait_for_future(glet.loop.run_in_executor(None, fn, *args))


def wait_for_future(future: asyncio.Future[_T]) -> _T:
    """Park the current DriverGreenlet until future (of its loop) is done; its result.

    Several greenlets may wait on the same Future.
    """
    if not future.done():
        wakeup = Wakeup()
        future.add_done_callback(wakeup.fire)
        try:
            wakeup.wait()
        finally:
            future.remove_done_callback(wakeup.fire)
    return future.result()


class _Deadlines:
    """The timeouts of one loop's parked greenlets, served by a single loop timer.

    PyMongo reads with a short socket timeout (0.5 s) on every wait, so nearly every parked
    greenlet has a deadline that is then never reached. A loop timer per wait
    (``call_later`` + ``cancel``) leaves thousands of cancelled handles in asyncio's heap,
    which asyncio re-sorts over and over. Here a finished wait just forgets its entry, and
    one timer fires at the earliest deadline still pending.
    """

    __slots__ = ("loop", "heap", "timer", "timer_when", "order", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[list[Any]] = []  # [when, order, wakeup or None, value]
        # The loop's timer, weakly: the handle refers to its loop, and a pending one left
        # when the loop closed would keep that loop alive through this object.
        self.timer: weakref.ref[asyncio.TimerHandle] | None = None
        self.timer_when = math.inf
        self.order = itertools.count()  # ties never compare wakeups

    def __repr__(self) -> str:
        return f"<_Deadlines pending={len(self.heap)} next={self.timer_when}>"

    def add(self, delay: float, wakeup: Wakeup, value: Any) -> list[Any]:
        when = self.loop.time() + max(delay, 0.0)
        entry = [when, next(self.order), wakeup, value]
        heapq.heappush(self.heap, entry)
        if when < self.timer_when:
            self._arm(when)
        return entry

    def _arm(self, when: float) -> None:
        timer = self.timer() if self.timer is not None else None
        if timer is not None:
            timer.cancel()
        self.timer = weakref.ref(self.loop.call_at(when, self._expire))
        self.timer_when = when

    def _expire(self) -> None:
        self.timer, self.timer_when = None, math.inf
        heap, now = self.heap, self.loop.time()
        while heap and heap[0][0] <= now:
            _, _, wakeup, value = heapq.heappop(heap)
            if wakeup is not None:
                wakeup.fire(value)
        while heap and heap[0][2] is None:  # forgotten entries need no timer
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])


class _PerLoop(Generic[_T]):
    """One ``make(loop)`` per event loop, made on first use (given a weak proxy of the loop)
    and dropped with its loop::

    _deadlines_of = _PerLoop(_Deadlines)
    _deadlines_of(loop).add(...)   # the same _Deadlines for every call on that loop
    """

    def __init__(self, make: Callable[[asyncio.AbstractEventLoop], _T]) -> None:
        self._make = make
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _T] = (
            weakref.WeakKeyDictionary()
        )
        # The last loop asked for, per thread (nearly every call asks for the same loop as
        # the one before): a weak reference and the value, to skip the dictionary look-up,
        # which makes a new weak reference every time.
        self._last = threading.local()

    def __repr__(self) -> str:
        return f"<_PerLoop of {self._make.__name__} loops={len(self._by_loop)}>"

    def __call__(self, loop: asyncio.AbstractEventLoop) -> _T:
        last = self._last
        try:
            if last.ref() is loop:
                return last.value  # type: ignore[no-any-return]
        except AttributeError:  # this thread's first call
            pass
        made = self._by_loop.get(loop)
        if made is None:
            # Made with a weak proxy of the loop: a value that held its key would keep the
            # loop (and its entry) alive for ever.
            proxy = cast(asyncio.AbstractEventLoop, weakref.proxy(loop))
            made = self._by_loop[loop] = self._make(proxy)
        last.ref, last.value = weakref.ref(loop), made
        return made


_deadlines_of = _PerLoop(_Deadlines)


# Seconds of greenmotor work (resuming parked operations, starting new ones) that one loop
# iteration may run before the rest waits for the next iteration. An asyncio loop runs every
# callback that is ready before it looks at its timers and sockets again, so without a bound
# a few hundred operations ready at once (replies arrived together, coroutines that resumed
# together) make one long iteration during which timers and other callbacks wait.
TURN = 0.001


class _Turns:
    """One loop's share of greenmotor work per loop iteration, and the work left for later.

    The first greenmotor work of an iteration starts a turn and schedules
    :meth:`_next_turn` with ``call_soon``, which the loop runs early in its next iteration.
    Work that finds the turn used up (more than :data:`TURN` seconds since it started) is
    queued; the next turn runs the queue first, oldest first, before anything new. Timers
    and I/O callbacks due meanwhile run between the two turns.

    With a single operation in flight nothing waits for it, and none of this happens.
    """

    __slots__ = ("loop", "started", "queue", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.started: float | None = None
        self.queue: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )

    def __repr__(self) -> str:
        return f"<_Turns started={self.started} queued={len(self.queue)}>"

    def used_up(self) -> bool:
        """True if this iteration's turn is over; starts a turn if none is running."""
        started = self.started
        if started is None:
            self.started = _monotonic()
            self.loop.call_soon(self._next_turn)
            return False
        return _monotonic() - started > TURN

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        self.queue.append((fn, args))

    def _next_turn(self) -> None:
        self.started = None
        queue = self.queue
        while queue and not self.used_up():
            fn, args = queue.popleft()
            fn(*args)


_turns_of = _PerLoop(_Turns)


class Wakeup:
    """A one-shot way to park the current DriverGreenlet and resume it later.

    Create it inside the DriverGreenlet, arrange for :meth:`fire` (loop thread) or
    :meth:`fire_threadsafe` (any thread) to be called, then call :meth:`wait`::

        wakeup = Wakeup()
        loop.add_reader(fd, wakeup.fire, True)
        try:
            ready = wakeup.wait(timeout=1.0)   # True, or False after a second
        finally:
            loop.remove_reader(fd)

    Only the first fire after :meth:`wait` began resumes the greenlet; later ones (a timer
    that lost the race, a notification after a cancellation) are ignored.
    """

    __slots__ = ("greenlet", "loop", "parked", "fired")

    def __init__(self) -> None:
        glet = current_driver_greenlet()
        if glet is None:
            raise GreenmotorUsageError(
                "Wakeup() needs a DriverGreenlet; was a green wait attempted outside "
                "greenmotor.core.spawn()? Check current_driver_greenlet() first."
            )
        self.greenlet = glet
        # The loop of this wait: the greenlet moves on to other calls, maybe on other loops.
        self.loop = glet.loop
        self.parked = False
        self.fired = False

    def __repr__(self) -> str:
        state = "parked" if self.parked else ("fired" if self.fired else "idle")
        return f"<Wakeup {state} {self.greenlet!r}>"

    def wait(self, timeout: float | None = None, timeout_value: Any = False) -> Any:
        """Switch to the loop until fired; return the fired value, or timeout_value."""
        glet = self.greenlet
        deadline = None
        if timeout is not None:
            deadline = _deadlines_of(self.loop).add(timeout, self, timeout_value)
        self.parked = True
        try:
            return glet.parent.switch()
        finally:
            self.parked = False
            if deadline is not None:
                deadline[2] = None  # forget it; the heap drops it in passing

    def fire(self, value: Any = True) -> None:
        """Resume the parked greenlet with value. Loop thread only, outside greenlets.

        When this loop iteration has already run its share of greenmotor work (see
        :class:`_Turns`), the greenlet is resumed at the start of the next one instead.
        """
        if self.parked and not self.fired:
            self.fired = True
            glet = self.greenlet
            if len(in_flight) > 1:
                turns = _turns_of(self.loop)
                if turns.used_up():
                    turns.defer(self._resume, value)
                    return
            glet.switch(value)
            resume_handed_over()

    def _resume(self, value: Any) -> None:
        if self.parked:  # not ended meanwhile (cancelled)
            self.greenlet.switch(value)
            resume_handed_over()

    def fire_threadsafe(self, value: Any = True) -> None:
        """Like fire, from any thread (e.g. PyMongo's monitor threads) or greenlet."""
        glet, loop = self.greenlet, self.loop
        if loop.is_closed():
            # Abandoned with its loop (an operation nobody awaited when the loop was closed):
            # it never runs again. The notifier - say, an operation of another loop
            # returning a pool connection - must not fail for that.
            return
        if threading.get_ident() != glet.thread_id:
            try:
                loop.call_soon_threadsafe(self.fire, value)
            except RuntimeError:  # closed meanwhile, in its own thread
                pass
            return
        if current_driver_greenlet() is not None:
            # Woken by another greenlet, typically one returning a pool connection: resume
            # this one as soon as control is back on the hub, before callbacks queued
            # meanwhile (new operations) can take what it was woken for. Every place the
            # hub switches into a greenlet calls resume_handed_over() when it gets control
            # back, so no loop callback is needed (one per pooled-connection hand-over).
            _handed_over().append((self, value))
            return
        loop.call_soon(self.fire, value)


# Wake-ups given by one greenlet to another on the same thread, to run when the hub next has
# control (see Wakeup.fire_threadsafe). One hub per thread, so one queue per thread.
_handed_over_by_thread = threading.local()


def _handed_over() -> collections.deque[tuple[Wakeup, Any]]:
    """This thread's FIFO of (wakeup, value) waiting for the hub."""
    queue = getattr(_handed_over_by_thread, "queue", None)
    if queue is None:
        queue = _handed_over_by_thread.queue = collections.deque()
    return queue


def resume_handed_over() -> None:
    """On the hub: resume the greenlets other greenlets woke, first woken first."""
    queue = _handed_over()
    while queue:
        wakeup, value = queue.popleft()
        wakeup.fire(value)


def cancel_abandoned() -> int:
    """Cancel this thread's operations whose event loop was closed while they were in flight.

    Such an operation (one nobody awaited when ``asyncio.run()`` returned, say) would stay
    parked for ever, holding what it held - often a pooled connection, which the next loop's
    operations would then wait for. CancelledError is thrown into each, as for a cancelled
    Future, so PyMongo's own clean-up closes the connection and restores the pool's counters.
    Returns how many were cancelled. Called on a thread's hub when it starts using another
    loop; greenlets of other threads, or started from another greenlet, are left alone (they
    cannot be switched into from here).
    """
    me, hub = threading.get_ident(), greenlet.getcurrent()
    if type(hub) is DriverGreenlet:
        return 0
    abandoned = [
        glet
        for glet in in_flight.copy()  # other threads add and discard meanwhile
        if glet.thread_id == me and glet.parent is hub and glet.loop.is_closed()
    ]
    for glet in abandoned:
        if glet.dead:
            in_flight.discard(glet)
            continue
        try:
            glet.throw(asyncio.CancelledError("its event loop was closed while it was in flight"))
        except Exception:  # e.g. delivering to a callback of the closed loop
            pass
    resume_handed_over()
    return len(abandoned)
