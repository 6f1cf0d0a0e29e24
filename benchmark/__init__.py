"""greenmotor's benchmark suite: greenmotor (also on uvloop), Motor 3, AsyncMongoClient and
sync PyMongo side by side against a canned-reply server.

Run it from the repository root::

    tools/run-benchmarks            # makes .venv, installs .[bench], runs everything
    python -m benchmark --quick     # in an environment that has .[bench] installed

Modules: :mod:`benchmark.suite` (rounds, placements, servers: writes the JSON),
:mod:`benchmark.worker` (one contender on one measurement, in its own process),
:mod:`benchmark.report` (the JSON to tables and charts for ``doc/benchmarks.rst``) and
``canned_server.py`` (the server).
"""
