"""Run every contender on every workload, side by side, and write the results as JSON.

::

    python -m benchmark                    # full suite, ~20 minutes; then the report
    python -m benchmark --quick            # smoke run, ~3 minutes
    python -m benchmark --contenders greenmotor,async --workloads seq_ping,conc50_find_one

Each (contender, workload) runs in a fresh worker process (:mod:`benchmark.worker`); slow
workloads get a fresh process per repetition, so every memory figure starts from a clean
process. The servers are separate processes too: the canned-reply server
(``benchmark/canned_server.py``) for driver overhead, SecantusDB for real storage.

Placement. On the 2-vCPU virtual machines this was written on, a round trip between two
processes on different CPUs costs 200-500 us of kernel and hypervisor wake-up latency -
more than a driver's whole per-operation cost - and it varies from run to run. With the
default ``--placement same`` the server and every client process are pinned to CPU 0
(the same as ``taskset -c 0``): wake-ups are cheap and stable, and every contender gets
the same single CPU, shared with the server. ``--placement split`` puts the server on the
last CPU and clients on CPU 0; ``none`` leaves scheduling to the kernel. The placement is
recorded with the results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata

from benchmark.workloads import COLLECTION_DOCS, CONTENDERS, DOC_SIZE, applies, suite, writes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(ROOT, "benchmark", "results", "latest.json")


# --- Placement and servers ---------------------------------------------------------------


def placement_cpus(placement: str) -> tuple[list[int] | None, list[int] | None, str]:
    """(server CPUs, client CPUs, description) for a placement name."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no pinning
        return None, None, "not pinned (no sched_setaffinity on this platform)"
    first, last = available[0], available[-1]
    if placement == "same":
        return (
            [first],
            [first],
            (
                "server and each client process pinned to CPU %d (like taskset -c %d); "
                "the orchestrator runs on the other CPUs" % (first, first)
            ),
        )
    if placement == "split":
        return (
            [last],
            [first],
            ("server pinned to CPU %d, each client process to CPU %d" % (last, first)),
        )
    return None, None, "not pinned: the kernel schedules server and clients"


def _pinned(cpus: list[int] | None):
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def proc_cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of a process, from /proc (None elsewhere)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_times() -> dict[int, tuple[int, int]] | None:
    """{cpu: (busy, total)} jiffies from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and line[3] != " "]
    except OSError:
        return None
    out = {}
    for fields in lines:
        values = [int(v) for v in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        out[int(fields[0][3:])] = (sum(values[:8]) - idle, sum(values[:8]))
    return out


def busy_percent(before: dict | None, after: dict | None) -> dict[int, float] | None:
    """Per-CPU busy share between two cpu_times() readings, in percent."""
    if not before or not after:
        return None
    out = {}
    for cpu, (busy1, total1) in after.items():
        busy0, total0 = before.get(cpu, (busy1, total1))
        out[cpu] = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
    return out


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


class Server:
    """A server process for one part of the run: ``canned`` or ``secantus``."""

    def __init__(self, kind: str, cpus: list[int] | None) -> None:
        self.kind = kind
        self.cpus = cpus
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.idle_fds = 0

    def __repr__(self) -> str:
        return "<Server %s port=%d pid=%s>" % (
            self.kind,
            self.port,
            self.process.pid if self.process else None,
        )

    @property
    def uri(self) -> str:
        return "mongodb://127.0.0.1:%d/" % self.port

    def start(self) -> None:
        if self.kind == "canned":
            args = [
                sys.executable,
                os.path.join(ROOT, "benchmark", "canned_server.py"),
                "--port",
                "0",
                "--docs",
                str(COLLECTION_DOCS),
                "--doc-size",
                str(DOC_SIZE),
            ]
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                                            preexec_fn=_pinned(self.cpus))  # fmt: skip
            line = self.process.stdout.readline().split()
            if len(line) != 2 or line[0] != "ready":
                self.stop()
                raise RuntimeError("canned server did not start: %r" % line)
            self.port = int(line[1])
        else:
            self.port = _free_port()
            args = [
                sys.executable,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                ":memory:",
                "--log-level",
                "WARNING",
            ]
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL,
                                            preexec_fn=_pinned(self.cpus))  # fmt: skip
            import pymongo

            with pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=60000) as client:
                client.admin.command("ping")
                # The documents every find reads, as the canned server has them.
                coll = client.bench.docs
                coll.drop()
                filler = "x" * max(0, DOC_SIZE - 30)
                coll.insert_many([{"_id": i, "filler": filler} for i in range(COLLECTION_DOCS)])
                # A fresh server is slower for its first few hundred operations (measured:
                # whoever ran first on it came out up to 2x slower); warm it up.
                scratch = client.bench.scratch
                for i in range(300):
                    scratch.insert_one({"i": i})
                    coll.find_one({"_id": i})
                scratch.insert_many([{"i": i} for i in range(1000)])
                scratch.drop()
                time.sleep(1.0)
        time.sleep(0.2)
        self.idle_fds = open_fds(self.process.pid) or 0

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until the connections of the last worker are gone from the server, so the
        next contender does not share the CPU with their clean-up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fds = open_fds(self.process.pid)
            if fds is None or fds <= self.idle_fds + 4:
                break
            time.sleep(0.1)
        time.sleep(0.2)

    def cpu_seconds(self) -> float | None:
        return proc_cpu_seconds(self.process.pid) if self.process else None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_ceiling(port: int, cpus: list[int] | None, seconds: float) -> dict:
    """The canned server's own speed, measured with raw sockets (benchmark/ceiling.py)."""
    code = (
        "import json, sys\n"
        "from benchmark import ceiling as c\n"
        "port, s = int(sys.argv[1]), float(sys.argv[2])\n"
        "ping = c.op_msg({'ping': 1, '$db': 'admin'})\n"
        "find = c.op_msg({'find': 'c', 'batchSize': 100, 'singleBatch': True, '$db': 'x'})\n"
        "out = {}\n"
        "ops, t = c.run_loop(port, ping, s); out['ping_sequential_per_s'] = ops / t\n"
        "ops, t = c.run_pipelined(port, ping, s, 100); out['ping_pipelined_per_s'] = ops / t\n"
        "ops, t = c.run_loop(port, find, s); out['find100_sequential_per_s'] = ops / t\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(port), str(seconds)], cwd=ROOT,
                         capture_output=True, text=True, preexec_fn=_pinned(cpus), timeout=120)  # fmt: skip
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    return json.loads(out.stdout)


