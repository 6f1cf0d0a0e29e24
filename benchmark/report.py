"""Turn the suite's results into the tables and charts that ``doc/benchmarks.rst`` includes.

::

    python -m benchmark.report [--input benchmark/results/latest.json] [--out doc/benchmark-results]

Writes reStructuredText tables (``*.inc``, no prose) and PNG charts into ``--out``; every
figure is the median over the rounds of one run. The explanations are hand-written in
``doc/benchmarks.rst``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from benchmark.suite import CONCURRENCY, CONTENDERS, OUTPUT, PENDING, ROOT

OUT = os.path.join(ROOT, "doc", "benchmark-results")
COLORS = {
    "greenmotor": "#2ca02c",
    "greenmotor-iostream": "#bcbd22",
    "greenmotor-uvloop": "#98df8a",
    "motor": "#1f77b4",
    "async": "#d62728",
    "sync": "#7f7f7f",
}
PLACEMENTS = {"split": "server on its own CPU", "same": "server and client on one CPU"}
Getter = Callable[[dict[str, Any]], float]


class Results:
    """Runs grouped by (placement, point, contender), with medians over the rounds."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.meta = data["meta"]
        self.runs: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in data["runs"]:
            if "error" not in r["result"]:
                self.runs[r["placement"], r["key"], r["contender"]].append(r["result"])
        self.errors = [r for r in data["runs"] if "error" in r["result"]]
        self.contenders = [c for c in CONTENDERS if any(k[2] == c for k in self.runs)]
        self.placements = [p for p in PLACEMENTS if any(k[0] == p for k in self.runs)]

    def get(self, placement: str, key: str, contender: str, metric: str | Getter) -> float | None:
        """The median of ``metric`` over the rounds, or None if it was not measured."""
        results = self.runs.get((placement, key, contender))
        if not results:
            return None
        get = metric if callable(metric) else lambda r: r.get(metric)
        values = [v for v in map(get, results) if v is not None]
        return statistics.median(values) if values else None

    def ratio(self, placement: str, key: str, metric: str | Getter, a: str, b: str) -> float | None:
        x, y = self.get(placement, key, a, metric), self.get(placement, key, b, metric)
        return None if x is None or y is None or not y else x / y

    def capped(self, placement: str, key: str, contender: str) -> bool:
        return any(r.get("capped") for r in self.runs.get((placement, key, contender), []))


def table(title: str, header: list[str], rows: Iterable[list[str]]) -> str:
    out = [f".. list-table:: {title}", "   :header-rows: 1", "   :stub-columns: 1", ""]
    for row in [header, *rows]:
        out += [("   * - " if i == 0 else "     - ") + (cell or "-") for i, cell in enumerate(row)]
    return "\n".join(out) + "\n"


def fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "-" if value is None else pattern.format(value)


def x(value: float | None) -> str:
    return fmt(value, "{:.2f}×")


# --- Tables -------------------------------------------------------------------------------


def method_table(r: Results) -> str:
    m, v = r.meta["machine"], r.meta["machine"]["versions"]
    rows = [
        ["Command", f"``{r.meta['command']}``"],
        ["Date (UTC), duration", f"{r.meta['generated']}, {r.meta['duration_s'] / 60:.0f} min"],
        ["Rounds", f"{r.meta['rounds']} (interleaved; figures are medians)"],
        ["Machine", f"{m['cpus']} CPUs, {m['cpu_model']}, {m['platform']}"],
        ["Load average at start / end", f"{m['loadavg_start']:.2f} / {m['loadavg_end']:.2f}"],
        [
            "Versions",
            ", ".join(f"{k} {val}" for k, val in v.items() if val) + f", Python {m['python']}",
        ],
        ["Commit (this checkout)", m["greenmotor_commit"]],
    ]
    return table("How these figures were produced", ["", ""], rows)


