"""MotorCollection and MotorDatabase against the real server, in both call styles."""

from __future__ import annotations

import asyncio
import re

import pytest
from bson import CodecOptions, ObjectId
from pymongo import ASCENDING, DESCENDING, DeleteOne, InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure
from pymongo.results import BulkWriteResult, DeleteResult, InsertManyResult, UpdateResult

from greenmotor import MotorClient, MotorCollection, MotorDatabase
from greenmotor.motor_asyncio import (
    AsyncIOMotorClient,
    AsyncIOMotorCollection,
    AsyncIOMotorDatabase,
)

#: Each flavour's client, database and collection classes.
FLAVOURS = {
    "tornado": (MotorClient, MotorDatabase, MotorCollection),
    "asyncio": (AsyncIOMotorClient, AsyncIOMotorDatabase, AsyncIOMotorCollection),
}


def callback_future():
    """A (callback, future) pair: the future resolves to the callback's (result, error)."""
    future = asyncio.get_running_loop().create_future()
    return (lambda result, error: future.set_result((result, error))), future


async def test_insert_and_find_one(coll, sync_coll, io_loop):
    result = await coll.insert_one({"_id": 1, "x": "a"})
    assert result.inserted_id == 1 and result.acknowledged
    assert sync_coll.find_one({"_id": 1}) == {"_id": 1, "x": "a"}
    assert await coll.find_one({"_id": 1}) == {"_id": 1, "x": "a"}
    assert await coll.find_one({"_id": 2}) is None
    assert await coll.find_one(1, projection={"_id": 0}) == {"x": "a"}


async def test_insert_one_callback_style(coll, sync_coll, io_loop):
    callback, done = callback_future()
    assert coll.insert_one({"_id": 7}, callback=callback) is None
    result, error = await done
    assert error is None and result.inserted_id == 7
    assert sync_coll.count_documents({"_id": 7}) == 1

    callback, done = callback_future()
    coll.insert_one({"_id": 7}, callback=callback)
    result, error = await done
    assert result is None and isinstance(error, DuplicateKeyError)


async def test_duplicate_key_raises_pymongo_exception(coll, io_loop):
    await coll.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"_id": 1})


async def test_insert_many(coll, sync_coll, io_loop):
    result = await coll.insert_many([{"i": i} for i in range(100)])
    assert isinstance(result, InsertManyResult) and len(result.inserted_ids) == 100
    assert all(isinstance(i, ObjectId) for i in result.inserted_ids)
    assert sync_coll.count_documents({}) == 100
    with pytest.raises(BulkWriteError) as info:
        await coll.insert_many([{"_id": 1}, {"_id": 1}, {"_id": 2}], ordered=True)
    assert info.value.details["nInserted"] == 1


async def test_updates_and_replace(coll, sync_coll, io_loop):
    sync_coll.insert_many([{"_id": i, "n": 0} for i in range(3)])
    one = await coll.update_one({"_id": 0}, {"$inc": {"n": 5}})
    assert isinstance(one, UpdateResult) and one.matched_count == 1 and one.modified_count == 1
    many = await coll.update_many({}, {"$set": {"flag": True}})
    assert many.modified_count == 3
    upsert = await coll.update_one({"_id": 9}, {"$set": {"n": 1}}, upsert=True)
    assert upsert.upserted_id == 9
    replaced = await coll.replace_one({"_id": 1}, {"replaced": True})
    assert replaced.modified_count == 1
    assert sync_coll.find_one({"_id": 1}) == {"_id": 1, "replaced": True}
    assert sync_coll.find_one({"_id": 0})["n"] == 5
    with pytest.raises(ValueError, match="update only works with \\$ operators"):
        await coll.update_one({"_id": 0}, {"n": 1})


async def test_deletes(coll, sync_coll, io_loop):
    sync_coll.insert_many([{"k": i % 2} for i in range(10)])
    one = await coll.delete_one({"k": 0})
    assert isinstance(one, DeleteResult) and one.deleted_count == 1
    many = await coll.delete_many({"k": 1})
    assert many.deleted_count == 5
    assert sync_coll.count_documents({}) == 4