# --- Running workers ----------------------------------------------------------------------


def client_options(workload: dict) -> dict:
    """Pool settings, the same for every contender.

    Quick workloads use PyMongo's defaults (maxPoolSize 100). Slow ones need a connection
    per pending operation: maxPoolSize = N (so 10,000 for the 10,000-operation runs) and
    the default maxConnecting (2), cold or warm.
    """
    if workload["kind"] == "slow":
        return {"maxPoolSize": workload["ops"]}
    return {}


def run_worker(spec: dict, cpus: list[int] | None, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "benchmark.worker", json.dumps(spec)]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                             preexec_fn=_pinned(cpus))  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"contender": spec["contender"], "error": "worker timed out after %ds" % timeout}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            if "error" in result:
                result["stderr"] = out.stderr[-3000:]
            return result
    return {"contender": spec["contender"],
            "error": "worker exited %d without a result" % out.returncode,
            "stderr": out.stderr[-3000:]}  # fmt: skip


def run_workload(server: Server, workload: dict, contenders: list[str], args, cpus,
                 log) -> dict:  # fmt: skip
    """Every contender on one workload; returns {contender: run record}."""
    runs: dict = {}
    for name in contenders:
        if not applies(name, workload):
            continue
        spec = {"contender": name, "uri": server.uri, "workload": workload,
                "client_options": client_options(workload), "slow_cap_s": args.slow_cap}  # fmt: skip
        # Quick workloads: one process runs all repetitions. Slow ones: one process per
        # repetition, so each starts with a cold pool and a clean heap.
        processes = workload["reps"] if workload["kind"] == "slow" else 1
        if workload["kind"] == "slow":
            spec["workload"] = dict(workload, reps=1)
        records = []
        if server.kind == "secantus" and writes(workload):
            # SecantusDB's inserts get slower as it accumulates data: each contender starts
            # from the same fresh server, or the order would decide the result.
            server.stop()
            server.start()
            spec["uri"] = server.uri
        for _ in range(processes):
            cpu0 = server.cpu_seconds()
            started = time.perf_counter()
            result = run_worker(spec, cpus, args.worker_timeout)
            result["process_wall_s"] = time.perf_counter() - started
            cpu1 = server.cpu_seconds()
            if cpu0 is not None and cpu1 is not None:
                result["server_cpu_s"] = cpu1 - cpu0
            server.settle()
            records.append(result)
            if "error" in result:
                break
            if result.get("slow", {}).get("capped"):
                # Its wall time is a projection from the rate within the cap, the same every
                # time (Motor: 10 per second); repeating it would only cost another cap.
                break
        runs[name] = merge_runs(records)
        log(describe(name, workload, runs[name]))
    return runs


