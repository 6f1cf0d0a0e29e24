"""End-to-end: Tornado's HTTP and WebSocket clients drive the demo app on the test server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid

import pytest
from support.servers import free_port
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

from demo.app import make_app


@pytest.fixture
def demo_url(server_uri, io_loop, sync_client):
    port = free_port()
    app = make_app(server_uri)
    board = app.settings["board"]
    server = None

    async def start():
        nonlocal server
        server = app.listen(port, "127.0.0.1")
        await board.start()

    io_loop.run_sync(start)
    yield f"127.0.0.1:{port}"

    async def stop():
        server.stop()
        await board.stop()
        await asyncio.sleep(0.05)

    io_loop.run_sync(stop)


async def test_post_appears_live_and_on_the_page(demo_url, io_loop):
    http = AsyncHTTPClient()
    ws = await websocket_connect(f"ws://{demo_url}/live")
    await asyncio.sleep(0.3)  # let the change stream open
    text = f"hello {uuid.uuid4().hex}"
    response = await http.fetch(
        f"http://{demo_url}/posts",
        method="POST",
        body=f"author=tester&text={text.replace(' ', '+')}",
        headers={"Accept": "application/json"},
    )
    assert response.code == 201
    post_id = json.loads(response.body)["id"]

    message = json.loads(await asyncio.wait_for(ws.read_message(), 10))
    assert message["id"] == post_id and message["text"] == text and message["author"] == "tester"

    page = (await http.fetch(f"http://{demo_url}/")).body.decode()
    assert text in page
    listed = json.loads((await http.fetch(f"http://{demo_url}/posts")).body)["posts"]
    assert listed[0]["id"] == post_id
    ws.close()


async def test_empty_post_is_rejected(demo_url, io_loop):
    response = await AsyncHTTPClient().fetch(
        f"http://{demo_url}/posts", method="POST", body="text=", raise_error=False
    )
    assert response.code == 400


async def test_stats_show_driver_figures(demo_url, io_loop):
    http = AsyncHTTPClient()
    for _ in range(3):
        await http.fetch(f"http://{demo_url}/posts")
    stats = json.loads((await http.fetch(f"http://{demo_url}/stats")).body)
    assert stats["operations_per_second"] >= 3
    assert stats["operations_in_flight"] >= 1  # the change stream's parked getMore
    assert stats["connections_checked_out"] >= 0


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000020001e221bc330000000049454e44ae426082"
)


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, (filename, content_type, body) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
            + body
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def test_image_upload_is_served_from_gridfs_with_caching(demo_url, io_loop):
    http = AsyncHTTPClient()
    body, content_type = multipart(
        {"author": "pic", "text": "with image"}, {"image": ("dot.png", "image/png", PNG)}
    )
    response = await http.fetch(
        f"http://{demo_url}/posts",
        method="POST",
        body=body,
        headers={"Content-Type": content_type, "Accept": "application/json"},
    )
    assert response.code == 201
    posts = json.loads((await http.fetch(f"http://{demo_url}/posts")).body)["posts"]
    image_url = next(p["image"] for p in posts if p["text"] == "with image")
    assert image_url.endswith("-dot.png")
    image = await http.fetch(f"http://{demo_url}{image_url}")
    assert image.body == PNG and image.headers["Content-Type"] == "image/png"
    assert image.headers["Cache-Control"] == f"max-age={365 * 24 * 3600}"
    again = await http.fetch(
        f"http://{demo_url}{image_url}",
        raise_error=False,
        headers={"If-None-Match": image.headers["Etag"]},
    )
    assert again.code == 304
    missing = await http.fetch(f"http://{demo_url}/images/none.png", raise_error=False)
    assert missing.code == 404


async def test_non_image_attachment_is_rejected(demo_url, io_loop):
    body, content_type = multipart({"text": "bad"}, {"image": ("x.txt", "text/plain", b"hi")})
    response = await AsyncHTTPClient().fetch(
        f"http://{demo_url}/posts",
        method="POST",
        body=body,
        raise_error=False,
        headers={"Content-Type": content_type},
    )
    assert response.code == 400


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
async def test_page_in_headless_chromium(demo_url, io_loop, tmp_path):
    http = AsyncHTTPClient()
    text = f"seen by chromium {uuid.uuid4().hex[:8]}"
    await http.fetch(
        f"http://{demo_url}/posts",
        method="POST",
        body=f"author=browser&text={text.replace(' ', '+')}",
    )
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path}",
        "--virtual-time-budget=4000",
        "--dump-dom",
        f"http://{demo_url}/",
    ]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    dom, _ = await asyncio.wait_for(process.communicate(), 90)
    dom = dom.decode()
    assert text in dom  # rendered by the server from MongoDB
    assert "operations/s" in dom  # the page's script fetched the driver figures
