"""End-to-end: Tornado's HTTP and WebSocket clients drive the demo app on the test server."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

from demo.app import make_app
from servers import free_port


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
