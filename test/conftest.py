"""pytest set-up: one real server per run, a fresh IOLoop per test, coroutine tests.

The suite starts SecantusDB itself (``--enable-test-commands``, in-memory) on a free port, or
uses ``GREENMOTOR_TEST_URI`` when set. ``async def`` tests run on the test's ``io_loop``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import time
import uuid

import pymongo
import pytest
from support.servers import SecantusServer, uri_from_environment
from tornado.ioloop import IOLoop

import greenmotor
import greenmotor.motor_asyncio
import greenmotor.motor_tornado

TEST_TIMEOUT = 60


@pytest.fixture(scope="session")
def server_uri():
    uri = uri_from_environment()
    if uri:
        yield uri
        return
    server = SecantusServer("--enable-test-commands")
    server.start()
    server.wait_ready()
    yield server.uri
    server.stop()


@pytest.fixture
def io_loop():
    loop = IOLoop(make_current=False)
    yield loop
    loop.close(all_fds=False)


@pytest.fixture
def client(server_uri, io_loop):
    c = greenmotor.MotorClient(server_uri, io_loop=io_loop)
    yield c
    c.close()


@pytest.fixture
def sync_client(server_uri):
    """Plain PyMongo, to check what greenmotor did from outside."""
    c = pymongo.MongoClient(server_uri)
    yield c
    c.close()


@pytest.fixture
def db(client, sync_client):
    name = f"greenmotor_test_{uuid.uuid4().hex[:8]}"
    yield client[name]
    sync_client.drop_database(name)


@pytest.fixture
def coll(db):
    return db.test_collection


@pytest.fixture
def sync_coll(sync_client, coll):
    return sync_client[coll.database.name][coll.name]


def pytest_pyfunc_call(pyfuncitem):
    """Run ``async def`` tests to completion on their io_loop."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    if "io_loop" not in pyfuncitem.funcargs:
        raise pytest.UsageError(f"{pyfuncitem.name}: async tests must use the io_loop fixture")
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    coro_fn = functools.partial(pyfuncitem.obj, **kwargs)
    pyfuncitem.funcargs["io_loop"].run_sync(coro_fn, timeout=TEST_TIMEOUT)
    return True


def _run_queue_wait() -> float:
    """Seconds this thread has spent runnable but not running (waiting for a CPU).

    On a shared 2-core machine the kernel may leave the loop's thread unscheduled for tens
    of milliseconds while other processes run; that is not the loop being blocked.
    """
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0  # no schedstat: count every gap in full


class LoopStallMonitor:
    """Measures the longest time the loop went without running a 5 ms ticker.

    A gap counts the time the loop's thread ran (or slept, or waited in a syscall) without
    getting back to the loop; time it spent waiting for a CPU, per the kernel's schedstat,
    is left out, so other processes' load does not read as a stall.

    ::

        async with LoopStallMonitor() as stalls:
            await work()
        assert stalls.longest < 0.05
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.longest = 0.0
        self.ticks = 0
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<LoopStallMonitor longest={self.longest * 1000:.1f}ms ticks={self.ticks}>"

    async def _tick(self) -> None:
        last, last_wait = time.monotonic(), _run_queue_wait()
        while True:
            await asyncio.sleep(self.interval)
            now, wait = time.monotonic(), _run_queue_wait()
            gap = now - last - self.interval - (wait - last_wait)
            self.longest = max(self.longest, gap)
            self.ticks += 1
            last, last_wait = now, wait

    async def __aenter__(self) -> LoopStallMonitor:
        # A full cycle collection over everything the test process holds pauses any Python
        # program (tens of ms here, at ~1 us per tracked object); that is the interpreter,
        # not greenmotor blocking. Collect now and freeze what exists: garbage made inside
        # the block is still collected, and its cost still counts.
        gc.collect()
        gc.freeze()
        self._task = asyncio.ensure_future(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None
        # Let the ticker tick once more: a stall that lasts to the end of the block (a
        # blocking call as its last statement) is only measured by the next tick.
        ticks = self.ticks
        while self.ticks == ticks and not self._task.done():
            await asyncio.sleep(self.interval)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            gc.unfreeze()


@pytest.fixture
def stall_monitor():
    return LoopStallMonitor


class Flavour:
    """One flavour of greenmotor's classes, and a way to run a test coroutine in it.

    ``flavour.MotorGridIn`` is ``AsyncIOMotorGridIn`` in the asyncio flavour. ``run(body)``
    runs ``await body(collection)`` with a fresh client of the flavour on a fresh loop of its
    kind (a Tornado IOLoop, or ``asyncio.run`` with no IOLoop at all); the collection is in a
    database of its own (``db_name``), dropped when the fixture ends.
    """

    def __init__(self, name: str, server_uri: str = "", sync_client=None) -> None:
        self.name = name
        self.asyncio = name == "asyncio"
        self.server_uri = server_uri
        self.db_name = f"greenmotor_test_{uuid.uuid4().hex[:8]}"
        self.sync_coll = None if sync_client is None else sync_client[self.db_name].test_collection

    def __repr__(self) -> str:
        return f"<Flavour {self.name}>"

    def __getattr__(self, declared_name: str):
        if not declared_name.startswith("Motor"):
            raise AttributeError(declared_name)
        module = greenmotor.motor_asyncio if self.asyncio else greenmotor.motor_tornado
        return getattr(module, ("AsyncIO" if self.asyncio else "") + declared_name)

    def run_loop(self, coro_fn):
        """Run ``coro_fn()`` to completion on a fresh loop of this flavour's kind."""
        if self.asyncio:
            return asyncio.run(coro_fn())
        loop = IOLoop(make_current=False)
        try:
            return loop.run_sync(coro_fn, timeout=TEST_TIMEOUT)
        finally:
            loop.close(all_fds=False)

    def run(self, body):
        async def main():
            client = self.MotorClient(self.server_uri)
            try:
                return await body(client[self.db_name].test_collection)
            finally:
                client.close()

        return self.run_loop(main)


@pytest.fixture(params=["tornado", "asyncio"])
def flavour(request, server_uri, sync_client):
    """Runs the test in each flavour (see :class:`Flavour`)."""
    flavour = Flavour(request.param, server_uri, sync_client)
    yield flavour
    sync_client.drop_database(flavour.db_name)


@pytest.fixture
def other_flavour(flavour):
    return Flavour("tornado" if flavour.asyncio else "asyncio", flavour.server_uri)
