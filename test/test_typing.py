"""greenmotor ships py.typed, and mypy accepts typical application code."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import greenmotor

HERE = pathlib.Path(__file__).parent / "typing"
mypy = pytest.importorskip("mypy", reason="mypy is in the test extra")


def run_mypy(path: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir=/dev/null",
         "--python-version", "3.10", str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_py_typed_marker_is_shipped():
    assert (pathlib.Path(greenmotor.__file__).parent / "py.typed").exists()


def test_mypy_accepts_typical_application_code():
    result = run_mypy(HERE / "app_ok.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_reports_real_type_errors():
    result = run_mypy(HERE / "app_bad.py")
    assert result.returncode == 1, result.stdout
    assert 'expression has type "MotorDatabase", variable has type "int"' in result.stdout
    assert "Missing positional argument" in result.stdout
