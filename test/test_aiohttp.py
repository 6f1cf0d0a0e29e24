"""greenmotor.aiohttp.AIOHTTPGridFS in a real aiohttp server, files in the real server.

Each test runs an aiohttp application under ``asyncio.run`` with an AsyncIOMotorClient, as
an aiohttp application does, and stores its files with plain PyMongo, as Motor's tests do.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import subprocess
import sys
import uuid

import gridfs
import pytest

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is in the test extra")

from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from greenmotor import MotorClient  # noqa: E402
from greenmotor.aiohttp import AIOHTTPGridFS  # noqa: E402
from greenmotor.gridfs import _hash_gridout  # noqa: E402
from greenmotor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorGridFSBucket  # noqa: E402

CONTENTS = b"Jesse" * 100 * 1024  # 500 KB: two chunks of the default size


@pytest.fixture
def db_name(sync_client):
    name = f"greenmotor_aiohttp_{uuid.uuid4().hex[:8]}"
    yield name
    sync_client.drop_database(name)


@pytest.fixture
def stored(sync_client, db_name):
    """Motor's test file: PyMongo's GridFS, a top-level contentType; its PyMongo GridOut."""
    fs = gridfs.GridFS(sync_client[db_name])
    fs.put(CONTENTS, _id="id", filename="foo", content_type="my type")
    return fs.get("id")


def run_app(server_uri, db_name, scenario, client_options=None, **handler_options):
    """Serve ``/fs/{filename}`` (GET, HEAD and POST) with an AIOHTTPGridFS over ``db_name``;
    return ``await scenario(http, db)``, ``http`` being an aiohttp TestClient."""

    async def main():
        client = AsyncIOMotorClient(server_uri, **(client_options or {}))
        db = client[db_name]
        app = web.Application()
        resource = app.router.add_resource("/fs/{filename}")
        handler = AIOHTTPGridFS(db, **handler_options)
        for method in ("GET", "HEAD", "POST"):
            resource.add_route(method, handler)
        app.router.add_resource("/x/{wrongname}").add_route("GET", handler)
        try:
            async with TestClient(TestServer(app)) as http:
                return await scenario(http, db)
        finally:
            client.close()

    return asyncio.run(main())


async def fetch(http, path, method="GET", **headers):
    """(status, headers, body) of one request."""
    async with http.request(method, path, headers=headers) as response:
        return response.status, response.headers, await response.read()


def http_date(moment):
    return email.utils.format_datetime(moment.replace(tzinfo=datetime.UTC), usegmt=True)


def test_get_and_head(server_uri, db_name, stored):
    async def scenario(http, db):
        return await fetch(http, "/fs/foo"), await fetch(http, "/fs/foo", "HEAD")

    (status, headers, body), (head_status, head_headers, head_body) = run_app(
        server_uri, db_name, scenario
    )
    assert status == 200 and body == CONTENTS
    assert int(headers["Content-Length"]) == len(CONTENTS)
    assert headers["Content-Type"] == "my type"
    assert headers["Etag"] == f'"{_hash_gridout(stored)}"'  # Motor's ETag
    assert headers["Cache-Control"] == "public" and "Expires" not in headers
    # The upload date in whole seconds (aiohttp would round a date with milliseconds up).
    last_modified = email.utils.parsedate_to_datetime(headers["Last-Modified"])
    assert last_modified == stored.upload_date.replace(microsecond=0, tzinfo=datetime.UTC)
    assert (head_status, head_body) == (200, b"")
    for name in ("Content-Length", "Content-Type", "Etag", "Last-Modified", "Cache-Control"):
        assert head_headers[name] == headers[name]


def test_conditional_requests(server_uri, db_name, stored):
    upload = stored.upload_date.replace(microsecond=0)
    etag = f'"{_hash_gridout(stored)}"'
    second = datetime.timedelta(seconds=1)

    async def scenario(http, db):
        codes = {}
        for label, moment in [("same", upload), ("later", upload + second),
                              ("earlier", upload - second)]:  # fmt: skip
            since = {"If-Modified-Since": http_date(moment)}
            status, _, body = await fetch(http, "/fs/foo", **since)
            codes[label] = (status, len(body))
        for label, tag in [("etag", etag), ("bare", etag.strip('"')), ("other", etag + "a")]:
            status, _, body = await fetch(http, "/fs/foo", **{"If-None-Match": tag})
            codes[label] = (status, len(body))
        status, _, _ = await fetch(
            http, "/fs/foo", **{"If-None-Match": '"x"', "If-Modified-Since": http_date(upload)}
        )
        codes["etag decides"] = status
        return codes

    assert run_app(server_uri, db_name, scenario) == {
        "same": (304, 0),
        "later": (304, 0),
        "earlier": (200, len(CONTENTS)),
        "etag": (304, 0),
        "bare": (304, 0),
        "other": (200, len(CONTENTS)),
        "etag decides": 200,
    }


def test_errors(server_uri, db_name, stored):
    async def scenario(http, db):
        missing = await fetch(http, "/fs/bar")
        post = await fetch(http, "/fs/foo", "POST")
        bad_route = await fetch(http, "/x/foo")
        return missing, post, bad_route

    missing, post, bad_route = run_app(server_uri, db_name, scenario)
    assert (missing[0], missing[2]) == (404, b"/fs/bar")
    assert post[0] == 405 and set(post[1]["Allow"].split(",")) == {"GET", "HEAD"}
    assert bad_route[0] == 500
    assert (
        b'Bad AIOHTTPGridFS route "/x/{wrongname}", requires a {filename} variable'
        in (bad_route[2])
    )


def test_content_types(server_uri, db_name):
    async def scenario(http, db):
        bucket = AsyncIOMotorGridFSBucket(db)
        await bucket.upload_from_stream("named.png", b"", metadata={"contentType": "text/csv"})
        await bucket.upload_from_stream("guessed.png", b"")
        await bucket.upload_from_stream("unknown", b"")
        types = {}
        for name in ("named.png", "guessed.png", "unknown"):
            for method in ("GET", "HEAD"):
                status, headers, _ = await fetch(http, f"/fs/{name}", method)
                types[name, method] = (status, headers["Content-Type"])
        return types

    types = run_app(server_uri, db_name, scenario)
    for method in ("GET", "HEAD"):
        assert types["named.png", method] == (200, "text/csv")  # metadata.contentType
        assert types["guessed.png", method] == (200, "image/png")
        assert types["unknown", method] == (200, "application/octet-stream")


def test_hooks(server_uri, db_name, stored):
    cache_calls = []

    def by_id(bucket, filename, request):  # Motor's documented override: returns a Future
        return bucket.open_download_stream(file_id=filename)

    def cache_time(path, modified, mime_type):
        cache_calls.append((path, modified, mime_type))
        return 10

    def extra_headers(response, gridout):
        response.headers["quux"] = gridout.filename

    async def scenario(http, db):
        return await fetch(http, "/fs/foo"), await fetch(http, "/fs/id")

    by_name, by_id_response = run_app(
        server_uri, db_name, scenario,
        get_gridfs_file=by_id, get_cache_time=cache_time, set_extra_headers=extra_headers,
    )  # fmt: skip
    assert by_name[0] == 404  # looked up by _id now
    status, headers, body = by_id_response
    assert status == 200 and body == CONTENTS
    assert headers["Cache-Control"] == "max-age=10" and headers["quux"] == "foo"
    expires = email.utils.parsedate_to_datetime(headers["Expires"])
    in_ten = expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(seconds=8) < in_ten < datetime.timedelta(seconds=12)
    # As Motor: the request's path, the upload date, the stored content type.
    assert cache_calls == [("/fs/id", stored.upload_date, "my type")]


def test_hook_returning_an_unopened_file(server_uri, db_name, stored):
    from greenmotor.motor_asyncio import AsyncIOMotorGridOut

    def unopened(bucket, filename, request):
        async def grid_out():
            return AsyncIOMotorGridOut(bucket.collection, file_id=filename)

        return grid_out()

    async def scenario(http, db):
        return (await fetch(http, "/fs/id"))[0], (await fetch(http, "/fs/nothing"))[0]

    assert run_app(server_uri, db_name, scenario, get_gridfs_file=unopened) == (200, 404)


def test_tz_aware_client(server_uri, db_name, stored):
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    minutes = datetime.timedelta(minutes=10)

    async def scenario(http, db):
        ago = await fetch(http, "/fs/foo", **{"If-Modified-Since": http_date(now - minutes)})
        hence = await fetch(http, "/fs/foo", **{"If-Modified-Since": http_date(now + minutes)})
        return ago[0], hence[0]

    assert run_app(server_uri, db_name, scenario, client_options={"tz_aware": True}) == (200, 304)


def test_needs_an_asyncio_database(server_uri):
    client = MotorClient(server_uri)
    try:
        with pytest.raises(
            TypeError, match="First argument to AIOHTTPGridFS must be AsyncIOMotorDatabase, not"
        ):
            AIOHTTPGridFS(client.db)
    finally:
        client.close()


def test_greenmotor_does_not_need_aiohttp():
    """Without aiohttp greenmotor imports; only greenmotor.aiohttp needs it."""
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "import greenmotor, greenmotor.motor_asyncio, greenmotor.web\n"
        "try:\n"
        "    import greenmotor.aiohttp\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == (
        "greenmotor.aiohttp needs aiohttp: pip install 'greenmotor[aiohttp]'"
    )
