"""Run PyMongo's own synchronous test suite through greenmotor; compare with plain PyMongo.

::

    python test/conformance/run.py                      # greenmotor, compared with the file
    python test/conformance/run.py test_cursor -k rewind
    python test/conformance/run.py --update-reference   # when PyMongo's version moves
    python test/conformance/run.py --both test_cursor   # both drivers now, no file
    python test/conformance/run.py --subset quick --both  # a few modules, any PyMongo

What it does:

1. ``pip download`` the sdist of the *installed* PyMongo version into ``.cache/conformance``
   (once; never committed) and extract its ``test/`` package and ``pyproject.toml`` (the
   suite's pytest configuration) into ``.cache/conformance/suite-<version>``.
2. Every synchronous test module of that ``test/`` package runs, but those in
   :data:`LEFT_OUT` (each with its reason: a replica set, sharding, a load balancer,
   mongocryptd or a cloud service). Each module gets one pytest run on a fresh SecantusDB,
   ``DB_IP``/``DB_PORT`` pointing at it; ``--jobs`` runs (2 by default) go at once, the
   first always on port 27017 (the modules that connect to the default address run there),
   the others on free ports. The greenmotor mode adds ``-p synchro_plugin``, which points
   the suite's imports at ``synchro.py``.
3. The reference outcomes (plain PyMongo's) come from ``reference-<version>.json`` beside
   this file, written by ``--update-reference``; the run stops at once if the file is for
   another PyMongo version. ``--both`` runs plain PyMongo too instead.
4. Compare: every test that passes with PyMongo must pass with greenmotor, unless
   ``exclusions.txt`` lists it with a reason. Print both results; the last line is
   ``conformance: N passed, M failed, K skipped`` for greenmotor. Exit status 1 if a test
   fails with greenmotor that passes with PyMongo and is not excluded.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "test"))

from support.conformance_common import (  # noqa: E402
    MODES,
    ModuleRun,
    Outcome,
    PytestRun,
    compare,
    counts,
    free_port,
    read_exclusions,
    rerun_flaky,
    server_port,
    suite_dir,
    summary,
)

CACHE = Path(os.environ.get("GREENMOTOR_CONFORMANCE_CACHE", REPO / ".cache" / "conformance"))
EXCLUSIONS = HERE / "exclusions.txt"

#: Modules of PyMongo's test/ that do not run, and why: each needs what a single SecantusDB
#: node on a machine without network access cannot give.
LEFT_OUT: dict[str, str] = {
    "test_auth_oidc": "needs an OIDC identity provider (Azure, GCP, Kubernetes or a test IdP)",
    "test_connections_survive_primary_stepdown_spec": "needs a replica set (primary stepdown)",
    "test_encryption": "needs mongocryptd or crypt_shared and KMS providers (AWS, Azure, GCP)",
    "test_kms_connect": "needs KMS servers (mock KMS with TLS certificates) - a cloud service",
    "test_kms_connect_prose": "needs KMS servers - a cloud service",
    "test_on_demand_csfle": "needs cloud KMS credentials (AWS, Azure, GCP)",
    "test_load_balancer": "needs a load balancer in front of mongos",
    "test_ocsp_support": "needs OCSP responders and a TLS server configured for stapling",
    "test_sfp": "needs an Atlas Secure Frontend Processor (a cloud service)",
    "test_client_metadata": (
        "its prose tests hang with plain PyMongo here (the second test waits forever on a "
        "lock, beyond pytest-timeout's reach); a mockupdb module, outside PyMongo's default "
        "run; its unified handshake tests also run in test_handshake_unified"
    ),
    "test_fuzz_capture": (
        "tests PyMongo's fuzzing tool (fuzz/capture_corpus.py, not in the sdist's test/); "
        "no driver code runs"
    ),
}

#: Tests not run at all, with why: they break the run itself, not just fail.
DESELECTED: dict[str, str] = {
    "test_client.py::TestClient::test_interrupt_signal": (
        "sets signal.alarm(1) with its own SIGALRM handler and fails at once (SecantusDB has no "
        "$where); the alarm then lands in pytest-timeout's handler, which aborts the whole "
        "module run with an INTERNALERROR (seen with both drivers)"
    ),
}


def deselect_args(modules: list[str]) -> list[str]:
    """pytest's ``--deselect`` for the :data:`DESELECTED` tests of these modules."""
    return [f"--deselect=test/{test_id}" for test_id in DESELECTED if module_of(test_id) in modules]


