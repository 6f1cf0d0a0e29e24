"""What the conformance runners share: a driver's own test suite run twice and compared.

``test/conformance/run.py`` runs PyMongo's test suite with plain PyMongo and through
greenmotor; ``test/motor_conformance/run.py`` runs Motor's with real Motor and through
greenmotor. Both use these pieces: the suite from the driver's sdist (:func:`suite_dir`),
one pytest run on a fresh SecantusDB (:func:`run_pytest`), its JUnit XML
(:func:`read_junit`), the exclusions file (:func:`read_exclusions`), and the comparison of
the two runs (:func:`compare`, :func:`rerun_flaky`).

A run is a dict ``mode -> [ModuleRun]`` with the modes ``"reference"`` (the real driver) and
``"greenmotor"``. A test id is pytest's, relative to the suite's ``test/`` directory:
``test_cursor.py::TestCursor::test_x`` (PyMongo) or
``tornado_tests/test_motor_basic.py::MotorTestBasic::test_x`` (Motor).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .servers import SecantusServer, free_port

MODES = ("reference", "greenmotor")

#: How the message of a module that pytest could not import starts (see :func:`read_junit`).
COLLECTION_ERROR = "collection error: "


# --- the suite -------------------------------------------------------------------------


def suite_dir(project: str, version: str, cache: Path) -> Path:
    """The ``test/`` package and ``pyproject.toml`` of ``project``'s sdist, extracted once.

    ``pip download`` fetches the sdist into ``cache``; the suite goes to
    ``cache/suite-<version>``.
    """
    target = cache / f"suite-{version}"
    if (target / ".complete").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    name = project.lower()
    sdist = cache / f"{name}-{version}.tar.gz"
    if not sdist.exists():
        print(f"downloading the {project} {version} sdist into {cache}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"{name}=={version}", "-d", str(cache)],
            check=True,
        )  # fmt: skip
    if target.exists():
        shutil.rmtree(target)
    prefix = f"{name}-{version}/"
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            if member.name.startswith(prefix + "test/") or member.name == prefix + "pyproject.toml":
                member.name = member.name[len(prefix) :]
                members.append(member)
        tar.extractall(target, members=members, filter="data")
    (target / ".complete").touch()
    return target


# --- running pytest ----------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # passed, failed, skipped, xfailed
    seconds: float
    message: str = ""


@dataclass
class ModuleRun:
    module: str  # what ran: a module of the suite, or a directory of modules
    mode: str
    seconds: float
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    crashed: str = ""  # pytest died or timed out before writing results


def server_port() -> int:
    """27017 unless something listens there (a few tests connect to the default address)."""
    with socket.socket() as sock:
        # The previous module's server leaves connections in TIME_WAIT on 27017; they must
        # not count as "in use" (the server itself binds with SO_REUSEADDR too).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", 27017))
        except OSError:
            return free_port()
    return 27017


@dataclass
class PytestRun:
    """How to run pytest on one suite: where, with what, and how to name its tests."""

    suite: Path  # the directory holding the suite's test/ package and pyproject.toml
    results: Path  # JUnit XML files and logs go to results/<mode>/<name>.{xml,log}
    pythonpath: list[Path]
    per_test_timeout: int  # a hang fails one test instead of the run
    timeout: int  # seconds for the whole pytest process
    package: str = "test"  # the dotted package of the modules run (JUnit class names)
    id_prefix: str = ""  # what test ids start with: the package's directory below test/

    def run(
        self, name: str, mode: str, targets: list[str], args: list[str], port: int | None = None
    ) -> ModuleRun:
        """Run pytest on ``targets`` against a fresh SecantusDB, as ``name`` in ``mode``.

        The server listens on ``port``, or on :func:`server_port`'s choice.
        """
        server = SecantusServer("--enable-test-commands", port=port or server_port())
        server.start()
        server.wait_ready()
        xml = self.results / mode / f"{name}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.unlink(missing_ok=True)
        env = dict(
            os.environ,
            DB_IP="127.0.0.1",
            DB_PORT=str(server.port),
            PYTHONPATH=os.pathsep.join(str(path) for path in self.pythonpath),
        )
        command = [
            sys.executable, "-m", "pytest", *targets,
            "-p", "no:cacheprovider", "-q", "--no-header", "-o", "console_output_style=classic",
            f"--junitxml={xml}", f"--timeout={self.per_test_timeout}", *args,
        ]  # fmt: skip
        started = time.monotonic()
        log = self.results / mode / f"{name}.log"
        crashed = ""
        try:
            with open(log, "w") as out:
                subprocess.run(command, cwd=self.suite, env=env, stdout=out,
                               stderr=subprocess.STDOUT, timeout=self.timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            crashed = f"timed out after {self.timeout}s"
        finally:
            server.stop()
        run = ModuleRun(name, mode, time.monotonic() - started, crashed=crashed)
        if xml.exists():
            run.outcomes = read_junit(xml, self.package, self.id_prefix)
        elif not crashed:
            run.crashed = f"no results; see {log}"
        return run


def read_junit(path: Path, package: str = "test", id_prefix: str = "") -> dict[str, Outcome]:
    """test id -> outcome, from pytest's JUnit XML.

    Class names there are dotted: ``<package>.<module>.<Class>``; the test id is
    ``<id_prefix><module>.py::<Class>::<test>``. A module pytest could not import (a
    collection error) is one failed "test" whose id is the module's file,
    ``<id_prefix><module>.py``, and whose message starts with :data:`COLLECTION_ERROR`.
    """
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        if not classname and name.startswith(package + "."):
            name, classname = "", name  # a collection error: the name is the module's
        module, _, cls = classname.removeprefix(package + ".").partition(".")
        test_id = "::".join(part for part in (f"{id_prefix}{module}.py", cls, name) if part)
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status, message = "failed", child.get("message", "")
                if not name:
                    message = COLLECTION_ERROR + error_line(child.text or "", message)
                break
            if child.tag == "skipped":
                kind = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                status, message = kind, child.get("message", "")
        if test_id in outcomes and outcomes[test_id].status == "failed":
            continue  # a teardown error is reported as a second case: keep the failure
        outcomes[test_id] = Outcome(status, float(case.get("time", 0) or 0), message)
    return outcomes


def error_line(traceback: str, default: str) -> str:
    """The exception pytest reports in a traceback (its first ``E   `` line), or ``default``."""
    for line in traceback.splitlines():
        if line.startswith("E   "):
            return line[4:].strip()
    return default


def expand_collection_errors(runs: dict[str, list[ModuleRun]]) -> None:
    """A module greenmotor could not import fails each test the reference ran in it.

    Its one collection-error entry is replaced by those tests, each failed with the
    collection error's message (kept when the reference ran no test of the module).
    """
    reference = {tid for run in runs["reference"] for tid in run.outcomes}
    for run in runs["greenmotor"]:
        for module_id, outcome in list(run.outcomes.items()):
            if not outcome.message.startswith(COLLECTION_ERROR) or "::" in module_id:
                continue
            tests = [tid for tid in sorted(reference) if tid.startswith(module_id + "::")]
            tests = [tid for tid in tests if tid not in run.outcomes]
            if tests:
                del run.outcomes[module_id]
                for test_id in tests:
                    run.outcomes[test_id] = Outcome("failed", 0.0, outcome.message)


# --- exclusions and comparison ------------------------------------------------------------


def read_exclusions(path: Path) -> dict[str, str]:
    """pattern -> reason. Lines: ``<test id or fnmatch pattern> -- <reason>``."""
    exclusions: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, reason = line.partition(" -- ")
        if not sep or not reason.strip():
            raise SystemExit(f"{path}:{number}: expected '<test id> -- <reason>', got {line!r}")
        exclusions[pattern.strip()] = reason.strip()
    return exclusions


def exclusion_for(test_id: str, exclusions: dict[str, str]) -> str | None:
    for pattern in exclusions:
        if fnmatch.fnmatchcase(test_id, pattern):
            return pattern
    return None


def counts(runs: list[ModuleRun]) -> dict[str, int]:
    total = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    for run in runs:
        for outcome in run.outcomes.values():
            total[outcome.status] += 1
    return total


def summary(c: dict[str, int]) -> str:
    return f"{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped"


def unexplained_failures(
    runs: dict[str, list[ModuleRun]], exclusions: dict[str, str]
) -> tuple[list[tuple[str, str]], int, set[str]]:
    """greenmotor failures of tests the reference passes, not excluded: (test id, message).

    Also returns how many such failures are excluded, and which exclusion patterns matched.
    """
    reference = {tid: o for run in runs["reference"] for tid, o in run.outcomes.items()}
    unexplained, excluded, used = [], 0, set()
    for run in runs["greenmotor"]:
        for test_id, outcome in sorted(run.outcomes.items()):
            if outcome.status != "failed":
                continue
            pattern = exclusion_for(test_id, exclusions)
            if pattern:
                used.add(pattern)
            ref = reference.get(test_id)
            if ref is None or ref.status == "failed":
                continue  # fails with the real driver too: the server or the environment
            if pattern:
                excluded += 1
            else:
                unexplained.append((test_id, outcome.message))
    return unexplained, excluded, used


def rerun_flaky(
    runs: dict[str, list[ModuleRun]],
    exclusions: dict[str, str],
    module_of: Callable[[str], str],
    rerun: Callable[[ModuleRun, list[str]], ModuleRun],
) -> None:
    """Run greenmotor's unexplained failures once more (a fresh server per module).

    Timing-sensitive tests (CSOT deadlines, heartbeats) can fail on a loaded 2-core machine
    with either driver; one that passes on the rerun is reported as flaky, not as a failure.
    ``module_of(test_id)`` names the :class:`ModuleRun` that ran a test; ``rerun(run, ids)``
    runs those tests of it again. Modules that failed to import are not rerun.
    """
    unexplained, _, _ = unexplained_failures(runs, exclusions)
    by_module: dict[str, list[str]] = {}
    for test_id, message in unexplained:
        if not message.startswith(COLLECTION_ERROR):
            by_module.setdefault(module_of(test_id), []).append(test_id)
    for run in runs["greenmotor"]:
        test_ids = by_module.get(run.module)
        if not test_ids:
            continue
        again = rerun(run, test_ids)
        for test_id in test_ids:
            outcome = again.outcomes.get(test_id)
            if outcome is not None and outcome.status == "passed":
                print(f"  FLAKY {test_id}: failed, then passed on a rerun")
                run.outcomes[test_id] = outcome
        run.seconds += again.seconds


def compare(
    runs: dict[str, list[ModuleRun]],
    exclusions: dict[str, str],
    in_scope: Callable[[str], bool],
    driver: str = "PyMongo",
    brief: Callable[[str], str] = lambda message: message[:200],
) -> int:
    """Print greenmotor failures of tests ``driver`` passes; return how many are unexplained.

    A module greenmotor could not import is one line, however many of its tests it fails.
    Exclusion patterns that ``in_scope`` accepts and no failure matched are reported stale.
    """
    unexplained, excluded, used = unexplained_failures(runs, exclusions)
    reference = {tid for run in runs["reference"] for tid in run.outcomes}
    greenmotor = {tid for run in runs["greenmotor"] for tid in run.outcomes}
    missing = sorted(reference - greenmotor)
    print(f"greenmotor failures of tests {driver} passes: {excluded} excluded, "
          f"{len(unexplained)} unexplained")  # fmt: skip
    not_imported: dict[str, list[str]] = {}
    for test_id, message in unexplained:
        if message.startswith(COLLECTION_ERROR):
            not_imported.setdefault(test_id.split("::")[0], []).append(message)
        else:
            print(f"  UNEXPLAINED {test_id}: {brief(message)}")
    for module, messages in not_imported.items():
        tests = f"{len(messages)} tests {driver} passes"
        print(f"  UNEXPLAINED {module} ({tests}): {brief(messages[0])}")
    for test_id in missing:
        print(f"  NOT RUN with greenmotor: {test_id}")
    for pattern in exclusions:
        if in_scope(pattern) and pattern not in used:
            print(f"  stale exclusion (did not fail): {pattern}")
    return len(unexplained) + len(missing)
