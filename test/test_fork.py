"""Process model: greenmotor in processes forked by ``tornado.process.fork_processes``.

The forking happens in a separate program (support/fork_workers.py) so the test runner
itself never forks. Clients created after the fork work in every child. A client created
before the fork gets PyMongo's own treatment: PyMongo resets its pools and monitors in the
child, and warns "MongoClient opened before fork" when the client had been used in the parent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.slow  # forks worker processes, each with its own loop

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 3


def run_workers(server_uri: str, sync_client, mode: str) -> list[dict]:
    database = f"greenmotor_fork_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    try:
        program = os.path.join(HERE, "support", "fork_workers.py")
        proc = subprocess.run(
            [sys.executable, program, server_uri, database, mode, str(WORKERS)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        reports = sorted(
            sync_client[database].workers.find({}, {"_id": 0}), key=lambda r: r["task"]
        )
        docs = list(sync_client[database].docs.find({}, {"_id": 0}))
    finally:
        sync_client.drop_database(database)
    assert [r["task"] for r in reports] == list(range(WORKERS)), reports
    assert len({r["pid"] for r in reports}) == WORKERS
    assert all(r["error"] is None for r in reports), [r["error"] for r in reports]
    # Each child wrote with its own pid, so the work really ran in the children.
    assert sorted((d["task"], d["pid"]) for d in docs) == [(r["task"], r["pid"]) for r in reports]
    return reports


def test_clients_created_after_fork_work_in_every_child(server_uri, sync_client):
    for report in run_workers(server_uri, sync_client, "after"):
        assert report["warnings"] == []


def test_client_created_before_fork_but_first_used_after(server_uri, sync_client):
    # Never opened in the parent: nothing to reset, nothing to warn about (as PyMongo).
    for report in run_workers(server_uri, sync_client, "before-unused"):
        assert report["warnings"] == []


def test_client_used_before_fork_gets_pymongos_fork_warning(server_uri, sync_client):
    for report in run_workers(server_uri, sync_client, "before-used"):
        assert any("MongoClient opened before fork" in w for w in report["warnings"]), report
        assert all(w.startswith("UserWarning") for w in report["warnings"]), report
