"""Mistakes in code written against ``motor.motor_tornado`` that Motor's stubs make mypy
report; it must report each of them with greenmotor too (see verdicts.py). One per line."""

from __future__ import annotations

from typing import Any

from motor.motor_tornado import (
    MotorClient,
    MotorCollection,
    MotorDatabase,
    MotorGridFSBucket,
)
from pymongo import ASCENDING
from pymongo.results import InsertOneResult, UpdateResult

client: MotorClient[dict[str, Any]] = MotorClient("mongodb://localhost:27017")
db: MotorDatabase[dict[str, Any]] = client.wiki
pages: MotorCollection[dict[str, Any]] = db.pages

count: int = client.wiki  # a database is not an int
MotorDatabase(client)  # the name is missing
wrong_collection: MotorCollection[dict[str, Any]] = client.wiki  # a database, not a collection
by_number = client[0]  # names are strings


async def mistakes(session_id: int) -> None:
    await pages.insert_one([{"a": 1}])  # a list is no document
    await pages.insert_many({"a": 1})  # a document is no list of documents
    await pages.update_one({"a": 1})  # no update given
    await pages.delete_one({"a": 1}, session=client)  # a client is no session
    await pages.find_one_and_update({"a": 1}, {"$set": {"a": 2}}, upsert="yes")  # not a bool
    result: UpdateResult = await pages.insert_one({"a": 1})  # an InsertOneResult
    inserted: InsertOneResult = await pages.insert_one({"a": 1})
    print(inserted.inserted_ids)  # insert_many's attribute
    n: str = await pages.count_documents({})  # an int
    await pages.count_documents()  # the filter is required
    await pages.create_index([("a", ASCENDING)], sesion=None)  # a misspelling goes to **kwargs


async def cursor_mistakes() -> None:
    pages.find().limit("10")  # limit takes an int
    pages.find().skip(None)  # skip takes an int
    pages.find().sort("a", 1, 2)  # too many arguments
    docs: list[int] = await pages.find().to_list(10)  # documents, not ints
    await pages.find().to_list("all")  # a length or None
    async for doc in pages.find():
        doc.title  # only-greenmotor[attr-defined]: Motor's stub yields Any from async for
    names: list[int] = await db.list_collection_names()  # names are strings


async def session_mistakes() -> None:
    session = await client.start_session(causal_consistency="yes")  # not a bool
    async with session.start_transaction(max_commit_time_ms="1s"):  # not an int
        pass
    await session.commit_transaction(True)  # only-greenmotor[arg-type]: mypy also tries callback=


async def gridfs_mistakes() -> None:
    bucket = MotorGridFSBucket(db)
    await bucket.upload_from_stream(42, b"data")  # the filename is a str
    grid_out = await bucket.open_download_stream()  # the file id is missing
    size: str = grid_out.length  # an int
    MotorGridFSBucket(db, chunk_size_bytes="big")  # an int


async def change_stream_mistakes() -> None:
    pages.watch({"$match": {}})  # the pipeline is a list of stages
    stream = pages.watch(full_document=True)  # a str ("updateLookup")
    change: int = await stream.next()  # only-greenmotor[assignment]: Motor's watch() gives Any
