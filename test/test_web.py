"""greenmotor.web.GridFSHandler served by a real Tornado server, files in the real server."""

from __future__ import annotations

import datetime
import email.utils

import gridfs
import pytest
from support.servers import free_port
from tornado import web
from tornado.httpclient import AsyncHTTPClient

from greenmotor import MotorClient, MotorGridFSBucket, MotorGridOut
from greenmotor.gridfs import _hash_gridout
from greenmotor.web import GridFSHandler

BODY = b"<h1>hi</h1>" * 40_000  # 440 KB: streamed in chunks


class CachingHandler(GridFSHandler):
    def get_cache_time(self, path, modified, mime_type):
        return 3600 if mime_type.startswith("image/") else 0

    def set_extra_headers(self, path, gridout):
        self.set_header("X-File-Id", str(gridout._id))


class ById(GridFSHandler):
    """Motor's documented override: a plain method returning the bucket's Future."""

    def get_gridfs_file(self, bucket, filename, request):
        return bucket.open_download_stream(file_id=filename)

    def get_cache_time(self, path, modified, mime_type):
        return 10


class Unopened(GridFSHandler):
    async def get_gridfs_file(self, bucket, filename, request):
        return MotorGridOut(bucket.collection, file_id=filename)


class LatestByMetadata(GridFSHandler):
    async def get_gridfs_file(self, bucket, filename, request):
        files = await bucket.find({"metadata.slug": filename}).to_list(1)
        if not files:
            import gridfs

            raise gridfs.NoFile(filename)
        return files[0]


def serve(io_loop, routes, **settings):
    """Listen on a free port (on the test's loop); the base URL and the server."""
    port = free_port()
    app = web.Application(routes, **settings)
    server = io_loop.run_sync(lambda: _listen(app, port))
    return f"http://127.0.0.1:{port}", server


async def _listen(app, port):
    return app.listen(port, "127.0.0.1")


@pytest.fixture
def base_url(db, io_loop):
    port = free_port()
    app = web.Application([
        (r"/fs/(.*)", GridFSHandler, {"database": db}),
        (r"/cached/(.*)", CachingHandler, {"database": db}),
        (r"/other/(.*)", GridFSHandler, {"database": db, "root_collection": "other"}),
        (r"/slug/(.*)", LatestByMetadata, {"database": db}),
        (r"/id/(.*)", ById, {"database": db}),
        (r"/unopened/(.*)", Unopened, {"database": db}),
    ])  # fmt: skip
    server = None

    async def listen_and_upload():
        nonlocal server
        server = app.listen(port, "127.0.0.1")  # on the running test loop
        bucket = MotorGridFSBucket(db)
        await bucket.upload_from_stream("page.html", BODY)
        await bucket.upload_from_stream("pic.png", b"\x89PNG", metadata={"slug": "picture"})
        await MotorGridFSBucket(db, "other").upload_from_stream("x.txt", b"other bucket")

    io_loop.run_sync(listen_and_upload)
    yield f"http://127.0.0.1:{port}"
    server.stop()


async def fetch(url, **kwargs):
    return await AsyncHTTPClient().fetch(url, raise_error=False, **kwargs)


async def test_get_streams_file_with_headers(base_url, io_loop):
    response = await fetch(f"{base_url}/fs/page.html")
    assert response.code == 200 and response.body == BODY
    assert response.headers["Content-Type"] == "text/html"
    assert int(response.headers["Content-Length"]) == len(BODY)
    assert response.headers["Etag"].startswith('"')
    modified = email.utils.parsedate_to_datetime(response.headers["Last-Modified"])
    assert abs(modified - datetime.datetime.now(datetime.UTC)).total_seconds() < 120


async def test_missing_file_is_404(base_url, io_loop):
    assert (await fetch(f"{base_url}/fs/nope.txt")).code == 404


async def test_head_sends_headers_only(base_url, io_loop):
    response = await fetch(f"{base_url}/fs/page.html", method="HEAD")
    assert response.code == 200 and response.body == b""
    assert int(response.headers["Content-Length"]) == len(BODY)


async def test_conditional_requests(base_url, io_loop):
    first = await fetch(f"{base_url}/fs/page.html")
    etag, modified = first.headers["Etag"], first.headers["Last-Modified"]
    assert (await fetch(f"{base_url}/fs/page.html", headers={"If-None-Match": etag})).code == 304
    not_modified = await fetch(f"{base_url}/fs/page.html", headers={"If-Modified-Since": modified})
    assert not_modified.code == 304 and not_modified.body == b""
    changed = await fetch(f"{base_url}/fs/page.html", headers={"If-None-Match": '"other"'})
    assert changed.code == 200
    past = email.utils.format_datetime(
        datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC), usegmt=True
    )
    assert (
        await fetch(f"{base_url}/fs/page.html", headers={"If-Modified-Since": past})
    ).code == 200


