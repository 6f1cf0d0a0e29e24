"""MotorCursor and the command cursors against the real server, in every iteration style."""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings

import pytest
from bson import decode_all
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, DESCENDING, CursorType
from pymongo.errors import InvalidOperation, OperationFailure

from greenmotor import (
    MotorCommandCursor,
    MotorCursor,
    MotorLatentCommandCursor,
    MotorRawBatchCursor,
)
from greenmotor.cursor import FETCH_NEXT_DEPRECATED, NEXT_OBJECT_DEPRECATED


@pytest.fixture
def filled(sync_coll):
    sync_coll.insert_many([{"_id": i, "even": i % 2 == 0} for i in range(25)])
    return sync_coll


async def test_find_does_no_io_until_iterated(coll, filled, io_loop):
    cursor = coll.find()
    assert isinstance(cursor, MotorCursor)
    assert cursor.cursor_id is None and cursor.alive
    docs = [doc async for doc in cursor]
    assert [d["_id"] for d in docs] == list(range(25))
    assert not cursor.alive


async def test_chaining(coll, filled, io_loop):
    cursor = (
        coll.find({"even": True}, {"even": 0})
        .sort("_id", DESCENDING)
        .skip(1)
        .limit(3)
        .batch_size(2)
        .max_time_ms(5000)
        .comment("chained")
        .allow_disk_use(True)
        .collation({"locale": "simple"})
    )
    assert isinstance(cursor, MotorCursor)
    assert await cursor.to_list(None) == [{"_id": 22}, {"_id": 20}, {"_id": 18}]
    hinted = await coll.find().hint([("_id", ASCENDING)]).limit(2).to_list(None)
    assert [d["_id"] for d in hinted] == [0, 1]
    ranged = coll.find().min([("_id", 3)]).max([("_id", 6)]).hint([("_id", 1)])
    assert [d["_id"] for d in await ranged.to_list(None)] == [3, 4, 5]


async def test_to_list_lengths(coll, filled, io_loop):
    cursor = coll.find().sort("_id").batch_size(4)
    first = await cursor.to_list(10)
    second = await cursor.to_list(10)
    rest = await cursor.to_list(10)
    assert [d["_id"] for d in first + second + rest] == list(range(25))
    assert len(rest) == 5 and await cursor.to_list(10) == []
    assert await coll.find().to_list(0) == []
    with pytest.raises(ValueError, match="non-negative"):
        coll.find().to_list(-1)
    with pytest.raises(TypeError, match="length must be an int"):
        coll.find().to_list("3")


async def test_to_list_callback(coll, filled, io_loop):
    done = asyncio.get_running_loop().create_future()
    coll.find({"_id": {"$lt": 3}}).to_list(None, callback=lambda r, e: done.set_result((r, e)))
    docs, error = await done
    assert error is None and [d["_id"] for d in docs] == [0, 1, 2]


async def test_next_and_stop(coll, filled, io_loop):
    cursor = coll.find({"_id": {"$lt": 2}}).sort("_id")
    assert (await cursor.next())["_id"] == 0
    assert (await cursor.next())["_id"] == 1
    with pytest.raises(StopAsyncIteration):
        await cursor.next()


async def test_each(coll, filled, io_loop):
    seen = []
    done = asyncio.get_running_loop().create_future()

    def callback(doc, error):
        assert error is None
        if doc is None:
            done.set_result(None)
        else:
            seen.append(doc["_id"])

    cursor = coll.find().sort("_id").batch_size(7)
    assert cursor.each(callback) is None
    assert seen == []  # never called inside each()
    await done
    assert seen == list(range(25))


async def test_each_stops_when_callback_returns_false(coll, filled, io_loop):
    seen = []

    def callback(doc, error):
        seen.append(doc["_id"])
        return False if len(seen) == 3 else None

    coll.find().sort("_id").each(callback)
    await asyncio.sleep(0.3)
    assert seen == [0, 1, 2]


