"""The loop never stalls: a 5 ms ticker keeps running while greenmotor waits.

Timing is the behaviour here, so the bound (50 ms) is generous against the ticker's 5 ms.
"""

from __future__ import annotations

import asyncio
import time

import pymongo
import pytest
from pymongo import monitoring
from pymongo.errors import ExecutionTimeout, NetworkTimeout, ServerSelectionTimeoutError
from support.failpoints import fail_command
from support.servers import free_port

import greenmotor

MAX_STALL = 0.050


class ConnectionCounter(monitoring.ConnectionPoolListener):
    pool_created = pool_ready = pool_cleared = pool_closed = lambda self, event: None
    connection_ready = connection_closed = connection_check_out_started = pool_created
    connection_check_out_failed = pool_created

    def __init__(self):
        self.created = 0
        self.checked_out_now = 0
        self.most_checked_out = 0

    def connection_created(self, event):
        self.created += 1

    def connection_checked_out(self, event):
        self.checked_out_now += 1
        self.most_checked_out = max(self.most_checked_out, self.checked_out_now)

    def connection_checked_in(self, event):
        self.checked_out_now -= 1


async def test_200_operations_share_a_pool_of_5(server_uri, sync_client, stall_monitor, io_loop):
    counter = ConnectionCounter()
    client = greenmotor.MotorClient(
        server_uri, maxPoolSize=5, event_listeners=[counter], io_loop=io_loop
    )
    coll = client.greenmotor_stalls.pool5
    await coll.drop()
    async with stall_monitor() as stalls:
        # Each call runs PyMongo at once up to its first wait (~0.1-0.2 ms of CPU), so 200
        # calls made in one go are 200 x that in one loop iteration: the caller's own work,
        # not a wait. Starting them ten per iteration measures what this test is about:
        # 200 operations waiting on 5 connections without the loop stalling.
        futures = []
        for i in range(200):
            futures.append(coll.insert_one({"i": i}))
            if i % 10 == 9:
                await asyncio.sleep(0)
        assert sum(not f.done() for f in futures) > 100  # most are waiting at the same time
        results = await asyncio.gather(*futures)
    assert len({r.inserted_id for r in results}) == 200
    assert sync_client.greenmotor_stalls.pool5.count_documents({}) == 200
    assert counter.most_checked_out <= 5 and counter.created <= 5
    assert stalls.ticks > 0
    assert stalls.longest < MAX_STALL, stalls
    client.close()


async def test_server_selection_waits_without_stalling(stall_monitor, io_loop):
    client = greenmotor.MotorClient(
        "127.0.0.1", free_port(), serverSelectionTimeoutMS=1000, io_loop=io_loop
    )
    start = time.monotonic()
    async with stall_monitor() as stalls:
        with pytest.raises(ServerSelectionTimeoutError):
            await client.admin.command("ping")
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 5.0
    assert stalls.ticks > 50  # the ticker ran all along
    assert stalls.longest < MAX_STALL, stalls
    client.close()


async def test_blocked_operation_does_not_stall_others(client, sync_client, stall_monitor, io_loop):
    coll = client.greenmotor_stalls.blocked
    await coll.insert_one({"_id": 1})
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=1000):
        async with stall_monitor() as stalls:
            start = time.monotonic()
            blocked = asyncio.ensure_future(coll.find_one({"_id": 1}))
            await asyncio.sleep(0.05)
            # Other operations go on while the find waits on the server.
            for _ in range(10):
                assert (await client.admin.command("ping"))["ok"] == 1.0
            assert not blocked.done()
            assert await blocked == {"_id": 1}
            elapsed = time.monotonic() - start
    assert elapsed >= 0.9
    assert stalls.longest < MAX_STALL, stalls
    await coll.drop()


async def test_pymongo_timeout_context_reaches_the_greenlet(
    client, sync_client, stall_monitor, io_loop
):
    coll = client.greenmotor_stalls.csot
    await coll.insert_one({"_id": 1})
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=800):
        start = time.monotonic()
        async with stall_monitor() as stalls:
            with pytest.raises((NetworkTimeout, ExecutionTimeout)):
                with pymongo.timeout(0.2):
                    await coll.find_one({"_id": 1})
        elapsed = time.monotonic() - start
    assert 0.15 < elapsed < 0.7
    assert stalls.longest < MAX_STALL, stalls
    await coll.drop()