#: pytest markers a module's tests carry instead of the suite's default marker.
MARKERS: dict[str, str] = {
    "test_auth": "auth",
    "test_auth_spec": "auth",
    "test_index_management": "search_index",
    "mockupdb": "mockupdb",
}

#: A few modules, one of each kind, for development and for the version matrix's older
#: PyMongo minors (``--subset quick --both``: those have no reference file).
QUICK = [
    "test_crud_unified",
    "test_sessions_unified",
    "test_change_stream",
    "test_collection",
    "test_cursor",
    "test_database",
]

#: Test modules that are directories of modules (one run for the directory).
DIRECTORIES = ("mockupdb",)

#: Modules the reference recorded under this many seconds share pytest runs, BATCH_SIZE each.
SHORT_SECONDS = 45.0
BATCH_SIZE = 12
PER_TEST_TIMEOUT = 300  # seconds; a hang fails one test instead of the run
PER_MODULE_TIMEOUT = 1800
UPDATE_COMMAND = "python test/conformance/run.py --update-reference"


def pymongo_version() -> str:
    return importlib.metadata.version("pymongo")


def reference_path(version: str) -> Path:
    return HERE / f"reference-{version}.json"


def all_modules(suite: Path) -> list[str]:
    """The synchronous test modules of the suite, less :data:`LEFT_OUT`."""
    test = suite / "test"
    found = [path.stem for path in sorted(test.glob("test_*.py"))]
    found += [name for name in DIRECTORIES if (test / name).is_dir()]
    return [module for module in found if module not in LEFT_OUT]


def uses_default_address(suite: Path, module: str) -> bool:
    """Whether a module's tests may connect to localhost:27017 (they then run there)."""
    path = suite / "test" / (module if module in DIRECTORIES else f"{module}.py")
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    text = "".join(file.read_text() for file in files)
    return "27017" in text or "MongoClient()" in text


def module_of(test_id: str) -> str:
    head = test_id.partition("::")[0].removesuffix(".py")
    directory = head.partition("/")[0]
    return directory if directory in DIRECTORIES else head


def run_module(
    suite: Path,
    module: str,
    mode: str,
    results: Path,
    pytest_args: list[str],
    targets: list[str] | None = None,
    port: int | None = None,
) -> ModuleRun:
    """Run one module (or some of its tests) on a fresh server; mode "greenmotor*" uses synchro."""
    package, prefix = ("test", "")
    if module in DIRECTORIES:
        package, prefix = f"test.{module}", f"{module}/"
    pytest = PytestRun(
        suite, results, [HERE, REPO], PER_TEST_TIMEOUT, PER_MODULE_TIMEOUT, package, prefix
    )
    plugin = ["-p", "synchro_plugin"] if mode.startswith("greenmotor") else []
    marker = ["-m", MARKERS[module]] if module in MARKERS else []
    if module in DIRECTORIES:
        default = [f"test/{module}"]
    else:
        default = [f"test/{module}.py"]
    args = plugin + marker + deselect_args([module]) + pytest_args
    return pytest.run(module, mode, targets or default, args, port=port)


def plan(suite: Path, modules: list[str], expected: dict[str, float]) -> list[list[str]]:
    """The units of work: a long module alone, short ones in batches of one pytest run.

    A batch saves a server start and the suite's import per module (most of a short module's
    time); PyMongo's own CI runs the whole suite in one pytest process. A module is short if
    the reference file recorded it under :data:`SHORT_SECONDS`; modules with their own pytest
    marker, directories and modules not recorded yet run alone. Batches never mix modules
    that connect to the default address with others (only run 0 takes those).
    """
    alone, short, short_default = [], [], []
    for module in modules:
        if expected.get(module, SHORT_SECONDS) >= SHORT_SECONDS or module in MARKERS:
            alone.append([module])
        elif uses_default_address(suite, module):
            short_default.append(module)
        else:
            short.append(module)
    batches = [
        group[i : i + BATCH_SIZE]
        for group in (short, short_default)
        for i in range(0, len(group), BATCH_SIZE)
    ]
    cost = lambda unit: sum(expected.get(m, 2 * SHORT_SECONDS) for m in unit)  # noqa: E731
    return sorted(alone + batches, key=lambda unit: -cost(unit))


