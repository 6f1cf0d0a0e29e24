"""mypy's verdicts on code written for Motor: with Motor's published stubs, and with greenmotor.

A program typed against Motor 3 must get the same verdict from mypy when ``motor`` is
greenmotor: the same errors, on the same lines, with the same error codes (the messages
differ only in class names: ``AgnosticCollection`` there, ``MotorCollection`` here). The
programs checked are

* Motor's own typed code, from the Motor 3.7.1 sdist (downloaded once into
  ``.cache/motor-conformance`` by the conformance runner's helper; never committed):
  ``test/test_typing.py`` (which relies on its ``# type: ignore[code]`` comments being
  needed, mypy's ``warn_unused_ignores``) and ``test/mypy_fails/*.py`` (each must fail);
* the applications in ``motor_samples/``: correct code for both flavours, and code with the
  errors Motor's stubs catch.

mypy runs twice over all of them, with Motor's mypy configuration (its ``pyproject.toml``:
strict, ``warn_unreachable``...) at Python 3.11: once with the real Motor installed beside
greenmotor, once with ``motor`` resolving to greenmotor through a directory of stub
packages on ``MYPYPATH`` (:data:`SHIM`: ``motor.motor_asyncio`` re-exports
``greenmotor.motor_asyncio``, ``motor.core.AgnosticClient`` is ``MotorClient``...).

Where the two verdicts may differ on purpose, the sample line says so and why, with
``# only-motor[code, ...]`` (Motor's stubs report these error codes there, greenmotor's
rightly do not) or ``# only-greenmotor[code, ...]``, at the end of the line or on a
comment line of its own just before; :data:`MOTOR_FILE_DIFFERENCES` does the same for Motor's
files. Every other difference fails the test.

Run as a script to print the table (``--greenmotor PATH`` checks another copy of the
package, e.g. one without stubs)::

    python test/typing/verdicts.py
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SAMPLES = HERE / "motor_samples"
MOTOR_VERSION = "3.7.1"
CACHE = Path(
    os.environ.get("GREENMOTOR_MOTOR_CONFORMANCE_CACHE", REPO / ".cache" / "motor-conformance")
)

#: ``motor`` as greenmotor, for mypy: the stub packages put on MYPYPATH.
SHIM = {
    "motor/__init__.pyi": """\
from greenmotor import version as version
from greenmotor.motor_tornado import *
""",
    "motor/motor_tornado.pyi": "from greenmotor.motor_tornado import *\n",
    "motor/motor_asyncio.pyi": "from greenmotor.motor_asyncio import *\n",
    "motor/motor_gridfs.pyi": """\
from greenmotor.gridfs import MotorGridFSBucket, MotorGridIn, MotorGridOut, MotorGridOutCursor

AgnosticGridFSBucket = MotorGridFSBucket
AgnosticGridIn = MotorGridIn
AgnosticGridOut = MotorGridOut
AgnosticGridOutCursor = MotorGridOutCursor
""",
    # Motor's framework-agnostic base classes are greenmotor's declared (Tornado) classes,
    # which the asyncio classes subclass as Motor's subclass its Agnostic ones.
    "motor/core.pyi": """\
from greenmotor.change_stream import MotorChangeStream
from greenmotor.client import MotorClient, MotorCollection, MotorDatabase
from greenmotor.cursor import (
    MotorCommandCursor,
    MotorCursor,
    MotorLatentCommandCursor,
    MotorRawBatchCommandCursor,
    MotorRawBatchCursor,
)
from greenmotor.encryption import MotorClientEncryption
from greenmotor.metaprogramming import MotorWrapper
from greenmotor.session import MotorClientSession

AgnosticBase = MotorWrapper
AgnosticChangeStream = MotorChangeStream
AgnosticClient = MotorClient
AgnosticClientEncryption = MotorClientEncryption
AgnosticClientSession = MotorClientSession
AgnosticCollection = MotorCollection
AgnosticCommandCursor = MotorCommandCursor
AgnosticCursor = MotorCursor
AgnosticDatabase = MotorDatabase
AgnosticLatentCommandCursor = MotorLatentCommandCursor
AgnosticRawBatchCommandCursor = MotorRawBatchCommandCursor
AgnosticRawBatchCursor = MotorRawBatchCursor
""",
}

#: Why an operation whose result is dropped is no error with greenmotor.
UNAWAITED = (
    "Motor's stubs declare operations as coroutines, so mypy asks that each be awaited; at "
    "run time Motor's and greenmotor's return Futures, and greenmotor's take callback=fn, "
    "which makes dropping the Future the normal use"
)

#: Differences on Motor's own files, by file: (line, code, which side reports it) -> why.
MOTOR_FILE_DIFFERENCES: dict[str, dict[tuple[int, str, str], str]] = {
    "test/mypy_fails/insert_one_list.py": {(8, "unused-coroutine", "motor"): UNAWAITED},
    "test/mypy_fails/raw_bson_document.py": {(19, "unused-coroutine", "motor"): UNAWAITED},
}

MARKER = re.compile(r"#\s*only-(motor|greenmotor)\[([a-z, -]+)\]")
ERROR = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$"
)


@dataclass(frozen=True)
class Error:
    line: int
    code: str
    message: str = field(compare=False)


def motor_suite() -> Path:
    """Motor's extracted sdist (its ``test/`` package and ``pyproject.toml``)."""
    sys.path.insert(0, str(REPO / "test"))
    from support import conformance_common

    return conformance_common.suite_dir("Motor", MOTOR_VERSION, CACHE)