async def test_find_one_and_modify(coll, sync_coll, io_loop):
    sync_coll.insert_one({"_id": 1, "n": 1})
    before = await coll.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}})
    assert before == {"_id": 1, "n": 1}
    after = await coll.find_one_and_update(
        {"_id": 1}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
    )
    assert after == {"_id": 1, "n": 3}
    replaced = await coll.find_one_and_replace(
        {"_id": 1}, {"r": 1}, return_document=ReturnDocument.AFTER
    )
    assert replaced == {"_id": 1, "r": 1}
    deleted = await coll.find_one_and_delete({"_id": 1})
    assert deleted == {"_id": 1, "r": 1}
    assert await coll.find_one_and_delete({"_id": 1}) is None


async def test_counts_and_distinct(coll, sync_coll, io_loop):
    sync_coll.insert_many([{"color": c} for c in ["red", "red", "blue"]])
    assert await coll.count_documents({}) == 3
    assert await coll.count_documents({"color": "red"}) == 2
    assert await coll.estimated_document_count() == 3
    assert sorted(await coll.distinct("color")) == ["blue", "red"]
    with pytest.raises(TypeError, match="key must be an instance of str"):
        await coll.distinct(5)


async def test_bulk_write(coll, sync_coll, io_loop):
    result = await coll.bulk_write(
        [InsertOne({"_id": 1}), InsertOne({"_id": 2}), UpdateOne({"_id": 1}, {"$set": {"a": 1}}),
         DeleteOne({"_id": 2})]
    )  # fmt: skip
    assert isinstance(result, BulkWriteResult)
    assert (result.inserted_count, result.modified_count, result.deleted_count) == (2, 1, 1)
    assert list(sync_coll.find()) == [{"_id": 1, "a": 1}]


async def test_indexes(coll, sync_coll, io_loop):
    name = await coll.create_index([("a", ASCENDING), ("b", DESCENDING)], unique=True)
    assert name == "a_1_b_-1"
    names = await coll.create_indexes([pymongo_index("c"), pymongo_index("d")])
    assert names == ["c_1", "d_1"]
    info = await coll.index_information()
    assert info["a_1_b_-1"]["unique"] is True
    listed = [ix["name"] async for ix in coll.list_indexes()]
    assert sorted(listed) == ["_id_", "a_1_b_-1", "c_1", "d_1"]
    await coll.drop_index("c_1")
    assert "c_1" not in sync_coll.index_information()
    await coll.drop_indexes()
    assert list(sync_coll.index_information()) == ["_id_"]
    with pytest.raises(OperationFailure):
        await coll.drop_index("no_such_index")


def pymongo_index(key):
    from pymongo import IndexModel

    return IndexModel([(key, ASCENDING)])


async def test_drop_and_rename(db, sync_client, io_loop):
    sync_db = sync_client[db.name]
    sync_db.a.insert_one({"x": 1})
    await db.a.rename("b")
    assert sync_db.list_collection_names() == ["b"]
    assert sync_db.b.find_one({}, {"_id": 0}) == {"x": 1}
    await db.b.drop()
    assert sync_db.list_collection_names() == []


async def test_collection_names_and_properties(db, io_loop):
    coll = db.parent
    assert isinstance(coll, MotorCollection)
    assert coll.name == "parent" and coll.full_name == f"{db.name}.parent"
    assert coll.database == db and isinstance(coll.database, MotorDatabase)
    sub = coll.child
    assert isinstance(sub, MotorCollection) and sub.name == "parent.child"
    assert coll["child"] == sub
    with pytest.raises(AttributeError, match="use database"):
        coll._hidden  # noqa: B018
    with pytest.raises(TypeError, match="not callable"):
        coll.find_and_modify({})
    with pytest.raises(NotImplementedError, match="truth value"):
        bool(coll)


