"""Server faults on a real SecantusDB process: killed mid-operation, and failCommand faults.

A killed server fails the operations in flight with AutoReconnect-family errors (or PyMongo
retries them once it is back), and the same client carries on after the restart. For
``failCommand`` faults greenmotor must retry exactly as sync PyMongo does: each scenario runs
on a sync client and on a MotorClient against the same fail point, and must end the same
way, after the same command attempts, with the same data in the database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymongo
import pytest
from pymongo import InsertOne, UpdateOne
from pymongo.errors import AutoReconnect, ConnectionFailure
from support.fault_helpers import (
    CommandRecorder,
    assert_pool_clean,
    green_outcome,
    in_thread,
    outcome,
)
from support.servers import SecantusServer

from greenmotor import MotorClient

MAX_STALL = 0.050
APP = "greenmotor-server-faults"


@pytest.fixture
def own_server(tmp_path):
    """A server of our own to kill; its data is on disk and synced, so it survives kill -9."""
    server = SecantusServer(
        "--enable-test-commands", "--sync-on-commit", "--storage-path", str(tmp_path / "data")
    )
    server.start()
    server.wait_ready()
    yield server
    server.kill()  # its data is in tmp_path; no need to wait for a clean shutdown


def block_finds(uri: str, times: int, ms: int = 5000, commands=("find",)) -> None:
    with pymongo.MongoClient(uri) as admin:
        admin.admin.command({
            "configureFailPoint": "failCommand", "mode": {"times": times},
            "data": {"failCommands": list(commands), "blockConnection": True, "blockTimeMS": ms,
                     "appName": APP},
        })  # fmt: skip


@pytest.mark.slow  # starts, kills and restarts its own server
async def test_kill_fails_in_flight_operations_and_the_client_recovers(
    own_server, stall_monitor, io_loop
):
    client = MotorClient(
        own_server.uri,
        retryReads=False,
        retryWrites=False,
        serverSelectionTimeoutMS=15_000,
        appname=APP,
        io_loop=io_loop,
    )
    coll = client.faults.kill
    await coll.insert_many([{"_id": i} for i in range(5)])
    block_finds(own_server.uri, times=5, commands=("find", "insert"))
    async with stall_monitor() as stalls:
        pending = [coll.find_one({"_id": i}) for i in range(4)] + [coll.insert_one({"_id": 9})]
        await asyncio.sleep(0.3)  # all five are on the wire, held by the server
        await in_thread(own_server.kill)
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, AutoReconnect) for r in results), results
        await in_thread(own_server.start)
        # The same client, no new one: server selection waits for the monitor to see it back.
        assert await coll.find_one({"_id": 1}) == {"_id": 1}
        await coll.insert_one({"_id": "after restart"})
    assert await coll.count_documents({}) == 6  # the in-flight insert never ran
    assert_pool_clean(client)
    assert stalls.longest < MAX_STALL, stalls
    client.close()


@pytest.mark.slow  # starts, kills and restarts its own server
async def test_kill_and_restart_retries_like_pymongo(own_server, stall_monitor, io_loop):
    """Reads and writes in flight when the server dies are retried once it is back - by the
    MotorClient and by a sync client caught in the same crash alike."""
    green_rec, sync_rec = CommandRecorder(), CommandRecorder()
    options = dict(serverSelectionTimeoutMS=15_000, appname=APP)
    client = MotorClient(own_server.uri, event_listeners=[green_rec], io_loop=io_loop, **options)
    sync_plain = pymongo.MongoClient(own_server.uri, event_listeners=[sync_rec], **options)
    await client.faults.retry.insert_many([{"_id": i, "n": 0} for i in range(3)])
    green, sync = client.faults.retry, sync_plain.faults.retry
    block_finds(own_server.uri, times=8, commands=("find", "update"))

    def sync_ops():
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(sync.find_one, {"_id": 0}),
                pool.submit(sync.find_one, {"_id": 1}),
                pool.submit(sync.update_one, {"_id": 2}, {"$inc": {"n": 1}}),
                pool.submit(sync.update_one, {"_id": 2}, {"$inc": {"n": 10}}),
            ]
            results = []
            for future in futures:
                try:
                    results.append(outcome(None, _plain(future.result())))
                except Exception as exc:
                    results.append(outcome(exc))
            return results

    async with stall_monitor() as stalls:
        sync_done = asyncio.ensure_future(in_thread(sync_ops))
        green_ops = [
            green.find_one({"_id": 0}),
            green.find_one({"_id": 1}),
            green.update_one({"_id": 2}, {"$inc": {"n": 100}}),
            green.update_one({"_id": 2}, {"$inc": {"n": 1000}}),
        ]
        await asyncio.sleep(0.4)  # eight operations held by the server
        await in_thread(own_server.kill)
        await asyncio.sleep(0.3)
        await in_thread(own_server.start)
        green_results = [await green_outcome(op) for op in green_ops]
        sync_results = await sync_done
    green_results = [r if r[0] == "error" else ("ok", _plain(r[1])) for r in green_results]
    assert green_results == sync_results
    assert green_results == [
        ("ok", {"_id": 0, "n": 0}),
        ("ok", {"_id": 1, "n": 0}),
        ("ok", (1, 1)),
        ("ok", (1, 1)),
    ]
    for recorder in (green_rec, sync_rec):
        for name in ("find", "update"):
            assert recorder.attempts(name) == [(name, "failed")] * 2 + [(name, "succeeded")] * 2
    # Each update was applied exactly once although it was sent twice.
    assert (await green.find_one({"_id": 2}))["n"] == 1111
    assert stalls.longest < MAX_STALL, stalls
    sync_plain.close()
    client.close()


def _plain(result: Any) -> Any:
    """A comparable form of a PyMongo result object."""
    if isinstance(result, pymongo.results.InsertOneResult):
        return result.inserted_id
    if isinstance(result, pymongo.results.InsertManyResult):
        return list(result.inserted_ids)
    if isinstance(result, pymongo.results.UpdateResult):
        return (result.matched_count, result.modified_count)
    if isinstance(result, pymongo.results.DeleteResult):
        return result.deleted_count
    if isinstance(result, pymongo.results.BulkWriteResult):
        return (result.inserted_count, result.modified_count)
    return result


# Each scenario: (commands to fail, fail point data, times, operation on a collection).
# The operation is written once and run on both clients: on the sync collection it returns
# the result, on the Motor collection a Future of it.
SCENARIOS: dict[str, tuple[list[str], dict, int, Callable[[Any], Any]]] = {
    "find, connection closed once": (
        ["find"],
        {"closeConnection": True},
        1,
        lambda c: c.find_one({"_id": 1}),
    ),
    "find, connection closed twice": (
        ["find"],
        {"closeConnection": True},
        2,
        lambda c: c.find_one({"_id": 1}),
    ),
    "find, ShutdownInProgress": (["find"], {"errorCode": 91}, 1, lambda c: c.find_one({"_id": 1})),
    "find, NotWritablePrimary": (
        ["find"],
        {"errorCode": 10107},
        1,
        lambda c: c.find_one({"_id": 1}),
    ),
    "find, HostUnreachable twice": (
        ["find"],
        {"errorCode": 6},
        2,
        lambda c: c.find_one({"_id": 1}),
    ),
    "find, BadValue is not retried": (
        ["find"],
        {"errorCode": 2},
        1,
        lambda c: c.find_one({"_id": 1}),
    ),
    "aggregate, connection closed": (
        ["aggregate"],
        {"closeConnection": True},
        1,
        lambda c: c.count_documents({}),
    ),
    "insert, connection closed": (
        ["insert"],
        {"closeConnection": True},
        1,
        lambda c: c.insert_one({"_id": "new"}),
    ),
    "insert, InterruptedAtShutdown": (
        ["insert"],
        {"errorCode": 11600},
        1,
        lambda c: c.insert_one({"_id": "new"}),
    ),
    "insert, retryable label given": (
        ["insert"],
        {"errorCode": 91, "errorLabels": ["RetryableWriteError"]},
        1,
        lambda c: c.insert_one({"_id": "new"}),
    ),
    "insert, retryable error twice": (
        ["insert"],
        {"errorCode": 91},
        2,
        lambda c: c.insert_one({"_id": "new"}),
    ),
    "insert, overloaded (back-off sleeps)": (
        ["insert"],
        {"errorCode": 462, "errorLabels": ["RetryableError", "SystemOverloadedError"]},
        2,
        lambda c: c.insert_one({"_id": "new"}),
    ),
    "update_one, PrimarySteppedDown": (
        ["update"],
        {"errorCode": 189},
        1,
        lambda c: c.update_one({"_id": 1}, {"$inc": {"n": 1}}),
    ),
    "update_many, connection closed: not retryable": (
        ["update"],
        {"closeConnection": True},
        1,
        lambda c: c.update_many({}, {"$inc": {"n": 1}}),
    ),
    "delete_one, connection closed": (
        ["delete"],
        {"closeConnection": True},
        1,
        lambda c: c.delete_one({"_id": 2}),
    ),
    "find_one_and_update, connection closed": (
        ["findAndModify"],
        {"closeConnection": True},
        1,
        lambda c: c.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}}),
    ),
    "insert_many, connection closed": (
        ["insert"],
        {"closeConnection": True},
        1,
        lambda c: c.insert_many([{"_id": "a"}, {"_id": "b"}]),
    ),
    "bulk_write, NotWritablePrimary": (
        ["insert", "update"],
        {"errorCode": 10107},
        1,
        lambda c: c.bulk_write(
            [InsertOne({"_id": "c"}), UpdateOne({"_id": 1}, {"$inc": {"n": 5}})]
        ),
    ),
    "retryWrites=false, connection closed": (
        ["insert"],
        {"closeConnection": True},
        1,
        lambda c: c.with_options(write_concern=pymongo.WriteConcern(w=1)).insert_one({"_id": "x"}),
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_fail_point_outcome_matches_pymongo(name, server_uri, sync_client, io_loop):
    commands, data, times, operation = SCENARIOS[name]
    retry_writes = not name.startswith("retryWrites=false")
    database = f"greenmotor_faults_{uuid.uuid4().hex[:6]}"
    seed = [{"_id": i, "n": 0} for i in range(3)]

    def arm():
        sync_client[database].c.delete_many({})
        sync_client[database].c.insert_many(seed)
        sync_client.admin.command({
            "configureFailPoint": "failCommand", "mode": {"times": times},
            "data": {"failCommands": commands, "appName": APP, **data},
        })  # fmt: skip

    def state():
        return sorted(sync_client[database].c.find(), key=str)

    sync_rec, green_rec = CommandRecorder(), CommandRecorder()
    # Polling monitors answer PyMongo's "check now" at once (a streaming hello would make the
    # retry after a state-change error wait up to heartbeatFrequencyMS); same for both.
    options = dict(appname=APP, retryWrites=retry_writes, serverMonitoringMode="poll")
    sync_plain = pymongo.MongoClient(server_uri, event_listeners=[sync_rec], **options)
    client = MotorClient(server_uri, event_listeners=[green_rec], io_loop=io_loop, **options)
    try:
        await in_thread(arm)
        sync_result = await in_thread(_sync_run, operation, sync_plain[database].c)
        sync_state = await in_thread(state)
        await in_thread(arm)
        green_result = await green_outcome(operation(client[database].c))
        green_state = await in_thread(state)
    finally:
        sync_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        sync_client.drop_database(database)
        sync_plain.close()
        client.close()
    if green_result[0] == "ok":
        green_result = ("ok", _plain(green_result[1]))
    assert green_result == sync_result
    assert green_rec.attempts() == sync_rec.attempts()
    assert green_state == sync_state
    # The scenario really injected a fault: the first attempt failed.
    assert green_rec.attempts()[0][1] == "failed"


def _sync_run(operation, collection):
    try:
        return outcome(None, _plain(operation(collection)))
    except Exception as exc:
        return outcome(exc)


async def test_pinned_outcomes(server_uri, sync_client, io_loop):
    client = MotorClient(server_uri, appname=APP, serverMonitoringMode="poll", io_loop=io_loop)
    coll = client[f"greenmotor_faults_{uuid.uuid4().hex[:6]}"].c
    await coll.insert_many([{"_id": i, "n": 0} for i in range(3)])

    def arm(commands, times, **data):
        sync_client.admin.command({
            "configureFailPoint": "failCommand", "mode": {"times": times},
            "data": {"failCommands": commands, "appName": APP, **data},
        })  # fmt: skip

    try:
        arm(["find"], 2, closeConnection=True)
        with pytest.raises(AutoReconnect):  # one retry, then PyMongo gives up
            await coll.find_one({"_id": 1})
        arm(["find"], 1, closeConnection=True)
        assert await coll.find_one({"_id": 1}) == {"_id": 1, "n": 0}  # retried once
        arm(["update"], 1, closeConnection=True)
        with pytest.raises(ConnectionFailure):  # multi-document updates are never retried
            await coll.update_many({}, {"$inc": {"n": 1}})
        arm(["insert"], 1, closeConnection=True)
        await coll.insert_one({"_id": "once"})
        assert await coll.count_documents({"_id": "once"}) == 1
    finally:
        sync_client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        await coll.database.client.drop_database(coll.database.name)
        client.close()