def curve_tables(r: Results) -> str:
    out = []
    for p in r.placements:
        keys = [
            n
            for n in CONCURRENCY
            if any(r.get(p, f"curve-{n}", c, "ops_per_s") for c in r.contenders)
        ]
        names = r.contenders
        rows = [
            [f"{n:,}"] + [fmt(r.get(p, f"curve-{n}", c, "ops_per_s")) for c in names] for n in keys
        ]
        out.append(
            table(
                f"find_one throughput (ops/s) vs concurrency, {PLACEMENTS[p]}",
                ["Concurrency", *(CONTENDERS[c] for c in names)],
                rows,
            )
        )
        rows = [
            [f"{n:,}"]
            + [
                "{} / {} / {}".format(
                    *(
                        fmt(r.get(p, f"curve-{n}", c, m), "{:.1f}")
                        for m in ("p50_ms", "p99_ms", "max_ms")
                    )
                )
                if r.get(p, f"curve-{n}", c, "p50_ms") is not None
                else "-"
                for c in names
            ]
            for n in keys
        ]
        out.append(
            table(
                f"find_one latency p50 / p99 / max (ms), {PLACEMENTS[p]}",
                ["Concurrency", *(CONTENDERS[c] for c in names)],
                rows,
            )
        )
        rows = [[f"{n:,}"] + [cpu_cell(r, p, f"curve-{n}", c) for c in names] for n in keys]
        out.append(
            table(
                f"Client CPU per find_one (µs), and how busy the server's CPU was, {PLACEMENTS[p]}",
                ["Concurrency", *(CONTENDERS[c] for c in names)],
                rows,
            )
        )
    return "\n".join(out)


def cpu_cell(r: Results, p: str, key: str, c: str) -> str:
    """ "257 µs (server 31%)": a client at 1 / CPU-per-op ops/s is CPU-bound; a server near
    100% sets the pace instead."""
    cpu = r.get(p, key, c, "cpu_us_per_op")
    if cpu is None:
        return "-"
    busy = r.get(p, key, c, "server_busy")
    return f"{cpu:,.0f} µs" + ("" if busy is None else f" (server {busy:.0%})")


def rows_per_load(
    r: Results,
    names: list[str],
    loads: Iterable[tuple[str, str]],
    present: str,
    cell: Callable[[str, str, str], str],
) -> list[list[str]]:
    """One row per placement and load measured (``loads``: (key, label) pairs, a load counts
    as measured when the first contender has ``present``): the label, then ``cell(placement,
    key, contender)`` for each contender."""
    rows = []
    for p in r.placements:
        for key, label in loads:
            if r.get(p, key, names[0], present) is None:
                continue
            rows.append([f"{label}, {PLACEMENTS[p]}"] + [cell(p, key, c) for c in names])
    return rows


def lag_table(r: Results) -> str:
    names = [c for c in r.contenders if c != "sync"]

    def cell(p: str, key: str, c: str) -> str:
        return "{} / {} ms ({} ops/s)".format(
            fmt(r.get(p, key, c, "p99_ms"), "{:.1f}"),
            fmt(r.get(p, key, c, "max_ms"), "{:.1f}"),
            fmt(r.get(p, key, c, "ops_per_s")),
        )

    loads = [(f"lag-{n}", f"{n} coroutines") for n in (50, 500)]
    return table(
        "How late a 5 ms timer fires, p99 / max, while coroutines loop on find_one",
        ["Load", *(CONTENDERS[c] for c in names)],
        rows_per_load(r, names, loads, "p99_us", cell),
    )


def slow_table(r: Results) -> str:
    names = [c for c in r.contenders if c != "sync"]

    def cell(p: str, key: str, c: str) -> str:
        return "{} s{}, {} KiB/op".format(
            fmt(r.get(p, key, c, "wall_s"), "{:.2f}"),
            " (projected)" * r.capped(p, key, c),
            fmt(r.get(p, key, c, "rss_kib"), "{:.1f}"),
        )

    loads = [(f"slow-{n}", f"{n:,} ops") for n in PENDING]
    return table(
        "Concurrent 1-second operations from a cold client: wall time, RSS per pending operation",
        ["Pending", *(CONTENDERS[c] for c in names)],
        rows_per_load(r, names, loads, "wall_s", cell),
    )


