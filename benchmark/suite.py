"""Run every contender on every measurement, side by side, in interleaved rounds.

::

    python -m benchmark                 # full suite (about 20 minutes), then the report
    python -m benchmark --quick         # smoke run (about 1 minute), used by the tests
    python -m benchmark --contenders greenmotor,async --only curve --rounds 3

Each round runs, for each placement, every measurement point with every contender in a
fresh worker process (:mod:`benchmark.worker`), the contenders' order rotating from point to
point; the report takes the median of the rounds. Placements (CPU affinity, as
``taskset -c`` would set it): ``split`` puts the canned-reply server on the last CPU and the
clients on the first - a database is another machine; ``same`` puts both on the first CPU.
Results go to ``benchmark/results/latest.json``; :mod:`benchmark.report` makes the tables
and charts that ``doc/benchmarks.rst`` includes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from greenmotor import green_socket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "benchmark", "results", "latest.json")

CONTENDERS = {
    "greenmotor": "greenmotor",
    "greenmotor-uvloop": "greenmotor on uvloop",
    "greenmotor-iostream": "greenmotor, IOStream sockets",
    "motor": "Motor 3",
    "async": "AsyncMongoClient",
    "sync": "sync PyMongo",
}
CONCURRENCY = (1, 10, 50, 100, 500, 1000, 5000)
PENDING = (100, 1000, 10000)
# A slow run still going after this long is stopped and its wall time projected from its
# rate: Motor runs 10 operations per second on its 10 threads, so its cap is short.
CAP_S = {"motor": 5.0}
CAP_DEFAULT_S = 90.0
# Points also run with server and client on one CPU (all of them with --placement same).
SAME_CPU = {"seq", "curve-50", "curve-500", "lag-50", "lag-500", "slow-1000"}


def plan(quick: bool) -> list[dict[str, Any]]:
    """The measurement points of one round (see benchmark/worker.py for the kinds)."""
    if quick:
        return [
            {"key": "seq", "kind": "seq", "ops": 200},
            {"key": "curve-1", "kind": "curve", "n": 1, "ops": 200},
            {"key": "curve-50", "kind": "curve", "n": 50, "ops": 500},
            {"key": "lag-50", "kind": "lag", "n": 50, "seconds": 0.5},
            {"key": "slow-100", "kind": "slow", "n": 100},
        ]
    points: list[dict[str, Any]] = [{"key": "seq", "kind": "seq", "ops": 1000}]
    points += [
        {"key": f"curve-{n}", "kind": "curve", "n": n, "ops": max(1000, 2 * n)} for n in CONCURRENCY
    ]
    points += [{"key": f"lag-{n}", "kind": "lag", "n": n, "seconds": 1.5} for n in (50, 500)]
    points += [{"key": f"slow-{n}", "kind": "slow", "n": n} for n in PENDING]
    return points


def applies(contender: str, point: dict[str, Any]) -> bool:
    """Sync PyMongo can only run one operation at a time: sequential points only."""
    return contender != "sync" or point["kind"] == "seq" or point["key"] == "curve-1"


def cpus(placement: str) -> tuple[set[int], set[int]]:
    """(server CPUs, client CPUs)."""
    available = sorted(os.sched_getaffinity(0))
    first, last = available[0], available[-1]
    return ({last} if placement == "split" else {first}), {first}


class Server:
    """The canned-reply server (benchmark/canned_server.py), pinned to ``cpus``."""

    def __init__(self, cpus: set[int]) -> None:
        self.cpus = cpus
        path = os.path.join(ROOT, "benchmark", "canned_server.py")
        self.process = subprocess.Popen(
            [sys.executable, path, "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
        assert self.process.stdout is not None
        ready, port = self.process.stdout.readline().split()
        self.uri = f"mongodb://127.0.0.1:{port}/"
        time.sleep(0.2)
        self.idle_fds = self.fds()

    def __repr__(self) -> str:
        return f"<Server {self.uri} pid={self.process.pid} cpus={sorted(self.cpus)}>"

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def settle(self) -> None:
        """Wait until the last worker's connections are closed on the server's side too."""
        deadline = time.monotonic() + 30
        while self.fds() > self.idle_fds + 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def run_worker(spec: dict[str, Any], cpus: set[int]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmark.worker", json.dumps(spec)]
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
    except subprocess.TimeoutExpired:
        return {"error": "worker timed out after 300 s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            if "error" in result:
                result["stderr"] = proc.stderr[-2000:]
            return result
    return {"error": f"worker exited {proc.returncode}", "stderr": proc.stderr[-2000:]}


def available(contenders: list[str]) -> list[str]:
    """The contenders whose packages are installed (Motor and uvloop come with .[bench])."""
    needs = {"motor": "motor", "greenmotor-uvloop": "uvloop"}
    out = []
    for c in contenders:
        if c.endswith("-iostream") and not hasattr(green_socket, "use_socket_layer"):
            print(f"skipping {c}: this greenmotor has one socket layer")
            continue
        try:
            if c in needs:
                metadata.version(needs[c])
            out.append(c)
        except metadata.PackageNotFoundError:
            print(f"skipping {c}: {needs[c]} is not installed (pip install -e '.[bench]')")
    return out


def run(
    args: argparse.Namespace,
    log: Callable[[str], None],
    save: Callable[[list[dict[str, Any]]], None],
) -> list[dict[str, Any]]:
    """Every round; returns one record per (round, placement, point, contender)."""
    contenders = available(args.contenders.split(","))
    points = [p for p in plan(args.quick) if not args.only or p["kind"] in args.only.split(",")]
    records: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for placement in args.placements.split(","):
            server_cpus, client_cpus = cpus(placement)
            server = Server(server_cpus)
            log(f"round {rnd + 1}/{args.rounds}, placement {placement}: {server!r}")
            if placement == "same" and "," in args.placements:
                todo = [p for p in points if p["key"] in SAME_CPU]
            else:
                todo = points
            try:
                for index, point in enumerate(todo):
                    shift = (index + rnd) % len(contenders)
                    for contender in contenders[shift:] + contenders[:shift]:
                        if not applies(contender, point):
                            continue
                        if point["kind"] == "slow" and capped(records, placement, point, contender):
                            continue  # its projection from round 1 stands (Motor: 10 per second)
                        if point["kind"] == "slow":  # a fresh port: no TIME_WAIT from the last run
                            server.stop()
                            server = Server(server_cpus)
                        spec = dict(point, contender=contender, uri=server.uri)
                        spec["server_pid"] = server.process.pid
                        spec["cap_s"] = CAP_S.get(contender, CAP_DEFAULT_S)
                        t0 = time.perf_counter()
                        result = run_worker(spec, client_cpus)
                        server.settle()
                        records.append(
                            {
                                "round": rnd,
                                "placement": placement,
                                "key": point["key"],
                                "contender": contender,
                                "result": result,
                                "process_s": time.perf_counter() - t0,
                            }
                        )
                        save(records)
                        log(f"  {point['key']:<11} {contender:<18} {brief(result)}")
            finally:
                server.stop()
    return records


def capped(records: list[dict[str, Any]], placement: str, point: dict[str, Any], c: str) -> bool:
    return any(
        r["result"].get("capped")
        for r in records
        if (r["placement"], r["key"], r["contender"]) == (placement, point["key"], c)
    )


def brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"]
    if "wall_s" in result:
        projected = " (projected)" * result["capped"]
        return f"{result['wall_s']:.2f} s{projected}, {result['rss_per_op'] / 1024:.1f} KiB/op"
    if "find_one" in result:
        return ", ".join(f"{k} {v['ops_per_s']:.0f}/s" for k, v in result.items())
    r = result
    return f"{r['ops_per_s']:.0f} ops/s, p99 {r['p99_us']:.0f} us, max {r['max_us']:.0f} us"


def machine(args: argparse.Namespace) -> dict[str, Any]:
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "")
    packages = ("pymongo", "motor", "tornado", "greenlet", "uvloop")
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %cs"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "greenmotor_commit": commit,
        "loadavg_start": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: small, one round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--only", default="", help="kinds to run: seq,curve,lag,slow")
    parser.add_argument("--placements", default="split,same", help="split,same or one of them")
    parser.add_argument("--output", default=OUTPUT)
    parser.add_argument("--no-report", dest="report", action="store_false")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.quick and args.placements == "split,same":
        args.placements = "split"
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f}s] {message}", flush=True)

    meta = {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": os.environ.get("GREENMOTOR_BENCH_COMMAND")
        or " ".join(["python -m benchmark", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "rounds": args.rounds,
        "placements": args.placements,
        "machine": machine(args),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)

    def save(records: list[dict[str, Any]]) -> None:
        """Write what has been measured so far (after every measurement: a run cut short
        still leaves its figures)."""
        meta["duration_s"] = time.perf_counter() - started
        meta["machine"]["loadavg_end"] = os.getloadavg()[0]
        with open(args.output + ".tmp", "w") as f:
            json.dump({"meta": meta, "runs": records}, f, indent=1)
            f.write("\n")
        os.replace(args.output + ".tmp", args.output)

    run(args, log, save)
    log(f"wrote {os.path.relpath(args.output, ROOT)}")
    if args.report:
        from benchmark import report

        report.main(["--input", args.output])


if __name__ == "__main__":
    main()
