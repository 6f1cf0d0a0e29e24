"""End-to-end: Tornado's HTTP and WebSocket clients drive the demo app on the test server."""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from support.servers import free_port
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect

from demo.app import make_app
from greenmotor import core


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
    assert stats["connections_open"] >= stats["connections_checked_out"] >= 1  # the same getMore
    assert stats["burst"] is None


async def get_stats(http: AsyncHTTPClient, demo_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = json.loads((await http.fetch(f"http://{demo_url}/stats")).body)
    return stats


async def wait_for_stats(
    http: AsyncHTTPClient,
    demo_url: str,
    check: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    """Poll /stats until ``check(stats)`` holds; return those stats."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await get_stats(http, demo_url)
        if check(stats):
            return stats
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {stats}"
        await asyncio.sleep(0.1)


SAMPLE_KEYS = {"seq", "t", "loop_lag_ms", "in_flight", "connections", "ops_per_second"}


async def test_stats_history_advances_and_follows_a_burst(demo_url, io_loop):
    http = AsyncHTTPClient()
    first = await wait_for_stats(http, demo_url, lambda s: len(s["samples"]) >= 2, 10)
    assert first["sample_seconds"] == 0.5
    for sample in first["samples"]:
        assert set(sample) == SAMPLE_KEYS
        assert all(isinstance(v, int | float) and v >= 0 for v in sample.values())
    seqs = [s["seq"] for s in first["samples"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert first["samples"][-1]["in_flight"] >= 1  # the change stream's getMore

    # 300 operations of 0.6 s on a pool of 100: at least three rounds, ~1.8 s.
    started = await http.fetch(
        f"http://{demo_url}/burst", method="POST", body="count=300&wait_ms=600"
    )
    assert started.code == 202
    assert json.loads(started.body)["running"] is True
    again = await http.fetch(f"http://{demo_url}/burst", method="POST", body="", raise_error=False)
    assert again.code == 409

    busy = await wait_for_stats(http, demo_url, lambda s: s["samples"][-1]["in_flight"] >= 300, 10)
    assert busy["burst"]["running"] and busy["burst"]["count"] == 300
    assert busy["samples"][-1]["seq"] > first["samples"][-1]["seq"]
    assert busy["connections_open"] > first["connections_open"]  # the burst's pool filled
    done = await wait_for_stats(http, demo_url, lambda s: not s["burst"]["running"], 30)
    assert done["burst"]["done"] == 300 and done["burst"]["failed"] == 0
    assert done["burst"]["elapsed"] >= 3 * 0.6 * 0.9  # the server held each getMore
    settled = await wait_for_stats(http, demo_url, lambda s: s["samples"][-1]["in_flight"] <= 2, 10)
    # The burst's commands (find, getMore, killCursors for each) show in the ops/s series.
    during = [s for s in settled["samples"] if s["seq"] > first["samples"][-1]["seq"]]
    assert sum(s["ops_per_second"] * settled["sample_seconds"] for s in during) >= 600
    assert max(s["in_flight"] for s in during) >= 300


@pytest.mark.parametrize("body", ["count=0", "count=x", "wait_ms=99999", "count=100000"])
async def test_burst_rejects_bad_arguments(demo_url, io_loop, body):
    response = await AsyncHTTPClient().fetch(
        f"http://{demo_url}/burst", method="POST", body=body, raise_error=False
    )
    assert response.code == 400


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
@pytest.mark.slow  # a headless browser
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
        *CHROMIUM_FLAGS,
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


class Browser:
    """Headless Chromium driven over the DevTools protocol (its WebSocket, with Tornado's
    client), to act on a page and read it while the test's loop serves the app."""

    def __init__(
        self, process: asyncio.subprocess.Process, devtools: WebSocketClientConnection
    ) -> None:
        self.process = process
        self.devtools = devtools
        self._id = 0

    @classmethod
    async def open(cls, url: str, profile: pathlib.Path) -> Browser:
        assert CHROMIUM is not None
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            "--window-size=900,1000",
            url,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.returncode is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium's DevTools did not start"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(
            (await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/json/list")).body
        )
        page = next(t for t in targets if t["type"] == "page")
        devtools = await websocket_connect(
            page["webSocketDebuggerUrl"], max_message_size=64 * 1024 * 1024
        )
        return cls(process, devtools)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        await self.devtools.write_message(
            json.dumps({"id": self._id, "method": method, "params": params})
        )
        while True:
            raw = await asyncio.wait_for(self.devtools.read_message(), 30)
            assert raw is not None, "the DevTools connection closed"
            message = json.loads(raw)
            if message.get("id") == self._id:
                assert "error" not in message, message["error"]
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float) -> Any:
        """Evaluate ``expression`` until it is truthy; an error (no page yet) counts as false."""
        guarded = f"(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()"
        deadline = time.monotonic() + timeout
        while not (value := await self.evaluate(guarded)):
            assert time.monotonic() < deadline, f"not true within {timeout} s: {expression}"
            await asyncio.sleep(0.1)
        return value

    async def close(self) -> None:
        self.devtools.close()
        if self.process.returncode is None:
            self.process.terminate()
        await self.process.wait()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SHOWN = "Number(document.querySelector('[data-series={}] b').textContent)"
SEQ = "Number(document.getElementById('chart').dataset.seq)"
BURST_STATE = "document.getElementById('burst-status').dataset.state"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
async def test_chart_moves_and_page_answers_during_a_burst(demo_url, io_loop, tmp_path):
    browser = await Browser.open(f"http://{demo_url}/", tmp_path / "profile")
    try:
        await browser.wait_for(f"{SEQ} >= 1", 30)  # the chart drew the server's samples
        await browser.evaluate("document.getElementById('burst').click()")
        await browser.wait_for(f"{SHOWN.format('in_flight')} >= 1000", 30)
        assert await browser.evaluate(f"{BURST_STATE}") == "running"
        assert await browser.evaluate("document.getElementById('burst').disabled")
        seq_busy = await browser.evaluate(SEQ)

        # While 1,000 operations wait, the page's own request is answered (a request queued
        # behind the burst would take its ~10 s: 100 connections, 1 s per operation).
        took_ms = await browser.evaluate(
            "(async () => { const t = performance.now();"
            " const r = await fetch('/posts'); await r.json();"
            " return performance.now() - t; })()"
        )
        assert took_ms < 2000
        # ... and a post written through the form comes back over the WebSocket.
        text = f"posted during the burst {uuid.uuid4().hex[:8]}"
        await browser.evaluate(
            "(() => { const f = document.getElementById('new-post');"
            f" f.elements.text.value = {json.dumps(text)}; f.requestSubmit(); }})()"
        )
        await browser.wait_for(
            f"document.getElementById('posts').textContent.includes({json.dumps(text)})", 10
        )
        # The chart keeps advancing during the burst.
        await browser.wait_for(f"{SEQ} >= {seq_busy + 3}", 10)
        assert await browser.evaluate(BURST_STATE) == "running"
        done_so_far = await browser.evaluate(
            "Number(document.getElementById('burst-status').dataset.done)"
        )
        assert done_so_far < 1000
        points = await browser.evaluate(
            "document.querySelector('[data-series=in_flight] polyline')"
            ".getAttribute('points').split(' ').length"
        )
        assert points >= seq_busy + 3
        shot = await browser.call("Page.captureScreenshot", format="png")
        (tmp_path / "demo-during-burst.png").write_bytes(base64.b64decode(shot["data"]))

        await browser.wait_for(f"{BURST_STATE} === 'finished'", 45)
        status = await browser.evaluate("document.getElementById('burst-status').textContent")
        assert "1000 of 1000 done" in status and "failed" not in status
        await browser.wait_for(f"{SHOWN.format('in_flight')} <= 2", 10)
        assert not await browser.evaluate("document.getElementById('burst').disabled")
    finally:
        await browser.close()


async def test_board_stops_cleanly_mid_burst(server_uri, io_loop):
    board = make_app(server_uri).settings["board"]
    await board.start()
    burst = board.start_burst(200, 5000)
    with pytest.raises(RuntimeError, match="already running"):
        board.start_burst()
    while len(core.in_flight) < 200:
        await asyncio.sleep(0.05)
    started = time.monotonic()
    await board.stop()
    assert time.monotonic() - started < 5  # cancelled, not waited out
    assert not burst.running and burst.done < 200
    assert [t for t in asyncio.all_tasks() if not t.done()] == [asyncio.current_task()]
