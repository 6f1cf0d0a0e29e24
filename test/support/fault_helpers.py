"""Shared tools for the reliability tests: event recorders, pool inspection, leak probes.

::

    recorder = CommandRecorder()
    client = MotorClient(uri, event_listeners=[recorder, PoolEvents()])
    ...
    assert recorder.attempts("find") == ["failed", "succeeded"]
    assert_pool_clean(client)            # nothing checked out, nothing half-read
    before = Resources.measure(); ...; after = Resources.measure()
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo import monitoring
from pymongo.errors import OperationFailure, PyMongoError

from greenmotor.core import in_flight


class CommandRecorder(monitoring.CommandListener):
    """Records every command event as (command name, "started"/"succeeded"/"failed")."""

    def __init__(self, ignore: tuple[str, ...] = ("configureFailPoint", "endSessions")) -> None:
        self.events: list[tuple[str, str]] = []
        self.ignore = ignore
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<CommandRecorder {len(self.events)} events>"

    def _add(self, event: Any, kind: str) -> None:
        if event.command_name not in self.ignore:
            with self._lock:
                self.events.append((event.command_name, kind))

    def started(self, event: Any) -> None:
        self._add(event, "started")

    def succeeded(self, event: Any) -> None:
        self._add(event, "succeeded")

    def failed(self, event: Any) -> None:
        self._add(event, "failed")

    def attempts(self, name: str | None = None) -> list[tuple[str, str]]:
        """The outcome of each attempt (the started events are implied)."""
        return [(n, k) for n, k in self.events if k != "started" and name in (None, n)]

    def reset(self) -> None:
        with self._lock:
            self.events.clear()


class PoolEvents(monitoring.ConnectionPoolListener):
    """Counts CMAP events: every checkout must be matched by a checkin."""

    def __init__(self, keep_timeline: bool = False) -> None:
        self.counts: dict[str, int] = {}
        self.closed_reasons: list[str] = []
        self.keep_timeline = keep_timeline  # off by default: it grows with every event
        self.timeline: list[tuple[str, float]] = []  # (event, time.monotonic())
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<PoolEvents {self.counts}>"

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            if self.keep_timeline:
                self.timeline.append((name, time.monotonic()))

    def connection_lifetimes(self) -> list[float]:
        """Seconds from each connection's creation to its closing, in order."""
        created = [t for name, t in self.timeline if name == "created"]
        closed = [t for name, t in self.timeline if name == "closed"]
        return [end - start for start, end in zip(created, closed, strict=False)]  # open: no end

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)

    def pool_created(self, event: Any) -> None:
        self._count("pool_created")

    def pool_ready(self, event: Any) -> None:
        self._count("pool_ready")

    def pool_cleared(self, event: Any) -> None:
        self._count("pool_cleared")

    def pool_closed(self, event: Any) -> None:
        self._count("pool_closed")

    def connection_created(self, event: Any) -> None:
        self._count("created")

    def connection_ready(self, event: Any) -> None:
        self._count("ready")

    def connection_closed(self, event: Any) -> None:
        self._count("closed")
        with self._lock:
            self.closed_reasons.append(event.reason)

    def connection_check_out_started(self, event: Any) -> None:
        self._count("checkout_started")

    def connection_check_out_failed(self, event: Any) -> None:
        self._count("checkout_failed")

    def connection_checked_out(self, event: Any) -> None:
        self._count("checked_out")

    def connection_checked_in(self, event: Any) -> None:
        self._count("checked_in")


def app_pool(client: Any) -> Any:
    """The application connection pool of a (Motor or PyMongo) client's only server."""
    delegate = getattr(client, "delegate", client)
    servers = delegate._topology._servers
    assert len(servers) == 1, servers
    return next(iter(servers.values())).pool


def readable_now(sock: Any) -> bool:
    """True if the socket has bytes (or EOF) waiting: a reply nobody read."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def assert_pool_clean(client: Any, max_idle: int | None = None) -> None:
    """Nothing checked out, no counter left raised, no idle connection holding unread bytes."""
    pool = app_pool(client)
    with pool.lock:
        state = {
            "active_sockets": pool.active_sockets,
            "requests": pool.requests,
            "operation_count": pool.operation_count,
            "pending": pool._pending,
        }
        idle = list(pool.conns)
    assert state == {"active_sockets": 0, "requests": 0, "operation_count": 0, "pending": 0}, state
    for conn in idle:
        assert not conn.closed, conn
        sock = conn.conn.sock
        assert sock.fileno() != -1
        assert not readable_now(sock), f"{conn} holds an unread reply"
    if max_idle is not None:
        assert len(idle) <= max_idle


def loop_greenlets(loop: asyncio.AbstractEventLoop) -> list:
    """greenmotor greenlets still running for this loop."""
    return [g for g in in_flight if g.loop is loop]


async def quiesce(loop: asyncio.AbstractEventLoop, timeout: float = 5.0) -> None:
    """Wait until this loop's greenlets have all ended (clean-up after a cancellation, such
    as PyMongo killing a cursor, may still be running in the cancelled greenlet)."""
    deadline = time.monotonic() + timeout
    while loop_greenlets(loop):
        assert time.monotonic() < deadline, loop_greenlets(loop)
        await asyncio.sleep(0.005)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Resources:
    """What a leak would grow: greenlets, file descriptors, threads, resident memory."""

    greenlets: int
    fds: int
    threads: int
    rss: int

    @classmethod
    def measure(cls) -> Resources:
        gc.collect()
        return cls(len(in_flight), fd_count(), threading.active_count(), rss_bytes())

    def __str__(self) -> str:
        return (
            f"greenlets={self.greenlets} fds={self.fds} threads={self.threads} "
            f"rss={self.rss / 2**20:.1f}MiB"
        )


class LogCapture(logging.Handler):
    """Collects WARNING-and-above records from every logger, and the loop's exception handler.

    ::

        with LogCapture(loop) as logs:
            ...
        assert logs.records == []
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []
        self.loop = loop
        self._old_handler: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")

    def _loop_exception(self, loop: Any, context: dict) -> None:
        self.records.append(
            f"loop exception handler: {context.get('message')} {context.get('exception')!r}"
        )

    def __enter__(self) -> LogCapture:
        logging.getLogger().addHandler(self)
        if self.loop is not None:
            self._old_handler = self.loop.get_exception_handler()
            self.loop.set_exception_handler(self._loop_exception)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger().removeHandler(self)
        if self.loop is not None:
            self.loop.set_exception_handler(self._old_handler)


def outcome(exc: BaseException | None, result: Any = None) -> tuple:
    """A comparable summary of how an operation ended: the result, or the error's kind."""
    if exc is None:
        return ("ok", result)
    summary: tuple = ("error", type(exc).__name__)
    if isinstance(exc, OperationFailure):
        summary += (exc.code,)
    if isinstance(exc, PyMongoError):
        summary += (tuple(sorted(exc._error_labels)),)
    return summary


def sync_outcome(fn: Callable[[], Any]) -> tuple:
    try:
        return outcome(None, fn())
    except Exception as exc:  # the outcome is what we compare
        return outcome(exc)


async def green_outcome(awaitable: Any) -> tuple:
    try:
        return outcome(None, await awaitable)
    except Exception as exc:
        return outcome(exc)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking code (a sync PyMongo client) off the loop, which stays free."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.elapsed``."""

    def __enter__(self) -> Stopwatch:
        self.start = time.monotonic()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.elapsed = time.monotonic() - self.start
