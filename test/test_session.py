"""Sessions and transactions against the real server (SecantusDB runs as a one-node replica set)."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import ReadPreference
from pymongo.errors import ConnectionFailure, InvalidOperation, OperationFailure
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern
from support.failpoints import fail_command
from support.fault_helpers import CommandRecorder

import greenmotor.session
from greenmotor import MotorClient, MotorClientSession
from greenmotor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorClientSession


async def test_start_session_both_styles(client, io_loop):
    session = await client.start_session()
    assert isinstance(session, MotorClientSession)
    assert session.client is client and not session.has_ended
    assert session.session_id["id"]
    await session.end_session()
    assert session.has_ended

    done = asyncio.get_running_loop().create_future()
    client.start_session(callback=lambda s, e: done.set_result((s, e)))
    session, error = await done
    assert error is None and isinstance(session, MotorClientSession)
    await session.end_session()


async def test_async_with_ends_the_session(client, io_loop):
    async with await client.start_session() as session:
        assert not session.has_ended
    assert session.has_ended
    with pytest.raises(AttributeError) as caught:
        with session:
            pass
    assert str(caught.value) == (
        "Use Motor sessions like 'async with await client.start_session()', not 'with'"
    )


async def test_causal_consistency(client, coll, io_loop):
    async with await client.start_session(causal_consistency=True) as session:
        await coll.insert_one({"_id": 1}, session=session)
        assert session.operation_time is not None
        assert session.cluster_time is not None
        assert await coll.find_one({"_id": 1}, session=session) == {"_id": 1}
        other = await client.start_session()
        other.advance_cluster_time(session.cluster_time)
        other.advance_operation_time(session.operation_time)
        assert other.operation_time == session.operation_time
        await other.end_session()


async def test_transaction_commits(client, coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})  # create the collection outside the transaction
    async with await client.start_session() as session:
        async with session.start_transaction():
            assert session.in_transaction
            await coll.insert_one({"_id": 1}, session=session)
            await coll.update_one({"_id": 0}, {"$set": {"x": 1}}, session=session)
            assert sync_coll.find_one({"_id": 1}) is None  # not visible outside yet
        assert not session.in_transaction
    assert sync_coll.find_one({"_id": 1}) == {"_id": 1}
    assert sync_coll.find_one({"_id": 0}) == {"_id": 0, "x": 1}


async def test_transaction_aborts_on_error(client, coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})
    async with await client.start_session() as session:
        with pytest.raises(ZeroDivisionError):
            async with session.start_transaction():
                await coll.insert_one({"_id": 1}, session=session)
                raise ZeroDivisionError("an application error inside the transaction")
        assert not session.in_transaction
    assert sync_coll.find_one({"_id": 1}) is None


async def test_explicit_commit_and_abort(client, coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})
    session = await client.start_session()
    session.start_transaction(
        read_concern=ReadConcern("snapshot"),
        write_concern=WriteConcern("majority"),
        read_preference=ReadPreference.PRIMARY,
    )
    await coll.insert_one({"_id": 1}, session=session)
    await session.abort_transaction()
    assert sync_coll.find_one({"_id": 1}) is None
    session.start_transaction()
    await coll.insert_one({"_id": 2}, session=session)
    await session.commit_transaction()
    assert sync_coll.find_one({"_id": 2}) == {"_id": 2}
    with pytest.raises(InvalidOperation, match="Cannot call abortTransaction after"):
        await session.abort_transaction()
    await session.end_session()


async def test_conflicting_transactions(client, coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 1, "n": 0})
    first = await client.start_session()
    second = await client.start_session()
    first.start_transaction()
    second.start_transaction()
    await coll.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=first)
    with pytest.raises(OperationFailure) as info:
        await coll.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=second)
    assert info.value.has_error_label("TransientTransactionError")
    await second.abort_transaction()
    await first.commit_transaction()
    assert sync_coll.find_one({"_id": 1})["n"] == 1
    await first.end_session()
    await second.end_session()


async def test_with_transaction_retries_transient_errors(client, coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 1, "n": 0})
    blocker = await client.start_session()
    blocker.start_transaction()
    await coll.update_one({"_id": 1}, {"$inc": {"n": 100}}, session=blocker)
    attempts = []

    async def transfer(session):
        attempts.append(1)
        if len(attempts) == 2:
            await blocker.abort_transaction()  # the conflict goes away
        await coll.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=session)
        return "done"

    async with await client.start_session() as session:
        assert await session.with_transaction(transfer) == "done"
    assert len(attempts) == 2  # a write conflict, then (unblocked) success
    assert sync_coll.find_one({"_id": 1})["n"] == 1
    await blocker.end_session()


async def test_with_transaction_raises_non_transient_errors(client, coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 1})
    calls = []

    async def fails(session):
        calls.append(1)
        await coll.insert_one({"_id": 2}, session=session)
        raise ValueError("application error")

    async with await client.start_session() as session:
        with pytest.raises(ValueError, match="application error"):
            await session.with_transaction(fails)
        assert not session.in_transaction
    assert calls == [1] and sync_coll.find_one({"_id": 2}) is None


async def test_with_transaction_callback_may_end_it(client, coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})

    async def aborts(session):
        await coll.insert_one({"_id": 5}, session=session)
        await session.abort_transaction()
        return 42

    async with await client.start_session() as session:
        assert await session.with_transaction(aborts) == 42
    assert sync_coll.find_one({"_id": 5}) is None


async def test_session_from_another_client_is_refused(client, server_uri, coll, io_loop):
    import greenmotor

    other = greenmotor.MotorClient(server_uri, io_loop=io_loop)
    session = await other.start_session()
    with pytest.raises(InvalidOperation, match="session"):
        await coll.insert_one({}, session=session)
    await session.end_session()
    other.close()


async def test_session_argument_type_is_checked(coll, sync_client, io_loop):
    with pytest.raises(TypeError, match="session must be a MotorClientSession"):
        coll.insert_one({}, session="not a session")
    with pytest.raises(TypeError, match="session must be a MotorClientSession"):
        coll.find_one({}, session=coll)


async def test_pymongo_session_is_accepted_as_in_motor(client, coll, io_loop):
    """Motor passes a PyMongo ClientSession through (``session.delegate``); so does greenmotor."""
    session = await client.start_session()
    await coll.insert_one({"_id": 1}, session=session.delegate)
    assert await coll.find_one({}, session=session.delegate) == {"_id": 1}
    await session.end_session()


async def test_bind_passes_the_session_implicitly(client, coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})
    session = await client.start_session()
    async with session.bind() as bound:
        assert bound is session
        session.start_transaction()
        await coll.insert_one({"_id": 1})  # no session= : the bound one is used
        await session.abort_transaction()  # so the insert was in the session's transaction
        session.start_transaction()
        await coll.insert_one({"_id": 2})
        await session.commit_transaction()
    assert session.has_ended
    assert sync_coll.find_one({"_id": 1}) is None
    assert sync_coll.find_one({"_id": 2}) == {"_id": 2}

    kept = await client.start_session()
    async with kept.bind(end_session=False):
        await coll.find_one({"_id": 2})
    assert not kept.has_ended
    await kept.end_session()


def transient_error() -> OperationFailure:
    """What a server says when a transaction was aborted under it: retry it all."""
    doc = {
        "ok": 0,
        "errmsg": "Transaction 7 has been aborted.",
        "code": 251,
        "codeName": "NoSuchTransaction",
        "errorLabels": ["TransientTransactionError"],
    }
    return OperationFailure(doc["errmsg"], doc["code"], doc)


@pytest.fixture
def recorded(server_uri, io_loop):
    """A client whose commands are recorded (CommandRecorder)."""
    recorder = CommandRecorder()
    client = MotorClient(server_uri, io_loop=io_loop, event_listeners=[recorder])
    yield client, recorder
    client.close()


@pytest.fixture
def no_retry_time(monkeypatch):
    """with_transaction's retry limit at 0."""
    monkeypatch.setattr(greenmotor.session, "WITH_TRANSACTION_TIME_LIMIT", 0)


