"""Wire-protocol faults a real server won't produce, played by mockupdb peers.

A server that never answers, answers garbage, sends a truncated message or a corrupt
document, or hangs up mid-reply; and a replica set whose primary changes. For each,
greenmotor must raise what sync PyMongo raises, after the same number of attempts, recover
the same way on the same client, and keep the loop running.
"""

from __future__ import annotations

import asyncio
import threading

import pymongo
import pytest
from support.fault_helpers import CommandRecorder, green_outcome, in_thread, sync_outcome
from support.scripted_servers import ScriptedServer, rs_hello

from greenmotor import MotorClient

MAX_STALL = 0.050
OPTIONS = dict(socketTimeoutMS=300, serverSelectionTimeoutMS=3000)


def cursor_reply(request) -> dict:
    """What the scripted server answers in "normal" mode: one document for a find."""
    if request.command_name == "find":
        return {"cursor": {"id": 0, "ns": "db.coll", "firstBatch": [{"_id": 1}]}, "ok": 1}
    return {"ok": 1}


# name: (command sent, operation)
OPERATIONS = {
    "ping (not retried)": ("ping", lambda client: client.admin.command("ping")),
    "find (a retryable read)": ("find", lambda client: client.db.coll.find_one()),
}
EXPECTED = {
    "silent": "NetworkTimeout",
    "garbage": "ProtocolError",
    "truncated": "AutoReconnect",
    "hangup": "AutoReconnect",
    "bad_bson": "InvalidBSON",
}


@pytest.fixture(scope="module")
def scripted():
    """One scripted server for the fault matrix (stopping one takes mockupdb up to 1 s)."""
    with ScriptedServer() as server:
        server.normal_reply = cursor_reply
        yield server


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("mode", list(EXPECTED))
@pytest.mark.slow  # waits out real timeouts, sync and green
async def test_fault_raises_what_pymongo_raises_and_both_recover(
    mode, operation, scripted, stall_monitor, io_loop
):
    command, run = OPERATIONS[operation]
    server, uri = scripted, scripted.uri
    server.mode = "normal"
    server.commands.clear()

    def sync_run():
        with pymongo.MongoClient(uri, **OPTIONS) as client:
            server.mode = mode
            failed = sync_outcome(lambda: run(client))
            sent = server.count(command)  # (a closing client's endSessions may come too)
            server.mode = "normal"
            return failed, sent, sync_outcome(lambda: run(client))

    sync_failed, sync_sent, sync_recovered = await in_thread(sync_run)
    server.commands.clear()

    client = MotorClient(uri, io_loop=io_loop, **OPTIONS)
    async with stall_monitor() as stalls:
        server.mode = mode
        failed = await green_outcome(run(client))
        sent = server.count(command)
        server.mode = "normal"
        recovered = await green_outcome(run(client))
    client.close()
    assert failed == sync_failed
    assert failed[:2] == ("error", EXPECTED[mode])
    assert sent == sync_sent >= 1  # the same number of attempts reached the server
    assert recovered == sync_recovered
    assert recovered[0] == "ok"
    assert stalls.longest < MAX_STALL, stalls


async def test_many_operations_on_a_silent_server_all_time_out_together(stall_monitor, io_loop):
    with ScriptedServer() as server:
        client = MotorClient(server.uri, io_loop=io_loop, retryReads=False, **OPTIONS)
        await client.admin.command("ping")
        server.mode = "silent"
        loop = asyncio.get_running_loop()
        async with stall_monitor() as stalls:
            start = loop.time()
            results = await asyncio.gather(
                *[client.db.coll.find_one() for _ in range(30)], return_exceptions=True
            )
            elapsed = loop.time() - start
        client.close()
    assert {type(r).__name__ for r in results} == {"NetworkTimeout"}
    assert 0.25 < elapsed < 1.5  # in parallel: one socket timeout, not thirty
    assert stalls.longest < MAX_STALL, stalls


