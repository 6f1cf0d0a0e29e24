"""A forking Tornado process, run by test_fork.py as its own program (never imported).

``python test/support/fork_workers.py URI DATABASE MODE WORKERS`` forks WORKERS children with
``tornado.process.fork_processes``; each child runs a few operations on its own IOLoop and
records what happened in DATABASE.workers (task id, pid, warnings, error). MODE says where
the MotorClient comes from:

* ``after`` - each child creates its client after the fork (the supported way);
* ``before-unused`` - one client created before the fork, first used in the children;
* ``before-used`` - one client created *and used* in the parent before the fork.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
import warnings

import pymongo
import tornado.process
from tornado.ioloop import IOLoop

import greenmotor


def main() -> None:
    uri, database, mode, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    early = None
    if mode in ("before-unused", "before-used"):
        early = greenmotor.MotorClient(uri)
    if mode == "before-used":
        parent_loop = IOLoop(make_current=False)
        parent_loop.run_sync(lambda: early.admin.command("ping"))
        parent_loop.close()

    task_id = tornado.process.fork_processes(workers, max_restarts=0)
    # Only children get here; the parent exits inside fork_processes once they all have.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        error = None
        try:
            IOLoop(make_current=False).run_sync(lambda: work(uri, database, task_id, early))
        except Exception:  # reported to the test
            error = traceback.format_exc()
    report = {
        "task": task_id,
        "pid": os.getpid(),
        "mode": mode,
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "error": error,
    }
    with pymongo.MongoClient(uri) as plain:
        plain[database].workers.insert_one(report)


async def work(uri: str, database: str, task_id: int, early) -> None:
    client = early if early is not None else greenmotor.MotorClient(uri)
    coll = client[database].docs
    await coll.insert_one({"task": task_id, "pid": os.getpid()})
    # Many operations at once: greenlets and the pool must work in the child.
    found = await asyncio.gather(*[coll.find_one({"task": task_id}) for _ in range(20)])
    assert all(doc["pid"] == os.getpid() for doc in found)
    client.close()


if __name__ == "__main__":
    main()
