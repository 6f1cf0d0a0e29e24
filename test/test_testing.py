"""greenmotor.testing: greenmotor's classes over an in-memory database (mongomock).

The same operations run through ``greenmotor.testing`` and through a real client against
the suite's SecantusDB server, in both flavours, and give the same results; the in-memory
client opens no socket and starts no thread.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from conftest import Flavour
from pymongo import DeleteOne, InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

import greenmotor
import greenmotor.motor_asyncio
import greenmotor.testing

pytest.importorskip("mongomock", reason="mongomock is in the test extra")


def in_memory_client(flavour: Any) -> Any:
    if flavour.asyncio:
        return greenmotor.testing.AsyncIOMotorClient()
    return greenmotor.testing.MotorClient()


def run_in_memory(flavour: Any, body: Any) -> Any:
    """``await body(collection)`` with an in-memory client of the flavour, on a fresh loop."""

    async def main() -> Any:
        client = in_memory_client(flavour)
        try:
            return await body(client[flavour.db_name].test_collection)
        finally:
            client.close()

    return flavour.run_loop(main)


def outcome(result: Any) -> Any:
    """What a write result says, comparable between PyMongo's and mongomock's classes."""
    fields = ("inserted_id", "inserted_ids", "matched_count", "modified_count",
              "deleted_count", "upserted_id", "inserted_count", "upserted_ids")  # fmt: skip
    return {name: getattr(result, name) for name in fields if hasattr(result, name)}


async def crud_and_cursors(coll: Any) -> dict[str, Any]:
    """A representative application workload; every result goes into the returned dict."""
    r: dict[str, Any] = {}
    r["insert_one"] = outcome(await coll.insert_one({"_id": 0, "name": "ada", "n": 0}))
    docs = [
        {"_id": i, "name": f"user{i}", "n": i, "tags": ["a", "b"][: i % 3]} for i in range(1, 12)
    ]
    r["insert_many"] = outcome(await coll.insert_many(docs))
    try:
        await coll.insert_one({"_id": 0})
    except DuplicateKeyError as exc:
        r["duplicate"] = type(exc).__name__
    r["find_one"] = await coll.find_one({"name": "ada"}, {"_id": 0})
    r["find_one_none"] = await coll.find_one({"name": "nobody"})
    r["find_sorted"] = (
        await coll.find({"n": {"$gte": 3}}, {"n": 1}).sort("n", -1).skip(1).limit(4).to_list(None)
    )
    r["find_in_or"] = await coll.find(
        {"$or": [{"n": {"$in": [1, 2]}}, {"tags": "b"}]}, sort=[("n", 1)]
    ).to_list(None)
    r["to_list_length"] = await coll.find({}, sort=[("_id", 1)]).to_list(3)
    r["async_for"] = [
        doc["_id"] async for doc in coll.find({}, batch_size=2, comment="x").sort("_id")
    ]
    cursor = coll.find({"n": {"$lt": 3}}).sort("n")
    r["next"] = [(await cursor.next())["n"], (await cursor.next())["n"]]
    r["rest"] = [doc["n"] for doc in await cursor.to_list(None)]
    r["alive_after"] = cursor.alive
    cursor.rewind()
    r["rewound"] = [doc["n"] for doc in await cursor.to_list(None)]
    r["clone"] = [doc["n"] for doc in await cursor.clone().to_list(None)]
    r["cursor_distinct"] = sorted(await coll.find({"n": {"$lt": 4}}).distinct("n"))
    r["count"] = await coll.count_documents({"n": {"$gt": 5}})
    r["estimated"] = await coll.estimated_document_count()
    r["distinct"] = sorted(await coll.distinct("tags"))
    r["update_one"] = outcome(
        await coll.update_one({"_id": 1}, {"$set": {"x": 1}, "$inc": {"n": 10}})
    )
    r["update_many"] = outcome(await coll.update_many({"n": {"$lt": 5}}, {"$push": {"tags": "z"}}))
    r["upsert"] = outcome(await coll.update_one({"_id": 99}, {"$set": {"n": 99}}, upsert=True))
    r["replace"] = outcome(await coll.replace_one({"_id": 2}, {"name": "two", "n": 2}))
    r["after_updates"] = await coll.find({"_id": {"$in": [1, 2, 3, 99]}}).sort("_id").to_list(None)
    r["find_one_and_update"] = await coll.find_one_and_update(
        {"_id": 3}, {"$inc": {"n": 100}}, return_document=ReturnDocument.AFTER
    )
    r["find_one_and_replace"] = await coll.find_one_and_replace({"_id": 4}, {"n": -4})
    r["find_one_and_delete"] = await coll.find_one_and_delete({"_id": 5}, projection={"n": 1})
    r["delete_one"] = outcome(await coll.delete_one({"_id": 6}))
    r["delete_many"] = outcome(await coll.delete_many({"n": {"$gte": 9, "$lt": 20}}))
    r["bulk_write"] = outcome(
        await coll.bulk_write([
            InsertOne({"_id": 50, "n": 50}),
            UpdateOne({"_id": 50}, {"$set": {"bulk": True}}),
            ReplaceOne({"_id": 7}, {"n": 7, "replaced": True}),
            DeleteOne({"_id": 8}),
        ])
    )  # fmt: skip
    r["aggregate"] = await coll.aggregate([
        {"$match": {"n": {"$lt": 60}}},
        {"$project": {"even": {"$eq": [{"$mod": ["$n", 2]}, 0]}, "n": 1}},
        {"$group": {"_id": "$even", "total": {"$sum": "$n"}, "count": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]).to_list(None)  # fmt: skip
    r["aggregate_unwind"] = [
        doc async for doc in coll.aggregate([
            {"$unwind": "$tags"}, {"$sort": {"_id": 1, "tags": 1}}, {"$limit": 5},
            {"$project": {"_id": 0, "t": "$tags", "i": "$_id"}},
        ])
    ]  # fmt: skip
    r["create_index"] = await coll.create_index([("name", pymongo.ASCENDING)])
    r["unique_sparse"] = await coll.create_index("code", unique=True, sparse=True)
    await coll.insert_one({"_id": 1000, "code": 7})
    indexes = await coll.list_indexes().to_list(None)
    r["list_indexes"] = sorted((index["name"], dict(index["key"])) for index in indexes)
    try:
        await coll.insert_one({"_id": 1001, "code": 7})
    except DuplicateKeyError as exc:
        r["unique_index"] = type(exc).__name__
    r["collections"] = await coll.database.list_collection_names()
    r["final"] = await coll.find().sort("_id").to_list(None)
    await coll.drop()
    r["dropped"] = await coll.count_documents({})
    return r


def test_same_results_as_a_real_server(flavour: Any) -> None:
    real = flavour.run(crud_and_cursors)
    in_memory = run_in_memory(flavour, crud_and_cursors)
    assert real.keys() == in_memory.keys()
    for key in real:
        assert in_memory[key] == real[key], key
    assert real["duplicate"] == real["unique_index"] == "DuplicateKeyError"
    assert len(real["final"]) == 8  # the workload did what it says


async def classes(coll: Any) -> list[Any]:
    future = coll.find_one({})
    await coll.insert_one({"_id": 1})
    await future
    return [
        type(coll.database.client),
        type(coll.database),
        type(coll),
        type(coll.find()),
        type(coll.aggregate([])),
        type(coll.list_indexes()),
        type(await coll.database.list_collections()),
        type(future),
    ]


def test_the_usual_classes(flavour: Any) -> None:
    """The objects are greenmotor's own classes, as from a real client."""
    real = flavour.run(classes)
    in_memory = run_in_memory(flavour, classes)
    assert in_memory[1:-1] == real[1:-1]  # database, collection, cursors: the same
    # Futures (an operation that needed no wait, as in memory, awaits as a subclass that
    # yields to the loop once).
    assert issubclass(in_memory[-1], asyncio.Future) and issubclass(real[-1], asyncio.Future)
    assert issubclass(in_memory[0], real[0])  # the client: a subclass of the usual one
    assert in_memory[0].__module__ == "greenmotor.testing"


