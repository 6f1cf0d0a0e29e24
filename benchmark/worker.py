"""One contender, one measurement, in a process of its own (started by :mod:`benchmark.suite`).

::

    python -m benchmark.worker '{"contender": "greenmotor", "uri": "mongodb://127.0.0.1:PORT/",
                                 "kind": "curve", "n": 50, "ops": 3000}'

prints ``RESULT <json>`` and leaves with ``os._exit``: closing 10,000 connections is not part
of any measurement. Kinds (``n`` is the concurrency or the number of pending operations):

- ``curve``: ``n`` coroutines share ``ops`` ``find_one`` calls; throughput and latency.
- ``lag``: ``n`` coroutines loop on ``find_one`` for ``seconds``; meanwhile a 5 ms timer on
  the same loop re-arms itself and records how late it fires.
- ``slow``: ``n`` concurrent commands that the server answers after 1 s, from a client that
  has only pinged (one connection); wall time and peak RSS per pending operation.
- ``seq``: ``ops`` of each of ping, find_one and insert_one, one after another; throughput
  and the client process's CPU time per operation.

Every contender runs the same code below; only :func:`open_client` differs.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

DOCS = 1000  # the canned server's collection: _id 0..DOCS-1
SERVER_PID: int | None = None  # the canned server's process, when the suite says which
TIMER_S = 0.005  # the lag measurement's timer
SLOW_MS = 1000  # the slow command's server-side delay
pc = time.perf_counter


def operation(db: Any, name: str) -> Callable[[int], Any]:
    """Operation ``i`` of a workload, for any driver whose calls look like PyMongo's."""
    if name == "ping":
        return lambda i: db.command("ping")
    if name == "find_one":
        return lambda i: db.docs.find_one({"_id": i % DOCS})
    if name == "insert_one":
        return lambda i: db.inserts.insert_one({"i": i, "s": "x" * 20})
    raise ValueError(name)


def open_client(contender: str, uri: str, options: dict[str, Any]) -> Any:
    """The contender's client; asynchronous ones are made inside the running loop."""
    if contender == "sync":
        import pymongo

        return pymongo.MongoClient(uri, **options)
    if contender == "async":
        import pymongo

        return pymongo.AsyncMongoClient(uri, **options)
    from tornado.ioloop import IOLoop

    if contender == "motor":
        from motor.motor_tornado import MotorClient
    else:  # greenmotor, greenmotor-uvloop, greenmotor-iostream
        from greenmotor import MotorClient, green_socket

        if contender.endswith("-iostream"):
            green_socket.use_socket_layer("iostream")
    return MotorClient(uri, io_loop=IOLoop.current(), **options)


def stats(latencies: list[float]) -> dict[str, float]:
    """p50, p99 (nearest rank) and max of a list of seconds, in microseconds."""
    ordered = sorted(latencies)
    n = len(ordered)
    rank = lambda q: ordered[min(n - 1, int(q * n))] * 1e6  # noqa: E731
    return {"p50_us": rank(0.50), "p99_us": rank(0.99), "max_us": ordered[-1] * 1e6}


