"""Tracing and monitoring see the request that issued each MongoDB command.

greenmotor runs each operation in a greenlet with a copy of the caller's contextvars, so
PyMongo's command monitoring (OpenTelemetry's PyMongo instrumentation, ``CommandListener``
objects, the ``pymongo.command`` logger) runs with the context of the request that issued
the command. These tests hold that true with 100 concurrent requests in a Tornado
application and in an aiohttp one, instrumented with OpenTelemetry as an application would
be, and check that the checks themselves catch a wrong parent.

Every command a request sends carries ``comment="req-<n>"``; a request hook of the PyMongo
instrumentation copies it onto the span, so each MongoDB span says which request sent it
whatever context it was created in.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from pymongo import monitoring
from tornado import gen, httpclient, httpserver, testing, web
from tornado.ioloop import IOLoop

import greenmotor
import greenmotor.core

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is in the test extra")

from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.instrumentation.tornado import TornadoInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

REQUESTS = 100
SHARED_DOCS = 5  # found with batch_size=2: a find and two getMores per request
COMMENT = "test.comment"

#: Which simulated request the current code serves (set per task in the listener tests).
request_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_var", default=None
)


def _comment_hook(span: Any, event: monitoring.CommandStartedEvent) -> None:
    comment = event.command.get("comment")
    if isinstance(comment, str):
        span.set_attribute(COMMENT, comment)


@pytest.fixture(scope="module")
def otel() -> Iterator[InMemorySpanExporter]:
    """OpenTelemetry's PyMongo and Tornado instrumentations, exporting to memory.

    Instrumented before any client of this module is made: the PyMongo instrumentation
    registers a process-wide command listener, which clients made afterwards get.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    PymongoInstrumentor().instrument(tracer_provider=provider, request_hook=_comment_hook)
    TornadoInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        TornadoInstrumentor().uninstrument()
        PymongoInstrumentor().uninstrument()  # disables its listener (PyMongo has no unregister)


