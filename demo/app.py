"""A message board that shows what greenmotor is for.

* posts live in MongoDB (``demo.posts``), written and read with greenmotor;
* image attachments live in GridFS (bucket ``images``), served by
  :class:`greenmotor.web.GridFSHandler` with caching headers;
* every open page receives new posts over a WebSocket, pushed from one change stream;
* the figures panel charts the last minute as the server sees it: how late a timer on the
  event loop runs, operations in flight (greenlets parked on the loop), open connections and
  operations per second; ``/stats`` serves them;
* ``POST /burst`` starts 1,000 slow server-side operations (each a getMore the server holds
  for a second), so the chart shows them pending while the page keeps answering.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import json
import os
import time
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, CursorType, monitoring
from pymongo.errors import CollectionInvalid
from tornado import web, websocket

import greenmotor
from greenmotor import core
from greenmotor.web import GridFSHandler

MAX_IMAGE_BYTES = 5 * 1024 * 1024

#: The loop-lag timer fires this often; its lateness is the loop's lag.
LAG_TICK_SECONDS = 0.05
#: One chart point per this many seconds ...
SAMPLE_SECONDS = 0.5
#: ... kept for this long.
HISTORY_SECONDS = 60.0
#: Limits on ``POST /burst``'s ``count`` and ``wait_ms``.
MAX_BURST_COUNT = 5000
MAX_BURST_WAIT_MS = 10_000
#: A burst starts this many operations per loop iteration.
BURST_SLICE = int(os.environ.get("DEMO_BURST_SLICE", "50"))


class DriverFigures(monitoring.CommandListener, monitoring.ConnectionPoolListener):
    """Counts commands and connections as PyMongo reports them (one instance per app, shared
    by its clients).

    >>> figures = DriverFigures()
    >>> figures
    DriverFigures(commands_finished=0, connections_open=0, checked_out=0)
    """

    def __init__(self) -> None:
        self.finished: collections.deque[float] = collections.deque(maxlen=100_000)
        self.commands_finished = 0
        self.connections_open = 0
        self.checked_out = 0

    def __repr__(self) -> str:
        return (
            f"DriverFigures(commands_finished={self.commands_finished}, "
            f"connections_open={self.connections_open}, checked_out={self.checked_out})"
        )

    def started(self, event: Any) -> None:
        pass

    def succeeded(self, event: Any) -> None:
        self.commands_finished += 1
        self.finished.append(time.monotonic())

    failed = succeeded

    def connection_created(self, event: Any) -> None:
        self.connections_open += 1

    def connection_closed(self, event: Any) -> None:
        self.connections_open -= 1

    def connection_checked_out(self, event: Any) -> None:
        self.checked_out += 1

    def connection_checked_in(self, event: Any) -> None:
        self.checked_out -= 1

    def _ignore(self, event: Any) -> None:
        pass

    pool_created = pool_ready = pool_cleared = pool_closed = _ignore
    connection_ready = connection_check_out_started = connection_check_out_failed = _ignore

    def operations_last_second(self) -> int:
        now = time.monotonic()
        while self.finished and self.finished[0] < now - 1.0:
            self.finished.popleft()
        return len(self.finished)


@dataclasses.dataclass
class Sample:
    """One point of the chart: the figures over one :data:`SAMPLE_SECONDS` window."""

    seq: int
    #: Seconds since the recorder started, at the window's end.
    t: float
    #: The latest the loop-lag timer fired in this window, in milliseconds.
    loop_lag_ms: float
    in_flight: int
    connections: int
    ops_per_second: float


class FiguresRecorder:
    """Measures the loop's lag with a timer on the loop and records a :class:`Sample` every
    :data:`SAMPLE_SECONDS`, keeping the last :data:`HISTORY_SECONDS`.

    >>> recorder = FiguresRecorder(DriverFigures())
    >>> recorder
    FiguresRecorder(samples=0, running=False)
    """

    def __init__(self, figures: DriverFigures) -> None:
        self.figures = figures
        self.samples: collections.deque[Sample] = collections.deque(
            maxlen=round(HISTORY_SECONDS / SAMPLE_SECONDS)
        )
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        running = self._task is not None and not self._task.done()
        return f"FiguresRecorder(samples={len(self.samples)}, running={running})"

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._record())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _record(self) -> None:
        loop = asyncio.get_running_loop()
        began = window_start = loop.time()
        finished_before = self.figures.commands_finished
        worst = 0.0
        seq = 0
        while True:
            due = loop.time() + LAG_TICK_SECONDS
            await asyncio.sleep(LAG_TICK_SECONDS)
            now = loop.time()
            worst = max(worst, now - due)
            if now - window_start < SAMPLE_SECONDS:
                continue
            finished = self.figures.commands_finished
            self.samples.append(
                Sample(
                    seq=seq,
                    t=round(now - began, 3),
                    loop_lag_ms=round(worst * 1000, 1),
                    in_flight=len(core.in_flight),
                    connections=self.figures.connections_open,
                    ops_per_second=round((finished - finished_before) / (now - window_start), 1),
                )
            )
            seq += 1
            window_start, finished_before, worst = now, finished, 0.0


@dataclasses.dataclass
class Burst:
    """Progress of one ``POST /burst``: ``count`` operations, each held ``wait_ms`` by the
    server. ``done`` and ``failed`` count operations whose wait is over; the burst runs until
    their cursors are closed too."""

    count: int
    wait_ms: int
    started: float = dataclasses.field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    last_error: str | None = None
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.finished is None

    def as_json(self) -> dict[str, Any]:
        end = self.finished if self.finished is not None else time.monotonic()
        return {
            "count": self.count,
            "wait_ms": self.wait_ms,
            "done": self.done,
            "failed": self.failed,
            "last_error": self.last_error,
            "running": self.running,
            "elapsed": round(end - self.started, 2),
        }


class Board:
    """The application's state: the clients, the posts collection, the open WebSockets, the
    figures and the current burst.

    The burst runs on a client of its own, so its pool (100 connections, PyMongo's default)
    queues the burst's operations and not the board's: the page's queries go straight through.
    """

    def __init__(self, uri: str) -> None:
        self.figures = DriverFigures()
        self.recorder = FiguresRecorder(self.figures)
        self.client = greenmotor.MotorClient(uri, event_listeners=[self.figures])
        self.posts = self.client.demo.posts
        self.images = greenmotor.MotorGridFSBucket(self.client.demo, "images")
        self.burst_client = greenmotor.MotorClient(
            uri, event_listeners=[self.figures], appname="greenmotor-demo-burst"
        )
        self.ticks = self.burst_client.demo.burst_ticks
        self.burst: Burst | None = None
        self._burst_task: asyncio.Task[None] | None = None
        self.sockets: set[LiveHandler] = set()
        self._watcher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Board(figures={self.figures!r}, burst={self.burst!r})"

    async def start(self) -> None:
        self.recorder.start()
        await self.posts.create_index([("created", DESCENDING)])
        # The slow operation tails a capped collection that nobody writes to: the server holds
        # each getMore for its maxAwaitTimeMS. A tailable cursor on an empty collection dies at
        # once, hence the one document.
        try:
            await self.client.demo.create_collection("burst_ticks", capped=True, size=4096)
        except CollectionInvalid:
            pass  # made by an earlier run
        if await self.client.demo.burst_ticks.find_one() is None:
            await self.client.demo.burst_ticks.insert_one({"note": "tailed by the burst"})
        self._watcher = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        for task in (self._watcher, self._burst_task):
            if task:
                task.cancel()
                try:
                    await task  # let cursors close before the clients do
                except asyncio.CancelledError:
                    pass
        await self.recorder.stop()
        self.client.close()
        self.burst_client.close()

    def start_burst(self, count: int = 1000, wait_ms: int = 1000) -> Burst:
        """Start ``count`` concurrent operations that the server holds ``wait_ms`` each.

        Raises :class:`RuntimeError` while a burst is still running.
        """
        if self.burst is not None and self.burst.running:
            raise RuntimeError("a burst is already running; wait for it to finish")
        self.burst = Burst(count, wait_ms)
        self._burst_task = asyncio.ensure_future(self._run_burst(self.burst))
        return self.burst

    async def _run_burst(self, burst: Burst) -> None:
        # Each operation's first step (a cursor, a pool checkout, for the first hundred a new
        # connection) runs on the loop until it parks. Started in slices, one slice per loop
        # iteration, timers and requests get their turn between slices instead of waiting
        # for all 1,000 first steps.
        tasks: list[asyncio.Task[None]] = []
        try:
            for first in range(0, burst.count, BURST_SLICE):
                for _ in range(first, min(first + BURST_SLICE, burst.count)):
                    tasks.append(asyncio.ensure_future(self._slow_operation(burst)))
                await asyncio.sleep(0)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()  # when the board stops mid-burst; no-op for finished ones
            await asyncio.gather(*tasks, return_exceptions=True)
            burst.finished = time.monotonic()

    async def _slow_operation(self, burst: Burst) -> None:
        cursor = self.ticks.find({}, cursor_type=CursorType.TAILABLE_AWAIT)
        cursor.max_await_time_ms(burst.wait_ms)
        try:
            async for _ in cursor:  # the document, then a getMore that waits and ends it
                pass
        except Exception as exc:
            burst.failed += 1
            burst.last_error = f"{type(exc).__name__}: {exc}"
        else:
            burst.done += 1
        finally:
            # killCursors: a tailable cursor outlives its empty batch. It waits for a
            # connection behind the burst's queued finds, so the burst runs until the last.
            await cursor.close()

    def stats(self) -> dict[str, Any]:
        """The figures now, the last minute's samples and the burst's progress."""
        latest = self.recorder.samples[-1] if self.recorder.samples else None
        return {
            "operations_per_second": self.figures.operations_last_second(),
            "operations_in_flight": len(core.in_flight),
            "connections_open": self.figures.connections_open,
            "connections_checked_out": self.figures.checked_out,
            "loop_lag_ms": latest.loop_lag_ms if latest else 0.0,
            "sample_seconds": SAMPLE_SECONDS,
            "samples": [dataclasses.asdict(s) for s in self.recorder.samples],
            "burst": self.burst.as_json() if self.burst else None,
        }

    async def _watch(self) -> None:
        # One change stream for the whole app, fanned out to every page.
        async with self.posts.watch([{"$match": {"operationType": "insert"}}]) as stream:
            async for change in stream:
                message = json.dumps(post_json(change["fullDocument"]))
                for sock in list(self.sockets):
                    sock.write_message(message)

    async def add(self, author: str, text: str, image: dict[str, Any] | None = None) -> ObjectId:
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

    async def latest(self, n: int = 50) -> list[dict[str, Any]]:
        cursor = self.posts.find().sort("created", DESCENDING).limit(n)
        docs: list[dict[str, Any]] = await cursor.to_list(n)
        return docs


def post_json(post: dict[str, Any]) -> dict[str, Any]:
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
        board: Board = self.settings["board"]
        return board


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

    def _image(self) -> dict[str, Any] | None:
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
        self.set_header("Cache-Control", "no-store")
        self.write(self.board.stats())


class BurstHandler(BaseHandler):
    """``POST /burst`` (optional ``count`` and ``wait_ms``) starts a burst: 202 and its progress,
    or 409 while one is running."""

    def post(self) -> None:
        count = self._bounded("count", 1000, MAX_BURST_COUNT)
        wait_ms = self._bounded("wait_ms", 1000, MAX_BURST_WAIT_MS)
        try:
            burst = self.board.start_burst(count, wait_ms)
        except RuntimeError as exc:
            raise web.HTTPError(409, reason=str(exc)) from None
        self.set_status(202)
        self.write(burst.as_json())

    def _bounded(self, name: str, default: int, highest: int) -> int:
        raw = self.get_argument(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise web.HTTPError(400, reason=f"{name} must be a whole number") from None
        if not 1 <= value <= highest:
            raise web.HTTPError(400, reason=f"{name} must be between 1 and {highest}")
        return value


class LiveHandler(websocket.WebSocketHandler):
    """Pushes each new post, as JSON, to the page."""

    def open(self) -> None:
        self.settings["board"].sockets.add(self)

    def on_close(self) -> None:
        self.settings["board"].sockets.discard(self)


def make_app(uri: str) -> web.Application:
    board = Board(uri)
    here = os.path.dirname(__file__)
    return web.Application(
        [
            (r"/", IndexHandler),
            (r"/posts", PostsHandler),
            (r"/stats", StatsHandler),
            (r"/burst", BurstHandler),
            (r"/live", LiveHandler),
            (
                r"/images/(.+)",
                ImageHandler,
                {"database": board.client.demo, "root_collection": "images"},
            ),
        ],
        board=board,
        template_path=os.path.join(here, "templates"),
        static_path=os.path.join(here, "static"),
        xsrf_cookies=False,
    )
