"""Most of the API, used correctly as Motor's stubs type it, in both flavours: mypy must
accept it with Motor and with greenmotor (see verdicts.py)."""

from __future__ import annotations

import io
from typing import Any

from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from motor.motor_asyncio import (
    AsyncIOMotorChangeStream,
    AsyncIOMotorClient,
    AsyncIOMotorCollection,
    AsyncIOMotorCommandCursor,
    AsyncIOMotorCursor,
    AsyncIOMotorDatabase,
    AsyncIOMotorGridFSBucket,
    AsyncIOMotorGridIn,
    AsyncIOMotorGridOut,
    AsyncIOMotorLatentCommandCursor,
)
from motor.motor_tornado import MotorClient, MotorCollection, MotorGridFSBucket
from pymongo import DeleteMany, InsertOne, ReadPreference, UpdateOne, WriteConcern
from pymongo.read_concern import ReadConcern
from tornado import gen

Doc = dict[str, Any]


async def databases(client: AsyncIOMotorClient[Doc]) -> None:
    db: AsyncIOMotorDatabase[Doc] = client.get_database("app")
    db2 = client.get_database("app", read_preference=ReadPreference.SECONDARY)
    print(db.name, db2.name, db.client is client)
    slow = db.with_options(write_concern=WriteConcern(w="majority"))
    coll: AsyncIOMotorCollection[Doc] = slow.get_collection("things")
    created = await db.create_collection("new")
    print(created.name, coll.full_name, coll.database.name)
    await db.drop_collection(created)
    await db.validate_collection("things")
    await client.drop_database("old")
    names = await db.list_collection_names(filter={"type": "collection"})
    print(names)
    print(db.read_preference, db.write_concern, db.read_concern, db.codec_options)


async def collections(coll: AsyncIOMotorCollection[Doc]) -> None:
    await coll.bulk_write(
        [InsertOne({"x": 1}), UpdateOne({"x": 1}, {"$set": {"y": 2}}), DeleteMany({})]
    )
    await coll.create_index("x", background=True)
    await coll.drop_index("x_1")
    await coll.drop_indexes()
    print(await coll.options(), await coll.index_information())
    await coll.rename("renamed", dropTarget=True)
    replaced = await coll.find_one_and_replace({"x": 1}, {"x": 2})
    deleted = await coll.find_one_and_delete({"x": 2})
    print(replaced, deleted)
    other = coll.with_options(read_concern=ReadConcern("majority"))
    print(other.name, coll["sub"].name, coll.sub.name)
    await coll.drop()


async def cursors(coll: AsyncIOMotorCollection[Doc]) -> None:
    cursor: AsyncIOMotorCursor[Doc] = coll.find({"x": {"$gt": 1}}, projection={"_id": 0})
    cursor.max_time_ms(1000).comment("tour").hint([("x", 1)]).allow_disk_use(True)
    cursor.collation({"locale": "en"}).max_await_time_ms(10).where("this.x > 1")
    plan = await cursor.explain()
    values = await cursor.clone().distinct("x")
    print(plan, values, cursor.collection.name)  # only-motor[attr-defined]: not in its stub
    cursor.rewind()
    while await cursor.fetch_next:
        print(cursor.next_object())
    await cursor.close()
    for doc in await coll.find().to_list(length=10):
        print(doc["x"])
    async for batch in coll.find_raw_batches():
        print(batch)
    # only-motor[assignment]: a latent cursor, as Motor's at run time
    latent: AsyncIOMotorLatentCommandCursor[Doc] = coll.aggregate([{"$match": {}}])
    print(await latent.to_list(None))
    indexes = coll.list_indexes()
    async for index in indexes:
        print(index["key"])
    command: AsyncIOMotorCommandCursor[Doc] = await coll.database.cursor_command("find", "x")
    print(await command.try_next())  # only-motor[attr-defined]: not in its stub


async def streams(client: AsyncIOMotorClient[Doc]) -> None:
    stream: AsyncIOMotorChangeStream[Doc] = client.watch(max_await_time_ms=100)
    change = await stream.try_next()
    print(change, stream.resume_token)
    await stream.close()
    async with client.app.watch(full_document="updateLookup") as db_stream:
        print(await db_stream.next())


async def gridfs(client: AsyncIOMotorClient[Doc]) -> None:
    bucket = AsyncIOMotorGridFSBucket(client.app, bucket_name="files", chunk_size_bytes=1024)
    grid_in: AsyncIOMotorGridIn = bucket.open_upload_stream_with_id(1, "a.txt")
    async with grid_in:
        await grid_in.write(b"abc")
        await grid_in.set("author", "me")
    print(grid_in._id, grid_in.filename, grid_in.length)
    grid_out: AsyncIOMotorGridOut = await bucket.open_download_stream_by_name("a.txt")
    line: bytes = await grid_out.readline()
    async for chunk in grid_out:
        print(line, chunk)
    print(grid_out.metadata, grid_out.content_type, grid_out.chunk_size)
    grid_out.seek(0)
    print(grid_out.tell())
    await bucket.download_to_stream(1, io.BytesIO())
    await bucket.upload_from_stream_with_id(ObjectId(), "b.txt", b"data")
    await bucket.rename(1, "c.txt")
    async for found in bucket.find({"filename": "c.txt"}):
        print(found.filename)


async def raw(uri: str) -> None:
    options = CodecOptions(document_class=RawBSONDocument)
    client = AsyncIOMotorClient(uri, document_class=RawBSONDocument)
    doc = await client.app.things.with_options(codec_options=options).find_one()
    if doc is not None:
        print(doc.raw)


@gen.coroutine
def tornado_style(client: MotorClient[Doc]) -> Any:
    coll: MotorCollection[Doc] = client.app.things
    result = yield coll.insert_one({"x": 1})
    doc = yield coll.find_one({"_id": result.inserted_id})
    bucket = MotorGridFSBucket(client.app)
    file_id = yield bucket.upload_from_stream("x", b"y")
    raise gen.Return((doc, file_id))
