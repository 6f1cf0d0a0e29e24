"""greenmotor.web.GridFSHandler served by a real Tornado server, files in the real server."""

from __future__ import annotations

import datetime
import email.utils

import pytest
from tornado import web
from tornado.httpclient import AsyncHTTPClient

from greenmotor import MotorGridFSBucket
from greenmotor.web import GridFSHandler
from servers import free_port

BODY = b"<h1>hi</h1>" * 40_000  # 440 KB: streamed in chunks


class CachingHandler(GridFSHandler):
    def get_cache_time(self, path, modified, mime_type):
        return 3600 if mime_type.startswith("image/") else 0

    def set_extra_headers(self, path, gridout):
        self.set_header("X-File-Id", str(gridout._id))


class LatestByMetadata(GridFSHandler):
    async def get_gridfs_file(self, bucket, filename, request):
        files = await bucket.find({"metadata.slug": filename}).to_list(1)
        if not files:
            import gridfs

            raise gridfs.NoFile(filename)
        return files[0]


@pytest.fixture
def base_url(db, io_loop):
    port = free_port()
    app = web.Application([
        (r"/fs/(.*)", GridFSHandler, {"database": db}),
        (r"/cached/(.*)", CachingHandler, {"database": db}),
        (r"/other/(.*)", GridFSHandler, {"database": db, "root_collection": "other"}),
        (r"/slug/(.*)", LatestByMetadata, {"database": db}),
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
    assert abs(modified - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 120


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
    past = email.utils.format_datetime(datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc),
                                       usegmt=True)
    assert (await fetch(f"{base_url}/fs/page.html", headers={"If-Modified-Since": past})).code == 200


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