def test_operations_run_in_greenmotor_greenlets(flavour: Any) -> None:
    """As with a server: the PyMongo-level call runs in a DriverGreenlet on the loop."""
    from greenmotor.core import current_driver_greenlet

    ran_in: list[Any] = []

    async def body(coll: Any) -> None:
        target = coll.delegate._target  # the mongomock collection
        original = target.find_one

        def spy(*args: Any, **kwargs: Any) -> Any:
            ran_in.append(current_driver_greenlet())
            return original(*args, **kwargs)

        target.find_one = spy
        await coll.find_one({})

    run_in_memory(flavour, body)
    assert len(ran_in) == 1 and ran_in[0] is not None


def test_callbacks(io_loop: Any) -> None:
    """Motor's callback style works too (Tornado flavour)."""
    client = greenmotor.testing.MotorClient()
    got: list[Any] = []

    async def main() -> None:
        await client.db.c.insert_one({"_id": 1})
        done = io_loop.asyncio_loop.create_future()

        def callback(result: Any, error: Any) -> None:
            got.append((result, error))
            done.set_result(None)

        client.db.c.find_one({"_id": 1}, callback=callback)
        await done

    io_loop.run_sync(main)
    assert got == [({"_id": 1}, None)]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """In this thread, any attempt to resolve a name or open a connection fails and is
    recorded. (Other threads, such as the monitor of the suite's own PyMongo client, go on.)
    """
    attempts: list[str] = []
    test_thread = threading.get_ident()

    def refuse(name: str, original: Any) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != test_thread:
                return original(*args, **kwargs)
            attempts.append(name)
            raise OSError(f"no network in this test ({name})")

        return refused

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo", socket.getaddrinfo))
    monkeypatch.setattr(
        socket, "create_connection", refuse("create_connection", socket.create_connection)
    )
    monkeypatch.setattr(socket.socket, "connect", refuse("connect", socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex", socket.socket.connect_ex))
    yield attempts


@pytest.mark.parametrize("flavour_name", ["tornado", "asyncio"])
def test_no_network_no_threads(flavour_name: str, no_network: list[str]) -> None:
    flavour = Flavour(flavour_name)  # no fixture: the suite's own PyMongo client has threads
    threads_before = {thread.ident for thread in threading.enumerate()}
    seen_threads: list[set[str]] = []

    async def body(coll: Any) -> dict[str, Any]:
        results = await crud_and_cursors(coll)
        seen_threads.append(
            {t.name for t in threading.enumerate() if t.ident not in threads_before}
        )
        return results

    results = run_in_memory(flavour, body)
    assert len(results["final"]) == 8
    assert no_network == []
    assert seen_threads == [set()]  # no monitor, no pool maintenance: nothing but the test

    # The guard works: a real client, given the same test, fails to reach any server.
    async def real(coll: Any) -> Any:
        return await coll.find_one({})

    client_class = flavour.MotorClient

    async def main() -> Any:
        # Load-balanced: no monitor thread; the operation's greenlet connects, here.
        client = client_class("mongodb://127.0.0.1:1/?loadBalanced=true", timeoutMS=2000)
        try:
            return await real(client.db.c)
        finally:
            client.close()

    with pytest.raises(pymongo.errors.PyMongoError):
        flavour.run_loop(main)
    assert no_network, "the guard saw nothing"


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.start_session(),
        lambda client: client.db.c.watch().next(),
        lambda client: client.db.c.find_raw_batches().to_list(None),
        lambda client: client.db.c.find().explain(),
        lambda client: client.db.c.find().collation({"locale": "en"}).to_list(None),
    ],
    ids=["sessions", "change streams", "raw batches", "explain", "collation"],
)
def test_what_is_not_emulated_says_so(flavour: Any, call: Any) -> None:
    async def main() -> None:
        client = in_memory_client(flavour)
        try:
            await call(client)
        finally:
            client.close()

    with pytest.raises(NotImplementedError) as info:
        flavour.run_loop(main)
    message = str(info.value)
    assert "greenmotor.testing does not emulate" in message or "Mongomock" in message, message