def merge_runs(records: list[dict]) -> dict:
    """One record per contender: the repetitions of all its worker processes."""
    merged = {key: value for key, value in records[0].items() if key not in ("reps", "slow")}
    errors = [r["error"] for r in records if "error" in r]
    if errors:
        merged["error"] = errors[0]
        merged["stderr"] = next(r.get("stderr") for r in records if "error" in r)
    merged["reps"] = []
    for r in records:
        if "slow" in r:
            merged["reps"].append(dict(r["slow"], server_cpu_s=r.get("server_cpu_s")))
        else:
            merged["reps"].extend(r.get("reps", []))
    merged["server_cpu_s"] = sum(r.get("server_cpu_s") or 0.0 for r in records)
    return merged


# --- Summaries -----------------------------------------------------------------------------


def _spread(values: list[float]) -> dict:
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values),
            "spread_pct": 100.0 * (max(values) - min(values)) / med if med else 0.0}  # fmt: skip


def summarize(workload: dict, runs: dict) -> dict:
    """Medians, spreads and ratios to the sync floor for one workload."""
    out: dict = {}
    slow = workload["kind"] == "slow"
    for name, run in runs.items():
        reps = run.get("reps") or []
        if "error" in run or not reps:
            out[name] = {"error": run.get("error", "no repetitions")}
            continue
        if slow:
            walls = [r["wall_s"] for r in reps]
            s = {"wall_s": _spread(walls),
                 "capped": any(r.get("capped") for r in reps),
                 "completed": min(r["completed"] for r in reps),
                 "rss_per_pending_op": statistics.median(r["rss_per_pending_op"] for r in reps),
                 "rss_peak": max(r["rss_peak"] for r in reps),
                 "threads_peak": max(r["threads_peak"] for r in reps),
                 "threads_base": min(r["threads_base"] for r in reps),
                 "cpu_s": statistics.median(r["cpu_s"] for r in reps),
                 "connections_opened": max(r["fds_after_run"] - r["fds_base"] for r in reps)}  # fmt: skip
            if "rss_per_connection" in reps[0]:
                s["rss_per_connection"] = statistics.median(r["rss_per_connection"] for r in reps)
                s["warmup_s"] = statistics.median(r["warmup_s"] for r in reps)
                s["warm_connections"] = reps[0]["warm_connections"]
            floor = workload["ops"] * workload["delay_ms"] / 1000.0
            s["sync_floor_wall_s"] = floor
            s["ratio_to_sync"] = floor / s["wall_s"]["median"]
            s["ratio_to_ideal"] = s["wall_s"]["median"] / (workload["delay_ms"] / 1000.0)
        else:
            s = {"ops_per_s": _spread([r["ops_per_s"] for r in reps]),
                 "p50_us": statistics.median(r["p50_us"] for r in reps),
                 "p99_us": statistics.median(r["p99_us"] for r in reps),
                 "cpu_us_per_op": statistics.median(r["cpu_us_per_op"] for r in reps)}  # fmt: skip
            if "docs_per_s" in reps[0]:
                s["docs_per_s"] = statistics.median(r["docs_per_s"] for r in reps)
            total_ops = sum(r["ops"] for r in reps)
            if run.get("server_cpu_s"):
                s["server_cpu_us_per_op"] = 1e6 * run["server_cpu_s"] / total_ops
        if "max_parallel" in run:
            s["max_parallel"] = run["max_parallel"]
        if "threads_pool_size" in run:
            s["threads_pool_size"] = run["threads_pool_size"]
        out[name] = s
    sync = out.get("sync", {})
    if not slow and "ops_per_s" in sync:
        for s in out.values():
            if "ops_per_s" in s:
                s["ratio_to_sync"] = s["ops_per_s"]["median"] / sync["ops_per_s"]["median"]
    return out


