"""greenmotor's benchmark suite: greenlets vs. a thread pool vs. native async.

Run it from the repository root::

    tools/run-benchmarks            # makes .venv, installs .[bench], runs everything
    python -m benchmark --quick     # in an environment that has .[bench] installed

Modules: :mod:`benchmark.workloads` (what is measured), :mod:`benchmark.worker` (one
contender on one workload, in its own process), :mod:`benchmark.suite` (the orchestrator:
servers, placement, summaries, JSON), :mod:`benchmark.report` (JSON to
``doc/benchmarks.rst`` and charts), ``canned_server.py`` and ``ceiling.py`` (the
canned-reply server and its raw-socket ceiling).
"""
