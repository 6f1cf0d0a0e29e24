"""Cancelling an operation mid-flight: nothing half-used is left behind, and nothing leaks.

Cancelling the Future greenmotor returned (directly, through ``asyncio.wait_for``, a
cancelled task, or a Tornado handler whose client went away) throws ``CancelledError``
into the operation's greenlet, so PyMongo's own clean-up runs: a connection with a request
in flight is closed, pool counters are restored, and the greenlet ends.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import socket
import warnings
from datetime import timedelta

import pytest
from support.failpoints import fail_command
from support.fault_helpers import (
    CommandRecorder,
    LogCapture,
    PoolEvents,
    Resources,
    app_pool,
    assert_pool_clean,
    fd_count,
    loop_greenlets,
    quiesce,
)
from support.scripted_servers import ScriptedServer, StalledListener
from support.servers import free_port
from tornado import gen, web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from greenmotor import MotorClient
from greenmotor.core import in_flight

APP = "greenmotor-cancellation"


@pytest.fixture
def events():
    return PoolEvents()


@pytest.fixture
def motor(server_uri, io_loop, events):
    client = MotorClient(server_uri, io_loop=io_loop, appname=APP, event_listeners=[events])
    yield client
    client.close()


async def settle() -> None:
    """Let the loop run the callbacks that throw the cancellation into greenlets."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_wait_for_closes_the_connection_with_a_request_in_flight(
    motor, events, sync_client, io_loop
):
    coll = motor.greenmotor_cancel.wait_for
    await coll.drop()  # test_socket_layers runs this test again
    await coll.insert_one({"_id": 1})
    loop = asyncio.get_running_loop()
    with LogCapture(loop) as logs:
        with fail_command(
            sync_client, ["find"], blockConnection=True, blockTimeMS=1000, app_name=APP
        ):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(coll.find_one({"_id": 1}), 0.1)
            await settle()
            assert loop_greenlets(loop) == []
            # The connection had a request on the wire: PyMongo closed it, not reused it.
            assert events["closed"] == 1 and events.closed_reasons == ["error"]
            assert events["checked_out"] == events["checked_in"]
            assert_pool_clean(motor)
        assert await coll.find_one({"_id": 1}) == {"_id": 1}
    assert logs.records == []


async def test_gen_with_timeout_leaves_the_operation_running_to_completion(
    motor, events, sync_client, io_loop
):
    # Tornado's with_timeout does not cancel what it wraps: the operation finishes normally
    # and returns its connection. Cancelling it after the timeout is the caller's choice.
    coll = motor.greenmotor_cancel.with_timeout
    await coll.insert_one({"_id": 1})
    loop = asyncio.get_running_loop()
    with LogCapture(loop) as logs:
        with fail_command(
            sync_client, ["find"], times=2, blockConnection=True, blockTimeMS=300, app_name=APP
        ):
            future = coll.find_one({"_id": 1})
            with pytest.raises(gen.TimeoutError):
                await gen.with_timeout(timedelta(seconds=0.05), future)
            assert not future.done()
            assert await future == {"_id": 1}
            assert events["closed"] == 0
            assert_pool_clean(motor)

            future = coll.find_one({"_id": 1})
            try:
                await gen.with_timeout(timedelta(seconds=0.05), future)
            except gen.TimeoutError:
                future.cancel()
            await settle()
            assert future.cancelled()
            assert loop_greenlets(loop) == []
            assert events["closed"] == 1
            assert_pool_clean(motor)
        assert await coll.find_one({"_id": 1}) == {"_id": 1}
    assert logs.records == []


async def _cancel_task_soon(awaitable, delay: float = 0.1) -> None:
    task = asyncio.ensure_future(awaitable)
    await asyncio.sleep(delay)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()