async def test_each_reports_errors(coll, io_loop):
    done = asyncio.get_running_loop().create_future()
    coll.find({"$badOperator": 1}).each(lambda doc, error: done.set_result((doc, error)))
    doc, error = await done
    assert doc is None and isinstance(error, OperationFailure)
    with pytest.raises(TypeError, match="callback must be a callable"):
        coll.find().each(None)


async def test_fetch_next_next_object(coll, filled, io_loop):
    cursor = coll.find({"_id": {"$lt": 3}}).sort("_id").batch_size(2)
    seen = []
    with pytest.warns(DeprecationWarning, match="fetch_next property is deprecated"):
        while await cursor.fetch_next:
            with pytest.warns(DeprecationWarning, match="next_object method is deprecated"):
                seen.append(cursor.next_object()["_id"])
    assert seen == [0, 1, 2]


async def test_close_rewind_clone(coll, filled, sync_client, io_loop):
    cursor = coll.find().sort("_id").batch_size(2)
    assert (await cursor.next())["_id"] == 0
    assert cursor.cursor_id  # a server cursor is open
    clone = cursor.clone()
    assert isinstance(clone, MotorCursor) and clone.cursor_id is None
    cursor.rewind()
    assert (await cursor.next())["_id"] == 0
    await cursor.close()
    # As in PyMongo, the batch already fetched can still be read; nothing more is fetched.
    assert [d["_id"] for d in await cursor.to_list(None)] == [1]
    assert not cursor.alive
    with pytest.raises(StopAsyncIteration):
        await cursor.next()
    assert len(await clone.to_list(None)) == 25


async def test_distinct_and_explain(coll, filled, io_loop):
    assert sorted(await coll.find({"_id": {"$lt": 4}}).distinct("even")) == [False, True]
    plan = await coll.find({"_id": 1}).explain()
    assert isinstance(plan, dict) and plan


async def test_where_is_refused_by_the_server(coll, filled, io_loop):
    # SecantusDB (like MongoDB 8 without JavaScript) has no $where: the error arrives intact.
    cursor = coll.find().where("this._id == 1")
    assert isinstance(cursor, MotorCursor)
    with pytest.raises(OperationFailure):
        await cursor.to_list(None)


async def test_add_and_remove_option(coll, filled, io_loop):
    cursor = coll.find().add_option(2).remove_option(2)  # tailable on, then off again
    assert len(await cursor.to_list(None)) == 25


async def test_cursor_properties(coll, filled, client, io_loop):
    session = await client.start_session()
    cursor = coll.find(session=session).batch_size(3)
    await cursor.next()
    assert cursor.address == client.address
    assert cursor.session == session.delegate
    await cursor.close()
    await session.end_session()


async def test_dropped_cursor_is_killed_on_the_server(coll, filled, sync_client, io_loop):
    cursor = coll.find().batch_size(2)
    await cursor.next()
    cursor_id = cursor.cursor_id
    assert cursor_id
    del cursor
    gc.collect()
    # PyMongo's kill-cursors thread sends killCursors; the cursor then no longer exists.
    for _ in range(100):
        await asyncio.sleep(0.05)
        reply = sync_client[coll.database.name].command(
            "getMore", cursor_id, collection=coll.name, check=False
        )
        if reply.get("codeName") == "CursorNotFound":
            break
    assert reply.get("codeName") == "CursorNotFound", reply


async def test_tailable_await_cursor_waits_without_blocking(
    db, sync_client, stall_monitor, io_loop
):
    await db.create_collection("capped", capped=True, size=100_000)
    sync_capped = sync_client[db.name].capped
    sync_capped.insert_one({"n": 0})
    cursor = db.capped.find(cursor_type=CursorType.TAILABLE_AWAIT).max_await_time_ms(5000)
    with pytest.raises(InvalidOperation, match="tailable"):
        cursor.to_list(None)
    assert (await cursor.next())["n"] == 0
    async with stall_monitor() as stalls:
        waiting = asyncio.ensure_future(cursor.next())
        await asyncio.sleep(0.1)
        sync_capped.insert_one({"n": 1})
        doc = await asyncio.wait_for(waiting, 5)
    assert doc["n"] == 1
    assert stalls.longest < 0.05, stalls
    await cursor.close()


