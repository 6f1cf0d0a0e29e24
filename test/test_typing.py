"""greenmotor ships py.typed and type stubs, and mypy accepts typical application code.

How mypy's verdicts compare with Motor's stubs is in typing/test_motor_typing_verdicts.py.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import greenmotor

HERE = pathlib.Path(__file__).parent / "typing"
REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = pathlib.Path(greenmotor.__file__).parent
mypy = pytest.importorskip("mypy", reason="mypy is in the test extra")


def run_mypy(path: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir=/dev/null",
         "--python-version", "3.11", str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_py_typed_marker_is_shipped():
    assert (PACKAGE / "py.typed").exists()


@pytest.mark.slow  # runs mypy / the stub generator
def test_mypy_accepts_typical_application_code():
    result = run_mypy(HERE / "app_ok.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # runs mypy / the stub generator
def test_mypy_reports_real_type_errors():
    result = run_mypy(HERE / "app_bad.py")
    assert result.returncode == 1, result.stdout
    expected = {
        9: 'expression has type "MotorDatabase[Any]", variable has type "int"',
        10: 'Missing positional argument "name" in call to "MotorDatabase"',
        12: 'Argument 1 to "insert_one" of "MotorCollection" has incompatible type',
        13: 'Argument 1 to "limit" of "MotorCursor" has incompatible type "str"',
        15: 'Argument "callback" to "update_one" of "MotorCollection" has incompatible type',
    }
    errors = {
        int(line.split(":")[1]): line for line in result.stdout.splitlines() if ": error:" in line
    }
    assert sorted(errors) == sorted(expected), result.stdout
    for number, message in expected.items():
        assert message in errors[number]


@pytest.mark.slow  # runs mypy / the stub generator
def test_stubs_are_generated_from_the_current_declarations():
    """greenmotor/*.pyi are what tools/generate_typing.py makes of the declarations and
    annotations now: regenerate them after changing either."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "generate_typing.py"), "--check"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_are_shipped():
    stubs = {path.name for path in PACKAGE.glob("*.pyi")}
    assert {"client.pyi", "cursor.pyi", "motor_asyncio.pyi"} <= stubs
    assert "*.pyi" in (REPO / "setup.cfg").read_text().split("[options.package_data]")[1]
