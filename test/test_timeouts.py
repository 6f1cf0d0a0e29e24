"""Every PyMongo timeout fires on time, with PyMongo's exception type, and the loop stays live.

test_loop_stalls.py already covers serverSelectionTimeoutMS with nothing listening,
socketTimeoutMS on a find, waitQueueTimeoutMS and ``pymongo.timeout()`` on a find; this file
covers the rest: connectTimeoutMS, server selection against servers that answer wrongly or
not at all, ``timeoutMS`` as a client option, ``pymongo.timeout()`` at each place an
operation can wait, and socket timeouts on writes and getMores. Where the behaviour is
PyMongo's to define, a sync PyMongo client runs the same scenario and must end the same way.
Timing is the behaviour here, so bounds are generous.
"""

from __future__ import annotations

import asyncio
import time

import pymongo
import pytest
from pymongo.errors import (
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)
from support.failpoints import fail_command
from support.fault_helpers import (
    PoolEvents,
    Stopwatch,
    assert_pool_clean,
    green_outcome,
    in_thread,
    outcome,
    sync_outcome,
)
from support.scripted_servers import ScriptedServer, StalledListener, rs_hello
from support.servers import free_port

from greenmotor import MotorClient

MAX_STALL = 0.050
APP = "greenmotor-timeouts"


@pytest.mark.slow  # waits out real timeouts
async def test_connect_timeout_bounds_each_connection_attempt(stall_monitor, io_loop):
    """A TCP connect that never completes fails after connectTimeoutMS, attempt by attempt,
    and PyMongo's retry of "overloaded" connection failures makes the same attempts."""
    with StalledListener() as port:
        # loadBalanced: no monitor; the operation's own pool does the connecting.
        uri = f"mongodb://127.0.0.1:{port}/?loadBalanced=true&connectTimeoutMS=300"

        def sync_run():
            events = PoolEvents(keep_timeline=True)
            with pymongo.MongoClient(uri, event_listeners=[events]) as client:
                return sync_outcome(lambda: client.admin.command("ping")), events

        sync_result, sync_events = await in_thread(sync_run)

        events = PoolEvents(keep_timeline=True)
        client = MotorClient(uri, event_listeners=[events], io_loop=io_loop)
        async with stall_monitor() as stalls:
            result = await green_outcome(client.admin.command("ping"))
        client.close()
    assert result == sync_result
    assert result[:2] == ("error", "NetworkTimeout")
    assert events["created"] == sync_events["created"] >= 1
    for lifetime in events.connection_lifetimes():
        assert 0.25 < lifetime < 0.8, events.connection_lifetimes()
    assert stalls.longest < MAX_STALL, stalls


async def test_csot_deadline_cuts_a_connect_short(stall_monitor, io_loop):
    with StalledListener() as port:
        client = MotorClient(
            f"mongodb://127.0.0.1:{port}/?loadBalanced=true",
            connectTimeoutMS=20_000,
            io_loop=io_loop,
        )
        async with stall_monitor() as stalls:
            with Stopwatch() as watch, pytest.raises(NetworkTimeout):
                with pymongo.timeout(0.3):
                    await client.admin.command("ping")
        client.close()
    assert 0.25 < watch.elapsed < 1.0
    assert stalls.longest < MAX_STALL, stalls


async def test_server_selection_times_out_when_hello_is_never_answered(stall_monitor, io_loop):
    with ScriptedServer(hello=None) as server:
        uri = f"{server.uri}&serverSelectionTimeoutMS=600&connectTimeoutMS=200"

        def sync_run():
            with pymongo.MongoClient(uri) as client:
                start = time.monotonic()
                try:
                    client.admin.command("ping")
                except ServerSelectionTimeoutError as exc:
                    return str(exc), time.monotonic() - start

        sync_message, sync_elapsed = await in_thread(sync_run)
        client = MotorClient(uri, io_loop=io_loop)
        async with stall_monitor() as stalls:
            with Stopwatch() as watch, pytest.raises(ServerSelectionTimeoutError) as info:
                await client.admin.command("ping")
        client.close()
    # The monitor's hello timed out after connectTimeoutMS; selection gave up after 600 ms.
    assert "timed out" in str(info.value) and "timed out" in sync_message
    assert 0.55 < watch.elapsed < 1.5 and 0.55 < sync_elapsed < 1.5
    assert stalls.longest < MAX_STALL, stalls