async def test_tailable_cursor_iteration_ends_at_an_empty_batch(db, sync_client, io_loop):
    """As Motor: ``async for`` over a tailable cursor ends when a getMore brings nothing;
    the cursor stays alive, and iterating it again later gets what came since."""
    await db.create_collection("capped", capped=True, size=100_000)
    sync_capped = sync_client[db.name].capped
    sync_capped.insert_one({"n": 0})
    cursor = db.capped.find(cursor_type=CursorType.TAILABLE_AWAIT).max_await_time_ms(50)
    assert [doc["n"] async for doc in cursor] == [0]
    assert cursor.alive
    sync_capped.insert_one({"n": 1})
    assert [doc["n"] async for doc in cursor] == [1]
    await cursor.close()


async def test_find_raw_batches(coll, filled, io_loop):
    cursor = coll.find_raw_batches().sort("_id").batch_size(10)
    assert isinstance(cursor, MotorRawBatchCursor)
    batches = await cursor.to_list(None)
    assert all(isinstance(b, bytes) for b in batches)
    assert [d["_id"] for b in batches for d in decode_all(b)] == list(range(25))


async def test_aggregate_is_latent(coll, filled, io_loop):
    cursor = coll.aggregate([{"$match": {"even": True}}, {"$count": "n"}])
    assert isinstance(cursor, MotorLatentCommandCursor)
    assert cursor.cursor_id is None and cursor.alive and "not started" in repr(cursor)
    assert await cursor.to_list(None) == [{"n": 13}]
    batched = coll.aggregate([{"$sort": {"_id": 1}}]).batch_size(5)
    assert [d["_id"] async for d in batched] == list(range(25))
    with pytest.raises(OperationFailure):
        await coll.aggregate([{"$noSuchStage": {}}]).to_list(None)


async def test_aggregate_callback_and_try_next(coll, filled, io_loop):
    cursor = coll.aggregate([{"$match": {"_id": 3}}])
    done = asyncio.get_running_loop().create_future()
    cursor.try_next(callback=lambda r, e: done.set_result((r, e)))
    doc, error = await done
    assert error is None and doc == {"_id": 3, "even": False}
    assert await cursor.try_next() is None


async def test_aggregate_raw_batches_and_database_aggregate(coll, filled, db, io_loop):
    raw = await coll.aggregate_raw_batches([{"$match": {"_id": {"$lt": 3}}}]).to_list(None)
    assert [d["_id"] for b in raw for d in decode_all(b)] == [0, 1, 2]
    ops = await db.client.admin.aggregate([{"$currentOp": {}}]).to_list(None)
    assert isinstance(ops, list)


async def test_latent_cursor_closed_before_start(coll, io_loop):
    cursor = coll.aggregate([])
    await cursor.close()
    assert not cursor.alive
    assert await cursor.to_list(None) == []


async def test_command_cursors(db, coll, filled, io_loop):
    collections = await db.list_collections()
    assert isinstance(collections, MotorCommandCursor)
    assert [c["name"] async for c in collections] == [coll.name]
    command_cursor = await db.cursor_command("find", coll.name, batchSize=5)
    assert isinstance(command_cursor, MotorCommandCursor)
    assert len(await command_cursor.to_list(None)) == 25
    assert not command_cursor.alive


async def test_raw_document_class(coll, filled, io_loop):
    raw = coll.with_options(codec_options=coll.codec_options.with_options(
        document_class=RawBSONDocument))  # fmt: skip
    doc = await raw.find_one({"_id": 1})
    assert isinstance(doc, RawBSONDocument) and doc["_id"] == 1