def greenmotor_ratios(workload: dict, summary: dict) -> dict:
    """greenmotor's speed-up over each other contender (> 1: greenmotor is faster)."""
    g = summary.get("greenmotor", {})
    out = {}
    for name, s in summary.items():
        if name == "greenmotor" or "error" in s or "error" in g or not g:
            continue
        if "ops_per_s" in s and "ops_per_s" in g:
            out[name] = g["ops_per_s"]["median"] / s["ops_per_s"]["median"]
        elif "wall_s" in s and "wall_s" in g:
            out[name] = s["wall_s"]["median"] / g["wall_s"]["median"]
    if workload["kind"] == "slow" and "wall_s" in g:
        out["sync"] = g["ratio_to_sync"]
    return out


def describe(name: str, workload: dict, run: dict) -> str:
    if "error" in run:
        return "  %-10s ERROR %s" % (name, run["error"])
    reps = run["reps"]
    if workload["kind"] == "slow":
        walls = ", ".join("%.2f%s" % (r["wall_s"], "*" if r.get("capped") else "") for r in reps)
        r = reps[-1]
        return "  %-10s wall %s s  rss/op %.1f KB  threads %d" % (
            name,
            walls,
            r["rss_per_pending_op"] / 1024,
            r["threads_peak"],
        )
    rates = ", ".join("%.0f" % r["ops_per_s"] for r in reps)
    return "  %-10s %s ops/s  p50 %.0f us  p99 %.0f us" % (
        name,
        rates,
        statistics.median(r["p50_us"] for r in reps),
        statistics.median(r["p99_us"] for r in reps),
    )


# --- Machine and versions ------------------------------------------------------------------


def machine_info(placement: str, description: str) -> dict:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = None
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory_bytes": mem,
            "platform": platform.platform(), "python": platform.python_version(),
            "placement": placement, "placement_description": description,
            "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None}  # fmt: skip


def versions() -> dict:
    out = {}
    for dist in ("pymongo", "motor", "tornado", "greenlet", "SecantusDB", "greenmotor",
                 "matplotlib", "psutil"):  # fmt: skip
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    if out["greenmotor"] is None:  # run from the checkout, not installed
        out["greenmotor"] = subprocess.run(
            [sys.executable, "-c", "import greenmotor; print(greenmotor.version)"],
            cwd=ROOT, capture_output=True, text=True).stdout.strip() or None  # fmt: skip
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "greenmotor"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        out["greenmotor_commit"] = commit + ("+uncommitted greenmotor/ changes" if dirty else "")
    except OSError:
        out["greenmotor_commit"] = None
    return out


