"""A small aiohttp service written for ``motor.motor_asyncio``: notes with tags, attachments
in GridFS, a transactional move between notebooks and a tag summary.

It is ordinary Motor application code; the only greenmotor-specific line is the import
below, which ``test_motor_asyncio_app.py`` swaps for Motor's to run the same file on both.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from greenmotor.motor_asyncio import (
    AsyncIOMotorClient,
    AsyncIOMotorDatabase,
    AsyncIOMotorGridFSBucket,
)

CLIENT = web.AppKey("client", AsyncIOMotorClient)
DB = web.AppKey("db", AsyncIOMotorDatabase)


def _public(note: dict[str, Any]) -> dict[str, Any]:
    return {**note, "_id": str(note["_id"])}


def _object_id(request: web.Request) -> ObjectId:
    try:
        return ObjectId(request.match_info["id"])
    except InvalidId:
        raise web.HTTPBadRequest(text="bad id") from None


async def create_note(request: web.Request) -> web.Response:
    body = await request.json()
    if not isinstance(body.get("text"), str):
        raise web.HTTPBadRequest(text="text must be a string")
    note = {"text": body["text"], "tags": body.get("tags", []), "notebook": "inbox"}
    result = await request.app[DB].notes.insert_one(note)
    return web.json_response({"_id": str(result.inserted_id)}, status=201)


async def get_note(request: web.Request) -> web.Response:
    note = await request.app[DB].notes.find_one({"_id": _object_id(request)})
    if note is None:
        raise web.HTTPNotFound()
    return web.json_response(_public(note))


async def list_notes(request: web.Request) -> web.Response:
    query = {"tags": request.query["tag"]} if "tag" in request.query else {}
    cursor = request.app[DB].notes.find(query).sort("text", 1).limit(50)
    return web.json_response([_public(note) async for note in cursor])


async def tag_summary(request: web.Request) -> web.Response:
    pipeline = [
        {"$unwind": "$tags"},
        {"$group": {"_id": "$tags", "count": {"$sum": 1}}},
        {"$sort": {"count": -1, "_id": 1}},
    ]
    rows = await request.app[DB].notes.aggregate(pipeline).to_list(None)
    return web.json_response({row["_id"]: row["count"] for row in rows})


async def move_note(request: web.Request) -> web.Response:
    """Move a note to another notebook and count the move, both or neither."""
    note_id, target = _object_id(request), (await request.json())["notebook"]
    db = request.app[DB]

    async def move(session: Any) -> int:
        result = await db.notes.update_one(
            {"_id": note_id}, {"$set": {"notebook": target}}, session=session
        )
        if result.matched_count:
            await db.notebooks.update_one(
                {"_id": target}, {"$inc": {"moves": 1}}, upsert=True, session=session
            )
        return result.matched_count

    async with await request.app[CLIENT].start_session() as session:
        matched = await session.with_transaction(move)
    if not matched:
        raise web.HTTPNotFound()
    return web.json_response({"notebook": target})


async def delete_note(request: web.Request) -> web.Response:
    result = await request.app[DB].notes.delete_one({"_id": _object_id(request)})
    return web.Response(status=204 if result.deleted_count else 404)


async def upload_attachment(request: web.Request) -> web.Response:
    bucket = AsyncIOMotorGridFSBucket(request.app[DB], bucket_name="attachments")
    file_id = await bucket.upload_from_stream(
        request.match_info["name"], await request.read(),
        metadata={"contentType": request.content_type},
    )  # fmt: skip
    return web.json_response({"_id": str(file_id)}, status=201)


async def download_attachment(request: web.Request) -> web.Response:
    bucket = AsyncIOMotorGridFSBucket(request.app[DB], bucket_name="attachments")
    grid_out = await bucket.open_download_stream_by_name(request.match_info["name"])
    data = await grid_out.read()
    return web.Response(body=data, content_type=grid_out.metadata["contentType"])


def make_app(uri: str, database: str) -> web.Application:
    app = web.Application()

    async def connect(app: web.Application) -> Any:
        client = AsyncIOMotorClient(uri)
        app[CLIENT] = client
        app[DB] = client[database]
        await app[DB].notes.create_index("tags")
        yield
        client.close()

    app.cleanup_ctx.append(connect)
    app.add_routes([
        web.post("/notes", create_note),
        web.get("/notes", list_notes),
        web.get("/notes/{id}", get_note),
        web.delete("/notes/{id}", delete_note),
        web.post("/notes/{id}/move", move_note),
        web.get("/tags", tag_summary),
        web.put("/attachments/{name}", upload_attachment),
        web.get("/attachments/{name}", download_attachment),
    ])  # fmt: skip
    return app