async def test_task_cancel_while_waiting_for_the_pool(server_uri, sync_client, io_loop):
    events = PoolEvents()
    client = MotorClient(
        server_uri, maxPoolSize=1, appname=APP, event_listeners=[events], io_loop=io_loop
    )
    coll = client.greenmotor_cancel.pool_wait
    await coll.insert_one({"_id": 1})
    loop = asyncio.get_running_loop()
    with LogCapture(loop) as logs:
        with fail_command(
            sync_client, ["find"], blockConnection=True, blockTimeMS=400, app_name=APP
        ):
            holder = coll.find_one({"_id": 1})
            await asyncio.sleep(0.05)
            await _cancel_task_soon(client.admin.command("ping"))
            assert len(app_pool(client).size_cond._waiters) == 0
            assert await holder == {"_id": 1}
        assert events["closed"] == 0  # the waiter never had a connection to spoil
        # PyMongo reports no CheckOutFailed for an interrupted wait; nothing was checked out.
        assert events["checkout_started"] == events["checked_out"] + 1
        assert_pool_clean(client, max_idle=1)
        assert (await client.admin.command("ping"))["ok"] == 1.0
    assert logs.records == []
    assert loop_greenlets(loop) == []
    client.close()


async def test_task_cancel_during_server_selection(io_loop):
    client = MotorClient("127.0.0.1", free_port(), serverSelectionTimeoutMS=10_000, io_loop=io_loop)
    loop = asyncio.get_running_loop()
    with LogCapture(loop) as logs:
        await _cancel_task_soon(client.admin.command("ping"), delay=0.3)
    assert loop_greenlets(loop) == []
    assert len(client.delegate._topology._condition._waiters) == 0
    assert logs.records == []
    client.close()


async def test_task_cancel_during_tcp_connect_closes_the_socket(io_loop):
    # loadBalanced: no monitor, so the operation's own pool connects - into a full backlog.
    with StalledListener() as port:
        client = MotorClient(
            f"mongodb://127.0.0.1:{port}/?loadBalanced=true",
            connectTimeoutMS=10_000,
            io_loop=io_loop,
        )
        loop = asyncio.get_running_loop()
        fds = fd_count()
        with warnings.catch_warnings(record=True) as caught, LogCapture(loop) as logs:
            warnings.simplefilter("always")
            await _cancel_task_soon(client.admin.command("ping"))
            gc.collect()
        assert fd_count() == fds
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
        assert logs.records == []
        assert loop_greenlets(loop) == []
        assert app_pool(client).active_sockets == 0 and app_pool(client)._pending == 0
        client.close()


async def test_task_cancel_during_connection_handshake(io_loop):
    # The server accepts and never answers the handshake's hello.
    with ScriptedServer(hello=None) as server:
        events = PoolEvents()
        client = MotorClient(
            f"mongodb://{server.address}/?loadBalanced=true",
            event_listeners=[events],
            io_loop=io_loop,
        )
        loop = asyncio.get_running_loop()
        with LogCapture(loop) as logs:
            await _cancel_task_soon(client.admin.command("ping"), delay=0.2)
        assert events["created"] == events["closed"] == 1
        assert loop_greenlets(loop) == []
        assert app_pool(client).active_sockets == 0 and len(app_pool(client).conns) == 0
        assert logs.records == []
        client.close()


async def test_task_cancel_during_get_more(motor, events, sync_client, io_loop):
    coll = motor.greenmotor_cancel.get_more
    await coll.drop()  # test_socket_layers runs this test again
    await coll.insert_many([{"_id": i} for i in range(10)])
    cursor = coll.find().sort("_id").batch_size(3)
    assert [await cursor.next() for _ in range(3)] == [{"_id": 0}, {"_id": 1}, {"_id": 2}]
    loop = asyncio.get_running_loop()
    with LogCapture(loop) as logs:
        with fail_command(
            sync_client, ["getMore"], blockConnection=True, blockTimeMS=1000, app_name=APP
        ):
            await _cancel_task_soon(cursor.next())
        # The cancelled greenlet goes on to kill the server-side cursor, as PyMongo does
        # when a getMore is interrupted, then ends.
        await quiesce(loop)
    assert logs.records == []
    assert events["closed"] == 1
    assert_pool_clean(motor)
    # A new cursor works on the same client.
    assert len(await coll.find().to_list(None)) == 10


async def test_task_cancel_during_a_write(motor, events, sync_client, sync_coll, io_loop):
    coll = motor.greenmotor_cancel.write
    sync_coll = sync_client.greenmotor_cancel.write
    with fail_command(sync_client, ["insert"], blockConnection=True, blockTimeMS=300, app_name=APP):
        await _cancel_task_soon(coll.insert_one({"_id": "cancelled"}))
    assert events["closed"] == 1
    assert_pool_clean(motor)
    # The server got the insert before the cancellation and applies it after its block;
    # cancelling never means "not written" (as with PyMongo interrupted by a signal).
    await asyncio.sleep(0.4)
    assert sync_coll.count_documents({"_id": "cancelled"}) == 1
    await coll.insert_one({"_id": "after"})
    assert sync_coll.count_documents({}) == 2
    sync_coll.drop()


