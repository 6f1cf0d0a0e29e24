"""One client, any event loop (issue 12, item 1; doc/any-loop.rst).

A client made without ``io_loop=`` runs each operation on the loop that is running when the
operation starts: successive ``asyncio.run()`` calls, a new loop per test, loops in several
threads at once - pool waits, server selection, cursors, change streams and sessions
included. A client given ``io_loop=`` stays bound to it, as Motor's are.

Each case runs in both flavours (``flavour`` fixture) on fresh loops, with the loop-stall
monitor on where the loop's own thread is the only one working.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import threading
import time
import weakref
from typing import Any

import pymongo
import pytest
from pymongo.synchronous.pool import Pool
from support.failpoints import fail_command
from tornado.ioloop import IOLoop

import greenmotor
import greenmotor.motor_asyncio
from greenmotor.core import GreenmotorUsageError, in_flight

#: Longest a loop may go without running while only its own thread works. Waits that
#: blocked the loop (a pool or server-selection wait done by blocking the thread) last
#: 100s of ms at least.
MAX_STALL = 0.1


def run_on_fresh_loop(flavour: Any, coro_fn: Any, stall_monitor: Any = None) -> Any:
    """``await coro_fn()`` on a new loop of the flavour's kind; with the stall monitor on
    (asserting no stall) when one is given."""
    if stall_monitor is None:
        return flavour.run_loop(coro_fn)

    async def watched() -> Any:
        async with stall_monitor() as stalls:
            result = await coro_fn()
        assert stalls.longest < MAX_STALL, stalls
        assert stalls.ticks > 0
        return result

    return flavour.run_loop(watched)


def current_asyncio_loop(flavour: Any, client: Any) -> asyncio.AbstractEventLoop:
    io_loop = client.get_io_loop()
    return io_loop if flavour.asyncio else io_loop.asyncio_loop


def test_successive_loops_share_one_client(flavour, stall_monitor):
    """A client made before any loop runs (at import time, say) serves asyncio.run() after
    asyncio.run() (IOLoop after IOLoop): each operation runs on the loop running it."""
    client = flavour.MotorClient(flavour.server_uri, maxPoolSize=3)
    coll = client[flavour.db_name].test_collection
    loops_seen = []
    try:
        for round_ in range(4):

            async def one_round(round_: int = round_) -> None:
                running = asyncio.get_running_loop()
                assert current_asyncio_loop(flavour, client) is running
                loops_seen.append(running)
                docs = [{"_id": round_ * 100 + i, "round": round_} for i in range(20)]
                await coll.insert_many(docs)
                # Concurrent operations on this loop, more than the pool holds.
                found = await asyncio.gather(*(coll.find_one({"_id": d["_id"]}) for d in docs))
                assert found == docs
                assert await coll.count_documents({"round": round_}) == 20

            run_on_fresh_loop(flavour, one_round, stall_monitor)
        assert len(set(map(id, loops_seen))) == 4
        assert flavour.sync_coll.count_documents({}) == 80
    finally:
        client.close()


def test_finished_loops_are_not_kept_alive(flavour):
    """greenmotor's per-loop state (the deadline heap, the fair turns) dies with its loop: a
    process running asyncio.run() after asyncio.run() does not accumulate loops."""
    client = flavour.MotorClient(flavour.server_uri, maxPoolSize=2, socketTimeoutMS=5000)
    coll = client[flavour.db_name].test_collection
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    try:
        for _ in range(3):

            async def one_round() -> None:
                loops.append(weakref.ref(asyncio.get_running_loop()))
                # More operations than connections: pool waits, socket deadlines, turns.
                await asyncio.gather(*(coll.find_one({"_id": i}) for i in range(20)))

            flavour.run_loop(one_round)
    finally:
        client.close()
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]


def test_callbacks_on_successive_loops(flavour):
    """Callback style: the callback runs on the loop that was running at the call."""
    client = flavour.MotorClient(flavour.server_uri)
    coll = client[flavour.db_name].test_collection
    try:
        for i in range(3):

            async def call_with_callback(i: int = i) -> None:
                loop = asyncio.get_running_loop()
                done = loop.create_future()

                def callback(result: Any, error: Any) -> None:
                    assert asyncio.get_running_loop() is loop
                    done.set_result((result, error))

                coll.insert_one({"_id": i}, callback=callback)
                result, error = await done
                assert error is None and result.inserted_id == i

            flavour.run_loop(call_with_callback)
        assert flavour.sync_coll.count_documents({}) == 3
    finally:
        client.close()


# A client made once, outside any loop, as an application module makes it; each test below
# gets a fresh loop, as pytest-asyncio gives a loop per test.
_module_clients: dict[str, Any] = {}


@pytest.fixture
def module_client(flavour):
    client = _module_clients.get(flavour.name)
    if client is None:
        client = _module_clients[flavour.name] = flavour.MotorClient(flavour.server_uri)
    return client


@pytest.fixture(scope="module", autouse=True)
def _close_module_clients():
    yield
    while _module_clients:
        _module_clients.popitem()[1].close()


@pytest.mark.parametrize("test_number", range(3))
def test_a_new_loop_per_test(flavour, module_client, stall_monitor, test_number):
    coll = module_client[flavour.db_name].test_collection

    async def a_test() -> None:
        await coll.insert_one({"_id": test_number})
        assert await coll.find_one({"_id": test_number}) == {"_id": test_number}
        assert await coll.count_documents({}) == 1

    run_on_fresh_loop(flavour, a_test, stall_monitor)


def test_cursor_opened_on_one_loop_is_iterated_on_the_next(flavour, stall_monitor):
    client = flavour.MotorClient(flavour.server_uri)
    coll = client[flavour.db_name].test_collection
    try:
        state: dict[str, Any] = {}

        async def open_cursors() -> None:
            await coll.insert_many([{"_id": i} for i in range(10)])
            state["find"] = coll.find().sort("_id").batch_size(3)
            state["agg"] = coll.aggregate([{"$sort": {"_id": 1}}], batchSize=3)
            assert await state["find"].next() == {"_id": 0}
            assert await state["agg"].next() == {"_id": 0}
            assert state["find"].cursor_id  # a server cursor is open

        async def go_on() -> None:
            assert [d["_id"] async for d in state["find"]] == list(range(1, 10))
            assert await state["agg"].to_list(None) == [{"_id": i} for i in range(1, 10)]

        async def close_on_a_third() -> None:
            rewound = state["find"].rewind()
            assert await rewound.to_list(2) == [{"_id": 0}, {"_id": 1}]
            await rewound.close()
            assert rewound.closed

        run_on_fresh_loop(flavour, open_cursors, stall_monitor)
        run_on_fresh_loop(flavour, go_on, stall_monitor)
        run_on_fresh_loop(flavour, close_on_a_third, stall_monitor)
    finally:
        client.close()


def test_change_stream_across_loops(flavour):
    client = flavour.MotorClient(flavour.server_uri)
    coll = client[flavour.db_name].test_collection
    try:
        state: dict[str, Any] = {}

        async def open_stream() -> None:
            stream = state["stream"] = coll.watch(max_await_time_ms=200)
            assert await stream.try_next() is None  # opened; nothing yet
            await coll.insert_one({"_id": "first"})

        async def read_on_another_loop() -> None:
            change = await state["stream"].next()
            assert change["operationType"] == "insert"
            assert change["documentKey"] == {"_id": "first"}
            waiting = asyncio.ensure_future(state["stream"].next())  # parked in awaitData
            await asyncio.sleep(0.1)
            await coll.insert_one({"_id": "second"})
            change = await asyncio.wait_for(waiting, 10)
            assert change["documentKey"] == {"_id": "second"}

        async def close_on_a_third() -> None:
            await state["stream"].close()
            assert not state["stream"].alive

        flavour.run_loop(open_stream)
        flavour.run_loop(read_on_another_loop)
        flavour.run_loop(close_on_a_third)
    finally:
        client.close()


def test_session_and_transaction_across_loops(flavour, stall_monitor):
    client = flavour.MotorClient(flavour.server_uri)
    coll = client[flavour.db_name].test_collection
    try:
        state: dict[str, Any] = {}

        async def start() -> None:
            await coll.insert_one({"_id": "before"})  # the collection exists
            session = state["session"] = await client.start_session()
            session.start_transaction()
            await coll.insert_one({"_id": 1}, session=session)

        async def go_on() -> None:
            session = state["session"]
            await coll.insert_one({"_id": 2}, session=session)
            assert await coll.count_documents({}, session=session) == 3
            assert flavour.sync_coll.count_documents({}) == 1  # not committed yet
            await session.commit_transaction()

        async def end() -> None:
            await state["session"].end_session()
            assert state["session"].has_ended

        run_on_fresh_loop(flavour, start, stall_monitor)
        run_on_fresh_loop(flavour, go_on, stall_monitor)
        run_on_fresh_loop(flavour, end, stall_monitor)
        assert flavour.sync_coll.count_documents({}) == 3
    finally:
        client.close()


def test_with_transaction_on_successive_loops(flavour):
    client = flavour.MotorClient(flavour.server_uri)
    coll = client[flavour.db_name].test_collection
    try:
        for i in range(3):

            async def transact(i: int = i) -> None:
                async def body(session: Any) -> None:
                    await coll.insert_one({"_id": i}, session=session)

                async with await client.start_session() as session:
                    await session.with_transaction(body)

            flavour.run_loop(transact)
        assert sorted(d["_id"] for d in flavour.sync_coll.find()) == [0, 1, 2]
    finally:
        client.close()


def test_gridfs_file_read_across_loops(flavour, stall_monitor):
    """A GridFS file uploaded on one loop, opened and partly read on the next, read to its
    end on a third."""
    client = flavour.MotorClient(flavour.server_uri)
    data = bytes(range(256)) * 40  # 10 chunks of 1 KiB
    state: dict[str, Any] = {}
    try:
        bucket = flavour.MotorGridFSBucket(client[flavour.db_name], chunk_size_bytes=1024)

        async def upload() -> None:
            state["id"] = await bucket.upload_from_stream("a.bin", data)

        async def open_and_read_some() -> None:
            grid_out = state["out"] = await bucket.open_download_stream(state["id"])
            assert await grid_out.read(1500) == data[:1500]

        async def read_the_rest() -> None:
            assert await state["out"].read() == data[1500:]

        for step in (upload, open_and_read_some, read_the_rest):
            run_on_fresh_loop(flavour, step, stall_monitor)
    finally:
        client.close()


def run_in_thread(target: Any, *args: Any) -> Any:
    """target(*args) in a new thread; its result, or its exception re-raised here."""
    outcome: dict[str, Any] = {}

    def main() -> None:
        try:
            outcome["result"] = target(*args)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the thread hung"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def test_pool_wait_woken_by_a_loop_in_another_thread(flavour, sync_client, stall_monitor):
    """maxPoolSize=1: a loop in thread B waits for the connection a loop in thread A holds
    (a find the server blocks for 0.5 s). B's loop keeps running while it waits, and B's
    operation goes on as soon as A's returns the connection (a thread-safe wake-up)."""
    client = flavour.MotorClient(flavour.server_uri, maxPoolSize=1, appName="poolwait")
    coll = client[flavour.db_name].test_collection
    a_started = threading.Event()
    times: dict[str, float] = {}
    try:

        async def connect() -> None:
            await coll.insert_one({"_id": 1})  # connected: one pooled connection

        flavour.run_loop(connect)

        async def a_holds_the_connection() -> None:
            future = coll.find_one({"_id": 1})
            a_started.set()  # the find has the connection: it was sent at the call
            assert await future == {"_id": 1}
            times["a_done"] = time.monotonic()

        async def b_waits() -> None:
            assert a_started.wait(10)
            start = time.monotonic()
            async with stall_monitor() as stalls:
                assert await coll.find_one({"_id": 1}, {"_id": 1}) == {"_id": 1}
            times["b_waited"] = time.monotonic() - start
            times["b_done"] = time.monotonic()
            assert stalls.longest < MAX_STALL, stalls
            assert stalls.ticks >= 20  # the loop ran while B waited for the connection

        with fail_command(
            sync_client, ["find"], blockConnection=True, blockTimeMS=500, app_name="poolwait"
        ):
            thread_a = threading.Thread(target=flavour.run_loop, args=(a_holds_the_connection,))
            thread_a.start()
            run_in_thread(flavour.run_loop, b_waits)
            thread_a.join(30)
        assert times["b_waited"] > 0.3  # it really waited for A's connection
        assert times["b_done"] >= times["a_done"]
        assert client.delegate._topology.get_server_by_address(
            client.delegate.address
        ).pool.active_sockets == 0  # fmt: skip
    finally:
        client.close()