async def test_hooks(base_url, io_loop):
    image = await fetch(f"{base_url}/cached/pic.png")
    assert image.headers["Content-Type"] == "image/png"
    assert image.headers["Cache-Control"] == "max-age=3600" and "Expires" in image.headers
    assert image.headers["X-File-Id"]
    page = await fetch(f"{base_url}/cached/page.html")
    assert "max-age" not in page.headers["Cache-Control"]
    by_slug = await fetch(f"{base_url}/slug/picture")
    assert by_slug.code == 200 and by_slug.body == b"\x89PNG"
    assert (await fetch(f"{base_url}/slug/nothing")).code == 404


async def test_root_collection_option(base_url, io_loop):
    response = await fetch(f"{base_url}/other/x.txt")
    assert response.body == b"other bucket"
    assert (await fetch(f"{base_url}/fs/x.txt")).code == 404


@pytest.fixture
def typed_file(sync_client, db):
    """A file stored as Motor's tests store it: PyMongo's GridFS with a top-level contentType."""
    fs = gridfs.GridFS(sync_client[db.name])
    fs.put(b"Jesse" * 100_000, _id="typed-id", filename="typed", content_type="my type")
    return fs.get("typed-id")


async def test_headers_are_motors(base_url, typed_file, io_loop):
    response = await fetch(f"{base_url}/fs/typed")
    assert response.code == 200 and response.body == typed_file.read()
    assert response.headers["Etag"] == f'"{_hash_gridout(typed_file)}"'  # Motor's ETag
    assert response.headers["Content-Type"] == "my type"  # the file's own
    assert response.headers["Cache-Control"] == "public" and "Expires" not in response.headers
    upload_date = typed_file.upload_date.replace(microsecond=0, tzinfo=datetime.UTC)
    assert email.utils.parsedate_to_datetime(response.headers["Last-Modified"]) == upload_date
    head = await fetch(f"{base_url}/fs/typed", method="HEAD")
    assert head.body == b"" and head.headers["Etag"] == response.headers["Etag"]
    assert head.headers["Content-Type"] == "my type"


async def test_content_type_stored_guessed_or_octet_stream(base_url, db, io_loop):
    bucket = MotorGridFSBucket(db)
    await bucket.upload_from_stream("named.png", b"x", metadata={"contentType": "text/csv"})
    await bucket.upload_from_stream("guessed.png", b"x")
    await bucket.upload_from_stream("unknown", b"x")
    for name, expected in [("named.png", "text/csv"), ("guessed.png", "image/png"),
                           ("unknown", "application/octet-stream")]:  # fmt: skip
        for method in ("GET", "HEAD"):
            response = await fetch(f"{base_url}/fs/{name}", method=method)
            assert (response.code, response.headers["Content-Type"]) == (200, expected)


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "{bare}", "W/{etag}", '"other", {etag}', "*"],
)
async def test_if_none_match_forms(base_url, typed_file, io_loop, if_none_match):
    bare = _hash_gridout(typed_file)
    header = if_none_match.format(etag=f'"{bare}"', bare=bare)
    response = await fetch(f"{base_url}/fs/typed", headers={"If-None-Match": header})
    assert response.code == 304 and response.body == b""


async def test_etag_decides_over_date(base_url, typed_file, io_loop):
    later = email.utils.format_datetime(
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1), usegmt=True
    )
    response = await fetch(
        f"{base_url}/fs/typed", headers={"If-None-Match": '"changed"', "If-Modified-Since": later}
    )
    assert response.code == 200
    bad_date = await fetch(f"{base_url}/fs/typed", headers={"If-Modified-Since": "yesterday"})
    assert bad_date.code == 200  # not a date: answered in full


async def test_override_returning_a_future(base_url, typed_file, io_loop):
    assert (await fetch(f"{base_url}/id/typed")).code == 404  # by _id now, not by name
    response = await fetch(f"{base_url}/id/typed-id")
    assert response.code == 200 and response.body == typed_file.read()
    assert response.headers["Cache-Control"] == "max-age=10"
    expires = email.utils.parsedate_to_datetime(response.headers["Expires"])
    in_ten = expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(seconds=8) < in_ten < datetime.timedelta(seconds=12)


async def test_override_returning_an_unopened_file(base_url, typed_file, io_loop):
    response = await fetch(f"{base_url}/unopened/typed-id")
    assert response.code == 200 and response.headers["Content-Type"] == "my type"
    assert (await fetch(f"{base_url}/unopened/nothing")).code == 404


def test_tz_aware_client(server_uri, typed_file, db, io_loop):
    client = MotorClient(server_uri, io_loop=io_loop, tz_aware=True)
    url, server = serve(io_loop, [(r"/(.*)", GridFSHandler, {"database": client[db.name]})])
    now = datetime.datetime.now(datetime.UTC)

    async def fetch_since(moment):
        since = email.utils.format_datetime(moment, usegmt=True)
        return (await fetch(f"{url}/typed", headers={"If-Modified-Since": since})).code

    try:
        assert io_loop.run_sync(lambda: fetch_since(now - datetime.timedelta(minutes=10))) == 200
        assert io_loop.run_sync(lambda: fetch_since(now + datetime.timedelta(minutes=10))) == 304
    finally:
        server.stop()
        client.close()