def programs(suite: Path) -> list[str]:
    """The files checked: Motor's (relative to the suite) and the samples (absolute)."""
    motor = ["test/test_typing.py"] + sorted(
        f"test/mypy_fails/{path.name}" for path in (suite / "test" / "mypy_fails").glob("*.py")
    )
    return motor + [str(path) for path in sorted(SAMPLES.glob("*.py"))]


def write_shim(directory: Path, greenmotor: Path) -> None:
    for name, text in SHIM.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (directory / "greenmotor").symlink_to(greenmotor)


def run_mypy(suite: Path, files: list[str], shim: Path | None) -> dict[str, set[Error]]:
    """mypy's errors in each file: with Motor's stubs (``shim`` None) or greenmotor's."""
    env = {key: value for key, value in os.environ.items() if key != "MYPYPATH"}
    if shim is not None:
        env["MYPYPATH"] = str(shim)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
         "--python-version", "3.11", "--follow-imports=silent", "--no-pretty",
         "--hide-error-context", "--show-error-codes", "--no-error-summary",
         "--no-incremental", "--cache-dir", os.devnull, *files],
        cwd=suite, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode not in (0, 1) or "error: INTERNAL ERROR" in result.stdout:
        raise RuntimeError(f"mypy failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    errors: dict[str, set[Error]] = {name: set() for name in files}
    for line in result.stdout.splitlines():
        match = ERROR.match(line)
        if match and match["path"] in errors:
            errors[match["path"]].add(
                Error(int(match["line"]), match["code"] or "", match["message"])
            )
    return errors


def expected_differences(name: str) -> dict[tuple[int, str, str], str]:
    """(line, code, "motor" | "greenmotor") -> the reason, for one file."""
    if not os.path.isabs(name):
        return MOTOR_FILE_DIFFERENCES.get(name, {})
    found = {}
    for number, text in enumerate(Path(name).read_text().splitlines(), start=1):
        # A marker on a line of its own is about the next line.
        about = number + 1 if text.lstrip().startswith("#") else number
        for side, codes in MARKER.findall(text):
            for code in codes.split(","):
                found[about, code.strip(), side] = text.partition("#")[2].strip()
    return found


@dataclass
class Verdict:
    """One file's errors both ways, and what is left once the expected differences go."""

    name: str
    motor: set[Error]
    greenmotor: set[Error]
    expected: dict[tuple[int, str, str], str]

    @property
    def unexpected(self) -> list[str]:
        """The differences no marker explains, and markers with no difference behind them."""
        problems = []
        only_motor = self.motor - self.greenmotor
        only_greenmotor = self.greenmotor - self.motor
        for side, errors in (("motor", only_motor), ("greenmotor", only_greenmotor)):
            for error in sorted(errors, key=lambda e: (e.line, e.code)):
                if (error.line, error.code, side) not in self.expected:
                    problems.append(
                        f"line {error.line}: only {side}: {error.message} [{error.code}]"
                    )
        for line, code, side in self.expected:
            errors = only_motor if side == "motor" else only_greenmotor
            if not any(e.line == line and e.code == code for e in errors):
                problems.append(f"line {line}: marked only-{side}[{code}], but it is not")
        return problems

    def row(self) -> str:
        def verdict(errors: set[Error]) -> str:
            return f"fail ({len(errors)})" if errors else "pass"

        same = (
            "same"
            if self.motor == self.greenmotor
            else ("expected differences" if not self.unexpected else "DIFFERENT")
        )
        short = self.name if not os.path.isabs(self.name) else Path(self.name).name
        return f"{short:40} {verdict(self.motor):>12} {verdict(self.greenmotor):>12}   {same}"


def verdicts(greenmotor: Path = REPO / "greenmotor") -> list[Verdict]:
    suite = motor_suite()
    files = programs(suite)
    with tempfile.TemporaryDirectory() as tmp:
        write_shim(Path(tmp), greenmotor)
        reference = run_mypy(suite, files, None)
        ours = run_mypy(suite, files, Path(tmp))
    return [
        Verdict(name, reference[name], ours[name], expected_differences(name)) for name in files
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument(
        "--greenmotor",
        type=Path,
        default=REPO / "greenmotor",
        help="the greenmotor package to check (default: this checkout's)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="list every difference")
    args = parser.parse_args()
    results = verdicts(args.greenmotor.resolve())
    print(f"{'file':40} {'Motor':>12} {'greenmotor':>12}")
    for verdict in results:
        print(verdict.row())
        if args.verbose:
            for problem in verdict.unexpected:
                print(f"    {problem}")
    return 1 if any(v.unexpected for v in results) else 0


if __name__ == "__main__":
    sys.exit(main())