async def test_with_options(coll, io_loop):
    from pymongo import ReadPreference, WriteConcern

    other = coll.with_options(write_concern=WriteConcern(w=0))
    assert isinstance(other, MotorCollection)
    assert other.write_concern == WriteConcern(w=0) and coll.write_concern != other.write_concern
    db = coll.database.with_options(read_preference=ReadPreference.NEAREST)
    assert isinstance(db, MotorDatabase) and db.read_preference == ReadPreference.NEAREST


async def test_database_commands(db, sync_client, io_loop):
    assert (await db.command("ping"))["ok"] == 1.0
    assert (await db.command({"ping": 1}))["ok"] == 1.0
    with pytest.raises(OperationFailure):
        await db.command("definitelyNotACommand")
    created = await db.create_collection("made")
    assert isinstance(created, MotorCollection) and created.name == "made"
    assert await db.list_collection_names() == ["made"]
    listed = await (await db.list_collections()).to_list(None)
    assert [c["name"] for c in listed] == ["made"]
    result = await db.validate_collection("made")
    assert result["valid"] is True
    await db.drop_collection("made")
    assert sync_client[db.name].list_collection_names() == []
    assert db.client is db.client and db.name.startswith("greenmotor_test_")
    assert db.get_collection("z") == db.z


async def test_database_callback_style(db, io_loop):
    callback, done = callback_future()
    db.command("ping", callback=callback)
    result, error = await done
    assert error is None and result["ok"] == 1.0


async def test_create_existing_collection_fails(db, io_loop):
    from pymongo.errors import CollectionInvalid

    await db.create_collection("dup")
    with pytest.raises(CollectionInvalid, match="already exists"):
        await db.create_collection("dup")


@pytest.fixture(params=FLAVOURS)
def flavour(request, server_uri):
    """(client, database class, collection class) of one flavour; the client does no I/O."""
    client_class, database_class, collection_class = FLAVOURS[request.param]
    client = client_class(server_uri)
    yield client, database_class, collection_class
    client.close()


def test_calling_a_database_or_collection_says_no_such_method(flavour):
    client, _, _ = flavour
    client_name = type(client).__name__
    with pytest.raises(TypeError) as caught:
        client.db.find_and_modify({})
    assert str(caught.value) == (
        "MotorCollection object is not callable. If you meant to call the 'find_and_modify' "
        "method on a MotorCollection object it is failing because no such method exists."
    )
    with pytest.raises(TypeError) as caught:
        client.db.coll.sub.foo()
    assert "call the 'coll.sub.foo' method" in str(caught.value)  # the full name, as Motor
    with pytest.raises(TypeError) as caught:
        client.fsync()
    assert str(caught.value) == (
        f"MotorDatabase object is not callable. If you meant to call the 'fsync' method on "
        f"a {client_name} object it is failing because no such method exists."
    )
    with pytest.raises(TypeError) as caught:
        client.open_sync()
    assert str(caught.value) == (
        f"{client_name}.open_sync() is unnecessary Motor 0.2, see changelog for details."
    )


def test_truth_value_and_private_names_refused_with_motors_messages(flavour):
    client, database_class, collection_class = flavour
    db = client.db
    with pytest.raises(NotImplementedError) as caught:
        bool(db)
    assert str(caught.value) == (
        "Database objects do not implement truth value testing or bool(). Please compare "
        "with None instead: database is not None"
    )
    with pytest.raises(NotImplementedError, match="^Collection objects do not implement"):
        bool(db.coll)
    expected = (
        f"{database_class.__name__} has no attribute '_x'. To access the _x collection, "
        "use database['_x']."
    )
    with pytest.raises(AttributeError, match=re.escape(expected)):
        db._x  # noqa: B018
    expected = (
        f"{collection_class.__name__} has no attribute '_x'. To access the coll._x "
        "collection, use database['coll._x']."
    )
    with pytest.raises(AttributeError, match=re.escape(expected)):
        db.coll._x  # noqa: B018


def test_sub_collection_names_must_be_str(flavour):
    client, _, _ = flavour
    coll = client.db.coll
    with pytest.raises(TypeError, match=re.escape('can only concatenate str (not "int") to str')):
        coll[5]
    # `in` and iteration try coll[0], coll[1]...: they fail at once instead of never ending.
    with pytest.raises(TypeError):
        "x" in coll  # noqa: B015
    with pytest.raises(TypeError):
        list(coll)