def test_loops_in_threads_stress(flavour):
    """8 threads, each with its own loop, share one client (maxPoolSize=4, so operations
    wait for connections other threads' loops return): 200 operations each, mixing inserts,
    finds, cursors and sessions. Nothing is lost: every result is checked, then every
    document counted. All threads start together, so their first operations also wait in
    server selection together."""
    threads_n, ops_n = 8, 200
    client = flavour.MotorClient(flavour.server_uri, maxPoolSize=4)
    coll = client[flavour.db_name].test_collection
    start = threading.Barrier(threads_n)
    results: dict[int, collections.Counter] = {}

    def worker(t: int) -> None:
        async def main() -> collections.Counter:
            done: collections.Counter = collections.Counter()
            start.wait(30)
            session = await client.start_session()
            pending_cursor = None
            for i in range(ops_n):
                kind = i % 5
                doc = {"_id": f"{t}-{i}", "t": t, "i": i}
                if kind == 0:
                    result = await coll.insert_one(doc)
                    assert result.inserted_id == doc["_id"]
                elif kind == 1:
                    await coll.insert_one(doc)
                    assert await coll.find_one({"_id": doc["_id"]}) == doc
                elif kind == 2:
                    await coll.insert_one(doc, session=session)
                    found = await coll.find_one({"_id": doc["_id"]}, session=session)
                    assert found == doc
                elif kind == 3:
                    # Several concurrent operations on this loop.
                    batch = [{"_id": f"{t}-{i}-{k}", "t": t, "i": i, "k": k} for k in range(3)]
                    outcomes = await asyncio.gather(*(coll.insert_one(d) for d in batch))
                    assert [o.inserted_id for o in outcomes] == [d["_id"] for d in batch]
                    done["extra"] += 3
                    await coll.insert_one(doc)
                else:
                    # A cursor left open with batches to come, finished a few operations on.
                    if pending_cursor is not None:
                        rest = [d async for d in pending_cursor[0]]
                        assert [d["i"] for d in rest] == pending_cursor[1][1:]
                    await coll.insert_one(doc)
                    cursor = coll.find({"t": t, "k": {"$exists": False}}).sort("i").batch_size(2)
                    first = await cursor.next()
                    expected = [d["i"] async for d in coll.find({"t": t, "k": None}).sort("i")]
                    assert first["i"] == expected[0]
                    pending_cursor = (cursor, expected)
                done[kind] += 1
            if pending_cursor is not None:
                rest = [d async for d in pending_cursor[0]]
                assert [d["i"] for d in rest] == pending_cursor[1][1:]
            await session.end_session()
            assert await coll.count_documents({"t": t}) == ops_n + done["extra"]
            return done

        results[t] = flavour.run_loop(main)

    errors: list[BaseException] = []

    def guarded(t: int) -> None:
        try:
            worker(t)
        except BaseException as exc:  # reported by the test
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=guarded, args=(t,)) for t in range(threads_n)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        assert not any(thread.is_alive() for thread in threads), "a thread hung"
        assert not errors, errors
        assert sorted(results) == list(range(threads_n))
        for done in results.values():
            assert done[0] + done[1] + done[2] + done[3] + done[4] == ops_n
        extra = sum(done["extra"] for done in results.values())
        assert flavour.sync_coll.count_documents({}) == threads_n * ops_n + extra
        for t in range(threads_n):
            ids = {d["i"] for d in flavour.sync_coll.find({"t": t, "k": None})}
            assert ids == set(range(ops_n))
        pool = client.delegate._topology.get_server_by_address(client.delegate.address).pool
        assert pool.active_sockets == 0
        assert not [g for g in in_flight.copy() if g.loop.is_closed()], "greenlets left behind"
    finally:
        client.close()


