"""One contender running one workload, in a process of its own.

The orchestrator (:mod:`benchmark.suite`) starts one worker per contender and workload, so
memory and thread counts belong to that contender alone. The worker connects, warms up,
runs the repetitions, prints one line ``RESULT <json>`` and exits at once (``os._exit``:
tearing down 10,000 connections or threads is not part of any measurement)::

    python -m benchmark.worker '{"contender": "greenmotor", "uri": "mongodb://127.0.0.1:PORT",
        "workload": {"name": "seq_ping", "kind": "sequential", "op": "ping", "ops": 100,
                     "reps": 1, "warmup": 10}}'

Every contender runs the same harness code; only the few lines that call the driver differ
(the ``*Contender`` classes). Asynchronous contenders run their operations from coroutines
on one asyncio loop, which for Tornado contenders is the loop under ``IOLoop.current()``.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import json
import os
import pstats
import resource
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from benchmark.workloads import COLLECTION_DOCS

DB_NAME = "bench"
READ_COLL = "docs"  # COLLECTION_DOCS documents with _id 0..N-1 (canned: every collection)
FILLER = "x" * 20


# --- Process measurements ---------------------------------------------------------------


def quick_op(db, coll, inserts, name: str):
    """The quick workloads' operation ``i``, for any driver whose calls look like PyMongo's."""
    if name == "ping":
        return lambda i: db.command("ping")
    if name == "find_one":
        return lambda i: coll.find_one({"_id": i % COLLECTION_DOCS})
    if name == "insert_one":
        return lambda i: inserts.insert_one({"i": i, "s": FILLER})
    raise ValueError(name)


class Probe:
    """RSS, peak RSS and thread count of this process, from /proc (psutil elsewhere).

    On Linux the peak (VmHWM) can be reset by writing 5 to /proc/self/clear_refs, so the
    peak of one phase is measured exactly without a sampling thread.
    """

    def __init__(self) -> None:
        self.proc = os.path.exists("/proc/self/status")
        self.can_reset_peak = False
        self.sampled_peak_rss = 0
        self.peak_threads = 0

    def status(self) -> dict:
        if self.proc:
            fields = {}
            with open("/proc/self/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        fields[key] = int(value.split()[0]) * 1024
                    elif key == "Threads":
                        fields[key] = int(value)
            out = {"rss": fields["VmRSS"], "hwm": fields["VmHWM"], "threads": fields["Threads"]}
        else:
            import psutil

            p = psutil.Process()
            rss = p.memory_info().rss
            out = {"rss": rss, "hwm": rss, "threads": p.num_threads()}
        self.sampled_peak_rss = max(self.sampled_peak_rss, out["rss"])
        self.peak_threads = max(self.peak_threads, out["threads"])
        return out

    def reset_peak(self) -> dict:
        """Start a new peak from now; returns the current status."""
        if self.proc:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.can_reset_peak = True
            except OSError:
                self.can_reset_peak = False
        self.sampled_peak_rss = 0
        self.peak_threads = 0
        return self.status()

    def peak_rss(self) -> int:
        now = self.status()
        return now["hwm"] if self.can_reset_peak else self.sampled_peak_rss

    @staticmethod
    def open_fds() -> int:
        try:
            return len(os.listdir("/proc/self/fd"))
        except OSError:
            return -1


def raise_fd_limit() -> None:
    """10,000 pooled connections need 10,000 descriptors; the soft limit is often 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def percentiles(latencies: list[float]) -> dict:
    """p50 and p99 in microseconds (nearest-rank)."""
    if not latencies:
        return {"p50_us": None, "p99_us": None}
    ordered = sorted(latencies)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, int(round(q * n + 0.5)) - 1))] * 1e6

    return {"p50_us": rank(0.50), "p99_us": rank(0.99)}


def new_docs(count: int, start: int) -> list[dict]:
    return [{"i": start + k, "s": FILLER} for k in range(count)]


# --- Contenders: the only driver-specific code ------------------------------------------
#
# Each gives awaitables (or, for "sync", plain calls) for: ping, find_one by _id,
# insert_one, reading the whole collection in batches, insert_many, and a raw command.


class AsyncContender:
    """Base for contenders driven from coroutines on one asyncio loop."""

    name = "?"
    max_parallel: int | None = None  # operations that can be in progress at once

    def run(self, main):
        return asyncio.run(main())

    async def close(self) -> None:
        self.client.close()

    def bind(self, client) -> None:
        self.client = client
        self.db = client[DB_NAME]
        self.coll = self.db[READ_COLL]
        self.inserts = self.db["inserts_" + self.name]

    def op(self, name: str):
        return quick_op(self.db, self.coll, self.inserts, name)

    def find_all(self, batch_size: int):
        return self.coll.find({}, batch_size=batch_size).to_list(None)

    def insert_docs(self, docs: list[dict]):
        return self.inserts.insert_many(docs)

    def command(self, cmd: dict):
        return self.db.command(cmd)

    def drop_inserts(self):
        return self.inserts.drop()