def seq_table(r: Results) -> str:
    rows = []
    for p in r.placements:
        for op in ("ping", "find_one", "insert_one"):
            cells = []
            for c in r.contenders:
                ops = r.get(p, "seq", c, lambda res, op=op: res[op]["ops_per_s"])
                cpu = r.get(p, "seq", c, lambda res, op=op: res[op]["cpu_us_per_op"])
                rel = [
                    r.ratio(p, "seq", lambda res, op=op, k=k: res[op][k], c, "sync")
                    for k in ("ops_per_s", "cpu_us_per_op")
                ]
                cells.append(
                    f"{fmt(ops)}/s ({x(rel[0])}), {fmt(cpu)} µs CPU ({x(rel[1])})" if ops else "-"
                )
            rows.append([f"``{op}``, {PLACEMENTS[p]}", *cells])
    return table(
        "Sequential operations: throughput and client CPU per operation (× sync PyMongo's)",
        ["Operation", *(CONTENDERS[c] for c in r.contenders)],
        rows,
    )


def targets(r: Results, p: str, g: str) -> list[tuple[str, str, bool | None]]:
    """Issue 11's targets for contender ``g`` under placement ``p``: (target, measured, met)."""
    out: list[tuple[str, str, bool | None]] = []

    def check(target: str, value: float | None, ok: Callable[[float], bool], pattern: str) -> None:
        out.append((target, fmt(value, pattern), None if value is None else ok(value)))

    for op in ("ping", "find_one", "insert_one"):
        for k, name, ok in (
            ("ops_per_s", "throughput ≥ 0.95×", lambda v: v >= 0.95),
            ("cpu_us_per_op", "CPU per op ≤ 1.1×", lambda v: v <= 1.1),
        ):
            v = r.ratio(p, "seq", lambda res, op=op, k=k: res[op][k], g, "sync")
            check(f"sequential ``{op}``: {name} sync", v, ok, "{:.2f}×")
    for n in (50, 500):
        key = f"curve-{n}"
        for rival, need in (("async", 1.3), ("motor", 1.5)):
            v = r.ratio(p, key, "ops_per_s", g, rival)
            check(
                f"{n} concurrent: ≥ {need}× {CONTENDERS[rival]}",
                v,
                lambda v, n=need: v >= n,
                "{:.2f}×",
            )
        best = [r.get(p, key, c, "p99_us") for c in ("async", "motor")]
        best_p99 = min((b for b in best if b is not None), default=None)
        v = r.get(p, key, g, "p99_us")
        check(
            f"{n} concurrent: p99 ≤ best rival's p99",
            None if v is None or best_p99 is None else v / best_p99,
            lambda v: v <= 1.0,
            "{:.2f}× theirs",
        )
        v = r.get(p, key, g, lambda res: res["max_us"] / res["p99_us"])
        check(f"{n} concurrent: max ≤ 3× p99", v, lambda v: v <= 3, "{:.1f}× p99")
    check(
        "throughput at 500 ≥ 0.9× at 50",
        None
        if r.get(p, "curve-50", g, "ops_per_s") is None
        else (r.get(p, "curve-500", g, "ops_per_s") or 0) / r.get(p, "curve-50", g, "ops_per_s"),
        lambda v: v >= 0.9,
        "{:.2f}×",
    )
    for n in (50, 500):
        v = r.ratio(p, f"lag-{n}", "p99_us", g, "async")
        check(
            f"timer lag, {n} coroutines: p99 ≤ AsyncMongoClient's",
            v,
            lambda v: v <= 1.0,
            "{:.2f}× theirs",
        )
        check(
            f"timer lag, {n} coroutines: max ≤ 20 ms",
            r.get(p, f"lag-{n}", g, "max_ms"),
            lambda v: v <= 20,
            "{:.1f} ms",
        )
    check(
        "10,000 one-second ops: ≤ 3 s",
        r.get(p, "slow-10000", g, "wall_s"),
        lambda v: v <= 3,
        "{:.2f} s",
    )
    check(
        "10,000 one-second ops: ≤ 0.5× AsyncMongoClient's time",
        r.ratio(p, "slow-10000", "wall_s", g, "async"),
        lambda v: v <= 0.5,
        "{:.2f}×",
    )
    check(
        "10,000 one-second ops: ≤ 8 KiB RSS per pending op",
        r.get(p, "slow-10000", g, "rss_kib"),
        lambda v: v <= 8,
        "{:.1f} KiB",
    )
    return out