async def test_no_primary_times_out_writes_but_serves_secondary_reads(stall_monitor, io_loop):
    me = None

    def hello():
        return rs_hello(me, [me], primary=None, election=1)

    with ScriptedServer(hello=hello) as server:
        me = server.address
        server.normal_reply = lambda request: {
            "cursor": {"id": 0, "ns": "db.coll", "firstBatch": [{"_id": "from secondary"}]},
            "ok": 1,
        }
        client = MotorClient(
            f"mongodb://{me}/?replicaSet=rs", serverSelectionTimeoutMS=500, io_loop=io_loop
        )
        async with stall_monitor() as stalls:
            with Stopwatch() as watch, pytest.raises(ServerSelectionTimeoutError) as info:
                await client.db.coll.insert_one({})
            secondary = client.db.get_collection(
                "coll", read_preference=pymongo.ReadPreference.SECONDARY_PREFERRED
            )
            assert await secondary.find_one() == {"_id": "from secondary"}
        client.close()
    assert "No primary available for writes" in str(info.value)
    assert 0.45 < watch.elapsed < 1.5
    assert server.count("insert") == 0 and server.count("find") == 1
    assert stalls.longest < MAX_STALL, stalls


async def test_timeout_ms_client_option(server_uri, sync_client, stall_monitor, io_loop):
    uri_options = {"timeoutMS": 300, "appname": APP}
    sync_plain = pymongo.MongoClient(server_uri, **uri_options)
    client = MotorClient(server_uri, io_loop=io_loop, **uri_options)
    coll = client.greenmotor_timeouts.timeout_ms
    await coll.insert_one({"_id": 1})
    with fail_command(
        sync_client, ["find"], times=2, blockConnection=True, blockTimeMS=1000, app_name=APP
    ):
        sync_result = await in_thread(
            sync_outcome, lambda: sync_plain.greenmotor_timeouts.timeout_ms.find_one()
        )
        async with stall_monitor() as stalls:
            with Stopwatch() as watch:
                result = await green_outcome(coll.find_one())
    assert result == sync_result
    assert result[:2] in (("error", "NetworkTimeout"), ("error", "ExecutionTimeout"))
    assert 0.25 < watch.elapsed < 0.9
    assert stalls.longest < MAX_STALL, stalls
    await asyncio.sleep(0.8)  # let the server finish the blocked finds
    assert await coll.find_one() == {"_id": 1}  # the client recovered
    await coll.drop()
    client.close()
    sync_plain.close()


async def test_csot_while_waiting_for_a_pooled_connection(
    server_uri, sync_client, stall_monitor, io_loop
):
    client = MotorClient(server_uri, maxPoolSize=1, appname=APP, io_loop=io_loop)
    coll = client.greenmotor_timeouts.csot_pool
    await coll.insert_one({"_id": 1})
    with fail_command(sync_client, ["find"], blockConnection=True, blockTimeMS=800, app_name=APP):
        holder = coll.find_one({"_id": 1})
        await asyncio.sleep(0.05)
        async with stall_monitor() as stalls:
            with Stopwatch() as watch, pytest.raises(WaitQueueTimeoutError):
                with pymongo.timeout(0.2):
                    await client.admin.command("ping")
        assert await holder == {"_id": 1}
    assert 0.15 < watch.elapsed < 0.7
    assert stalls.longest < MAX_STALL, stalls
    assert_pool_clean(client, max_idle=1)
    await coll.drop()
    client.close()


async def test_csot_during_server_selection(stall_monitor, io_loop):
    client = MotorClient("127.0.0.1", free_port(), serverSelectionTimeoutMS=30_000, io_loop=io_loop)
    async with stall_monitor() as stalls:
        with Stopwatch() as watch, pytest.raises(ServerSelectionTimeoutError):
            with pymongo.timeout(0.3):
                await client.admin.command("ping")
    assert 0.25 < watch.elapsed < 1.0
    assert stalls.longest < MAX_STALL, stalls
    client.close()