@pytest.fixture
def spans(otel: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    otel.clear()
    yield otel
    otel.clear()


def mongo_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The MongoDB command spans sent for a request (those with a ``req-<n>`` comment)."""
    return [
        span
        for span in exporter.get_finished_spans()
        if span.kind == SpanKind.CLIENT
        and str((span.attributes or {}).get(COMMENT, "")).startswith("req-")
    ]


def request_spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    """The server spans of the instrumented HTTP requests, by ``req-<n>``."""
    found = {}
    for span in exporter.get_finished_spans():
        attributes = span.attributes or {}
        target = attributes.get("http.target") or attributes.get("url.path")
        if span.kind == SpanKind.SERVER and isinstance(target, str):
            found["req-" + target.rsplit("/", 1)[-1]] = span
    return found


def parenting_problems(mongo: list[ReadableSpan], requests: dict[str, ReadableSpan]) -> list[str]:
    """Every MongoDB span that is not a child of the request span that issued it."""
    problems = []
    by_span_id = {span.context.span_id: tag for tag, span in requests.items()}  # type: ignore[union-attr]
    for span in mongo:
        tag = str((span.attributes or {})[COMMENT])
        request = requests.get(tag)
        if request is None:
            problems.append(f"{span.name} of {tag}: no span for that request")
            continue
        expected = request.context  # type: ignore[union-attr]
        if span.parent is None:
            problems.append(f"{span.name} of {tag}: a root span, no parent")
        elif span.parent.span_id != expected.span_id:
            owner = by_span_id.get(span.parent.span_id, "no request")
            problems.append(f"{span.name} of {tag}: cross-parented to {owner}")
        elif span.context.trace_id != expected.trace_id:  # type: ignore[union-attr]
            problems.append(f"{span.name} of {tag}: in another trace")
    return problems


def check_every_request_traced(exporter: InMemorySpanExporter, per_request: int) -> None:
    requests = request_spans(exporter)
    mongo = mongo_spans(exporter)
    assert sorted(requests) == sorted(f"req-{n}" for n in range(REQUESTS))
    counts: dict[str, int] = {}
    for span in mongo:
        tag = str((span.attributes or {})[COMMENT])
        counts[tag] = counts.get(tag, 0) + 1
    # Every request sent every command (a find, two getMores, ...): none went untraced.
    assert counts == {tag: per_request for tag in requests}, counts
    assert parenting_problems(mongo, requests) == []


# The commands each request sends: insert, find (find_one), find + 2 getMores (to_list with
# batch_size 2 over 5 shared documents), aggregate (count_documents), update, aggregate.
COMMANDS_PER_REQUEST = 8


async def request_work(coll: Any, n: str, pause: Callable[[], Awaitable[Any]]) -> int:
    """What each request does: a mix of operations, yielding to other requests in between."""
    tag = f"req-{n}"
    await coll.insert_one({"n": n}, comment=tag)
    await pause()
    assert (await coll.find_one({"n": n}, comment=tag))["n"] == n
    shared = await coll.find({"shared": True}, comment=tag, batch_size=2).to_list(None)
    assert len(shared) == SHARED_DOCS
    await pause()
    assert await coll.count_documents({"n": n}, comment=tag) == 1
    await coll.update_one({"n": n}, {"$set": {"seen": True}}, comment=tag)
    seen = await coll.aggregate([{"$match": {"n": n, "seen": True}}], comment=tag).to_list(None)
    return len(seen)


class ItemHandler(web.RequestHandler):
    """``async def`` handler."""

    def initialize(self, coll: Any) -> None:
        self.coll = coll

    async def get(self, n: str) -> None:
        self.write(str(await request_work(self.coll, n, lambda: asyncio.sleep(0))))


class LegacyItemHandler(web.RequestHandler):
    """``gen.coroutine`` handler, as older Motor applications have."""

    def initialize(self, coll: Any) -> None:
        self.coll = coll

    @gen.coroutine
    def get(self, n: str) -> Any:
        tag = f"req-{n}"
        yield self.coll.insert_one({"n": n}, comment=tag)
        yield gen.moment
        doc = yield self.coll.find_one({"n": n}, comment=tag)
        assert doc["n"] == n
        shared = yield self.coll.find({"shared": True}, comment=tag, batch_size=2).to_list(None)
        assert len(shared) == SHARED_DOCS
        yield gen.moment
        yield self.coll.count_documents({"n": n}, comment=tag)
        yield self.coll.update_one({"n": n}, {"$set": {"seen": True}}, comment=tag)
        seen = yield self.coll.aggregate([{"$match": {"n": n}}], comment=tag).to_list(None)
        self.write(str(len(seen)))


async def serve_tornado_requests(coll: Any, seed: bool = True) -> None:
    """Serve REQUESTS concurrent requests (half to each handler) with a Tornado app."""
    if seed:
        await coll.insert_many([{"shared": True, "i": i} for i in range(SHARED_DOCS)])
    app = web.Application([
        (r"/item/(\d+)", ItemHandler, {"coll": coll}),
        (r"/legacy/(\d+)", LegacyItemHandler, {"coll": coll}),
    ])  # fmt: skip
    sock, port = testing.bind_unused_port()
    server = httpserver.HTTPServer(app)
    server.add_sockets([sock])
    http = httpclient.AsyncHTTPClient(force_instance=True, max_clients=REQUESTS)
    try:
        paths = [f"/{'legacy' if n % 2 else 'item'}/{n}" for n in range(REQUESTS)]
        responses = await asyncio.gather(
            *(http.fetch(f"http://127.0.0.1:{port}{path}", request_timeout=60) for path in paths)
        )
        assert [r.body for r in responses] == [b"1"] * REQUESTS
    finally:
        http.close()
        server.stop()
        await server.close_all_connections()


async def test_tornado_app_spans_have_their_request_as_parent(
    spans: InMemorySpanExporter, client: Any, db: Any, io_loop: IOLoop
) -> None:
    await serve_tornado_requests(db.items)
    check_every_request_traced(spans, COMMANDS_PER_REQUEST)


def test_aiohttp_app_spans_have_their_request_as_parent(
    spans: InMemorySpanExporter, server_uri: str, db: Any
) -> None:
    """An asyncio application (aiohttp with its OpenTelemetry middleware) on an
    AsyncIOMotorClient, run by ``asyncio.run`` as such an application is."""
    pytest.importorskip("opentelemetry.instrumentation.aiohttp_server")
    from aiohttp import ClientSession, TCPConnector
    from aiohttp import web as aioweb
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    from greenmotor.motor_asyncio import AsyncIOMotorClient

    coll_key = aioweb.AppKey("coll", object)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor = AioHttpServerInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    async def item(request: aioweb.Request) -> aioweb.Response:
        coll = request.app[coll_key]
        seen = await request_work(coll, request.match_info["n"], lambda: asyncio.sleep(0))
        return aioweb.Response(text=str(seen))

    async def main() -> list[str]:
        client = AsyncIOMotorClient(server_uri)
        coll = client[db.name].items
        await coll.insert_many([{"shared": True, "i": i} for i in range(SHARED_DOCS)])
        app = aioweb.Application()  # the instrumented class, with its tracing middleware
        app[coll_key] = coll
        app.router.add_get("/item/{n}", item)
        runner = aioweb.AppRunner(app)
        await runner.setup()
        port = testing.bind_unused_port()
        port[0].close()
        site = aioweb.TCPSite(runner, "127.0.0.1", port[1])
        await site.start()
        try:
            async with ClientSession(connector=TCPConnector(limit=REQUESTS)) as session:

                async def get(n: int) -> str:
                    async with session.get(f"http://127.0.0.1:{port[1]}/item/{n}") as response:
                        return await response.text()

                return await asyncio.gather(*(get(n) for n in range(REQUESTS)))
        finally:
            await runner.cleanup()
            client.close()

    try:
        assert asyncio.run(main()) == ["1"] * REQUESTS
    finally:
        instrumentor.uninstrument()
    check_every_request_traced(spans, COMMANDS_PER_REQUEST)


def test_the_checks_catch_wrong_parents(
    spans: InMemorySpanExporter, client: Any, db: Any, io_loop: IOLoop, monkeypatch: Any
) -> None:
    """Without a copy of *each caller's* context the spans go astray, and the checks above
    say so. Here every operation runs in a copy of one captured context, as if a driver
    captured the context once (per client, per loop) instead of per operation."""
    # _prepare gives a (new or reused) DriverGreenlet its call and the caller's context.
    original_prepare = greenmotor.core.DriverGreenlet._prepare
    captured: list[contextvars.Context] = []

    def prepare_with_one_context(self: Any, *args: Any, **kwargs: Any) -> None:
        original_prepare(self, *args, **kwargs)
        if not captured:
            captured.append(self.gr_context)
        self.gr_context = captured[0].copy()

    monkeypatch.setattr(greenmotor.core.DriverGreenlet, "_prepare", prepare_with_one_context)

    # Captured outside any request (the seeding insert): every MongoDB span is a root span.
    io_loop.run_sync(lambda: serve_tornado_requests(db.items), timeout=60)
    problems = parenting_problems(mongo_spans(spans), request_spans(spans))
    assert len(problems) == REQUESTS * COMMANDS_PER_REQUEST, problems[:5]
    assert all("a root span" in problem for problem in problems), problems[:5]

    # Captured in the first request's first operation: every span has that request as
    # parent, so the other requests' spans are cross-parented.
    seed = [{"shared": True, "i": i} for i in range(SHARED_DOCS)]
    io_loop.run_sync(lambda: db.other_items.insert_many(seed), timeout=60)
    spans.clear()
    captured.clear()
    io_loop.run_sync(lambda: serve_tornado_requests(db.other_items, seed=False), timeout=60)
    problems = parenting_problems(mongo_spans(spans), request_spans(spans))
    assert len(problems) == (REQUESTS - 1) * COMMANDS_PER_REQUEST, problems[:5]
    assert all("cross-parented to req-" in problem for problem in problems), problems[:5]
    monkeypatch.undo()


# --- pymongo.monitoring listeners and the pymongo.command logger ---------------------------


class RecordingListener(monitoring.CommandListener):
    """Records, for each command event, the request in context and the thread it ran on."""

    def __init__(self) -> None:
        self.starts: dict[tuple[int, Any], tuple[str | None, Any, int]] = {}
        self.finished: list[tuple[tuple[int, Any], str | None, int]] = []

    def __repr__(self) -> str:
        return f"<RecordingListener started={len(self.starts)} finished={len(self.finished)}>"

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        key = (event.request_id, event.connection_id)
        self.starts[key] = (request_var.get(), event.command.get("comment"), threading.get_ident())

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        key = (event.request_id, event.connection_id)
        self.finished.append((key, request_var.get(), threading.get_ident()))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        key = (event.request_id, event.connection_id)
        self.finished.append((key, request_var.get(), threading.get_ident()))


async def concurrent_requests(coll: Any) -> None:
    """REQUESTS tasks, each with its own ``request_var``, sharing one collection."""
    await coll.insert_many([{"shared": True, "i": i} for i in range(SHARED_DOCS)])

    async def one(n: int) -> int:
        request_var.set(f"req-{n}")
        return await request_work(coll, str(n), lambda: asyncio.sleep(0))

    assert await asyncio.gather(*(one(n) for n in range(REQUESTS))) == [1] * REQUESTS


def test_listener_sees_the_callers_contextvars(flavour: Any, server_uri: str) -> None:
    listener = RecordingListener()
    loop_threads = []

    async def main() -> None:
        loop_threads.append(threading.get_ident())
        client = flavour.MotorClient(server_uri, event_listeners=[listener])
        try:
            await concurrent_requests(client[flavour.db_name].items)
        finally:
            client.close()

    flavour.run_loop(main)
    ours = {k: v for k, v in listener.starts.items() if isinstance(v[1], str)}
    assert len(ours) == REQUESTS * COMMANDS_PER_REQUEST
    for request, comment, thread in ours.values():
        assert request == comment  # started: the issuing request's context
        assert thread == loop_threads[0]  # on the loop's thread, inside the operation
    finished = [(listener.starts[key][1], request) for key, request, _ in listener.finished
                if key in ours]  # fmt: skip
    assert len(finished) == len(ours)
    assert all(comment == request for comment, request in finished)  # succeeded: the same


class RequestFilter(logging.Filter):
    """Adds the current request (a contextvar) to each record, as applications do for
    correlation ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request = request_var.get()
        return True


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def command_log() -> Iterator[Collect]:
    """PyMongo's structured command log (logger ``pymongo.command``) at DEBUG, collected."""
    logger = logging.getLogger("pymongo.command")
    handler = Collect()
    handler.addFilter(RequestFilter())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_command_log_records_carry_the_request(
    flavour: Any, server_uri: str, command_log: Collect
) -> None:
    async def main() -> None:
        client = flavour.MotorClient(server_uri)
        try:
            await concurrent_requests(client[flavour.db_name].items)
        finally:
            client.close()

    flavour.run_loop(main)
    started: dict[tuple[Any, ...], str] = {}
    finished: list[tuple[tuple[Any, ...], Any]] = []
    for record in command_log.records:
        fields = json.loads(record.getMessage())
        key = (fields.get("requestId"), fields.get("driverConnectionId"))
        if fields.get("message") == "Command started":
            comment = json.loads(fields["command"]).get("comment")
            if isinstance(comment, str) and comment.startswith("req-"):
                assert record.request == comment, fields  # type: ignore[attr-defined]
                started[key] = comment
        elif fields.get("message") in ("Command succeeded", "Command failed"):
            finished.append((key, record.request))  # type: ignore[attr-defined]
    assert len(started) == REQUESTS * COMMANDS_PER_REQUEST
    ours = [(started[key], request) for key, request in finished if key in started]
    assert len(ours) == len(started)
    assert all(comment == request for comment, request in ours)


# --- slow listeners ------------------------------------------------------------------------

SLOW = 0.2  # seconds a listener spends per event


class SlowListener(monitoring.CommandListener):
    """Does its work (here: sleeps) right in the event, on the loop's thread."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get("comment") == "slow":
            time.sleep(SLOW)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class QueueingListener(monitoring.CommandListener):
    """The remedy: take what is needed from the event and the context, hand it to a worker
    thread, return at once."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[str, Any, str | None] | None] = queue.SimpleQueue()
        self.done: list[tuple[str, Any, str | None]] = []
        self.worker = threading.Thread(target=self._work, name="slow-listener-worker")
        self.worker.start()

    def __repr__(self) -> str:
        return f"<QueueingListener done={len(self.done)}>"

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            if item[1] == "slow":
                time.sleep(SLOW)  # the slow part, off the loop
            self.done.append(item)

    def stop(self) -> None:
        self.queue.put(None)
        self.worker.join()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.queue.put((event.command_name, event.command.get("comment"), request_var.get()))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_slow_listener_stalls_the_loop_a_queue_does_not(
    server_uri: str, db: Any, io_loop: IOLoop, stall_monitor: Any
) -> None:
    slow_client = greenmotor.MotorClient(server_uri, event_listeners=[SlowListener()])
    queued = QueueingListener()
    queued_client = greenmotor.MotorClient(server_uri, event_listeners=[queued])
    try:
        async with stall_monitor() as slow:
            await slow_client[db.name].items.find_one({}, comment="slow")
        async with stall_monitor() as fast:
            request_var.set("req-q")
            await queued_client[db.name].items.find_one({}, comment="slow")
    finally:
        slow_client.close()
        queued_client.close()
        queued.stop()
    assert slow.longest >= SLOW * 0.9, slow
    assert fast.longest < SLOW / 2, fast
    assert ("find", "slow", "req-q") in queued.done  # the worker got the request's context


# --- one client serving several loops, in several threads ------------------------------------

THREADS = 4
RUNS_PER_THREAD = 2  # successive loops in each thread: a new loop per run
PER_RUN = -(-REQUESTS // (THREADS * RUNS_PER_THREAD))  # 13: 104 requests in all


def test_one_client_on_several_loops_and_threads(
    flavour: Any, server_uri: str, spans: InMemorySpanExporter
) -> None:
    """One client without ``io_loop=`` serves loops in 4 threads at once, each thread
    running 2 loops one after the other, 104 requests in all, each in a span of its own
    made with the application's tracer: every MongoDB span has its own request span as
    parent, and listeners see each request's context on the thread of its loop."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test_tracing")
    listener = RecordingListener()
    client = flavour.MotorClient(server_uri, event_listeners=[listener])
    coll = client[flavour.db_name].items
    request_spans_by_tag: dict[str, ReadableSpan] = {}
    thread_of_request: dict[str, int] = {}
    errors: list[BaseException] = []

    async def one(n: int) -> int:
        tag = f"req-{n}"
        request_var.set(tag)
        thread_of_request[tag] = threading.get_ident()
        with tracer.start_as_current_span(f"request {tag}") as span:
            request_spans_by_tag[tag] = span  # type: ignore[assignment]
            return await request_work(coll, str(n), lambda: asyncio.sleep(0))

    def worker(index: int) -> None:
        try:
            for run in range(RUNS_PER_THREAD):
                first = (index * RUNS_PER_THREAD + run) * PER_RUN

                async def main(first: int = first) -> list[int]:
                    numbers = range(first, first + PER_RUN)
                    return await asyncio.gather(*(one(n) for n in numbers))

                assert flavour.run_loop(main) == [1] * PER_RUN
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    async def seed() -> None:
        await coll.insert_many([{"shared": True, "i": i} for i in range(SHARED_DOCS)])

    try:
        flavour.run_loop(seed)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        client.close()
    assert errors == []
    total = THREADS * RUNS_PER_THREAD * PER_RUN
    assert len(request_spans_by_tag) == total >= REQUESTS
    assert len(set(thread_of_request.values())) == THREADS

    mongo = mongo_spans(spans)
    assert len(mongo) == total * COMMANDS_PER_REQUEST
    assert parenting_problems(mongo, request_spans_by_tag) == []

    ours = {k: v for k, v in listener.starts.items() if isinstance(v[1], str)}
    assert len(ours) == total * COMMANDS_PER_REQUEST
    for request, comment, thread in ours.values():
        assert request == comment
        assert thread == thread_of_request[comment]  # the thread of the loop that asked
    finished = [(listener.starts[key][1], request, thread) for key, request, thread
                in listener.finished if key in ours]  # fmt: skip
    assert len(finished) == len(ours)
    assert all(c == r and t == thread_of_request[c] for c, r, t in finished)
