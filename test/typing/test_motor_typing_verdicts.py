"""Type checkers see greenmotor as Motor's stubs show Motor (see verdicts.py), and the stubs
saying so agree with greenmotor at run time.

The tests run mypy (about 10 s for the verdicts, both runs batched) and are marked ``mypy``:
``pytest -m "not mypy"`` leaves them out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pymongo
import pytest
import verdicts

pytest.importorskip("mypy", reason="mypy is in the test extra")
pytestmark = [pytest.mark.mypy, pytest.mark.slow]  # mypy and stubtest: minutes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STUBBED = [
    "greenmotor.change_stream",
    "greenmotor.client",
    "greenmotor.cursor",
    "greenmotor.encryption",
    "greenmotor.gridfs",
    "greenmotor.motor_asyncio",
    "greenmotor.session",
]

#: Motor 3.7.1's typed files, as the verdicts name them.
MOTOR_FILES = [
    "test/test_typing.py",
    "test/mypy_fails/insert_many_dict.py",
    "test/mypy_fails/insert_one_list.py",
    "test/mypy_fails/raw_bson_document.py",
]
SAMPLES = sorted(path.name for path in verdicts.SAMPLES.glob("*.py"))


@pytest.fixture(scope="module")
def results() -> dict[str, verdicts.Verdict]:
    try:
        found = verdicts.verdicts()
    except subprocess.CalledProcessError as exc:  # pip download: no network, no cache
        pytest.skip(f"Motor's sdist is not available: {exc}")
    return {Path(v.name).name if Path(v.name).is_absolute() else v.name: v for v in found}


@pytest.mark.parametrize("name", MOTOR_FILES + SAMPLES)
def test_mypy_gives_the_verdicts_motors_stubs_give(results, name):
    verdict = results[name]
    assert not verdict.unexpected, "\n".join([verdict.row(), *verdict.unexpected])


def test_every_file_checked_is_listed(results):
    assert sorted(results) == sorted(MOTOR_FILES + SAMPLES)


def test_motors_failing_examples_fail_and_the_applications_pass(results):
    for name in MOTOR_FILES[1:] + ["tornado_errors.py", "asyncio_errors.py"]:
        assert results[name].motor and results[name].greenmotor, name
    assert not results["asyncio_app.py"].greenmotor and not results["api_tour.py"].greenmotor
    # The one error on Tornado's application is a marked one (PyMongo's Optional result).
    assert {e.code for e in results["tornado_app.py"].greenmotor} == {"return-value"}


def test_errors_motor_catches_are_caught(results):
    """Every error Motor's stubs report on faulty code is reported with greenmotor too,
    bar the lines marked only-motor (where greenmotor's stubs are right not to)."""
    for name in ("tornado_errors.py", "asyncio_errors.py", *MOTOR_FILES):
        verdict = results[name]
        missed = {(e.line, e.code) for e in verdict.motor - verdict.greenmotor}
        allowed = {(line, code) for line, code, side in verdict.expected if side == "motor"}
        assert missed <= allowed, (name, missed - allowed)


def test_stubs_agree_with_the_runtime():
    """mypy's stubtest: every name, class and signature in the stubs exists at run time
    (greenmotor's generated methods carry their signatures), bar the allowlisted ones."""
    allowlists = ["stubtest-allowlist.txt"]
    # The stubs follow the newest PyMongo; an older supported minor differs in a few
    # signatures, allowed in a file of its own (stubtest refuses an unused entry).
    minor = "stubtest-allowlist-pymongo{}.{}.txt".format(*pymongo.version_tuple[:2])
    if (HERE / minor).exists():
        allowlists.append(minor)
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", "pyproject.toml", *STUBBED,
         *(arg for name in allowlists for arg in ("--allowlist", str(HERE / name)))],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_on_greenmotor_itself_finds_nothing():
    """``mypy greenmotor`` checks the stubs (which hide their modules) and the modules
    without one; the generator's --mypy-implementation checks the hidden modules."""
    checks = [
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir=/dev/null", "greenmotor"],
        [sys.executable, "tools/generate_typing.py", "--mypy-implementation"],
    ]
    for command in checks:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
