"""Mistakes in code written against ``motor.motor_asyncio`` with typed documents that
Motor's stubs make mypy report; it must report each with greenmotor too. One per line."""

from __future__ import annotations

from typing import Any, NotRequired

from bson import ObjectId
from motor.motor_asyncio import (
    AsyncIOMotorClient,
    AsyncIOMotorClientSession,
    AsyncIOMotorCollection,
    AsyncIOMotorCursor,
    AsyncIOMotorDatabase,
)
from motor.motor_tornado import MotorClient
from pymongo import InsertOne
from typing_extensions import TypedDict


class Movie(TypedDict):
    _id: NotRequired[ObjectId]
    name: str
    year: int


client: AsyncIOMotorClient[Movie] = AsyncIOMotorClient()
movies: AsyncIOMotorCollection[Movie] = client.test.movies
tornado_db: AsyncIOMotorDatabase[Movie] = MotorClient[Movie]().test  # the other flavour


async def typed_documents() -> None:
    await movies.insert_one({"name": "Alien", "year": "1979"})  # year is an int
    await movies.insert_one({"title": "Alien"})  # no such key
    await movies.insert_many([{"name": "Alien"}])  # year is missing
    movie = await movies.find_one({})
    print(movie["name"])  # movie may be None
    if movie is not None:
        title: int = movie["name"]  # a str
        print(movie["title"])  # no such key
    await movies.bulk_write([InsertOne({"name": "Ran", "year": "1985"})])  # a str year


async def flavour_mistakes() -> None:
    db: AsyncIOMotorDatabase[Movie] = client.test
    coll: AsyncIOMotorDatabase[Movie] = db.movies  # a collection
    cursor: AsyncIOMotorCursor[dict[str, Any]] = movies.find()  # of Movie
    session: AsyncIOMotorClientSession = client.start_session()  # not awaited
    other: MotorClient[Any] = client  # only-motor[assignment]: greenmotor's is a subclass
    print(coll, cursor, session, other)


async def results() -> None:
    result = await movies.delete_many({})
    print(result.deleted)  # deleted_count
    ids: list[str] = (await movies.insert_many([])).inserted_ids  # ObjectIds (Any)
    names = await client.list_database_names()
    names.append(1)  # names are strings
    reply = await client.admin.command("ping")
    reply.ok  # a dict
    print(ids)


async def awaits() -> None:
    cursor = await movies.find()  # a cursor is not awaited
    await movies.aggregate([])  # nor is aggregate's
    async for movie in movies.find_one({}):  # find_one returns one document
        print(movie)
    print(cursor)
