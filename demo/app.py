"""A message board that shows what greenmotor is for.

* posts live in MongoDB (``demo.posts``), written and read with greenmotor;
* image attachments live in GridFS (bucket ``images``), served by
  :class:`greenmotor.web.GridFSHandler` with caching headers;
* every open page receives new posts over a WebSocket, pushed from one change stream;
* ``/stats`` shows the driver's live figures: operations per second, operations in flight
  (greenlets parked on the loop), and connections checked out of the pool.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import time
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, monitoring
from tornado import web, websocket

import greenmotor
from greenmotor import core
from greenmotor.web import GridFSHandler

MAX_IMAGE_BYTES = 5 * 1024 * 1024


class DriverFigures(monitoring.CommandListener, monitoring.ConnectionPoolListener):
    """Counts commands and checked-out connections as PyMongo reports them."""

    def __init__(self) -> None:
        self.finished: collections.deque[float] = collections.deque(maxlen=100_000)
        self.checked_out = 0

    def started(self, event: Any) -> None:
        pass

    def succeeded(self, event: Any) -> None:
        self.finished.append(time.monotonic())

    failed = succeeded

    def connection_checked_out(self, event: Any) -> None:
        self.checked_out += 1

    def connection_checked_in(self, event: Any) -> None:
        self.checked_out -= 1

    def _ignore(self, event: Any) -> None:
        pass

    pool_created = pool_ready = pool_cleared = pool_closed = _ignore
    connection_created = connection_ready = connection_closed = _ignore
    connection_check_out_started = connection_check_out_failed = _ignore

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        while self.finished and self.finished[0] < now - 1.0:
            self.finished.popleft()
        return {
            "operations_per_second": len(self.finished),
            "operations_in_flight": len(core.in_flight),
            "connections_checked_out": self.checked_out,
        }


class Board:
    """The application's state: the client, the posts collection, the open WebSockets."""

    def __init__(self, uri: str) -> None:
        self.figures = DriverFigures()
        self.client = greenmotor.MotorClient(uri, event_listeners=[self.figures])
        self.posts = self.client.demo.posts
        self.images = greenmotor.MotorGridFSBucket(self.client.demo, "images")
        self.sockets: set[LiveHandler] = set()
        self._watcher: asyncio.Task | None = None

    async def start(self) -> None:
        await self.posts.create_index([("created", DESCENDING)])
        self._watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        if self._watcher:
            self._watcher.cancel()
            try:
                await self._watcher  # let the stream close before the client does
            except asyncio.CancelledError:
                pass
        self.client.close()

    async def _watch(self) -> None:
        # One change stream for the whole app, fanned out to every page.
        async with self.posts.watch([{"$match": {"operationType": "insert"}}]) as stream:
            async for change in stream:
                message = json.dumps(post_json(change["fullDocument"]))
                for sock in list(self.sockets):
                    sock.write_message(message)

    async def add(self, author: str, text: str, image: dict | None = None) -> ObjectId:
        """Store a post; an uploaded image goes to GridFS first, under a unique name."""
        post_id = ObjectId()
        doc: dict[str, Any] = {
            "_id": post_id,
            "author": author,
            "text": text,
            "created": datetime.datetime.now(datetime.UTC),
        }
        if image is not None:
            name = f"{post_id}-{image['filename']}"
            await self.images.upload_from_stream(
                name, image["body"], metadata={"contentType": image["content_type"]}
            )
            doc["image"] = name
        await self.posts.insert_one(doc)
        return post_id

    async def latest(self, n: int = 50) -> list[dict]:
        return await self.posts.find().sort("created", DESCENDING).limit(n).to_list(n)


def post_json(post: dict) -> dict:
    return {
        "id": str(post["_id"]),
        "author": post["author"],
        "text": post["text"],
        "created": post["created"].strftime("%Y-%m-%d %H:%M:%S"),
        "image": f"/images/{post['image']}" if post.get("image") else None,
    }


class BaseHandler(web.RequestHandler):
    @property
    def board(self) -> Board:
        return self.settings["board"]


class IndexHandler(BaseHandler):
    async def get(self) -> None:
        posts = [post_json(p) for p in await self.board.latest()]
        self.render("index.html", posts=posts)


class PostsHandler(BaseHandler):
    async def get(self) -> None:
        self.write({"posts": [post_json(p) for p in await self.board.latest()]})

    async def post(self) -> None:
        author = self.get_body_argument("author", "").strip()[:40] or "anonymous"
        text = self.get_body_argument("text", "").strip()[:1000]
        if not text:
            raise web.HTTPError(400, reason="a post needs some text")
        post_id = await self.board.add(author, text, self._image())
        if self.request.headers.get("Accept", "").startswith("application/json"):
            self.set_status(201)
            self.write({"id": str(post_id)})
        else:
            self.redirect("/")

    def _image(self) -> dict | None:
        files = self.request.files.get("image")
        if not files or not files[0]["body"]:
            return None
        upload = files[0]
        content_type = upload["content_type"]
        if not content_type.startswith("image/"):
            raise web.HTTPError(400, reason="attachments must be images")
        if len(upload["body"]) > MAX_IMAGE_BYTES:
            raise web.HTTPError(413, reason="images are limited to 5 MB")
        filename = "".join(c for c in upload["filename"] if c.isalnum() or c in "._-")[-80:]
        return {"filename": filename or "image", "body": upload["body"],
                "content_type": content_type}  # fmt: skip


class ImageHandler(GridFSHandler):
    """Attachments never change (each upload gets a new name): let browsers cache them."""

    def get_cache_time(self, path: str, modified: datetime.datetime, mime_type: str) -> int:
        return 365 * 24 * 3600


class StatsHandler(BaseHandler):
    def get(self) -> None:
        self.write(self.board.figures.snapshot())


class LiveHandler(websocket.WebSocketHandler):
    """Pushes each new post, as JSON, to the page."""

    def open(self) -> None:
        self.settings["board"].sockets.add(self)

    def on_close(self) -> None:
        self.settings["board"].sockets.discard(self)


def make_app(uri: str) -> web.Application:
    import os

    board = Board(uri)
    here = os.path.dirname(__file__)
    return web.Application(
        [
            (r"/", IndexHandler),
            (r"/posts", PostsHandler),
            (r"/stats", StatsHandler),
            (r"/live", LiveHandler),
            (
                r"/images/(.+)",
                ImageHandler,
                {"database": board.client.demo, "root_collection": "images"},
            ),
        ],
        board=board,
        template_path=os.path.join(here, "templates"),
        xsrf_cookies=False,
    )