# --- Main -------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: ~3 minutes")
    parser.add_argument("--servers", default="canned,secantus", help="canned,secantus")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated, from: " + ", ".join(CONTENDERS))  # fmt: skip
    parser.add_argument("--workloads", default="", help="comma-separated names; default all")
    parser.add_argument("--placement", choices=("same", "split", "none"), default="same")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply operation counts (slow workloads too when < 1)")  # fmt: skip
    parser.add_argument("--slow-cap", type=float, default=None,
                        help="seconds a slow workload may run before its wall time is "
                        "projected from its rate (default 20, --quick 10)")  # fmt: skip
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions of every workload (default: per workload)",
    )
    parser.add_argument("--worker-timeout", type=float, default=600.0)
    parser.add_argument("--ceiling-seconds", type=float, default=None,
                        help="per raw-socket ceiling measurement; 0 skips them "
                        "(default 2, --quick 1)")  # fmt: skip
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the extra cProfile runs of greenmotor and sync")  # fmt: skip
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="do not regenerate doc/benchmarks.rst and the charts")  # fmt: skip
    args = parser.parse_args(argv)
    if args.slow_cap is None:
        args.slow_cap = 10.0 if args.quick else 20.0
    if args.ceiling_seconds is None:
        args.ceiling_seconds = 1.0 if args.quick else 2.0
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    server_cpus, client_cpus, description = placement_cpus(args.placement)
    if server_cpus and args.placement == "same":
        # Keep the orchestrator's own work (small) off the measured CPU.
        others = sorted(set(os.sched_getaffinity(0)) - set(server_cpus))
        if others:
            os.sched_setaffinity(0, others)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        raise SystemExit(
            "unknown contenders %s; choose from %s" % (sorted(unknown), list(CONTENDERS))
        )
    wanted = {w.strip() for w in args.workloads.split(",") if w.strip()}

    def log(message: str) -> None:
        print("[%6.1fs] %s" % (time.perf_counter() - started, message), flush=True)

    results = {"generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
               "command": os.environ.get("GREENMOTOR_BENCH_COMMAND") or
               " ".join(["python -m benchmark"] + (argv if argv is not None else sys.argv[1:])),
               "quick": args.quick, "machine": machine_info(args.placement, description),
               "versions": versions(), "contenders": CONTENDERS, "slow_cap_s": args.slow_cap,
               "servers": {}}  # fmt: skip
    log("placement: " + description)
    for kind in [s.strip() for s in args.servers.split(",") if s.strip()]:
        workloads = suite(kind, quick=args.quick, scale=args.scale)
        if wanted:
            workloads = [w for w in workloads if w["name"] in wanted]
        for w in workloads:
            if args.scale < 1 and w["kind"] == "slow":
                w["ops"] = max(10, int(w["ops"] * args.scale))
            if args.reps:
                w["reps"] = args.reps
        if not workloads:
            continue
        part: dict = {"workloads": {}}
        server = Server(kind, server_cpus)
        server.start()
        log("%s server on port %d" % (kind, server.port))
        try:
            if kind == "canned" and args.ceiling_seconds > 0:
                part["ceiling"] = measure_ceiling(server.port, client_cpus, args.ceiling_seconds)
                log("ceiling (raw sockets): %s" % part["ceiling"])
            for index, workload in enumerate(workloads):
                # Rotate the order so no contender always runs first (or last) on a workload.
                shift = index % len(contenders)
                order = contenders[shift:] + contenders[:shift]
                if workload["kind"] == "slow":
                    # A fresh server per slow workload: its 10,000 connections' clean-up,
                    # and the port's TIME_WAIT entries, stay with it.
                    server.stop()
                    server.start()
                # Other processes on the machine skew figures; the load shows if they ran.
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
                log("%s / %s: %s (load %s)" % (kind, workload["name"], ", ".join(order), load))
                cpu_before = cpu_times()
                runs = run_workload(server, workload, order, args, client_cpus, log)
                busy = busy_percent(cpu_before, cpu_times())
                summary = summarize(workload, runs)
                part["workloads"][workload["name"]] = {
                    "spec": workload, "runs": runs, "summary": summary,
                    "greenmotor_vs": greenmotor_ratios(workload, summary),
                    "loadavg_before": load,
                    # With --placement same, busy time on the CPUs the suite does not use
                    # is other work on the machine (the orchestrator itself mostly sleeps).
                    "cpu_busy_pct": busy}  # fmt: skip
                write_json(results_with(results, kind, part), args.output)
            if args.profile and kind == "canned":
                part["profiles"] = run_profiles(
                    server, workloads, contenders, args, client_cpus, log
                )
        finally:
            server.stop()
        results["servers"][kind] = part
        write_json(results, args.output)
    results["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["duration_s"] = time.perf_counter() - started
    write_json(results, args.output)
    log("results written to %s" % os.path.relpath(args.output, ROOT))
    if args.report:
        from benchmark import report

        report.main(["--input", args.output])
        log("doc/benchmarks.rst and charts regenerated")
    return results


def run_profiles(server: Server, workloads: list[dict], contenders: list[str], args, cpus,
                 log) -> dict:  # fmt: skip
    """One more run of greenmotor (and sync, for comparison) under cProfile, on the quick
    workloads that show per-operation cost. Not timed; the top functions go in the JSON."""
    out: dict = {}
    for workload in workloads:
        if workload["name"] not in ("seq_find_one", "conc500_find_one", "conc50_find_one"):
            continue
        w = dict(workload, reps=1)
        for name in ("greenmotor", "sync"):
            if name not in contenders:
                continue
            spec = {"contender": name, "uri": server.uri, "workload": w, "profile": True,
                    "client_options": client_options(w)}  # fmt: skip
            result = run_worker(spec, cpus, args.worker_timeout)
            server.settle()
            if "profile" in result:
                out.setdefault(workload["name"], {})[name] = result["profile"]
                log("profiled %s / %s" % (name, workload["name"]))
    return out


def results_with(results: dict, kind: str, part: dict) -> dict:
    return dict(results, servers=dict(results["servers"], **{kind: part}))


def write_json(results: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