async def test_cancel_after_a_notify_passes_the_connection_on(server_uri, sync_client, io_loop):
    """A waiter picked by the pool's notify() but cancelled before it resumed must hand the
    notification on; otherwise the next waiter sleeps although a connection is free."""
    victims = []

    class CancelOnReply(CommandRecorder):
        def succeeded(self, event):
            # Runs in the holder's greenlet just before it checks its connection in: the
            # victim's cancellation is then queued before the pool's wake-up.
            if event.command_name == "find" and victims:
                victims.pop().cancel()

    client = MotorClient(
        server_uri,
        maxPoolSize=1,
        waitQueueTimeoutMS=5000,
        appname=APP,
        event_listeners=[CancelOnReply()],
        io_loop=io_loop,
    )
    coll = client.greenmotor_cancel.notify
    await coll.drop()  # test_socket_layers runs this test again
    await coll.insert_one({"_id": 1})
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=200, app_name=APP):
        holder = coll.find_one({"_id": 1})
        await asyncio.sleep(0.05)
        victim = coll.find_one({"_id": 1})
        bystander = client.admin.command("ping")
        victims.append(victim)
        assert await holder == {"_id": 1}
        start = asyncio.get_running_loop().time()
        assert (await bystander)["ok"] == 1.0
        waited = asyncio.get_running_loop().time() - start
    assert victim.cancelled()
    assert waited < 1.0, f"the bystander waited {waited:.2f}s for a free connection"
    assert_pool_clean(client, max_idle=1)
    client.close()


async def test_tornado_handler_cancelled_when_its_client_disconnects(
    motor, events, sync_client, io_loop
):
    coll = motor.greenmotor_cancel.tornado
    await coll.insert_one({"_id": 1})
    seen = []

    class Slow(web.RequestHandler):
        async def get(self):
            self.operation = coll.find_one({"_id": 1})
            try:
                doc = await self.operation
            except asyncio.CancelledError:
                seen.append("cancelled")
                return
            self.write({"doc": doc})

        def on_connection_close(self):
            seen.append("disconnected")
            self.operation.cancel()

    class Fast(web.RequestHandler):
        async def get(self):
            self.write({"doc": await coll.find_one({"_id": 1})})

    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([("/slow", Slow), ("/fast", Fast)]))
    server.add_sockets([sock])
    loop = asyncio.get_running_loop()
    try:
        with LogCapture(loop) as logs:
            with fail_command(
                sync_client, ["find"], blockConnection=True, blockTimeMS=2000, app_name=APP
            ):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
                await writer.drain()
                for _ in range(200):
                    if loop_greenlets(loop):
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)  # the find is on the wire now
                writer.close()
                for _ in range(200):
                    if "cancelled" in seen:
                        break
                    await asyncio.sleep(0.01)
            await settle()
            assert seen == ["disconnected", "cancelled"]
            assert loop_greenlets(loop) == []
            assert events["closed"] == 1
            assert_pool_clean(motor)
            response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/fast")
            assert b'"_id": 1' in response.body
        assert logs.records == []
    finally:
        server.stop()


