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
import importlib.metadata
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "test"))

from support.conformance_common import (  # noqa: E402
    MODES,
    ModuleRun,
    PytestRun,
    compare,
    counts,
    read_exclusions,
    rerun_flaky,
    suite_dir,
    summary,
)

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

PER_TEST_TIMEOUT = 120  # seconds; a hang fails one test instead of the run
PER_MODULE_TIMEOUT = 1800


def pymongo_version() -> str:
    return importlib.metadata.version("pymongo")


def run_module(
    suite: Path,
    module: str,
    mode: str,
    results: Path,
    pytest_args: list[str],
    targets: list[str] | None = None,
) -> ModuleRun:
    """Run one module (or some of its tests) on a fresh server; mode "greenmotor*" uses synchro."""
    pytest = PytestRun(suite, results, [HERE, REPO], PER_TEST_TIMEOUT, PER_MODULE_TIMEOUT)
    plugin = ["-p", "synchro_plugin"] if mode.startswith("greenmotor") else []
    return pytest.run(module, mode, targets or [f"test/{module}.py"], plugin + pytest_args)


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
    suite = suite_dir("PyMongo", version, CACHE)
    exclusions = read_exclusions(EXCLUSIONS)
    print(f"PyMongo {version} test suite from {suite}; modules: {' '.join(modules)}", flush=True)

    runs: dict[str, list[ModuleRun]] = {mode: [] for mode in modes}
    for mode in modes:
        for module in modules:
            run = run_module(suite, module, mode, args.results, pytest_args)
            runs[mode].append(run)
            line = f"  {mode:10} {module:32} {summary(counts([run])):36} {run.seconds:6.0f}s"
            print(line + (f"  [{run.crashed}]" if run.crashed else ""), flush=True)

    if len(modes) == 2:
        rerun_flaky(
            runs,
            exclusions,
            lambda test_id: test_id.partition(".py")[0],
            lambda run, ids: rerun(suite, args.results, run, ids),
        )
    for mode in modes:
        c = counts(runs[mode])
        seconds = sum(run.seconds for run in runs[mode])
        print(f"{mode}: {summary(c)}, {c['xfailed']} xfailed in {seconds / 60:.1f} min")

    problems = compare(runs, exclusions, lambda p: in_scope(p, modules)) if len(modes) == 2 else 0
    crashed = [f"{r.mode} {r.module}: {r.crashed}" for rs in runs.values() for r in rs if r.crashed]
    for line in crashed:
        print(f"CRASHED {line}")
    last = runs[modes[-1]]
    print(f"conformance: {summary(counts(last))}", flush=True)
    return 1 if problems or crashed else 0


def in_scope(pattern: str, modules: list[str]) -> bool:
    """Whether an exclusion pattern names one of the modules run."""
    return pattern.split("::")[0].removesuffix(".py") in modules


def rerun(suite: Path, results: Path, run: ModuleRun, test_ids: list[str]) -> ModuleRun:
    targets = [f"test/{test_id}" for test_id in test_ids]
    return run_module(suite, run.module, "greenmotor-rerun", results, [], targets)


if __name__ == "__main__":
    sys.exit(main())