def server_cpu_s() -> float:
    """CPU seconds the canned server has used so far (0.0 when its process is unknown)."""
    if SERVER_PID is None:
        return 0.0
    with open(f"/proc/{SERVER_PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def peak_rss() -> int:
    """The process's peak RSS in bytes (Linux: kilobytes in ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- Asynchronous contenders ---------------------------------------------------------------


async def run_async(spec: dict[str, Any]) -> dict[str, Any]:
    kind, n = spec["kind"], spec.get("n", 1)
    options = {"maxPoolSize": n} if kind == "slow" else {}
    client = open_client(spec["contender"], spec["uri"], options)
    db = client.bench
    await db.command("ping")
    try:
        if kind == "curve":
            return await curve(operation(db, "find_one"), n, spec["ops"])
        if kind == "lag":
            return await lag(operation(db, "find_one"), n, spec["seconds"])
        if kind == "slow":
            return await slow(db, n, spec["cap_s"])
        out: dict[str, Any] = {}
        for name in ("ping", "find_one", "insert_one"):
            out[name] = await curve(operation(db, name), 1, spec["ops"])
        return out
    finally:
        if kind != "slow":  # a capped slow run leaves operations behind; os._exit ends them
            closed = client.close()
            if inspect.isawaitable(closed):
                await closed


async def curve(call: Callable[[int], Awaitable[Any]], n: int, ops: int) -> dict[str, Any]:
    """``n`` coroutines, each running every n-th of ``ops`` operations in turn."""
    latencies: list[float] = []

    async def stream(first: int, total: int) -> None:
        for i in range(first, total, n):
            t0 = pc()
            await call(i)
            latencies.append(pc() - t0)

    async def warm(k: int, w: int) -> None:  # up to 200 at once: the pool fills up (100)
        for i in range(k, max(w, ops // 10), w):
            await call(i)

    await asyncio.gather(*(warm(k, min(n, 200)) for k in range(min(n, 200))))
    gc.collect()
    cpu0, server0, t0 = time.process_time(), server_cpu_s(), pc()
    await asyncio.gather(*(stream(k, ops) for k in range(n)))
    wall, cpu = pc() - t0, time.process_time() - cpu0
    assert len(latencies) == ops, (len(latencies), ops)
    return {
        "ops_per_s": ops / wall,
        "cpu_us_per_op": 1e6 * cpu / ops,
        # How busy the server's CPU was: near 1.0, the server, not the client, set the pace.
        "server_busy": (server_cpu_s() - server0) / wall if SERVER_PID else None,
        **stats(latencies),
    }


async def lag(call: Callable[[int], Awaitable[Any]], n: int, seconds: float) -> dict[str, Any]:
    """How late a re-arming 5 ms timer fires while ``n`` coroutines loop on ``call``."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    done = [0]
    running = True

    async def worker(k: int) -> None:
        i = k
        while running:
            await call(i)
            done[0] += 1
            i += n

    def fire(due: float) -> None:
        now = pc()
        late.append(max(0.0, now - due))
        if running:
            loop.call_later(TIMER_S, fire, pc() + TIMER_S)

    tasks = [asyncio.ensure_future(worker(k)) for k in range(n)]
    await asyncio.sleep(min(0.5, seconds / 4))  # warm-up: connections opened
    loop.call_later(TIMER_S, fire, pc() + TIMER_S)
    late.clear()
    done[0], t0 = 0, pc()
    await asyncio.sleep(seconds)
    running = False
    ops, wall = done[0], pc() - t0
    await asyncio.gather(*tasks)
    return {"ops_per_s": ops / wall, "timer_fired": len(late), **stats(late)}


async def slow(db: Any, n: int, cap_s: float) -> dict[str, Any]:
    """``n`` concurrent 1-second commands; wall time and peak RSS per pending operation."""
    gc.collect()
    base = rss()
    done = [0]

    async def one() -> None:
        await db.command({"slow": 1, "delayMS": SLOW_MS})
        done[0] += 1

    t0 = pc()
    gathered = asyncio.gather(*(one() for _ in range(n)))
    out: dict[str, Any] = {"capped": False}
    try:
        await asyncio.wait_for(asyncio.shield(gathered), cap_s)
        out["wall_s"] = pc() - t0
    except TimeoutError:  # Motor: 10 threads, 1 s each. Project from the rate so far.
        out.update(capped=True, wall_s=(pc() - t0) * n / max(1, done[0]), completed=done[0])
    out["rss_per_op"] = (peak_rss() - base) / n
    return out


# --- Sync PyMongo -----------------------------------------------------------------------------


def run_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """Sync PyMongo: sequential only (``curve`` with n = 1, ``seq``)."""
    db = open_client("sync", spec["uri"], {}).bench
    db.command("ping")
    names = ["find_one"] if spec["kind"] == "curve" else ["ping", "find_one", "insert_one"]
    out = {}
    for name in names:
        call, ops, latencies = operation(db, name), spec["ops"], []
        for i in range(max(1, ops // 10)):
            call(i)
        gc.collect()
        cpu0, t0 = time.process_time(), pc()
        for i in range(ops):
            t1 = pc()
            call(i)
            latencies.append(pc() - t1)
        wall, cpu = pc() - t0, time.process_time() - cpu0
        out[name] = {"ops_per_s": ops / wall, "cpu_us_per_op": 1e6 * cpu / ops, **stats(latencies)}
    return out["find_one"] if spec["kind"] == "curve" else out


def main() -> None:
    global SERVER_PID
    spec = json.loads(sys.argv[1])
    SERVER_PID = spec.get("server_pid")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 10,000 sockets
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        if spec["contender"] == "sync":
            result = run_sync(spec)
        elif spec["contender"].endswith("-uvloop"):
            import uvloop

            result = uvloop.run(run_async(spec))
        else:
            result = asyncio.run(run_async(spec))
    except Exception as exc:  # reported to the orchestrator, which goes on
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