async def test_with_transaction_gives_up_on_the_callbacks_error_after_the_limit(
    recorded, coll, no_retry_time, io_loop
):
    client, recorder = recorded
    own_coll = client[coll.database.name][coll.name]
    await own_coll.insert_one({})  # create the collection outside the transaction
    recorder.reset()

    async def callback(session):
        await own_coll.insert_one({}, session=session)
        raise transient_error()

    async with await client.start_session() as session:
        with pytest.raises(OperationFailure, match="has been aborted") as caught:
            await session.with_transaction(callback)
    # Motor raises the last error itself (PyMongo 4.20's own with_transaction would turn it
    # into a NetworkTimeout).
    assert type(caught.value) is OperationFailure
    assert [name for name, kind in recorder.events if kind == "started"] == [
        "insert",
        "abortTransaction",
    ]


async def test_with_transaction_gives_up_on_commit_errors_after_the_limit(
    recorded, coll, sync_client, no_retry_time, io_loop
):
    client, recorder = recorded
    own_coll = client[coll.database.name][coll.name]
    await own_coll.insert_one({})

    async def callback(session):
        await own_coll.insert_one({}, session=session)

    recorder.reset()
    with fail_command(sync_client, ["commitTransaction"], errorCode=251):
        async with await client.start_session() as session:
            with pytest.raises(OperationFailure):
                await session.with_transaction(callback)
    assert [name for name, kind in recorder.events if kind == "started"] == [
        "insert",
        "commitTransaction",
    ]

    recorder.reset()
    with fail_command(sync_client, ["commitTransaction"], times=2, closeConnection=True):
        async with await client.start_session() as session:
            with pytest.raises(ConnectionFailure):
                await session.with_transaction(callback)
    # PyMongo retries the commit once itself; with_transaction does not retry it again.
    assert [name for name, kind in recorder.events if kind == "started"] == [
        "insert",
        "commitTransaction",
        "commitTransaction",
    ]


