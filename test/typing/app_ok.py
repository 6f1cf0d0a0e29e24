"""Typical application code; mypy must accept it (see test_typing.py)."""

from __future__ import annotations

from typing import Any

from tornado import web

from greenmotor import MotorClient, MotorClientSession, MotorCollection, MotorDatabase
from greenmotor.gridfs import MotorGridFSBucket

client = MotorClient("mongodb://localhost:27017", maxPoolSize=10)
db: MotorDatabase = client.app
pages: MotorCollection = db.pages


async def save(title: str, body: str) -> Any:
    result = await pages.insert_one({"title": title, "body": body})
    return result.inserted_id


async def titles() -> list[str]:
    docs = await pages.find({}, {"title": 1}).sort("title").limit(10).to_list(None)
    return [doc["title"] for doc in docs]


async def stream_titles() -> None:
    async for doc in pages.find():
        print(doc["title"])
    async for row in pages.aggregate([{"$count": "n"}]):
        print(row)


async def transfer() -> None:
    session: MotorClientSession = await client.start_session()
    async with session.start_transaction():
        await pages.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=session)
    await session.end_session()


async def files() -> bytes:
    bucket = MotorGridFSBucket(db)
    file_id = await bucket.upload_from_stream("a.txt", b"data")
    out = await bucket.open_download_stream(file_id)
    data: bytes = await out.read()
    return data


def on_saved(result: Any, error: Exception | None) -> None:
    print(result, error)


class Handler(web.RequestHandler):
    async def get(self) -> None:
        doc = await pages.find_one({"title": self.get_argument("t")})
        self.write(doc or {})
        pages.insert_one({"seen": True}, callback=on_saved)


# The asyncio flavour, as an application written for motor.motor_asyncio uses it.
from greenmotor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorCollection  # noqa: E402


async def asyncio_titles(uri: str) -> list[str]:
    aclient = AsyncIOMotorClient(uri)
    notes: AsyncIOMotorCollection = aclient.app.notes
    await notes.insert_one({"title": "x"})
    return [doc["title"] async for doc in notes.find()]


# greenmotor's callbacks (Motor 3 has none): each operation also takes callback=fn.
def callbacks(db: MotorDatabase) -> None:
    db.pages.find({}).sort("title").to_list(10, callback=on_saved)
    db.pages.aggregate([]).to_list(None, callback=lambda docs, error: print(docs, error))
    db.pages.watch().next(callback=on_saved)