@pytest.mark.slow  # ten thousand operations
async def test_ten_thousand_cancellations_leave_nothing_behind(server_uri, sync_client, io_loop):
    """Cancel 10,000 operations at every stage - waiting for the pool, connecting, with a
    request on the wire - and compare greenlets, fds, threads and memory with a baseline."""
    events = PoolEvents()
    client = MotorClient(
        server_uri, maxPoolSize=10, appname=APP, event_listeners=[events], io_loop=io_loop
    )
    coll = client.greenmotor_cancel.leaks
    await coll.insert_one({"_id": 1})
    loop = asyncio.get_running_loop()
    rng = random.Random(4)

    async def random_timeouts(n: int) -> int:
        """n wait_for calls with timeouts around an operation's duration: each is cancelled
        wherever it happens to be, or completes."""

        async def one() -> bool:
            try:
                await asyncio.wait_for(coll.find_one({"_id": 1}), rng.uniform(0, 0.004))
            except TimeoutError:
                return True
            return False

        done = await asyncio.gather(*[one() for _ in range(n)])
        return sum(done)

    async def cancel_on_the_wire(n: int) -> int:
        futures = [coll.find_one({"_id": 1}) for _ in range(n)]
        for future in futures:  # each has sent its find, or waits for a connection
            future.cancel()
        await settle()
        return sum(f.cancelled() for f in futures)

    async def cancel_in_the_queue(n: int) -> int:
        # Ten holders keep every connection busy; the rest wait in the pool's queue.
        with fail_command(
            sync_client, ["find"], times=10, blockConnection=True, blockTimeMS=300, app_name=APP
        ):
            holders = [coll.find_one({"_id": 1}) for _ in range(10)]
            await asyncio.sleep(0.05)
            futures = [coll.find_one({"_id": 1}) for _ in range(n)]
            await asyncio.sleep(0)
            for future in futures:
                future.cancel()
            await settle()
            assert await asyncio.gather(*holders) == [{"_id": 1}] * 10
        return sum(f.cancelled() for f in futures)

    # Warm up every path once so the baseline includes caches, threads and the full pool.
    await random_timeouts(200)
    await cancel_on_the_wire(50)
    await cancel_in_the_queue(100)
    await asyncio.gather(*[coll.find_one({"_id": 1}) for _ in range(20)])
    before = Resources.measure()

    # GREENMOTOR_LEAK_ROUNDS=6 repeats the 10,000 to show memory levels off (doc/reliability.rst).
    rounds = int(os.environ.get("GREENMOTOR_LEAK_ROUNDS", "1"))
    with LogCapture(loop) as logs:
        for round_number in range(1, rounds + 1):
            cancelled = 0
            while cancelled < 2_000:
                cancelled += await random_timeouts(200)
            for _ in range(200):  # ten at a time: each has a find on the wire when cancelled
                cancelled += await cancel_on_the_wire(10)
            for _ in range(6):
                cancelled += await cancel_in_the_queue(1000)
            await settle()
            # Fill the pool again so it holds what it held at the baseline.
            await asyncio.gather(*[coll.find_one({"_id": 1}) for _ in range(20)])
            after = Resources.measure()
            print(
                f"\nround {round_number}: {cancelled} cancellations; before: {before}; "
                f"after: {after}; connections created {events['created']}, "
                f"closed {events['closed']}"
            )

    assert cancelled >= 10_000
    assert logs.records == []
    assert after.greenlets == before.greenlets == 0
    assert (
        after.threads <= before.threads
    )  # earlier tests' closed clients may still be winding down
    assert after.fds <= before.fds + 2  # the pool refilled to at most its old size
    assert after.rss - before.rss < 40 * 2**20
    assert events["checked_out"] == events["checked_in"]
    assert_pool_clean(client, max_idle=10)
    assert events["created"] - events["closed"] == len(app_pool(client).conns)
    assert await coll.find_one({"_id": 1}) == {"_id": 1}
    await coll.drop()
    client.close()


def test_stalled_listener_really_stalls():
    """The connect-timeout and connect-cancellation tests rely on this."""
    with StalledListener() as port:
        probe = socket.socket()
        probe.settimeout(0.2)
        with pytest.raises((TimeoutError, socket.timeout)):
            probe.connect(("127.0.0.1", port))
        probe.close()


def test_close_as_the_last_line_of_run_sync_leaks_nothing(server_uri):
    """``client.close()`` on the loop, right before the loop stops: PyMongo's close (with its
    endSessions round trip) must still finish - monitor threads stopped, sockets closed."""
    import threading
    import time

    from tornado.ioloop import IOLoop

    def settled_threads() -> int:
        time.sleep(0.2)
        return threading.active_count()

    baseline = settled_threads()
    for _ in range(3):
        loop = IOLoop(make_current=False)

        async def main(loop: IOLoop = loop) -> None:
            client = MotorClient(server_uri, maxPoolSize=5, io_loop=loop)
            coll = client.greenmotor_cancel.close_last
            # Concurrent operations leave several server sessions for close() to end.
            await asyncio.gather(*[coll.find_one({}) for _ in range(5)])
            client.close()

        loop.run_sync(main)
        loop.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    names = sorted(t.name for t in threading.enumerate())
    assert threading.active_count() <= baseline, names
    assert [g for g in list(in_flight) if g.loop.is_closed()] == []