def run_unit(
    suite: Path,
    unit: list[str],
    mode: str,
    results: Path,
    pytest_args: list[str],
    port: int,
) -> list[ModuleRun]:
    """Run a module alone, or a batch in one pytest run split back into its modules."""
    if len(unit) == 1:
        return [run_module(suite, unit[0], mode, results, pytest_args, port=port)]
    pytest = PytestRun(suite, results, [HERE, REPO], PER_TEST_TIMEOUT, PER_MODULE_TIMEOUT)
    plugin = ["-p", "synchro_plugin"] if mode.startswith("greenmotor") else []
    name = f"batch-{unit[0]}-{len(unit)}"
    targets = [f"test/{module}.py" for module in unit]
    args = plugin + deselect_args(unit) + pytest_args
    batch = pytest.run(name, mode, targets, args, port=port)
    overhead = batch.seconds - sum(outcome.seconds for outcome in batch.outcomes.values())
    runs = []
    for module in unit:
        outcomes = {t: o for t, o in batch.outcomes.items() if module_of(t) == module}
        seconds = overhead / len(unit) + sum(o.seconds for o in outcomes.values())
        runs.append(ModuleRun(module, mode, seconds, outcomes, batch.crashed))
    return runs


def run_all(
    suite: Path,
    modules: list[str],
    mode: str,
    results: Path,
    pytest_args: list[str],
    jobs: int,
    expected: dict[str, float],
    each: Callable[[ModuleRun], object] = lambda run: None,
) -> list[ModuleRun]:
    """Run the modules in ``jobs`` parallel runs, the longest units first; print each module.

    Run 0 uses port 27017 (unless something else listens there) and is the only one to take
    the modules that connect to the default address; the others use free ports.
    """
    pending = plan(suite, modules, expected)
    default_address = {module for module in modules if uses_default_address(suite, module)}
    lock = threading.Lock()
    done: list[ModuleRun] = []

    def next_unit(worker: int) -> list[str] | None:
        with lock:
            for unit in pending:
                if worker == 0 or not default_address.intersection(unit):
                    pending.remove(unit)
                    return unit
        return None

    def work(worker: int) -> None:
        while (unit := next_unit(worker)) is not None:
            port = server_port() if worker == 0 else free_port()
            for run in run_unit(suite, unit, mode, results, pytest_args, port):
                line = f"  {mode:10} {run.module:44} {summary(counts([run])):36} "
                line += f"{run.seconds:6.0f}s" + (" (batch)" if len(unit) > 1 else "")
                with lock:
                    done.append(run)
                    each(run)
                    print(line + (f"  [{run.crashed}]" if run.crashed else ""), flush=True)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    order = {module: index for index, module in enumerate(modules)}
    return sorted(done, key=lambda run: order[run.module])


# --- the reference file ----------------------------------------------------------------------


def load_reference(version: str, modules: list[str]) -> list[ModuleRun]:
    """The reference runs of ``modules`` from the committed file; exits if it does not fit."""
    path = reference_path(version)
    if not path.exists():
        others = sorted(p.name for p in HERE.glob("reference-*.json"))
        raise SystemExit(
            f"conformance: no reference outcomes for the installed PyMongo {version} "
            f"({path.name} is missing; found: {', '.join(others) or 'none'}). "
            f"Record them with: {UPDATE_COMMAND}"
        )
    data = json.loads(path.read_text())
    if data.get("pymongo") != version:
        raise SystemExit(
            f"conformance: {path.name} holds PyMongo {data.get('pymongo')}'s outcomes, but "
            f"PyMongo {version} is installed. Record them with: {UPDATE_COMMAND}"
        )
    missing = [module for module in modules if module not in data["modules"]]
    if missing:
        raise SystemExit(
            f"conformance: {path.name} has no outcomes for {', '.join(missing)}. "
            f"Record them with: {UPDATE_COMMAND} {' '.join(missing)}"
        )
    runs = []
    for module in modules:
        entry = data["modules"][module]
        run = ModuleRun(module, "reference", entry["seconds"])
        tests = {tid: status for tid, status in entry["tests"].items() if tid not in DESELECTED}
        run.outcomes = {tid: Outcome(status, 0.0) for tid, status in tests.items()}
        runs.append(run)
    return runs


def expected_seconds(version: str) -> dict[str, float]:
    """How long each module took when the reference was recorded (to schedule long ones first)."""
    path = reference_path(version)
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {module: entry["seconds"] for module, entry in data.get("modules", {}).items()}