async def test_async_with_closes(coll, filled, io_loop):
    async with coll.find().batch_size(2) as cursor:
        await cursor.next()
        cursor_id = cursor.cursor_id
    assert cursor_id
    assert len(await cursor.to_list(None)) == 1  # the rest of the fetched batch only
    assert not cursor.alive


async def test_cursor_collection(coll, io_loop):
    cursor = coll.find()
    assert cursor.collection == coll


# Motor 3.7's behaviour, checked in both flavours (Tornado's MotorClient on an IOLoop,
# asyncio's AsyncIOMotorClient under asyncio.run).


def test_fetch_next_and_next_object_warn_as_motor_does(flavour):
    flavour.sync_coll.insert_many([{"_id": i} for i in range(3)])

    async def body(coll):
        cursor = coll.find().sort("_id").batch_size(2)
        with pytest.warns(DeprecationWarning) as caught:
            assert cursor.next_object() is None  # nothing fetched yet
            fetched = await cursor.fetch_next
            first = cursor.next_object()
        return fetched, first, cursor, caught

    fetched, first, cursor, caught = flavour.run(body)
    assert fetched == 2 and first == {"_id": 0}  # the number of documents fetched, as Motor
    assert [(w.category, str(w.message)) for w in caught] == [
        (DeprecationWarning, NEXT_OBJECT_DEPRECATED),
        (DeprecationWarning, FETCH_NEXT_DEPRECATED),
        (DeprecationWarning, NEXT_OBJECT_DEPRECATED),
    ]
    # Motor's exact words: its test configuration ignores these two by their text.
    assert FETCH_NEXT_DEPRECATED.startswith("The fetch_next property is deprecated")
    assert NEXT_OBJECT_DEPRECATED.startswith("The next_object method is deprecated")
    assert {w.filename for w in caught} == {__file__}  # reported at the caller's line


def test_fetch_next_without_results_and_at_the_end(flavour):
    flavour.sync_coll.insert_many([{"_id": i} for i in range(3)])

    async def body(coll):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            empty = coll.find({"_id": "none"})
            no_results = await empty.fetch_next
            cursor = coll.find().sort("_id").batch_size(2)
            await cursor.fetch_next
            buffered = cursor._buffer_size()
            again = await cursor.fetch_next  # documents are buffered: nothing is fetched
            seen = []
            while await cursor.fetch_next:
                seen.append(cursor.next_object()["_id"])
            end = await cursor.fetch_next  # a dead cursor resolves False at once
        return no_results, buffered, again, cursor._buffer_size(), seen, end

    no_results, buffered, again, after, seen, end = flavour.run(body)
    assert not no_results and buffered == 2 and again is True and after == 0
    assert seen == [0, 1, 2] and end is False


@pytest.mark.parametrize("make", ["find", "aggregate", "find_raw_batches", "aggregate_raw_batches"])
def test_started_and_closed_as_motor(flavour, make):
    flavour.sync_coll.insert_many([{"_id": i} for i in range(5)])
    args = {"find": [{}], "find_raw_batches": [{}]}.get(make, [[{"$sort": {"_id": 1}}]])

    async def body(coll):
        contrast = getattr(coll, make)(*args).batch_size(2)
        states = []
        async with getattr(coll, make)(*args).batch_size(2) as cursor:
            states.append((cursor.started, cursor.closed))
            first = await cursor.next()
            states.append((cursor.started, cursor.closed))
        states.append((cursor.started, cursor.closed))
        states.append(contrast.closed)
        await contrast.close()
        states.append(contrast.closed)
        return first, states

    first, states = flavour.run(body)
    first = decode_all(first)[0] if isinstance(first, bytes) else first
    assert first == {"_id": 0}
    assert states == [(False, False), (True, False), (True, True), False, True]