def test_call_with_no_loop_running_runs_on_the_threads_current_loop(flavour):
    """As with Motor: called outside a running loop, an operation belongs to the thread's
    current loop (made if there is none) and completes when that loop runs."""

    def in_a_fresh_thread() -> Any:
        client = flavour.MotorClient(flavour.server_uri)
        try:
            if flavour.asyncio:
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
                try:
                    future = client.admin.command("ping")
                    assert client.get_io_loop() is loop
                    return loop.run_until_complete(future)
                finally:
                    asyncio.set_event_loop(None)
                    loop.close()
            future = client.admin.command("ping")  # IOLoop.current(): made for this thread
            io_loop = IOLoop.current()
            assert client.get_io_loop() is io_loop
            try:
                return io_loop.run_sync(lambda: future)
            finally:
                io_loop.close()
                asyncio.set_event_loop(None)
        finally:
            client.close()

    assert run_in_thread(in_a_fresh_thread)["ok"] == 1.0


def test_refused_where_it_cannot_work(flavour):
    """The thread's current loop runs in another thread, or is closed: the operation could
    never be resumed. The error says why and what to do."""
    client = flavour.MotorClient(flavour.server_uri)
    foreign = asyncio.new_event_loop()
    runner = threading.Thread(target=foreign.run_forever)
    runner.start()
    try:

        def current_loop_runs_elsewhere() -> None:
            asyncio.set_event_loop(foreign)
            try:
                with pytest.raises(GreenmotorUsageError, match="runs in another thread") as err:
                    client.admin.command("ping")
                assert "run_coroutine_threadsafe" in str(err.value)
                assert "IOLoop.add_callback" in str(err.value)
            finally:
                asyncio.set_event_loop(None)

        def current_loop_closed() -> None:
            closed = asyncio.new_event_loop()
            closed.close()
            asyncio.set_event_loop(closed)
            try:
                with pytest.raises(GreenmotorUsageError, match="is closed") as err:
                    client[flavour.db_name].test_collection.find().to_list(None)
                assert "asyncio.run()" in str(err.value)
            finally:
                asyncio.set_event_loop(None)

        run_in_thread(current_loop_runs_elsewhere)
        run_in_thread(current_loop_closed)
    finally:
        foreign.call_soon_threadsafe(foreign.stop)
        runner.join(10)
        foreign.close()
        client.close()
    assert not [g for g in in_flight.copy() if g.loop is foreign]