async def test_with_transaction_retries_within_the_limit(recorded, coll, monkeypatch, io_loop):
    monkeypatch.setattr(greenmotor.session, "WITH_TRANSACTION_TIME_LIMIT", 60)
    client, _ = recorded
    attempts = []

    async def callback(session):
        attempts.append(1)
        if len(attempts) < 3:
            raise transient_error()
        return "committed"

    async with await client.start_session() as session:
        assert await session.with_transaction(callback) == "committed"
    assert len(attempts) == 3


@pytest.mark.parametrize(
    ("client_class", "session_class"),
    [(MotorClient, MotorClientSession), (AsyncIOMotorClient, AsyncIOMotorClientSession)],
)
def test_session_class_is_motors(server_uri, client_class, session_class):
    # Motor's session class is not generic, unlike its client, database and collection.
    with pytest.raises(TypeError, match=f"type '{session_class.__name__}' is not subscriptable"):
        session_class[dict]
    client = client_class(server_uri)

    async def main():
        # MotorClientSession(delegate, motor_client): Motor's constructor, wrapping PyMongo's.
        session = session_class(client.delegate.start_session(), client)
        await client.greenmotor_session_class.c.insert_one({"_id": 1}, session=session)
        found = await client.greenmotor_session_class.c.find_one({}, session=session)
        await session.end_session()
        await client.drop_database("greenmotor_session_class")
        return session, found

    if client_class is AsyncIOMotorClient:
        session, found = asyncio.run(main())
    else:
        from tornado.ioloop import IOLoop

        loop = IOLoop(make_current=False)
        session, found = loop.run_sync(main)
        loop.close()
    client.close()
    assert found == {"_id": 1} and session.has_ended and session.client is client
