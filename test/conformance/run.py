"""Run PyMongo's own test suite twice: with plain PyMongo (reference) and with greenmotor.

::

    python test/conformance/run.py                  # the full set (see doc/conformance.rst)
    python test/conformance/run.py --subset quick   # a few modules, for development
    python test/conformance/run.py test_cursor      # chosen modules
    python test/conformance/run.py --only greenmotor test_cursor -k test_rewind

What it does:

1. ``pip download`` the sdist of the *installed* PyMongo version into ``.cache/conformance``
   (once; never committed) and extract its ``test/`` package and ``pyproject.toml`` (the
   suite's pytest configuration) into ``.cache/conformance/suite-<version>``.
2. For each mode and each module, start a fresh SecantusDB (port 27017 when free: a few
   tests connect to the default host and port), run ``pytest`` on that module with
   ``DB_IP``/``DB_PORT`` pointing at it, and read the JUnit XML it writes. The greenmotor
   mode adds ``-p synchro_plugin``, which points the suite's imports at ``synchro.py``.
3. Compare: every test that passes with PyMongo must pass with greenmotor, unless
   ``exclusions.txt`` lists it with a reason. Print both results; the last line is
   ``conformance: N passed, M failed, K skipped`` for greenmotor. Exit status 1 if a test
   fails with greenmotor that passes with PyMongo and is not excluded.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "test"))

from servers import SecantusServer, free_port  # noqa: E402

CACHE = Path(os.environ.get("GREENMOTOR_CONFORMANCE_CACHE", REPO / ".cache" / "conformance"))
EXCLUSIONS = HERE / "exclusions.txt"

#: Named sets of PyMongo test modules.
SUBSETS: dict[str, list[str]] = {
    "full": [
        "test_crud_unified",
        "test_retryable_reads_unified",
        "test_retryable_writes_unified",
        "test_retryable_writes",
        "test_sessions_unified",
        "test_transactions_unified",
        "test_change_stream",
        "test_csot",
        "test_collection",
        "test_cursor",
        "test_database",
        "test_client",
    ],
}
# A few minutes for both drivers, for development: one module of each kind.
SUBSETS["quick"] = [
    "test_crud_unified",
    "test_sessions_unified",
    "test_change_stream",
    "test_collection",
    "test_cursor",
    "test_database",
]

MODES = ("reference", "greenmotor")
PER_TEST_TIMEOUT = 120  # seconds; a hang fails one test instead of the run
PER_MODULE_TIMEOUT = 1800


# --- the suite -------------------------------------------------------------------------


def pymongo_version() -> str:
    return importlib.metadata.version("pymongo")


def suite_dir(version: str) -> Path:
    """PyMongo's test package for ``version``, downloaded and extracted once."""
    target = CACHE / f"suite-{version}"
    if (target / ".complete").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / f"pymongo-{version}.tar.gz"
    if not sdist.exists():
        print(f"downloading the PyMongo {version} sdist into {CACHE}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--no-binary", ":all:", f"pymongo=={version}", "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
    if target.exists():
        shutil.rmtree(target)
    prefix = f"pymongo-{version}/"
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            if member.name.startswith(prefix + "test/") or member.name == prefix + "pyproject.toml":
                member.name = member.name[len(prefix):]
                members.append(member)
        tar.extractall(target, members=members, filter="data")
    (target / ".complete").touch()
    return target


# --- running one module ------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # passed, failed, skipped, xfailed
    seconds: float
    message: str = ""


@dataclass
class ModuleRun:
    module: str
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


def run_module(
    suite: Path, module: str, mode: str, results: Path, pytest_args: list[str],
    targets: list[str] | None = None,
) -> ModuleRun:
    """Run one module (or some of its tests) on a fresh server; mode "greenmotor*" uses synchro."""
    server = SecantusServer("--enable-test-commands", port=server_port())
    server.start()
    server.wait_ready()
    xml = results / mode / f"{module}.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    xml.unlink(missing_ok=True)
    env = dict(
        os.environ,
        DB_IP="127.0.0.1",
        DB_PORT=str(server.port),
        PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]),
    )
    command = [
        sys.executable, "-m", "pytest", *(targets or [f"test/{module}.py"]),
        "-p", "no:cacheprovider", "-q", "--no-header", "-o", "console_output_style=classic",
        f"--junitxml={xml}", f"--timeout={PER_TEST_TIMEOUT}",
        *(["-p", "synchro_plugin"] if mode.startswith("greenmotor") else []),
        *pytest_args,
    ]  # fmt: skip
    started = time.monotonic()
    log = results / mode / f"{module}.log"
    crashed = ""
    try:
        with open(log, "w") as out:
            subprocess.run(command, cwd=suite, env=env, stdout=out, stderr=subprocess.STDOUT,
                           timeout=PER_MODULE_TIMEOUT)  # fmt: skip
    except subprocess.TimeoutExpired:
        crashed = f"timed out after {PER_MODULE_TIMEOUT}s"
    finally:
        server.stop()
    run = ModuleRun(module, mode, time.monotonic() - started, crashed=crashed)
    if xml.exists():
        run.outcomes = read_junit(xml)
    elif not crashed:
        run.crashed = f"no results; see {log}"
    return run


