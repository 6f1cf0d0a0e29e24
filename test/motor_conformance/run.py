"""Run Motor's own test suites twice: with real Motor (reference) and through greenmotor.

::

    python test/motor_conformance/run.py                        # both suites, both drivers
    python test/motor_conformance/run.py --suite tornado        # one suite
    python test/motor_conformance/run.py --only greenmotor --suite tornado -- -k test_find

What it does:

1. ``pip download`` the sdist of Motor 3.7.1 into ``.cache/motor-conformance`` (once; never
   committed) and extract its ``test/`` package and ``pyproject.toml`` (the suites' pytest
   configuration) into ``.cache/motor-conformance/suite-3.7.1``.
2. For each mode and each suite (``test/tornado_tests``, ``test/asyncio_tests``), start a
   fresh SecantusDB, run ``pytest`` on the suite's directory with ``DB_IP``/``DB_PORT``
   pointing at it, and read the JUnit XML it writes. The reference is the real Motor
   installed here; the greenmotor mode adds ``-p motor_redirect``, which makes ``import
   motor`` (and ``motor.motor_tornado``, ``motor.motor_asyncio``...) give greenmotor's modules.
   A module that fails to import is a collection error; pytest goes on with the others, and
   each test of that module that real Motor ran counts as failed for greenmotor.
3. Compare: every test that passes with Motor must pass with greenmotor, unless
   ``exclusions.txt`` lists it with a reason (only tests of Motor's internals belong there).
   Print a table per module, the unexplained failures and stale exclusions; the last line is
   ``motor-conformance: N passed, M failed, K skipped`` for greenmotor. Exit status 1 if a
   test fails with greenmotor that passes with Motor and is not excluded.

Arguments after ``--`` go to pytest (``-k``, ``-x``...); with them no exclusion is reported stale.
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

from support import conformance_common as common  # noqa: E402
from support.conformance_common import ModuleRun  # noqa: E402

MOTOR_VERSION = "3.7.1"
CACHE = Path(
    os.environ.get("GREENMOTOR_MOTOR_CONFORMANCE_CACHE", REPO / ".cache" / "motor-conformance")
)
EXCLUSIONS = HERE / "exclusions.txt"

#: --suite name -> the suite's directory below Motor's test/.
SUITES = {"tornado": "tornado_tests", "asyncio": "asyncio_tests"}

#: Overrides of Motor's pytest configuration (pyproject.toml): run every test rather than
#: stop at 10 failures, keep its INFO log off the console, and leave its unittest-style
#: tests to unittest (pytest-asyncio, installed for PyMongo's suite, breaks them). The
#: runner adds its own --junitxml, which replaces Motor's.
MOTOR_ARGS = [
    "--maxfail=100000", "-o", "log_cli_level=WARNING", "-p", "no:asyncio",
    "--continue-on-collection-errors",
]  # fmt: skip
PER_TEST_TIMEOUT = 60  # seconds; a hang fails one test instead of the run
PER_SUITE_TIMEOUT = 1800


def run_suite(suite: Path, directory: str, mode: str, results: Path, targets: list[str],
              pytest_args: list[str]) -> ModuleRun:  # fmt: skip
    """Run one suite directory (or some of its tests) on a fresh server."""
    pytest = common.PytestRun(
        suite, results, [HERE, REPO], PER_TEST_TIMEOUT, PER_SUITE_TIMEOUT,
        package=f"test.{directory}", id_prefix=f"{directory}/",
    )  # fmt: skip
    plugin = ["-p", "motor_redirect"] if mode.startswith("greenmotor") else []
    return pytest.run(directory, mode, targets, MOTOR_ARGS + plugin + pytest_args)


COLUMN = {"passed": 0, "failed": 1, "skipped": 2, "xfailed": 2}


def module_table(runs: dict[str, list[ModuleRun]]) -> list[str]:
    """One line per test module: passed / failed / skipped in each mode, then the totals."""
    per_module: dict[str, dict[str, list[int]]] = {}
    for mode, mode_runs in runs.items():
        for run in mode_runs:
            for test_id, outcome in run.outcomes.items():
                row = per_module.setdefault(test_id.split("::")[0], {})
                row.setdefault(mode, [0, 0, 0])[COLUMN[outcome.status]] += 1
    modes = list(runs)
    lines = [f"  {'module':48}" + "".join(f"{m + ' p/f/s':>22}" for m in modes)]
    for module in sorted(per_module):
        cells = [per_module[module].get(mode) for mode in modes]
        lines.append(f"  {module:48}" + "".join(f"{cell_text(c):>22}" for c in cells))
    totals = []
    for mode in modes:
        c = common.counts(runs[mode])
        totals.append([c["passed"], c["failed"], c["skipped"] + c["xfailed"]])
    lines.append(f"  {'total':48}" + "".join(f"{cell_text(c):>22}" for c in totals))
    return lines


def cell_text(cell: list[int] | None) -> str:
    return " / ".join(map(str, cell)) if cell else "-"


def first_line(message: str) -> str:
    return (message.strip().splitlines() or [""])[0][:200]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Arguments after -- go to pytest."
    )
    parser.add_argument("--suite", choices=sorted(SUITES), help="run one suite only")
    parser.add_argument("--only", choices=common.MODES, help="run one mode only")
    parser.add_argument("--results", type=Path, default=CACHE / "results")
    args = parser.parse_args(argv)

    directories = [SUITES[args.suite]] if args.suite else list(SUITES.values())
    modes = [args.only] if args.only else list(common.MODES)
    suite = common.suite_dir("Motor", MOTOR_VERSION, CACHE)
    exclusions = common.read_exclusions(EXCLUSIONS)
    installed = importlib.metadata.version("motor")
    print(f"Motor {MOTOR_VERSION} test suites from {suite} ({' '.join(directories)}); "
          f"reference: Motor {installed}, PyMongo {importlib.metadata.version('pymongo')}",
          flush=True)  # fmt: skip
    if installed != MOTOR_VERSION and "reference" in modes:
        print(f"WARNING: the reference runs Motor {installed}, not {MOTOR_VERSION}")

    runs: dict[str, list[ModuleRun]] = {mode: [] for mode in modes}
    for mode in modes:
        for directory in directories:
            run = run_suite(suite, directory, mode, args.results, [f"test/{directory}"],
                            pytest_args)  # fmt: skip
            runs[mode].append(run)
            result = common.summary(common.counts([run]))
            line = f"  {mode:10} {directory:16} {result:36} {run.seconds:6.0f}s"
            print(line + (f"  [{run.crashed}]" if run.crashed else ""), flush=True)

    problems = 0
    if len(modes) == 2:
        common.expand_collection_errors(runs)
        common.rerun_flaky(
            runs, exclusions, module_of=lambda test_id: test_id.split("/")[0],
            rerun=lambda run, test_ids: run_suite(
                suite, run.module, "greenmotor-rerun", args.results,
                [f"test/{test_id}" for test_id in test_ids], [],
            ),
        )  # fmt: skip
    print("per module (passed / failed / skipped):")
    for line in module_table(runs):
        print(line)
    for mode in modes:
        seconds = sum(run.seconds for run in runs[mode])
        print(f"{mode}: {common.summary(common.counts(runs[mode]))} in {seconds:.0f} s")
    if len(modes) == 2:
        suites_run = set(directories)
        problems = common.compare(
            runs, exclusions, driver="Motor", brief=first_line,
            in_scope=lambda pattern: not pytest_args and pattern.split("/")[0] in suites_run,
        )  # fmt: skip
    else:
        for run in runs[modes[0]]:
            for test_id, outcome in sorted(run.outcomes.items()):
                if outcome.status == "failed":
                    excluded = " [excluded]" if common.exclusion_for(test_id, exclusions) else ""
                    print(f"  FAILED{excluded} {test_id}: {first_line(outcome.message)}")
    crashed = [f"{r.mode} {r.module}: {r.crashed}" for rs in runs.values() for r in rs if r.crashed]
    for line in crashed:
        print(f"CRASHED {line}")
    print(f"motor-conformance: {common.summary(common.counts(runs[modes[-1]]))}", flush=True)
    return 1 if problems or crashed else 0


if __name__ == "__main__":
    sys.exit(main())
