"""The asyncio flavour: ``io_loop`` is an asyncio loop and no Tornado IOLoop need exist."""

from __future__ import annotations

import asyncio

import pytest
import tornado.ioloop

from greenmotor.motor_asyncio import (
    AsyncIOMotorClient,
    AsyncIOMotorCollection,
    AsyncIOMotorCursor,
    AsyncIOMotorDatabase,
)


def test_io_loop_must_be_an_asyncio_loop():
    with pytest.raises(
        TypeError, match="io_loop must be instance of asyncio-compatible event loop"
    ):
        AsyncIOMotorClient(io_loop=tornado.ioloop.IOLoop(make_current=False))


def test_given_loop_is_the_io_loop(server_uri):
    loop = asyncio.new_event_loop()
    try:
        client = AsyncIOMotorClient(server_uri, io_loop=loop)
        assert client.io_loop is loop and client.get_io_loop() is loop
        assert client.test.coll.get_io_loop() is loop

        async def ping():
            return await client.admin.command("ping")

        assert loop.run_until_complete(ping())["ok"] == 1
        client.close()
    finally:
        loop.close()


def test_without_io_loop_the_running_loop_is_used(server_uri):
    async def main():
        client = AsyncIOMotorClient(server_uri)
        assert client.get_io_loop() is asyncio.get_running_loop()
        assert not isinstance(client.get_io_loop(), tornado.ioloop.IOLoop)
        collection = client.greenmotor_asyncio_flavour.things
        await collection.insert_one({"_id": 1})
        objects = (collection, collection.database, collection.find())
        found = [doc async for doc in collection.find()]
        await client.drop_database("greenmotor_asyncio_flavour")
        client.close()
        return objects, found

    (collection, database, cursor), found = asyncio.run(main())
    assert found == [{"_id": 1}]
    assert type(collection) is AsyncIOMotorCollection
    assert type(database) is AsyncIOMotorDatabase
    assert type(cursor) is AsyncIOMotorCursor


def test_no_tornado_ioloop_is_made(server_uri):
    """An asyncio application never gets a Tornado IOLoop wrapped around its loop."""

    async def main():
        client = AsyncIOMotorClient(server_uri)
        await client.admin.command("ping")
        await client.test.things.find_one()
        client.close()
        # Without instance=False Tornado would make one; with it, None means none exists.
        return tornado.ioloop.IOLoop.current(instance=False)

    assert asyncio.run(main()) is None


def test_misuse_messages_name_the_asyncio_class(server_uri):
    client = AsyncIOMotorClient(server_uri)
    client.close()

    async def use():
        await client.admin.command("ping")

    with pytest.raises(Exception, match="Cannot use AsyncIOMotorClient after close"):
        asyncio.run(use())