async def test_socket_timeout_raises_network_timeout(
    server_uri, sync_client, stall_monitor, io_loop
):
    # retryReads=False: PyMongo would retry the timed-out find once, and so do we (below).
    client = greenmotor.MotorClient(
        server_uri, socketTimeoutMS=200, retryReads=False, io_loop=io_loop
    )
    coll = client.greenmotor_stalls.sockettimeout
    await coll.insert_one({"_id": 1})
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=1000):
        start = time.monotonic()
        async with stall_monitor() as stalls:
            with pytest.raises(NetworkTimeout):
                await coll.find_one({"_id": 1})
        elapsed = time.monotonic() - start
    assert 0.15 < elapsed < 0.8
    assert stalls.longest < MAX_STALL, stalls
    # The client recovers: the timed-out connection was discarded.
    assert await coll.find_one({"_id": 1}) == {"_id": 1}
    client.close()
    retrying = greenmotor.MotorClient(server_uri, socketTimeoutMS=200, io_loop=io_loop)
    coll = retrying.greenmotor_stalls.sockettimeout
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=1000):
        start = time.monotonic()
        assert await coll.find_one({"_id": 1}) == {"_id": 1}  # timed out once, retried
        assert 0.15 < time.monotonic() - start < 0.8
    await coll.drop()
    retrying.close()


async def test_wait_queue_timeout(server_uri, sync_client, stall_monitor, io_loop):
    from pymongo.errors import WaitQueueTimeoutError

    client = greenmotor.MotorClient(
        server_uri, maxPoolSize=1, waitQueueTimeoutMS=200, io_loop=io_loop
    )
    coll = client.greenmotor_stalls.waitqueue
    await coll.insert_one({"_id": 1})
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=800):
        holder = asyncio.ensure_future(coll.find_one({"_id": 1}))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        async with stall_monitor() as stalls:
            with pytest.raises(WaitQueueTimeoutError):
                await client.admin.command("ping")
        elapsed = time.monotonic() - start
        assert await holder == {"_id": 1}
    assert 0.15 < elapsed < 0.7
    assert stalls.longest < MAX_STALL, stalls
    await coll.drop()
    client.close()


async def test_the_monitor_sees_a_real_stall(stall_monitor, io_loop):
    """The ticker is able to fail the tests above: a blocking call shows up in full."""
    async with stall_monitor() as stalls:
        await asyncio.sleep(0.02)
        time.sleep(0.1)  # blocks the loop, as a non-green wait would
        await asyncio.sleep(0.02)
    assert stalls.longest >= 0.09, stalls


async def test_the_monitor_sees_a_stall_at_the_end_of_its_block(stall_monitor, io_loop):
    """A blocking call as the block's last statement is measured too (one more tick)."""
    async with stall_monitor() as stalls:
        await asyncio.sleep(0.02)
        time.sleep(0.1)
    assert stalls.longest >= 0.09, stalls


@pytest.mark.parametrize("coroutines", [50, 500])
async def test_timer_runs_on_time_while_coroutines_loop_on_quick_operations(
    server_uri, sync_client, stall_monitor, io_loop, coroutines
):
    """A 5 ms timer is never late by more than 20 ms while the loop is busy with operations.

    ``coroutines`` coroutines loop on round trips (find_one, ping), and ten more loop on
    unacknowledged inserts, which finish without waiting for anything: their coroutines
    must still give the loop a turn after each one, or they run on while the timer (and the
    other coroutines, whose replies are ready) wait.
    """
    client = greenmotor.MotorClient(server_uri, io_loop=io_loop)
    coll = client.greenmotor_stalls.busy
    await coll.drop()
    await coll.insert_one({"_id": 1})
    unacknowledged = coll.with_options(write_concern=pymongo.WriteConcern(w=0))
    counts = {"round_trips": 0, "no_wait": 0}
    end = 0.0

    async def round_trips(k: int) -> None:
        while time.monotonic() < end:
            if k % 2:
                assert await coll.find_one({"_id": 1}) == {"_id": 1}
            else:
                assert (await client.admin.command("ping"))["ok"] == 1.0
            counts["round_trips"] += 1

    async def unacknowledged_writes(k: int) -> None:
        i = 0
        while time.monotonic() < end:
            await unacknowledged.insert_one({"writer": k, "i": i})
            i += 1
            counts["no_wait"] += 1

    async with stall_monitor() as stalls:
        end = time.monotonic() + 1.0
        await asyncio.gather(
            *(round_trips(k) for k in range(coroutines)),
            *(unacknowledged_writes(k) for k in range(10)),
        )
    assert counts["round_trips"] >= coroutines and counts["no_wait"] >= 10, counts
    assert stalls.ticks > 20, stalls
    assert stalls.longest < 0.020, (stalls, counts)
    await coll.drop()
    client.close()