class ReplicaSet:
    """Two scripted members of set "rs"; ``elect(i)`` makes member i the primary."""

    def __init__(self) -> None:
        self.members = [ScriptedServer(hello=lambda i=i: self.hello(i)) for i in range(2)]
        self.primary = 0
        self.election = 1
        self.lock = threading.Lock()

    def __enter__(self) -> ReplicaSet:
        for member in self.members:
            member.__enter__()
        for i, member in enumerate(self.members):
            member.normal_reply = lambda request, i=i: self.reply(i, request)
        return self

    def __exit__(self, *exc) -> None:
        for member in self.members:
            member.__exit__(*exc)

    @property
    def hosts(self) -> list[str]:
        return [m.address for m in self.members]

    @property
    def uri(self) -> str:
        return f"mongodb://{','.join(self.hosts)}/?replicaSet=rs"

    def hello(self, i: int) -> dict:
        with self.lock:
            return rs_hello(self.hosts[i], self.hosts, self.hosts[self.primary], self.election)

    def reply(self, i: int, request) -> dict:
        with self.lock:
            is_primary = i == self.primary
        if request.command_name == "insert" and not is_primary:
            # As a 4.4+ server does, label the error so drivers know to retry the write.
            return {
                "ok": 0,
                "code": 10107,
                "codeName": "NotWritablePrimary",
                "errmsg": "not primary",
                "errorLabels": ["RetryableWriteError"],
            }
        return {"ok": 1, "n": 1}

    def elect(self, i: int) -> None:
        with self.lock:
            self.primary = i
            self.election += 1

    def inserts(self) -> list[int]:
        return [m.count("insert") for m in self.members]

    def reset(self) -> None:
        for member in self.members:
            member.commands.clear()


@pytest.mark.slow  # waits out real timeouts, sync and green
async def test_primary_change_is_followed_like_pymongo(stall_monitor, io_loop):
    options = dict(serverSelectionTimeoutMS=5000, heartbeatFrequencyMS=500)
    with ReplicaSet() as rs:

        def sync_run():
            recorder = CommandRecorder()
            with pymongo.MongoClient(rs.uri, event_listeners=[recorder], **options) as client:
                client.db.coll.insert_one({"_id": "before"})
                rs.elect(1)
                result = sync_outcome(
                    lambda: client.db.coll.insert_one({"_id": "during"}).inserted_id
                )
                after = sync_outcome(
                    lambda: client.db.coll.insert_one({"_id": "after"}).inserted_id
                )
                return result, after, recorder.attempts("insert"), rs.inserts(), client.primary

        sync_result, sync_after, sync_attempts, sync_inserts, sync_primary = await in_thread(
            sync_run
        )
        rs.elect(0)
        rs.reset()

        recorder = CommandRecorder()
        client = MotorClient(rs.uri, event_listeners=[recorder], io_loop=io_loop, **options)
        async with stall_monitor() as stalls:
            await client.db.coll.insert_one({"_id": "before"})
            rs.elect(1)
            result = await green_outcome(client.db.coll.insert_one({"_id": "during"}))
            after = await green_outcome(client.db.coll.insert_one({"_id": "after"}))
        primary = client.primary
        client.close()
    assert result[0] == "ok", (result, sync_result)
    assert ("ok", result[1].inserted_id) == sync_result == ("ok", "during")
    assert ("ok", after[1].inserted_id) == sync_after == ("ok", "after")
    # before -> old primary; during -> old primary refuses, retried on the new one; after ->
    # straight to the new primary.
    assert (
        recorder.attempts("insert")
        == sync_attempts
        == [
            ("insert", "succeeded"),
            ("insert", "failed"),
            ("insert", "succeeded"),
            ("insert", "succeeded"),
        ]
    )
    assert rs.inserts() == sync_inserts == [2, 2]
    assert primary == sync_primary == ("127.0.0.1", rs.members[1].port)
    assert stalls.longest < MAX_STALL, stalls