@pytest.mark.slow  # waits out real timeouts
async def test_many_deadlines_run_in_parallel(server_uri, sync_client, stall_monitor, io_loop):
    """Fifty operations, each under its own pymongo.timeout(0.3), on a server that holds
    every find for 2 s: all fail together at about 0.3 s, not one after another."""
    client = MotorClient(server_uri, maxPoolSize=20, appname=APP, io_loop=io_loop)
    coll = client.greenmotor_timeouts.parallel
    await coll.insert_one({"_id": 1})

    async def one():
        with pymongo.timeout(0.3):
            start = time.monotonic()
            try:
                await coll.find_one({"_id": 1})
            except (NetworkTimeout, ExecutionTimeout, WaitQueueTimeoutError) as exc:
                return type(exc), time.monotonic() - start
            return None, time.monotonic() - start

    with fail_command(
        sync_client, ["find"], times=50, blockConnection=True, blockTimeMS=2000, app_name=APP
    ):
        async with stall_monitor() as stalls:
            results = await asyncio.gather(*[one() for _ in range(50)])
    kinds = {kind for kind, _ in results}
    # Twenty held a connection and timed out reading; thirty timed out in the pool's queue.
    assert kinds <= {NetworkTimeout, ExecutionTimeout, WaitQueueTimeoutError} and None not in kinds
    assert all(0.25 < elapsed < 1.0 for _, elapsed in results), sorted(e for _, e in results)
    assert stalls.longest < MAX_STALL, stalls
    await asyncio.sleep(2.0)  # the server is still sleeping on the abandoned finds
    assert await coll.find_one({"_id": 1}) == {"_id": 1}
    await coll.drop()
    client.close()


async def test_socket_timeout_on_a_retryable_write_applies_it_once(
    server_uri, sync_client, stall_monitor, io_loop
):
    """The first attempt times out after the server has the update; the retry carries the
    same transaction number, so the increment happens once - as with sync PyMongo."""
    sync_plain = pymongo.MongoClient(server_uri, socketTimeoutMS=200, appname=APP)
    client = MotorClient(server_uri, socketTimeoutMS=200, appname=APP, io_loop=io_loop)
    name = "greenmotor_timeouts"
    sync_client[name].counter.insert_one({"_id": "sync", "n": 0})
    sync_client[name].counter.insert_one({"_id": "green", "n": 0})
    inc = {"$inc": {"n": 1}}

    with fail_command(sync_client, ["update"], blockConnection=True, blockTimeMS=600, app_name=APP):
        sync_result = await in_thread(
            sync_outcome,
            lambda: sync_plain[name].counter.update_one({"_id": "sync"}, inc).modified_count,
        )
    with fail_command(sync_client, ["update"], blockConnection=True, blockTimeMS=600, app_name=APP):
        async with stall_monitor() as stalls:
            with Stopwatch() as watch:
                result = await green_outcome(client[name].counter.update_one({"_id": "green"}, inc))
    await asyncio.sleep(0.8)  # the first attempt finishes its block on the server
    counts = {d["_id"]: d["n"] for d in sync_client[name].counter.find()}
    assert sync_result == ("ok", 1)
    assert result[0] == "ok" and result[1].modified_count == 1
    assert counts == {"sync": 1, "green": 1}
    assert 0.15 < watch.elapsed < 0.9
    assert stalls.longest < MAX_STALL, stalls
    sync_client.drop_database(name)
    sync_plain.close()
    client.close()


async def test_socket_timeout_on_get_more_is_not_retried(
    server_uri, sync_client, stall_monitor, io_loop
):
    name = "greenmotor_timeouts"
    sync_client[name].cursor.insert_many([{"_id": i} for i in range(6)])
    sync_plain = pymongo.MongoClient(server_uri, socketTimeoutMS=200, appname=APP)
    client = MotorClient(server_uri, socketTimeoutMS=200, appname=APP, io_loop=io_loop)

    def sync_run():
        cursor = sync_plain[name].cursor.find().sort("_id").batch_size(2)
        first = [next(cursor), next(cursor)]
        with fail_command(
            sync_client, ["getMore"], blockConnection=True, blockTimeMS=600, app_name=APP
        ):
            return first, sync_outcome(lambda: next(cursor))

    sync_first, sync_result = await in_thread(sync_run)
    cursor = client[name].cursor.find().sort("_id").batch_size(2)
    first = [await cursor.next(), await cursor.next()]
    with fail_command(
        sync_client, ["getMore"], blockConnection=True, blockTimeMS=600, app_name=APP
    ):
        async with stall_monitor() as stalls:
            with Stopwatch() as watch:
                result = await green_outcome(cursor.next())
    assert first == sync_first == [{"_id": 0}, {"_id": 1}]
    assert result == sync_result == outcome(NetworkTimeout("x"))
    assert 0.15 < watch.elapsed < 0.7
    assert stalls.longest < MAX_STALL, stalls
    await asyncio.sleep(0.5)
    assert len(await client[name].cursor.find().to_list(None)) == 6
    sync_client.drop_database(name)
    sync_plain.close()
    client.close()