class GreenmotorContender(AsyncContender):
    name = "greenmotor"

    async def connect(self, uri: str, options: dict) -> None:
        from tornado.ioloop import IOLoop

        import greenmotor

        self.bind(greenmotor.MotorClient(uri, io_loop=IOLoop.current(), **options))


class MotorContender(AsyncContender):
    name = "motor"

    async def connect(self, uri: str, options: dict) -> None:
        from motor import motor_tornado
        from motor.frameworks import tornado as motor_framework
        from tornado.ioloop import IOLoop

        # Motor runs every operation on one module-wide ThreadPoolExecutor
        # (5 x cpu_count workers unless MOTOR_MAX_WORKERS is set).
        self.max_parallel = motor_framework._EXECUTOR._max_workers
        self.bind(motor_tornado.MotorClient(uri, io_loop=IOLoop.current(), **options))


class AsyncMongoContender(AsyncContender):
    name = "async"

    async def connect(self, uri: str, options: dict) -> None:
        import pymongo

        self.bind(pymongo.AsyncMongoClient(uri, **options))

    async def close(self) -> None:
        await self.client.close()


class ThreadsContender(AsyncContender):
    """Sync PyMongo called from the loop through loop.run_in_executor, one thread per
    operation that may be in progress (the workload's concurrency), at most MAX_THREADS."""

    name = "threads"
    # 10,000 threads sharing one CPU and the GIL did not even finish opening their
    # connections in 8 minutes (GIL hand-offs among thousands of runnable threads); the
    # 1,000-operation workloads already show what a thread per waiting operation costs.
    MAX_THREADS = 1000

    def __init__(self, workers: int) -> None:
        workers = min(workers, self.MAX_THREADS)
        self.executor = ThreadPoolExecutor(max_workers=workers)
        self.max_parallel = workers

    async def connect(self, uri: str, options: dict) -> None:

        self.sync = SyncContender()
        self.sync.connect(uri, options)
        self.bind(self.sync.client)

    def _call(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def op(self, name: str):
        sync_op = self.sync.op(name)
        run = self._call
        return lambda i: run(sync_op, i)

    def find_all(self, batch_size: int):
        return self._call(self.sync.find_all, batch_size)

    def insert_docs(self, docs: list[dict]):
        return self._call(self.sync.insert_docs, docs)

    def command(self, cmd: dict):
        return self._call(self.sync.command, cmd)

    def drop_inserts(self):
        return self._call(self.sync.drop_inserts)

    async def close(self) -> None:
        self.sync.client.close()


class SyncContender:
    """Plain PyMongo on the main thread: no loop, nothing else to do. The floor."""

    name = "sync"

    def connect(self, uri: str, options: dict) -> None:
        import pymongo

        self.client = pymongo.MongoClient(uri, **options)
        self.db = self.client[DB_NAME]
        self.coll = self.db[READ_COLL]
        self.inserts = self.db["inserts_sync"]

    def op(self, name: str):
        return quick_op(self.db, self.coll, self.inserts, name)

    def find_all(self, batch_size: int) -> list:
        return list(self.coll.find({}, batch_size=batch_size))

    def insert_docs(self, docs: list[dict]):
        return self.inserts.insert_many(docs)

    def command(self, cmd: dict):
        return self.db.command(cmd)

    def drop_inserts(self):
        return self.inserts.drop()


# --- The harness -------------------------------------------------------------------------


class Timer:
    """Wall and CPU time of one repetition."""

    def __enter__(self) -> Timer:
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.cpu0


def rep_record(timer: Timer, ops: int, latencies: list[float], docs: int = 0) -> dict:
    record = {
        "ops": ops,
        "elapsed_s": timer.elapsed,
        "ops_per_s": ops / timer.elapsed,
        "cpu_us_per_op": 1e6 * timer.cpu / ops,
        **percentiles(latencies),
    }
    if docs:
        record["docs_per_s"] = docs / timer.elapsed
    return record


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError("benchmark sanity check failed: " + message)


async def async_quick(c: AsyncContender, w: dict, profiler) -> list[dict]:
    """Quick workloads for the asynchronous contenders; one record per repetition."""
    kind = w["kind"]
    pc = time.perf_counter

    async def sequence(call, start: int, count: int, lat: list) -> None:
        for i in range(start, start + count):
            t0 = pc()
            await call(i)
            lat.append(pc() - t0)

    async def batch(count: int, lat: list) -> int:
        docs = 0
        if kind == "find_many":
            for _ in range(count):
                t0 = pc()
                got = await c.find_all(w["batch_size"])
                lat.append(pc() - t0)
                docs += len(got)
        else:
            lists = [new_docs(w["docs"], k * w["docs"]) for k in range(count)]
            for docs_list in lists:
                t0 = pc()
                await c.insert_docs(docs_list)
                lat.append(pc() - t0)
                docs += len(docs_list)
        return docs

    async def run(count: int, lat: list) -> int:
        if kind == "sequential":
            await sequence(call, 0, count, lat)
        elif kind == "concurrent":
            n = w["concurrency"]
            shares = [count // n + (1 if k < count % n else 0) for k in range(n)]
            starts = [sum(shares[:k]) for k in range(n)]
            await asyncio.gather(*(sequence(call, s, k, lat) for s, k in zip(starts, shares)))
        else:
            return await batch(count, lat)
        return 0

    if kind in ("sequential", "concurrent"):
        call = c.op(w["op"])
        # Check once that the operation does what it says.
        result = await call(1)
        if w["op"] == "find_one":
            check(result is not None and "_id" in result, "find_one returned %r" % (result,))
    if kind == "find_many":
        got = await c.find_all(w["batch_size"])
        check(len(got) == COLLECTION_DOCS, "find returned %d documents" % len(got))
    await run(w["warmup"], [])
    records = []
    for _ in range(w["reps"]):
        lat: list[float] = []
        gc.collect()
        if profiler:
            profiler.enable()
        with Timer() as timer:
            docs = await run(w["ops"], lat)
        if profiler:
            profiler.disable()
        check(len(lat) == w["ops"], "%d of %d operations timed" % (len(lat), w["ops"]))
        records.append(rep_record(timer, w["ops"], lat, docs))
    return records


def sync_quick(c: SyncContender, w: dict, profiler) -> list[dict]:
    """The same workloads on one thread; concurrent ones run one operation at a time."""
    kind = w["kind"]
    pc = time.perf_counter

    def run(count: int, lat: list) -> int:
        docs = 0
        if kind in ("sequential", "concurrent"):
            for i in range(count):
                t0 = pc()
                call(i)
                lat.append(pc() - t0)
        elif kind == "find_many":
            for _ in range(count):
                t0 = pc()
                docs += len(c.find_all(w["batch_size"]))
                lat.append(pc() - t0)
        else:
            lists = [new_docs(w["docs"], k * w["docs"]) for k in range(count)]
            for docs_list in lists:
                t0 = pc()
                c.insert_docs(docs_list)
                lat.append(pc() - t0)
                docs += len(docs_list)
        return docs

    if kind in ("sequential", "concurrent"):
        call = c.op(w["op"])
        call(1)
    if kind == "find_many":
        check(len(c.find_all(w["batch_size"])) == COLLECTION_DOCS, "find returned too few")
    run(w["warmup"], [])
    records = []
    for _ in range(w["reps"]):
        lat: list[float] = []
        gc.collect()
        if profiler:
            profiler.enable()
        with Timer() as timer:
            docs = run(w["ops"], lat)
        if profiler:
            profiler.disable()
        records.append(rep_record(timer, w["ops"], lat, docs))
    return records


async def async_slow(c: AsyncContender, w: dict, probe: Probe, cap_s: float) -> dict:
    """``ops`` concurrent slow commands; wall time, memory, threads and descriptors.

    Memory per pending operation is (peak RSS - RSS before any of the N connections
    existed) / N, so on both pools it includes the operation's connection.
    """
    n = w["ops"]
    loop = asyncio.get_running_loop()
    gc.collect()
    base = probe.reset_peak()
    record = {"ops": n, "rss_base": base["rss"], "threads_base": base["threads"],
              "fds_base": probe.open_fds()}  # fmt: skip

    sampling = True

    def sample() -> None:  # a loop callback every 20 ms: no extra thread to count
        if sampling:
            probe.status()
            loop.call_later(0.02, sample)

    sample()
    if w["pool"] == "warm":
        # Hold N commands open on the server until all N have arrived: afterwards the pool
        # has N idle connections. A contender that can't have N in progress (Motor's
        # executor) gets as many as it can use.
        parties = min(n, c.max_parallel or n)
        name = uuid.uuid4().hex
        barrier = {"barrier": name, "parties": parties, "timeoutMS": 300000}
        t0 = time.perf_counter()
        replies = await asyncio.gather(*(c.command(barrier) for _ in range(parties)))
        record["warmup_s"] = time.perf_counter() - t0
        check(all(r["arrived"] == parties for r in replies), "barrier did not fill")
        record["warm_connections"] = parties
        now = probe.status()
        record["rss_after_warmup"] = now["rss"]
        record["fds_after_warmup"] = probe.open_fds()
        record["rss_per_connection"] = (now["rss"] - base["rss"]) / parties

    slow = {"slow": 1, "delayMS": w["delay_ms"]}
    done = 0
    pc = time.perf_counter
    last = [0.0]

    async def one() -> None:
        nonlocal done
        await c.command(slow)
        done += 1
        last[0] = pc()

    cpu0 = time.process_time()
    t0 = pc()
    gathered = asyncio.gather(*(one() for _ in range(n)))
    try:
        await asyncio.wait_for(asyncio.shield(gathered), cap_s)
        record["capped"] = False
        record["wall_s"] = last[0] - t0
    except TimeoutError:
        # Did not finish within the cap (Motor: 10 threads, 1 s each): report how far it
        # got and the wall time its rate projects, then abandon the rest.
        elapsed = pc() - t0
        record["capped"] = True
        record["cap_s"] = cap_s
        record["wall_s"] = elapsed * n / max(done, 1)
    record["completed"] = done
    record["cpu_s"] = time.process_time() - cpu0
    if not gathered.done():
        gathered.cancel()
        try:
            await gathered
        except asyncio.CancelledError:
            pass
    sampling = False
    peak = probe.peak_rss()
    after = probe.status()
    record["fds_after_run"] = probe.open_fds()
    record["rss_peak"] = peak
    record["rss_per_pending_op"] = (peak - base["rss"]) / n
    record["threads_peak"] = probe.peak_threads
    record["threads_after"] = after["threads"]
    return record


def run_worker(spec: dict) -> dict:
    w = spec["workload"]
    name = spec["contender"]
    options = dict(spec.get("client_options") or {})
    probe = Probe()
    profiler = cProfile.Profile() if spec.get("profile") else None
    result: dict = {"contender": name, "workload": w["name"], "pid": os.getpid(),
                    "affinity": sorted(os.sched_getaffinity(0))
                    if hasattr(os, "sched_getaffinity") else None}  # fmt: skip

    if name == "sync":
        c = SyncContender()
        c.connect(spec["uri"], options)
        c.db.command("ping")
        if w["kind"] in ("insert_many",) or w.get("op") == "insert_one":
            c.drop_inserts()
        result["reps"] = sync_quick(c, w, profiler)
        result["status"] = probe.status()
    else:
        if name == "threads":
            c = ThreadsContender(w["ops"] if w["kind"] == "slow" else w.get("concurrency", 1))
            result["threads_pool_size"] = c.max_parallel
        else:
            c = {"greenmotor": GreenmotorContender, "motor": MotorContender,
                 "async": AsyncMongoContender}[name]()  # fmt: skip

        async def main() -> None:
            await c.connect(spec["uri"], options)
            await c.command({"ping": 1})
            if w["kind"] == "slow":
                result["slow"] = await async_slow(c, w, probe, spec.get("slow_cap_s", 30.0))
            else:
                if w["kind"] == "insert_many" or w.get("op") == "insert_one":
                    await c.drop_inserts()
                result["reps"] = await async_quick(c, w, profiler)
                result["status"] = probe.status()
            if c.max_parallel:
                result["max_parallel"] = c.max_parallel

        c.run(main)
    if profiler:
        result["profile"] = profile_summary(profiler)
    return result


def profile_summary(profiler: cProfile.Profile, top: int = 25) -> list[dict]:
    """The functions with the most own time, as plain data for the JSON results."""
    stats = pstats.Stats(profiler)
    total = stats.total_tt or 1.0
    rows = []
    for (path, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append({"function": "%s:%d(%s)" % (_short(path), line, func), "ncalls": nc,
                     "tottime_s": tt, "cumtime_s": ct, "tottime_share": tt / total})  # fmt: skip
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:top]


def _short(path: str) -> str:
    """A profile entry's file, relative to site-packages, the stdlib or the checkout."""
    for marker in ("site-packages/", "/lib/python%d.%d/" % sys.version_info[:2]):
        if marker in path:
            return path.split(marker, 1)[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    return path[len(root) :] if path.startswith(root) else path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    raise_fd_limit()
    try:
        result = run_worker(spec)
    except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator
        import traceback

        traceback.print_exc()
        result = {"contender": spec.get("contender"), "error": "%s: %s" % (type(exc).__name__, exc)}
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: closing 10,000 sockets, joining executor threads still
    # sleeping on capped runs, PyMongo's monitors. None of it is measured.
    os._exit(0)


if __name__ == "__main__":
    main()
