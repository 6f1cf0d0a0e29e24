"""Change streams against the real server; many open streams and no thread each."""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest
from pymongo.errors import OperationFailure

from greenmotor import MotorChangeStream


async def test_watch_collection(coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})
    stream = coll.watch([{"$match": {"operationType": "insert"}}])
    assert isinstance(stream, MotorChangeStream) and "not started" in repr(stream)
    assert await stream.try_next() is None  # opens the stream: nothing yet
    token = stream.resume_token
    sync_coll.insert_one({"_id": 1})
    change = await asyncio.wait_for(stream.next(), 10)
    assert change["fullDocument"] == {"_id": 1}
    assert stream.resume_token != token
    await stream.close()
    assert not stream.alive


async def test_async_for_and_async_with(coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})
    got = []
    async with coll.watch() as stream:
        await stream.try_next()
        sync_coll.insert_many([{"_id": 1}, {"_id": 2}])
        async for change in stream:
            got.append(change["documentKey"]["_id"])
            if len(got) == 2:
                break
    assert got == [1, 2] and not stream.alive


async def test_watch_database_and_client(client, db, sync_client, io_loop):
    await db.a.insert_one({})
    for target in (db, client):
        stream = target.watch()
        await stream.try_next()
        sync_client[db.name].a.insert_one({"from": "sync"})
        change = await asyncio.wait_for(stream.next(), 10)
        assert change["ns"] == {"db": db.name, "coll": "a"}
        await stream.close()


async def test_resume_after(coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})
    stream = coll.watch()
    await stream.try_next()
    sync_coll.insert_one({"_id": 1})
    first = await stream.next()
    await stream.close()
    sync_coll.insert_one({"_id": 2})
    resumed = coll.watch(resume_after=first["_id"])
    change = await asyncio.wait_for(resumed.next(), 10)
    assert change["documentKey"] == {"_id": 2}
    await resumed.close()


async def test_callback_style(coll, sync_coll, io_loop):
    await coll.insert_one({"_id": 0})
    stream = coll.watch()
    await stream.try_next()
    sync_coll.insert_one({"_id": 9})
    done = asyncio.get_running_loop().create_future()
    stream.next(callback=lambda change, error: done.set_result((change, error)))
    change, error = await asyncio.wait_for(done, 10)
    assert error is None and change["documentKey"] == {"_id": 9}
    await stream.close()


async def test_bad_pipeline(coll, io_loop):
    with pytest.raises(OperationFailure):
        await coll.watch([{"$noSuchStage": {}}]).next()


async def test_close_before_open(coll, io_loop):
    stream = coll.watch()
    await stream.close()
    assert not stream.alive
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


@pytest.mark.slow  # a thousand streams
async def test_a_thousand_open_streams_and_no_thread_each(server_uri, sync_client, io_loop):
    import greenmotor

    client = greenmotor.MotorClient(server_uri, maxPoolSize=50, io_loop=io_loop)
    coll = client.greenmotor_streams.c
    await coll.insert_one({"_id": "start"})
    threads_before = threading.active_count()
    streams = [coll.watch(max_await_time_ms=100) for _ in range(1000)]
    for start in range(0, 1000, 100):  # open them (one aggregate each), 100 at a time
        await asyncio.gather(*[s.try_next() for s in streams[start : start + 100]])
    assert all(s.alive and s.delegate is not None for s in streams)
    sync_client.greenmotor_streams.c.insert_one({"_id": "news"})
    seen = 0
    for start in range(0, 1000, 100):
        changes = await asyncio.gather(*[s.next() for s in streams[start : start + 100]])
        seen += sum(c["documentKey"] == {"_id": "news"} for c in changes)
    assert seen == 1000
    # Threads: PyMongo's own monitor and kill-cursors threads, none per stream.
    assert threading.active_count() - threads_before <= 5
    await asyncio.gather(*[s.close() for s in streams])
    client.close()
    sync_client.drop_database("greenmotor_streams")


# Motor 3.7's behaviour, in both flavours (the ``flavour`` fixture runs a coroutine function
# on a fresh MotorClient under an IOLoop, or a fresh AsyncIOMotorClient under asyncio.run).


def test_with_statement_is_refused_as_motor_does(flavour):
    async def body(coll):
        stream = coll.watch()
        with pytest.raises(RuntimeError) as raised:
            with stream:
                pass
        return str(raised.value), stream.delegate

    message, delegate = flavour.run(body)
    assert message == 'Use a change stream in "async with", not "with"'
    assert delegate is None  # nothing was opened


def test_async_with_opens_the_stream_on_entry(flavour):
    """As Motor: a change made inside ``async with`` (no try_next first) is seen."""
    flavour.sync_coll.insert_one({"_id": 0})

    async def body(coll):
        async with coll.watch() as stream:
            assert stream.delegate is not None
            await coll.insert_one({"_id": 1})
            change = await asyncio.wait_for(stream.next(), 10)
        return change, stream.alive

    change, alive = flavour.run(body)
    assert change["fullDocument"] == {"_id": 1} and not alive


async def test_next_after_close_and_keyword_only_callback(coll, sync_coll, io_loop):
    for method in (MotorChangeStream.next, MotorChangeStream.try_next, MotorChangeStream.close):
        callback = inspect.signature(method).parameters["callback"]
        assert callback.kind is inspect.Parameter.KEYWORD_ONLY and callback.default is None
    await coll.insert_one({"_id": 0})
    stream = coll.watch()
    assert await stream.try_next() is None
    await stream.close()
    with pytest.raises(StopAsyncIteration):
        await stream.next()
    done = asyncio.get_running_loop().create_future()
    stream.next(callback=lambda change, error: done.set_result((change, error)))
    change, error = await done
    assert change is None and isinstance(error, StopAsyncIteration)
    with pytest.raises(TypeError):
        stream.next(print)  # callback is keyword-only, as the rest of greenmotor


async def test_session_as_motor_or_pymongo_session(client, coll, io_loop):
    """Motor takes the MotorClientSession or the PyMongo session it wraps."""
    await coll.insert_one({"_id": 0})
    session = await client.start_session()
    for given in (session, session.delegate):
        async with coll.watch(session=given) as stream:
            assert stream.delegate._session is session.delegate
            await coll.insert_one({"_id": id(given)})
            change = await asyncio.wait_for(stream.next(), 10)
            assert change["documentKey"] == {"_id": id(given)}
    # Motor's constructor, as watch() calls it: every argument given.
    arguments = dict.fromkeys(inspect.signature(MotorChangeStream).parameters)
    arguments.update(target=coll, session=session)
    stream = MotorChangeStream(**arguments)
    assert await stream.try_next() is None
    assert stream.delegate._session is session.delegate
    await stream.close()
    await session.end_session()