def test_command_cursor_of_a_tailable_command_stops_at_an_empty_batch(flavour):
    """As Motor: one iteration step is at most one getMore, so ``async for`` over a
    ``$changeStream`` aggregate ends when a getMore brings nothing."""
    flavour.sync_coll.insert_one({"_id": 0})

    async def body(coll):
        cursor = coll.aggregate([{"$changeStream": {}}], maxAwaitTimeMS=50)
        return [change async for change in cursor], cursor.alive

    changes, alive = flavour.run(body)
    assert changes == [] and alive  # the server cursor is still open


async def test_each_argument_and_stop_when_closed(coll, filled, io_loop):
    cursor = coll.find()
    for bad in ("foo", None):
        with pytest.raises(TypeError) as raised:
            cursor.each(callback=bad)
        assert str(raised.value) == "callback must be a callable"  # Motor's words
    with pytest.raises(TypeError):
        cursor.each()  # no callback
    seen = []
    later = asyncio.get_running_loop().create_future()

    def callback(doc, error):
        seen.append(doc)
        if len(seen) == 2:
            later.set_result(cursor.close())

    cursor = coll.find().sort("_id").batch_size(5)
    cursor.each(callback)
    await (await later)
    await asyncio.sleep(0.1)
    assert [d["_id"] for d in seen] == [0, 1]  # no more calls, not even (None, None)


async def test_to_list_misuse_messages_are_motors(coll, filled, io_loop):
    with pytest.raises(TypeError) as raised:
        coll.find().to_list("foo")
    assert str(raised.value) == "length must be an int, not 'foo'"
    with pytest.raises(ValueError) as raised:
        coll.find().to_list(-1)
    assert str(raised.value) == "length must be non-negative"
    tailable = coll.find(cursor_type=CursorType.TAILABLE)
    with pytest.raises(InvalidOperation) as raised:
        tailable.to_list(10)
    assert str(raised.value) == "Can't call to_list on tailable cursor"


async def test_callback_is_keyword_only(coll, filled, io_loop):
    cursor = coll.find()
    with pytest.raises(TypeError):
        cursor.to_list(None, print)
    for method in (MotorCursor.to_list, MotorCursor.close, MotorCommandCursor.try_next):
        callback = inspect.signature(method).parameters["callback"]
        assert callback.kind is inspect.Parameter.KEYWORD_ONLY and callback.default is None
    done = asyncio.get_running_loop().create_future()
    cursor.close(callback=lambda result, error: done.set_result((result, error)))
    assert await done == (None, None)


async def test_close_twice_and_rewind_resets_the_flags(coll, filled, io_loop):
    cursor = coll.find().sort("_id").batch_size(2)
    await cursor.next()
    await cursor.close()
    assert cursor.closed and cursor.started
    assert await cursor.close() is None  # again: nothing to do
    assert cursor.rewind() is cursor
    assert not cursor.started and not cursor.closed
    assert [d["_id"] for d in await cursor.to_list(3)] == [0, 1, 2]
    assert cursor.started


async def test_max_scan_and_the_attributes_motor_has(coll, sync_coll, io_loop):
    cursor = coll.find()
    assert cursor.max_scan(10) is cursor
    assert cursor.delegate._max_scan == 10

    # Motor's own rule (its test_cursor_attrs): PyMongo's Cursor's public names, less
    # "retrieved", are MotorCursor's, less the names only Motor has.
    def public(obj):
        return {name for name in dir(obj) if not name.startswith("_")}

    motor_only = {"fetch_next", "each", "started", "next_object", "closed",
                  "delegate", "get_io_loop", "io_loop", "wrap"}  # fmt: skip
    assert public(sync_coll.find()) - {"retrieved"} == public(cursor) - motor_only


async def test_motors_constructor(coll, filled, io_loop):
    cursor = MotorCursor(coll.delegate.find({"_id": {"$lt": 2}}), coll)
    assert [d["_id"] async for d in cursor] == [0, 1]
    assert cursor.collection == coll
    with pytest.raises(TypeError, match="collection must be the MotorCollection"):
        MotorCursor(coll.delegate.find(), coll.delegate)