def test_io_loop_given_binds_the_client_as_motors(flavour):
    """With io_loop= the client is bound: used on another running loop it refuses, with
    Motor's advice and the way to serve any loop."""
    if flavour.asyncio:
        bound_loop = asyncio.new_event_loop()
        client = flavour.MotorClient(flavour.server_uri, io_loop=bound_loop)
    else:
        bound_loop = IOLoop(make_current=False)
        client = flavour.MotorClient(flavour.server_uri, io_loop=bound_loop)
    try:
        assert client.get_io_loop() is bound_loop
        assert client.io_loop is bound_loop

        async def on_another_loop() -> None:
            with pytest.raises(GreenmotorUsageError, match="per loop") as err:
                client.admin.command("ping")
            assert "without io_loop=" in str(err.value)
            assert client.get_io_loop() is bound_loop  # still bound

        flavour.run_loop(on_another_loop)
        if flavour.asyncio:
            assert bound_loop.run_until_complete(client.admin.command("ping"))["ok"] == 1.0
        else:
            assert bound_loop.run_sync(lambda: client.admin.command("ping"))["ok"] == 1.0
    finally:
        client.close()
        bound_loop.close()


def test_get_io_loop_follows_the_running_loop(flavour):
    client = flavour.MotorClient(flavour.server_uri)
    kind = asyncio.AbstractEventLoop if flavour.asyncio else IOLoop
    seen = []
    try:
        for _ in range(2):

            async def look() -> None:
                loop = client.get_io_loop()
                assert isinstance(loop, kind)
                assert current_asyncio_loop(flavour, client) is asyncio.get_running_loop()
                assert client.test.io_loop is loop  # databases and collections say the same
                seen.append(loop)

            flavour.run_loop(look)
        assert seen[0] is not seen[1]
    finally:
        client.close()


