"""An aiohttp application written for ``motor.motor_asyncio`` runs on greenmotor by changing
its import line only, and answers exactly as it does on Motor.

``apps/notes_aiohttp.py`` imports greenmotor's asyncio flavour; the Motor variant is the
same source with that one line pointing at ``motor.motor_asyncio``. Each variant serves the
same scripted session of requests on a fresh asyncio loop (no Tornado IOLoop is started),
and the transcripts must be equal.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import types
import uuid

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is in the test extra")
pytest.importorskip("motor.motor_asyncio", reason="motor is in the test extra")
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

APP = pathlib.Path(__file__).parent / "apps" / "notes_aiohttp.py"
GREEN_IMPORT = "from greenmotor.motor_asyncio import ("
MOTOR_IMPORT = "from motor.motor_asyncio import ("


def load_app(driver: str) -> types.ModuleType:
    source = APP.read_text()
    assert source.count(GREEN_IMPORT) == 1
    if driver == "motor":
        source = source.replace(GREEN_IMPORT, MOTOR_IMPORT)
    module = types.ModuleType(f"notes_aiohttp_{driver}")
    exec(compile(source, str(APP), "exec"), module.__dict__)
    return module


async def session_transcript(module: types.ModuleType, uri: str, database: str) -> list:
    """The responses to one scripted session, with generated ids replaced by names."""
    transcript: list = []
    ids: dict[str, str] = {}

    def record(step: str, status: int, body: object) -> None:
        text = str(body)
        for oid in re.findall(r"[0-9a-f]{24}", text):
            text = text.replace(oid, ids.setdefault(oid, f"<id{len(ids)}>"))
        transcript.append((step, status, text))

    async with TestClient(TestServer(module.make_app(uri, database))) as http:

        async def call(step: str, method: str, path: str, **kwargs: object) -> object:
            response = await http.request(method, path, **kwargs)
            kind = response.content_type
            body = await (response.json() if kind == "application/json" else response.read())
            record(step, response.status, body)
            return body

        first = await call("create", "POST", "/notes", json={"text": "b", "tags": ["x", "y"]})
        await call("create", "POST", "/notes", json={"text": "a", "tags": ["x"]})
        await call("bad create", "POST", "/notes", json={"text": 3})
        await call("get", "GET", f"/notes/{first['_id']}")
        await call("bad id", "GET", "/notes/nope")
        await call("missing", "GET", f"/notes/{'0' * 24}")
        await call("list", "GET", "/notes")
        await call("by tag", "GET", "/notes", params={"tag": "y"})
        await call("tags", "GET", "/tags")
        await call("move", "POST", f"/notes/{first['_id']}/move", json={"notebook": "work"})
        await call("move missing", "POST", f"/notes/{'0' * 24}/move", json={"notebook": "w"})
        await call("moved", "GET", f"/notes/{first['_id']}")
        await call("upload", "PUT", "/attachments/logo.png", data=b"\x89PNG...",
                   headers={"Content-Type": "image/png"})  # fmt: skip
        await call("download", "GET", "/attachments/logo.png")
        await call("delete", "DELETE", f"/notes/{first['_id']}")
        await call("delete again", "DELETE", f"/notes/{first['_id']}")
        await call("list after", "GET", "/notes")
    return transcript


def run_app(driver: str, uri: str, sync_client) -> list:
    database = f"greenmotor_app_{uuid.uuid4().hex[:8]}"
    try:
        return asyncio.run(session_transcript(load_app(driver), uri, database))
    finally:
        sync_client.drop_database(database)


def test_the_same_application_answers_the_same_on_greenmotor_and_motor(server_uri, sync_client):
    on_greenmotor = run_app("greenmotor", server_uri, sync_client)
    on_motor = run_app("motor", server_uri, sync_client)
    assert on_greenmotor == on_motor
    # And the session did what it says (a transcript of errors would also be equal).
    steps = dict((step, (status, body)) for step, status, body in on_greenmotor)
    assert steps["list"] == (200, str([
        {"_id": "<id1>", "text": "a", "tags": ["x"], "notebook": "inbox"},
        {"_id": "<id0>", "text": "b", "tags": ["x", "y"], "notebook": "inbox"},
    ]))  # fmt: skip
    assert steps["tags"] == (200, str({"x": 2, "y": 1}))
    assert steps["moved"][1].count("'notebook': 'work'") == 1
    assert steps["download"] == (200, str(b"\x89PNG..."))
    assert steps["delete again"][0] == 404 and steps["bad id"][0] == 400