def read_junit(path: Path) -> dict[str, Outcome]:
    """test id (``test_x.py::Class::test``) -> outcome, from pytest's JUnit XML."""
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        module, _, cls = classname.removeprefix("test.").partition(".")
        test_id = "::".join(part for part in (f"{module}.py", cls, case.get("name", "")) if part)
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status, message = "failed", child.get("message", "")
                break
            if child.tag == "skipped":
                kind = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                status, message = kind, child.get("message", "")
        if test_id in outcomes and outcomes[test_id].status == "failed":
            continue  # a teardown error is reported as a second case: keep the failure
        outcomes[test_id] = Outcome(status, float(case.get("time", 0) or 0), message)
    return outcomes


# --- exclusions and comparison ------------------------------------------------------------


def read_exclusions(path: Path = EXCLUSIONS) -> dict[str, str]:
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
    for pattern, reason in exclusions.items():
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="PyMongo test modules (default: the subset)")
    parser.add_argument("--subset", choices=sorted(SUBSETS), default="full")
    parser.add_argument("--only", choices=MODES, help="run one mode only")
    parser.add_argument("--results", type=Path, default=CACHE / "results")
    parser.add_argument("-k", dest="keyword", help="passed to pytest -k")
    args = parser.parse_args(argv)

    modules = [m.removesuffix(".py") for m in args.modules] or SUBSETS[args.subset]
    modes = [args.only] if args.only else list(MODES)
    pytest_args = ["-k", args.keyword] if args.keyword else []
    version = pymongo_version()
    suite = suite_dir(version)
    exclusions = read_exclusions()
    print(f"PyMongo {version} test suite from {suite}; modules: {' '.join(modules)}", flush=True)

    runs: dict[str, list[ModuleRun]] = {mode: [] for mode in modes}
    for mode in modes:
        for module in modules:
            run = run_module(suite, module, mode, args.results, pytest_args)
            runs[mode].append(run)
            line = f"  {mode:10} {module:32} {summary(counts([run])):36} {run.seconds:6.0f}s"
            print(line + (f"  [{run.crashed}]" if run.crashed else ""), flush=True)

    if len(modes) == 2:
        rerun_flaky(suite, runs, exclusions, args.results)
    for mode in modes:
        c = counts(runs[mode])
        seconds = sum(run.seconds for run in runs[mode])
        print(f"{mode}: {summary(c)}, {c['xfailed']} xfailed in {seconds / 60:.1f} min")

    problems = compare(runs, exclusions, modules) if len(modes) == 2 else 0
    crashed = [f"{r.mode} {r.module}: {r.crashed}" for rs in runs.values() for r in rs if r.crashed]
    for line in crashed:
        print(f"CRASHED {line}")
    last = runs[modes[-1]]
    print(f"conformance: {summary(counts(last))}", flush=True)
    return 1 if problems or crashed else 0


def unexplained_failures(
    runs: dict[str, list[ModuleRun]], exclusions: dict[str, str]
) -> tuple[list[tuple[str, str]], int, set[str]]:
    """greenmotor failures of tests PyMongo passes, not excluded: (test id, message) pairs.

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
                continue  # fails with PyMongo too: the server or the environment
            if pattern:
                excluded += 1
            else:
                unexplained.append((test_id, outcome.message))
    return unexplained, excluded, used


def rerun_flaky(
    suite: Path, runs: dict[str, list[ModuleRun]], exclusions: dict[str, str], results: Path
) -> None:
    """Run greenmotor's unexplained failures once more (a fresh server per module).

    Timing-sensitive tests (CSOT deadlines, heartbeats) can fail on a loaded 2-core machine
    with either driver; one that passes on the rerun is reported as flaky, not as a failure.
    """
    unexplained, _, _ = unexplained_failures(runs, exclusions)
    by_module: dict[str, list[str]] = {}
    for test_id, _message in unexplained:
        by_module.setdefault(test_id.partition(".py")[0], []).append(test_id)
    for run in runs["greenmotor"]:
        test_ids = by_module.get(run.module)
        if not test_ids:
            continue
        targets = [f"test/{test_id}" for test_id in test_ids]
        again = run_module(suite, run.module, "greenmotor-rerun", results, [], targets)
        for test_id in test_ids:
            outcome = again.outcomes.get(test_id)
            if outcome is not None and outcome.status == "passed":
                print(f"  FLAKY {test_id}: failed, then passed on a rerun")
                run.outcomes[test_id] = outcome
        run.seconds += again.seconds


def compare(runs: dict[str, list[ModuleRun]], exclusions: dict[str, str], modules: list[str]) -> int:
    """Print greenmotor failures of tests PyMongo passes; return how many are unexplained."""
    unexplained, excluded, used = unexplained_failures(runs, exclusions)
    reference = {tid for run in runs["reference"] for tid in run.outcomes}
    greenmotor = {tid for run in runs["greenmotor"] for tid in run.outcomes}
    missing = sorted(reference - greenmotor)
    print(f"greenmotor failures of tests PyMongo passes: {excluded} excluded, "
          f"{len(unexplained)} unexplained")  # fmt: skip
    for test_id, message in unexplained:
        print(f"  UNEXPLAINED {test_id}: {message[:200]}")
    for test_id in missing:
        print(f"  NOT RUN with greenmotor: {test_id}")
    in_scope = [p for p in exclusions if p.split("::")[0].removesuffix(".py") in modules]
    for pattern in in_scope:
        if pattern not in used:
            print(f"  stale exclusion (did not fail): {pattern}")
    return len(unexplained) + len(missing)


if __name__ == "__main__":
    sys.exit(main())