def test_close_on_a_running_loop_does_not_block_it(flavour, stall_monitor):
    client = flavour.MotorClient(flavour.server_uri)

    async def use_then_close() -> None:
        await client.admin.command("ping")
        session = await client.start_session()  # endSessions at close: I/O
        await session.end_session()
        client.close()

    run_on_fresh_loop(flavour, use_then_close, stall_monitor)

    async def use_after_close() -> None:
        await client.admin.command("ping")

    with pytest.raises(pymongo.errors.InvalidOperation, match="after close"):
        flavour.run_loop(use_after_close)


def test_plain_pymongo_client_unaffected(server_uri, flavour):
    """While a greenmotor client serves loops in several threads, plain MongoClients in the
    same threads (on the loops' threads too) block and wait as PyMongo does: their pool and
    topology are PyMongo's own, and they start no greenlets."""
    gm = flavour.MotorClient(server_uri, maxPoolSize=2)
    plain = pymongo.MongoClient(server_uri, maxPoolSize=1)
    plain_coll = plain[flavour.db_name].plain
    gm_coll = gm[flavour.db_name].test_collection
    errors: list[BaseException] = []
    try:
        plain.admin.command("ping")
        assert type(plain._topology._condition) is threading.Condition
        assert type(plain._topology.get_server_by_address(plain.address).pool) is Pool

        def mine() -> set:
            return {g for g in in_flight.copy() if g.thread_id == threading.get_ident()}

        def worker(t: int) -> None:
            async def main() -> None:
                for i in range(20):
                    await gm_coll.insert_one({"t": t, "i": i})
                    before = mine()
                    # A plain client on the loop's thread: blocks, starts no greenlet.
                    plain_coll.insert_one({"t": t, "i": i})
                    assert mine() <= before
                    assert plain_coll.find_one({"t": t, "i": i})["i"] == i

            try:
                flavour.run_loop(main)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        assert plain_coll.count_documents({}) == 80
        assert flavour.sync_coll.count_documents({}) == 80
    finally:
        gm.close()
        plain.close()