def test_collection_constructor_is_motors(flavour):
    client, database_class, collection_class = flavour
    db = client.db
    coll = collection_class(db, "c", codec_options=CodecOptions(tz_aware=True))
    assert coll.full_name == "db.c" and coll.codec_options.tz_aware is True
    assert coll.database is db
    # PyMongo's Collection(..., capped=True) would create the collection: I/O, refused.
    with pytest.raises(TypeError, match="unexpected keyword argument 'capped'"):
        collection_class(db, "c", capped=True)
    with pytest.raises(TypeError) as caught:
        collection_class("db", "c")
    assert str(caught.value) == "First argument to MotorCollection must be MotorDatabase, not 'db'"
    other_flavour = next(d for _, d, _ in FLAVOURS.values() if d is not database_class)
    with pytest.raises(TypeError, match="must be MotorDatabase"):
        collection_class(other_flavour(client, "db"), "c")


def test_database_constructor(flavour):
    client, database_class, _ = flavour
    db = database_class(client, "d", codec_options=CodecOptions(tz_aware=True))
    assert db.name == "d" and db.codec_options.tz_aware and db.client is client
    wrapped = database_class(client, "ignored", _delegate=client.delegate.other)
    assert type(wrapped) is database_class and wrapped.name == "other"
    with pytest.raises(TypeError, match=f"client must be a {type(client).__name__}"):
        database_class("not a client", "d")


def test_collection_database_is_the_database_it_came_from(flavour):
    client, database_class, _ = flavour
    db = client.db
    assert db.coll.database is db
    assert db["coll"].sub.database is db
    assert db.get_collection("coll").database is db
    assert db.coll.with_options(codec_options=CodecOptions()).database is db
    # Made from a PyMongo collection: a database of the same flavour, made once.
    wrapped = client.wrap(client.delegate.other.coll)
    assert type(wrapped.database) is database_class and wrapped.database.name == "other"
    assert wrapped.database is wrapped.database


def test_watch_and_list_indexes_take_motors_parameters(flavour):
    client, _, _ = flavour
    coll = client.db.coll
    with pytest.raises(TypeError, match="unexpected keyword argument 'fullDocument'"):
        coll.watch(fullDocument="updateLookup")  # Motor's is full_document
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        client.watch(bogus=1)
    with pytest.raises(TypeError, match="positional argument"):
        coll.list_indexes(None, 5)


@pytest.mark.parametrize("flavour_name", FLAVOURS)
def test_watch_passes_its_options_to_the_stream(server_uri, flavour_name):
    client_class, _, _ = FLAVOURS[flavour_name]

    async def main():
        client = client_class(server_uri)
        coll = client.greenmotor_watch_options.coll
        await coll.insert_one({"_id": 0})  # the stream needs the collection
        async with coll.watch([{"$match": {"operationType": "insert"}}], batch_size=5) as stream:
            await coll.update_one({"_id": 0}, {"$set": {"x": 1}})  # filtered out
            await coll.insert_one({"_id": 1})
            change = await stream.next()
        async with await client.start_session() as session:
            async with coll.watch(session=session) as stream:
                assert await stream.try_next() is None
            # As with Motor, the PyMongo session a MotorClientSession wraps will do too.
            async with coll.watch(session=session.delegate) as stream:
                await coll.insert_one({"_id": 2})
                assert (await stream.next())["documentKey"] == {"_id": 2}
        names = [index["name"] async for index in coll.list_indexes(session=None)]
        await client.drop_database("greenmotor_watch_options")
        client.close()
        return change, names

    if flavour_name == "asyncio":
        change, names = asyncio.run(main())
    else:
        from tornado.ioloop import IOLoop

        loop = IOLoop(make_current=False)
        change, names = loop.run_sync(main)
        loop.close()
    assert change["operationType"] == "insert" and change["documentKey"] == {"_id": 1}
    assert names == ["_id_"]
