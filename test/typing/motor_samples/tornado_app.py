"""A Tornado application written against ``motor.motor_tornado`` and typed as Motor's stubs
allow: mypy must accept it with Motor and with greenmotor (see verdicts.py)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from motor.motor_tornado import (
    MotorClient,
    MotorClientSession,
    MotorCollection,
    MotorCursor,
    MotorDatabase,
    MotorGridFSBucket,
)
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult
from tornado import gen, web

client: MotorClient[dict[str, Any]] = MotorClient("mongodb://localhost:27017", maxPoolSize=10)
db: MotorDatabase[dict[str, Any]] = client.wiki
pages: MotorCollection[dict[str, Any]] = db.pages
other: MotorCollection[dict[str, Any]] = client["wiki"]["other"]


async def create_page(title: str, body: str) -> ObjectId:
    result: InsertOneResult = await pages.insert_one({"title": title, "body": body})
    oid: ObjectId = result.inserted_id
    return oid


async def import_pages(titles: list[str]) -> int:
    result: InsertManyResult = await pages.insert_many([{"title": t} for t in titles])
    return len(result.inserted_ids)


async def rename(old: str, new: str) -> int:
    result: UpdateResult = await pages.update_one({"title": old}, {"$set": {"title": new}})
    many = await pages.update_many({"old": True}, {"$unset": {"old": ""}}, upsert=False)
    return result.modified_count + many.matched_count


async def remove(title: str) -> int:
    result: DeleteResult = await pages.delete_one({"title": title})
    return result.deleted_count


async def page(title: str) -> dict[str, Any] | None:
    doc = await pages.find_one({"title": title})
    if doc is not None:
        doc["views"] = doc.get("views", 0) + 1
    return doc


async def recent(limit: int) -> list[str]:
    cursor: MotorCursor[dict[str, Any]] = pages.find({}, {"title": 1})
    cursor = cursor.sort("created", DESCENDING).skip(0).limit(limit)
    docs = await cursor.to_list(limit)
    return [doc["title"] for doc in docs]


async def all_titles() -> list[str]:
    titles = []
    async for doc in pages.find().sort([("title", ASCENDING)]).batch_size(100):
        titles.append(doc["title"])
    return titles


async def counts() -> tuple[int, int]:
    exact = await pages.count_documents({"draft": False})
    estimate = await pages.estimated_document_count()
    return exact, estimate


async def tags() -> list[Any]:
    values = await pages.distinct("tags", {"draft": False})
    async for row in pages.aggregate([{"$unwind": "$tags"}, {"$group": {"_id": "$tags"}}]):
        values.append(row["_id"])
    return values


async def bump(title: str) -> dict[str, Any]:
    doc = await pages.find_one_and_update(
        {"title": title},
        {"$inc": {"views": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    return doc  # only-greenmotor[return-value]: PyMongo's result is Optional, Motor's stub not


async def indexes() -> list[str]:
    name: str = await pages.create_index([("title", ASCENDING)], unique=True)
    names = await pages.create_indexes([IndexModel([("created", DESCENDING)])])
    async for index in pages.list_indexes():
        print(index["name"])
    info = await pages.index_information()
    print(info)
    return [name, *names]


async def admin() -> list[str]:
    reply = await client.admin.command("ping")
    print(reply["ok"])
    info = await client.server_info()
    print(info["version"])
    names: list[str] = await client.list_database_names()
    collections: list[str] = await db.list_collection_names()
    await db.drop_collection("old")
    return names + collections


async def transfer(amount: int) -> None:
    session: MotorClientSession = await client.start_session()
    async with session.start_transaction():
        await pages.update_one({"_id": 1}, {"$inc": {"n": -amount}}, session=session)
        await other.update_one({"_id": 2}, {"$inc": {"n": amount}}, session=session)
    await session.end_session()


async def files() -> bytes:
    bucket = MotorGridFSBucket(db)
    file_id = await bucket.upload_from_stream("a.txt", b"data", metadata={"owner": "me"})
    grid_out = await bucket.open_download_stream(file_id)
    print(grid_out.filename, grid_out.length, grid_out.upload_date)
    chunk: bytes = await grid_out.readchunk()
    grid_in = bucket.open_upload_stream("b.txt")
    await grid_in.write(b"more")
    await grid_in.close()
    await bucket.delete(file_id)
    return chunk


async def watch_pages() -> None:
    async with pages.watch([{"$match": {"operationType": "insert"}}]) as stream:
        async for change in stream:
            print(change["fullDocument"])
            break


@gen.coroutine
def legacy_count() -> Any:
    n = yield pages.count_documents({})
    docs = yield pages.find().to_list(10)
    raise gen.Return((n, docs))


class PageHandler(web.RequestHandler):
    async def get(self, title: str) -> None:
        doc = await pages.find_one({"title": title})
        if doc is None:
            raise web.HTTPError(404)
        self.write({"title": doc["title"]})

    async def post(self, title: str) -> None:
        await pages.replace_one({"title": title}, {"title": title, "body": "..."}, upsert=True)
        self.set_status(201)