def targets_table(r: Results) -> str:
    columns = [
        (p, g)
        for p in r.placements
        for g in ("greenmotor", "greenmotor-uvloop", "greenmotor-iostream")
        if g in r.contenders and (p == r.placements[0] or g == "greenmotor")
    ]
    by_column = [targets(r, p, g) for p, g in columns]
    mark = {True: " ✓", False: " ✗", None: ""}
    rows = [
        [row[0][0]] + [f"{col[i][1]}{mark[col[i][2]]}" for col in by_column]
        for i, row in enumerate(zip(*by_column, strict=True))
    ]
    header = ["Target (issue 11)"] + [f"{CONTENDERS[g]}, {PLACEMENTS[p]}" for p, g in columns]
    return table("The targets: measured, and met (✓) or not (✗)", header, rows)


# --- Charts ---------------------------------------------------------------------------------


def charts(r: Results, out: str) -> list[str]:
    try:
        import matplotlib
    except ImportError:  # it comes with .[bench]
        print("matplotlib is not installed: no charts")
        return []

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = r.placements[0]
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in (
        (axes[0], "ops_per_s", "find_one throughput, ops/s"),
        (axes[1], "p99_ms", "find_one p99 latency, ms (log)"),
    ):
        for c in r.contenders:
            pts = [(n, r.get(p, f"curve-{n}", c, metric)) for n in CONCURRENCY]
            pts = [(n, v) for n, v in pts if v is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=CONTENDERS[c], color=COLORS[c])
        ax.set_xscale("log")
        ax.set_xlabel("concurrent coroutines")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Canned-reply server, {PLACEMENTS[p]}; medians of {r.meta['rounds']} rounds", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(os.path.join(out, "concurrency.png"), dpi=100)
    written.append("concurrency.png")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in (
        (axes[0], "rss_kib", "RSS per pending operation, KiB"),
        (axes[1], "wall_s", "wall time, s (log; hollow: projected)"),
    ):
        for c in r.contenders:
            pts = [
                (n, r.get(p, f"slow-{n}", c, metric), r.capped(p, f"slow-{n}", c)) for n in PENDING
            ]
            pts = [pt for pt in pts if pt[1] is not None]
            if pts:
                ax.plot(
                    [n for n, _, _ in pts],
                    [v for _, v, _ in pts],
                    color=COLORS[c],
                    label=CONTENDERS[c],
                )
                for n, v, proj in pts:
                    ax.plot(n, v, "o", color=COLORS[c], fillstyle="none" if proj else "full")
        ax.set_xscale("log")
        ax.set_xlabel("pending 1-second operations (cold client)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "memory.png"), dpi=100)
    written.append("memory.png")
    plt.close(fig)
    return written


def derive(data: dict[str, Any]) -> None:
    """Add the units the tables use (ms, KiB) to every result."""
    for run in data["runs"]:
        for res in [run["result"], *(v for v in run["result"].values() if isinstance(v, dict))]:
            for k in ("p50", "p99", "max"):
                if f"{k}_us" in res:
                    res[f"{k}_ms"] = res[f"{k}_us"] / 1000
            if "rss_per_op" in res:
                res["rss_kib"] = res["rss_per_op"] / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", default=OUTPUT)
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)
    with open(args.input) as f:
        data = json.load(f)
    derive(data)
    r = Results(data)
    os.makedirs(args.out, exist_ok=True)
    files = {
        "method.inc": method_table(r),
        "targets.inc": targets_table(r),
        "sequential.inc": seq_table(r),
        "concurrency.inc": curve_tables(r),
        "lag.inc": lag_table(r),
        "slow.inc": slow_table(r),
        "errors.inc": "\n".join(
            f"* {e['placement']} {e['key']} {e['contender']}: {e['result']['error']}"
            for e in r.errors
        )
        + "\n",
    }
    for name, text in files.items():
        with open(os.path.join(args.out, name), "w") as f:
            f.write(text)
    images = charts(r, args.out)
    print(f"wrote {len(files)} tables and {len(images)} charts in {args.out}")


if __name__ == "__main__":
    main()
