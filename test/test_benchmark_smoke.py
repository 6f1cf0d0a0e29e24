"""The benchmark suite still works: ``python -m benchmark --quick``, then the report.

Runs the suite's quick mode the way ``tools/run-benchmarks --quick`` does, for greenmotor and
sync PyMongo (the contenders the test environment has), and checks that every kind of
measurement produced its figures and that the report turns them into tables and charts.
Nothing here asserts speed: figures from a run this small on a shared machine mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow  # a minute of subprocesses


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmark",
        "--quick",
        "--contenders",
        "greenmotor,sync",
        "--output",
        str(out),
        "--no-report",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out) as f:
        data: dict[str, Any] = json.load(f)
    return data


def by_key(results: dict[str, Any], contender: str) -> dict[str, dict[str, Any]]:
    return {r["key"]: r["result"] for r in results["runs"] if r["contender"] == contender}


def test_every_measurement_ran(results: dict[str, Any]) -> None:
    green = by_key(results, "greenmotor")
    assert set(green) == {"seq", "curve-1", "curve-50", "lag-50", "slow-100"}
    assert not [r for r in results["runs"] if "error" in r["result"]]
    # Sync PyMongo runs only where one operation at a time is meaningful.
    assert set(by_key(results, "sync")) == {"seq", "curve-1"}
    for op in ("ping", "find_one", "insert_one"):
        seq = green["seq"][op]
        assert seq["ops_per_s"] > 0 and seq["cpu_us_per_op"] > 0
        assert 0 < seq["p50_us"] <= seq["p99_us"] <= seq["max_us"]
    assert green["curve-50"]["ops_per_s"] > 0
    assert green["lag-50"]["timer_fired"] > 0 and green["lag-50"]["max_us"] >= 0
    slow = green["slow-100"]
    assert slow["capped"] is False
    assert slow["wall_s"] >= 1.0  # the server holds each reply for a second
    assert slow["rss_per_op"] > 0


def test_placement_and_metadata(results: dict[str, Any]) -> None:
    assert results["meta"]["quick"] is True
    assert {r["placement"] for r in results["runs"]} == {"split"}
    assert results["meta"]["machine"]["versions"]["pymongo"]


def test_report_writes_tables_and_charts(results: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.report", "--input", str(source), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("targets", "sequential", "concurrency", "lag", "slow", "method"):
        text = (out / f"{name}.inc").read_text()
        assert text.startswith(".. list-table::"), name
    assert "greenmotor" in (out / "concurrency.inc").read_text()
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # charts come with .[bench]
        return
    assert (out / "concurrency.png").stat().st_size > 0
    assert (out / "memory.png").stat().st_size > 0
