"""What the suite measures: the workloads, their sizes, and the contenders' names.

A workload is plain data (a dict), so that the orchestrator can hand it to a worker
process on its command line and store it with the results. Sizes are per repetition::

    >>> from benchmark.workloads import suite
    >>> [w["name"] for w in suite("canned", quick=True)][:3]
    ['seq_ping', 'seq_find_one', 'seq_insert_one']
"""

from __future__ import annotations

import copy

# Contenders in the order the report lists them. "sync" is the floor: the same PyMongo
# code greenmotor runs, on one thread with nothing else to do.
CONTENDERS = {
    "sync": "PyMongo sync, 1 thread (floor)",
    "threads": "PyMongo sync on a ThreadPoolExecutor",
    "greenmotor": "greenmotor (greenlets, Tornado)",
    "motor": "Motor 3.7 (thread pool, Tornado)",
    "async": "PyMongo AsyncMongoClient (asyncio)",
}

# The documents every find reads: the canned server is started with these, and the
# orchestrator inserts the same number into SecantusDB before the run.
COLLECTION_DOCS = 1000
DOC_SIZE = 128

SLOW_DELAY_MS = 1000

# kind: sequential | concurrent | find_many | insert_many | slow
#   sequential:  `ops` single operations one after another.
#   concurrent:  `concurrency` coroutines (threads for the thread pool) share `ops`
#                operations, each running its share one after another.
#   find_many:   `ops` times: read all COLLECTION_DOCS documents, `batch_size` per batch.
#   insert_many: `ops` times: insert_many of `docs` small documents.
#   slow:        `ops` concurrent commands that the server answers after `delay_ms`, on a
#                "warm" pool (all connections opened first) or a "cold" one.
_CANNED = [
    dict(name="seq_ping", kind="sequential", op="ping", ops=2000, reps=5),
    dict(name="seq_find_one", kind="sequential", op="find_one", ops=2000, reps=5),
    dict(name="seq_insert_one", kind="sequential", op="insert_one", ops=2000, reps=5),
    dict(name="conc50_find_one", kind="concurrent", op="find_one", concurrency=50,
         ops=4000, reps=5),
    dict(name="conc500_find_one", kind="concurrent", op="find_one", concurrency=500,
         ops=6000, reps=5),
    dict(name="find_many", kind="find_many", batch_size=100, ops=40, reps=5),
    dict(name="insert_many", kind="insert_many", docs=1000, ops=30, reps=5),
    dict(name="slow1000_warm", kind="slow", ops=1000, pool="warm", reps=3),
    dict(name="slow1000_cold", kind="slow", ops=1000, pool="cold", reps=3),
    dict(name="slow10000_warm", kind="slow", ops=10000, pool="warm", reps=2),
    dict(name="slow10000_cold", kind="slow", ops=10000, pool="cold", reps=2),
]  # fmt: skip

# SecantusDB is a Python server: ~2,500 round trips/s. Its figures show what the drivers'
# differences are worth against real storage, so fewer and smaller workloads will do. It
# has no delayed command, so no slow workloads. Its inserts slow down as it accumulates
# data, so the suite gives every contender a fresh server for the writing workloads.
_SECANTUS = [
    dict(name="seq_ping", kind="sequential", op="ping", ops=1000, reps=3),
    dict(name="seq_find_one", kind="sequential", op="find_one", ops=1000, reps=3),
    dict(name="seq_insert_one", kind="sequential", op="insert_one", ops=600, reps=3),
    dict(name="conc50_find_one", kind="concurrent", op="find_one", concurrency=50,
         ops=2000, reps=3),
    dict(name="find_many", kind="find_many", batch_size=100, ops=15, reps=3),
    dict(name="insert_many", kind="insert_many", docs=1000, ops=5, reps=3),
]  # fmt: skip

# --quick: a smoke run of a few minutes; same workloads, a fifth of the operations, two
# repetitions, the 1,000-operation slow workloads only.
_QUICK_SKIP = {"slow10000_warm", "slow10000_cold", "conc500_find_one"}


def _finish(workload: dict) -> dict:
    workload = dict(workload)
    workload.setdefault("warmup", max(20, workload["ops"] // 10))
    if workload["kind"] == "slow":
        workload.setdefault("delay_ms", SLOW_DELAY_MS)
        workload["warmup"] = 0
    if workload["kind"] in ("find_many", "insert_many"):
        workload["warmup"] = max(2, workload["ops"] // 10)
    return workload


def suite(server: str, quick: bool = False, scale: float = 1.0) -> list[dict]:
    """The workloads to run against ``server`` ("canned" or "secantus").

    ``scale`` multiplies the operation counts of the quick workloads (the smoke test uses a
    tiny one); slow workloads keep their size unless ``quick``.
    """
    base = copy.deepcopy(_CANNED if server == "canned" else _SECANTUS)
    out = []
    for workload in base:
        if quick:
            if workload["name"] in _QUICK_SKIP:
                continue
            workload["reps"] = 1 if workload["kind"] == "slow" else 2
            if workload["kind"] != "slow":
                workload["ops"] = max(1, workload["ops"] // 5)
        if workload["kind"] != "slow":
            workload["ops"] = max(1, int(workload["ops"] * scale))
        out.append(_finish(workload))
    return out


def writes(workload: dict) -> bool:
    return workload["kind"] == "insert_many" or workload.get("op") == "insert_one"


def applies(contender: str, workload: dict) -> bool:
    """Whether a contender runs a workload at all.

    The sync floor cannot have operations pending concurrently: for slow workloads its
    figure is computed (N one-second operations in a row take N seconds), not measured.
    For the concurrent quick workloads it runs the same operations one after another, the
    best one thread can do.
    """
    return not (contender == "sync" and workload["kind"] == "slow")
