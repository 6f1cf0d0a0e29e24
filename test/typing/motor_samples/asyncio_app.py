"""An asyncio application written against ``motor.motor_asyncio`` with typed documents
(TypedDict), as Motor's stubs allow: mypy must accept it with Motor and with greenmotor."""

from __future__ import annotations

import asyncio
from typing import Any, NotRequired

from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from motor.motor_asyncio import (
    AsyncIOMotorClient,
    AsyncIOMotorClientSession,
    AsyncIOMotorCollection,
    AsyncIOMotorDatabase,
)
from pymongo import InsertOne, ReadPreference, ReplaceOne
from typing_extensions import TypedDict


class Movie(TypedDict):
    _id: NotRequired[ObjectId]
    name: str
    year: int


async def typed_collection(uri: str) -> list[Movie]:
    client: AsyncIOMotorClient[Movie] = AsyncIOMotorClient(uri)
    db: AsyncIOMotorDatabase[Movie] = client.test
    movies: AsyncIOMotorCollection[Movie] = db.movies
    await movies.insert_one(Movie(name="THX-1138", year=1971))
    await movies.insert_one({"name": "Alien", "year": 1979})
    await movies.insert_many([Movie(name="Heat", year=1995)])
    found = await movies.find_one({"year": 1971})
    if found is not None:
        year: int = found["year"]
        print(year + 1)
    await movies.bulk_write([InsertOne(Movie(name="Ran", year=1985))])
    return [movie async for movie in movies.find({"year": {"$gt": 1970}})]


async def raw_documents(uri: str) -> int:
    client = AsyncIOMotorClient(uri, document_class=RawBSONDocument)
    doc = await client.test.movies.find_one()
    return len(doc.raw) if doc is not None else 0


async def default_documents(uri: str) -> None:
    client: AsyncIOMotorClient = AsyncIOMotorClient(uri)
    coll = client.test.things
    doc = await coll.find_one({"_id": 1})
    assert doc is not None
    doc["seen"] = True
    await coll.replace_one({"_id": 1}, doc)
    result: dict[str, Any] = await client.admin.command("ping")
    print(result)
    options: CodecOptions[dict[str, Any]] = CodecOptions()
    typed = await client.admin.command("ping", codec_options=options)
    typed["x"] = 1


async def cursors(uri: str) -> None:
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(uri)
    cursor = await client.test.list_collections()
    info = await cursor.next()
    print(info["name"])
    databases = await client.list_databases()
    async for entry in databases:
        print(entry["name"])
    coll = client.test.things
    docs = await coll.find().sort("x", -1).limit(5).to_list(None)
    print(len(docs))
    latent = coll.aggregate([{"$match": {"x": 1}}])
    first = await latent.next()
    print(first)


async def transactions(uri: str) -> None:
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(uri)
    coll = client.test.things

    async def work(session: AsyncIOMotorClientSession) -> None:
        await coll.insert_one({"x": 1}, session=session)

    async with await client.start_session() as session:
        await session.with_transaction(work, read_preference=ReadPreference.PRIMARY)
        async with session.start_transaction():
            await coll.delete_many({"x": 1}, session=session)


async def replace_in_bulk(uri: str) -> None:
    client: AsyncIOMotorClient[Movie] = AsyncIOMotorClient(uri)
    movies = client.test.movies
    requests: list[InsertOne[Movie] | ReplaceOne[Movie]] = [
        InsertOne(Movie(name="Ran", year=1985)),
        ReplaceOne({}, Movie(name="Ran", year=1985)),
    ]
    result = await movies.bulk_write(requests)
    print(result.inserted_count)


async def main() -> None:
    await asyncio.gather(typed_collection("mongodb://localhost"), cursors("mongodb://localhost"))


if __name__ == "__main__":
    asyncio.run(main())