def test_plain_pymongo_client_unaffected_outside_loops(server_uri):
    """greenmotor's clients change nothing process-wide for a plain client: from plain
    threads, its maxPoolSize wait blocks threads as PyMongo's does."""
    greenmotor.motor_asyncio.AsyncIOMotorClient(server_uri).close()  # hooks installed
    plain = pymongo.MongoClient(server_uri, maxPoolSize=1)
    try:
        coll = plain.greenmotor_test_any_loop_plain.c
        coll.drop()
        threads = [
            threading.Thread(target=lambda t=t: [coll.insert_one({"t": t}) for _ in range(25)])
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert coll.count_documents({}) == 100
        coll.drop()
    finally:
        plain.close()


@pytest.mark.parametrize("style", ["future", "callback"])
def test_an_operation_abandoned_with_its_loop_gives_its_connection_back(
    flavour, sync_client, style
):
    """An operation nobody awaited is in flight when its loop closes (it holds the one
    pooled connection, waiting for a reply the server delays). The next loop's operations
    get the connection: the abandoned one is cancelled when the thread moves on to the new
    loop, and PyMongo's clean-up returns what it held."""
    client = flavour.MotorClient(flavour.server_uri, maxPoolSize=1, appName="abandoned")
    coll = client[flavour.db_name].test_collection
    closed_loops: list[asyncio.AbstractEventLoop] = []
    called_back: list[Any] = []
    try:

        async def forget_an_await() -> None:
            await coll.insert_one({"_id": 1})
            closed_loops.append(asyncio.get_running_loop())
            # Sent at once; the reply takes 0.5 s, the loop ends before.
            if style == "future":
                coll.find_one({"_id": 1})
            else:
                coll.find_one({"_id": 1}, callback=lambda *outcome: called_back.append(outcome))

        async def next_loop() -> None:
            assert await asyncio.wait_for(coll.find_one({"_id": 1}), 10) == {"_id": 1}

        with fail_command(
            sync_client, ["find"], blockConnection=True, blockTimeMS=500, app_name="abandoned"
        ):
            flavour.run_loop(forget_an_await)
        stuck = [g for g in in_flight.copy() if g.loop is closed_loops[0]]
        assert len(stuck) == 1 and closed_loops[0].is_closed()
        abandoned = stuck[0].future
        flavour.run_loop(next_loop)
        # Its call ended (the greenlet is dead, or idle for reuse by a later call).
        assert stuck[0] not in in_flight and (stuck[0].dead or stuck[0].idle)
        assert abandoned.cancelled()
        assert called_back == []  # its loop is gone: nothing can run the callback
        pool = client.delegate._topology.get_server_by_address(client.delegate.address).pool
        assert pool.active_sockets == 0
    finally:
        client.close()