def test_each_client_has_its_own_data() -> None:
    async def main() -> tuple[int, int]:
        first = greenmotor.testing.AsyncIOMotorClient()
        second = greenmotor.testing.AsyncIOMotorClient()
        await first.db.c.insert_one({"_id": 1})
        return await first.db.c.count_documents({}), await second.db.c.count_documents({})

    import asyncio

    assert asyncio.run(main()) == (1, 0)


def test_without_mongomock_the_error_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mongomock", None)  # import mongomock fails
    with pytest.raises(ImportError, match=r"pip install 'greenmotor\[testing\]'"):
        greenmotor.testing.MotorClient()
    with pytest.raises(ImportError, match=r"pip install 'greenmotor\[testing\]'"):
        greenmotor.testing.AsyncIOMotorClient()


def test_repr() -> None:
    client = greenmotor.testing.MotorClient()
    assert repr(client).startswith("greenmotor.testing.MotorClient(mongomock.MongoClient(")
    assert repr(client.db.c).startswith("MotorCollection(InMemory(Collection(")
    assert "not started" in repr(client.db.c.find().delegate)
    assert isinstance(client, greenmotor.MotorClient)
    assert isinstance(greenmotor.testing.AsyncIOMotorClient(),
                      greenmotor.motor_asyncio.AsyncIOMotorClient)  # fmt: skip


def test_one_in_memory_client_on_successive_loops(flavour: Any) -> None:
    """Like a real client without ``io_loop=``: made before any loop, used by one loop
    after another (a loop per test, ``asyncio.run`` per job)."""
    client = in_memory_client(flavour)
    coll = client.db.jobs

    async def job() -> int:
        await coll.insert_one({})
        return int(await coll.count_documents({}))

    try:
        assert [flavour.run_loop(job) for _ in range(3)] == [1, 2, 3]
    finally:
        client.close()