def write_reference(version: str, runs: list[ModuleRun], suite: Path) -> Path:
    """Store the reference outcomes (merged into the file when only some modules ran)."""
    path = reference_path(version)
    data = {"pymongo": version, "modules": {}}
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("pymongo") == version:
            data["modules"] = old["modules"]
    for run in runs:
        if run.crashed:
            print(f"conformance: {run.module} crashed ({run.crashed}); not recorded")
            continue
        tests = {tid: outcome.status for tid, outcome in sorted(run.outcomes.items())}
        data["modules"][run.module] = {"seconds": round(run.seconds, 1), "tests": tests}
    known = set(all_modules(suite))
    data["modules"] = {m: e for m, e in sorted(data["modules"].items()) if m in known}
    data["left_out"] = dict(sorted(LEFT_OUT.items()))
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return path


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="PyMongo test modules (default: all)")
    parser.add_argument(
        "--update-reference",
        action="store_true",
        help="run plain PyMongo only and record its outcomes in reference-<version>.json",
    )
    parser.add_argument("--both", action="store_true", help="run plain PyMongo too, not the file")
    parser.add_argument("--subset", choices=["all", "quick"], default="all")
    parser.add_argument("--jobs", type=int, default=2, help="modules run at once (default 2)")
    parser.add_argument("--results", type=Path, default=CACHE / "results")
    parser.add_argument("-k", dest="keyword", help="passed to pytest -k")
    args = parser.parse_args(argv)

    version = pymongo_version()
    suite = suite_dir("PyMongo", version, CACHE)
    chosen = [m.removesuffix(".py") for m in args.modules]
    modules = chosen or (QUICK if args.subset == "quick" else all_modules(suite))
    unknown = [m for m in modules if m not in all_modules(suite)]
    if unknown:
        reasons = [f"{m} ({LEFT_OUT[m]})" if m in LEFT_OUT else m for m in unknown]
        raise SystemExit(f"conformance: not a module this runs: {', '.join(reasons)}")
    pytest_args = ["-k", args.keyword] if args.keyword else []
    exclusions = read_exclusions(EXCLUSIONS)
    expected = expected_seconds(version)
    print(f"PyMongo {version} test suite from {suite}; {len(modules)} modules", flush=True)
    started = time.monotonic()

    def live(mode: str) -> list[ModuleRun]:
        return run_all(suite, modules, mode, args.results, pytest_args, args.jobs, expected)

    if args.update_reference:
        if args.keyword:
            raise SystemExit("conformance: --update-reference records whole modules; drop -k")
        record = lambda run: write_reference(version, [run], suite)  # noqa: E731 - as it goes
        reference = run_all(
            suite, modules, "reference", args.results, [], args.jobs, expected, record
        )
        path = reference_path(version)
        c = counts(reference)
        print(f"recorded {path.name}: {summary(c)}, {c['xfailed']} xfailed")
        return 1 if any(run.crashed for run in reference) else 0

    runs: dict[str, list[ModuleRun]] = {}
    runs["reference"] = live("reference") if args.both else load_reference(version, modules)
    runs["greenmotor"] = live("greenmotor")
    if args.keyword:  # compare only the tests that ran
        ran = {tid for run in runs["greenmotor"] for tid in run.outcomes}
        for run in runs["reference"]:
            run.outcomes = {tid: o for tid, o in run.outcomes.items() if tid in ran}

    rerun_flaky(runs, exclusions, module_of, lambda run, ids: rerun(suite, args.results, run, ids))
    print_table(runs)
    for mode in MODES:
        c = counts(runs[mode])
        seconds = sum(run.seconds for run in runs[mode])
        print(f"{mode}: {summary(c)}, {c['xfailed']} xfailed in {seconds / 60:.1f} min")
    print(f"wall time: {(time.monotonic() - started) / 60:.1f} min with {args.jobs} jobs")

    problems = compare(runs, exclusions, lambda p: module_of(p) in modules and not args.keyword)
    crashed = [f"{r.mode} {r.module}: {r.crashed}" for rs in runs.values() for r in rs if r.crashed]
    for line in crashed:
        print(f"CRASHED {line}")
    print(f"conformance: {summary(counts(runs['greenmotor']))}", flush=True)
    return 1 if problems or crashed else 0


def print_table(runs: dict[str, list[ModuleRun]]) -> None:
    print(f"  {'module':44} {'PyMongo p / f / s':>20} {'greenmotor p / f / s':>22}")
    for ref, green in zip(runs["reference"], runs["greenmotor"], strict=True):
        r, g = counts([ref]), counts([green])
        left = f"{r['passed']} / {r['failed']} / {r['skipped']}"
        right = f"{g['passed']} / {g['failed']} / {g['skipped']}"
        print(f"  {ref.module:44} {left:>20} {right:>22}")


def rerun(suite: Path, results: Path, run: ModuleRun, test_ids: list[str]) -> ModuleRun:
    targets = [f"test/{test_id}" for test_id in test_ids]
    return run_module(suite, run.module, "greenmotor-rerun", results, [], targets)


if __name__ == "__main__":
    sys.exit(main())
