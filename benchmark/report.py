"""Turn the suite's JSON results into ``doc/benchmarks.rst`` and its charts.

::

    python -m benchmark.report                                  # benchmark/results/latest.json
    python -m benchmark.report --input other.json --rst /tmp/b.rst --images /tmp/img

Everything in the page - tables, charts, the written answer and its figures - comes from the
JSON, so re-running the suite (``python -m benchmark``) re-writes the page. Hand-written
text that must survive regeneration lives here (the explanations) or in
``benchmark/optimisations.rst`` (greenmotor's hot-path optimisations, included verbatim when
the file exists). The page is plain reStructuredText for Sphinx: ``list-table`` tables and
``image`` directives pointing at PNGs under ``doc/_static/benchmarks/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_INPUT = os.path.join(ROOT, "benchmark", "results", "latest.json")
DEFAULT_RST = os.path.join(ROOT, "doc", "benchmarks.rst")
DEFAULT_IMAGES = os.path.join(ROOT, "doc", "_static", "benchmarks")
OPTIMISATIONS = os.path.join(ROOT, "benchmark", "optimisations.rst")

ORDER = ["sync", "threads", "greenmotor", "motor", "async"]
SHORT = {"sync": "sync", "threads": "thread pool", "greenmotor": "greenmotor",
         "motor": "Motor 3", "async": "AsyncMongoClient"}  # fmt: skip
COLORS = {"sync": "#7f7f7f", "threads": "#bcbd22", "greenmotor": "#2ca02c",
          "motor": "#1f77b4", "async": "#d62728"}  # fmt: skip

DESCRIPTIONS = {
    "seq_ping": "``ping`` commands, one after another",
    "seq_find_one": "``find_one({'_id': i})``, one after another",
    "seq_insert_one": "``insert_one`` of a small document, one after another",
    "conc50_find_one": "``find_one`` by ``_id`` from 50 concurrent coroutines (threads for "
                       "the thread pool); sync runs the same operations one at a time",
    "conc500_find_one": "the same from 500 concurrent coroutines",
    "find_many": "read 1,000 documents of 128 bytes, batch size 100 (a find and 9 getMores)",
    "insert_many": "``insert_many`` of 1,000 small documents",
    "slow1000_warm": "1,000 concurrent commands answered after 1 s; the 1,000 connections "
                     "opened beforehand",
    "slow1000_cold": "1,000 concurrent 1-second commands from a cold pool",
    "slow10000_warm": "10,000 concurrent 1-second commands; 10,000 connections opened "
                      "beforehand",
    "slow10000_cold": "10,000 concurrent 1-second commands from a cold pool",
}  # fmt: skip


# --- Formatting helpers -----------------------------------------------------------------


def num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return "{:,.{d}f}".format(value, d=digits)


def ratio(value: float | None) -> str:
    return "-" if value is None else "%.2f×" % value


def times(value: float) -> str:
    """'1.6× faster' or '0.8× (slower)' for a speed-up ratio."""
    if value >= 1.0:
        return "%.2f× faster" % value
    return "%.2f× as fast (slower)" % value


def span(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return "%.2f×" % lo if abs(hi - lo) < 0.005 else "%.2f-%.2f×" % (lo, hi)


def list_table(title: str, header: list[str], rows: list[list[str]], widths=None) -> list[str]:
    out = [".. list-table:: " + title, "   :header-rows: 1", "   :stub-columns: 1"]
    if widths:
        out.append("   :widths: " + " ".join(str(w) for w in widths))
    out.append("")
    for row in [header] + rows:
        assert len(row) == len(header), (header, row)
        for i, cell in enumerate(row):
            out.append(("   * - " if i == 0 else "     - ") + (cell if cell.strip() else "-"))
    out.append("")
    return out


def wrap_page(lines: list[str]) -> list[str]:
    """Wrap the page's long paragraph lines (each generated as one line) to 92 columns.

    Indented lines (table cells, directive options, literal blocks) and directives stay as
    they are.
    """
    out = []
    for line in lines:
        if len(line) <= 92 or line.startswith((" ", "..")):
            out.append(line)
            continue
        bullet = line.startswith("* ")
        out += textwrap.wrap(line, 92, subsequent_indent="  " if bullet else "",
                             break_long_words=False, break_on_hyphens=False)  # fmt: skip
    return out


def heading(text: str, char: str) -> list[str]:
    return [text, char * len(text), ""]


def contenders_in(summary: dict) -> list[str]:
    return [c for c in ORDER if c in summary]


# --- Reading the results ------------------------------------------------------------------


class Results:
    def __init__(self, data: dict) -> None:
        self.data = data

    def part(self, server: str) -> dict:
        return self.data.get("servers", {}).get(server, {})

    def workloads(self, server: str, slow: bool | None = None) -> list[tuple[str, dict]]:
        items = list(self.part(server).get("workloads", {}).items())
        if slow is None:
            return items
        return [(n, w) for n, w in items if (w["spec"]["kind"] == "slow") == slow]

    def summary(self, server: str, workload: str) -> dict:
        return self.part(server).get("workloads", {}).get(workload, {}).get("summary", {})

    def vs(self, server: str, workload: str) -> dict:
        return self.part(server).get("workloads", {}).get(workload, {}).get("greenmotor_vs", {})

    def ops(self, server: str, workload: str, contender: str) -> float | None:
        s = self.summary(server, workload).get(contender, {})
        return s.get("ops_per_s", {}).get("median")

    def wall(self, server: str, workload: str, contender: str) -> float | None:
        s = self.summary(server, workload).get(contender, {})
        return s.get("wall_s", {}).get("median")


# --- Charts ----------------------------------------------------------------------------------


def make_charts(results: Results, images: str) -> dict:
    """Write the PNGs; returns {chart name: file name}. Empty without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no charts (pip install -e '.[bench]')",
              file=sys.stderr)  # fmt: skip
        return {}
    os.makedirs(images, exist_ok=True)
    charts = {}
    for server in ("canned", "secantus"):
        quick = results.workloads(server, slow=False)
        if quick:
            name = "%s-throughput.png" % server
            _throughput_chart(plt, results, server, quick, os.path.join(images, name))
            charts[server + "-throughput"] = name
            name = "%s-latency.png" % server
            _latency_chart(plt, results, server, quick, os.path.join(images, name))
            charts[server + "-latency"] = name
    slow = results.workloads("canned", slow=True)
    if slow:
        name = "slow-operations.png"
        _slow_chart(plt, results, slow, os.path.join(images, name))
        charts["slow"] = name
    return charts


def _bars(ax, labels, series, colors, hatches=None):
    """Grouped bars: series is [(contender, [values per label], [(lo, hi) or None])]."""
    n = len(series)
    width = 0.8 / max(n, 1)
    for k, (name, values, errs) in enumerate(series):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(labels))]
        heights = [v if v is not None else 0 for v in values]
        yerr = None
        if errs and any(e for e in errs):
            yerr = [[(v - e[0]) if e else 0 for v, e in zip(heights, errs)],
                    [(e[1] - v) if e else 0 for v, e in zip(heights, errs)]]  # fmt: skip
        bars = ax.bar(xs, heights, width, label=SHORT[name], color=colors[name], yerr=yerr,
                      capsize=2, error_kw={"elinewidth": 0.8})  # fmt: skip
        if hatches:
            for bar, hatched in zip(bars, hatches[name]):
                if hatched:
                    bar.set_hatch("//")
                    bar.set_alpha(0.6)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)


def _throughput_chart(plt, results, server, quick, path):
    labels = [n for n, _ in quick]
    names = [c for c in ORDER if any(c in w["summary"] for _, w in quick)]
    series = []
    for c in names:
        values, errs = [], []
        for n, w in quick:
            s, sync = w["summary"].get(c, {}), w["summary"].get("sync", {})
            if "ops_per_s" in s and "ops_per_s" in sync:
                base = sync["ops_per_s"]["median"]
                values.append(s["ops_per_s"]["median"] / base)
                errs.append((s["ops_per_s"]["min"] / base, s["ops_per_s"]["max"] / base))
            else:
                values.append(None)
                errs.append(None)
        series.append((c, values, errs))
    fig, ax = plt.subplots(figsize=(9, 4.2))
    _bars(ax, labels, series, COLORS)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_ylabel("throughput ÷ sync PyMongo (higher is better)")
    title = "canned-reply server" if server == "canned" else "SecantusDB (real storage)"
    ax.set_title("Quick operations, %s: median, min-max of the repetitions" % title, fontsize=10)
    ax.legend(fontsize=8, ncol=len(names), loc="upper center", bbox_to_anchor=(0.5, -0.28))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _latency_chart(plt, results, server, quick, path):
    labels = [n for n, _ in quick]
    names = [c for c in ORDER if any(c in w["summary"] for _, w in quick)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, key, title in (
        (axes[0], "p50_us", "median latency"),
        (axes[1], "p99_us", "p99 latency"),
    ):
        series = [(c, [w["summary"].get(c, {}).get(key) for _, w in quick], None) for c in names]
        _bars(ax, labels, series, COLORS)
        ax.set_yscale("log")
        ax.set_title(title + " (µs, log scale; lower is better)", fontsize=10)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _slow_chart(plt, results, slow, path):
    labels = [n for n, _ in slow]
    names = [c for c in ORDER if any(c in w["summary"] for _, w in slow)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    hatches = {c: [w["summary"].get(c, {}).get("capped", False) for _, w in slow] for c in names}
    series = [(c, [w["summary"].get(c, {}).get("wall_s", {}).get("median") for _, w in slow],
               [(w["summary"][c]["wall_s"]["min"], w["summary"][c]["wall_s"]["max"])
                if "wall_s" in w["summary"].get(c, {}) else None for _, w in slow])
              for c in names]  # fmt: skip
    _bars(axes[0], labels, series, COLORS, hatches)
    axes[0].set_yscale("log")
    axes[0].set_title("wall time, s (log; hatched = projected)", fontsize=10)
    series = [(c, [(w["summary"].get(c, {}).get("rss_per_pending_op") or 0) / 1024
                   for _, w in slow], None) for c in names]  # fmt: skip
    _bars(axes[1], labels, series, COLORS, hatches)
    axes[1].set_title("RSS per pending operation, KiB (hatched: capped run)", fontsize=10)
    series = [(c, [w["summary"].get(c, {}).get("threads_peak") for _, w in slow], None)
              for c in names]  # fmt: skip
    _bars(axes[2], labels, series, COLORS)
    axes[2].set_yscale("log")
    axes[2].set_title("peak OS threads in the client (log)", fontsize=10)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- The page -------------------------------------------------------------------------------


def quick_tables(results: Results, server: str) -> list[str]:
    quick = results.workloads(server, slow=False)
    if not quick:
        return []
    names = [c for c in ORDER if any(c in w["summary"] for _, w in quick)]
    header = ["Workload"] + [SHORT[c] for c in names]
    reps = quick[0][1]["spec"]["reps"]
    rows = []
    for n, w in quick:
        row = ["``%s``" % n]
        for c in names:
            s = w["summary"].get(c)
            if not s or "error" in s:
                row.append("error" if s else "-")
                continue
            o = s["ops_per_s"]
            row.append("%s ops/s (±%.0f%%), %s" % (num(o["median"]), o["spread_pct"] / 2,
                                                 ratio(s.get("ratio_to_sync"))))  # fmt: skip
        rows.append(row)
    out = list_table(
        "Throughput: median of %d repetitions (± half the min-max spread), and as a ratio "
        "to sync PyMongo" % reps,
        header,
        rows,
    )
    rows = []
    for n, w in quick:
        row = ["``%s``" % n]
        for c in names:
            s = w["summary"].get(c)
            row.append(
                "%s / %s" % (num(s["p50_us"]), num(s["p99_us"])) if s and "p50_us" in s else "-"
            )
        rows.append(row)
    out += list_table("Latency of one operation (one whole find or insert_many for the bulk "
                      "workloads), µs: p50 / p99", header, rows)  # fmt: skip
    rows = []
    for n, w in quick:
        row = ["``%s``" % n]
        for c in names:
            s = w["summary"].get(c)
            if s and "cpu_us_per_op" in s:
                row.append("%s (server %s)" % (num(s["cpu_us_per_op"]),
                                               num(s.get("server_cpu_us_per_op"))))  # fmt: skip
            else:
                row.append("-")
        rows.append(row)
    out += list_table("CPU time per operation, µs: the client process (all its threads), and "
                      "the server's in brackets", header, rows)  # fmt: skip
    return out


def slow_table(results: Results) -> list[str]:
    slow = results.workloads("canned", slow=True)
    if not slow:
        return []
    out = []
    for n, w in slow:
        names = contenders_in(w["summary"])
        spec = w["spec"]
        header = [
            "Contender",
            "wall time",
            "× ideal (1 s)",
            "RSS per pending op",
            "RSS per idle connection",
            "peak threads",
            "client CPU",
            "connections",
        ]
        rows = []
        for c in names:
            s = w["summary"][c]
            if "error" in s:
                rows.append([SHORT[c], "error: " + s["error"].replace("*", "")[:60]] + ["-"] * 6)
                continue
            wall = "%.2f s" % s["wall_s"]["median"]
            reps = w["runs"][c].get("reps") or []
            if s["capped"] and any(not rep.get("capped") for rep in reps):
                # Some repetitions finished, one hit the cap: show each, not a median.
                wall = ", ".join("%.0f s projected" % rep["wall_s"] if rep.get("capped")
                                 else "%.2f s" % rep["wall_s"] for rep in reps)  # fmt: skip
            elif s["capped"]:
                wall = "%.0f s projected (%d done in the %.0f s cap)" % (
                    s["wall_s"]["median"],
                    s["completed"],
                    results.data.get("slow_cap_s", 0),
                )
            elif spec["reps"] > 1:
                wall += " (%.2f-%.2f)" % (s["wall_s"]["min"], s["wall_s"]["max"])
            per_conn = s.get("rss_per_connection")
            rows.append([
                SHORT[c], wall, ratio(s["ratio_to_ideal"]),
                "%.1f KiB" % (s["rss_per_pending_op"] / 1024),
                "%.1f KiB" % (per_conn / 1024) if per_conn is not None else "-",
                "%d (%d before)" % (s["threads_peak"], s["threads_base"]),
                "%.2f s" % s["cpu_s"],
                num(s["connections_opened"]),
            ])  # fmt: skip
        title = "``%s``: %s (%d run%s each; sync PyMongo on one thread would take %s s)" % (
            n,
            DESCRIPTIONS.get(n, n),
            spec["reps"],
            "s" if spec["reps"] > 1 else "",
            num(spec["ops"] * spec["delay_ms"] / 1000.0),
        )
        out += list_table(title, header, rows)
    return out


def ratio_table(results: Results) -> list[str]:
    header = ["Server / workload", "vs sync", "vs thread pool", "vs Motor 3", "vs AsyncMongoClient"]
    rows = []
    for server in ("canned", "secantus"):
        for n, w in results.workloads(server):
            vs = w.get("greenmotor_vs", {})
            if not vs:
                continue
            rows.append(["%s ``%s``" % ("canned" if server == "canned" else "SecantusDB", n)] +
                        [ratio(vs.get(c)) for c in ("sync", "threads", "motor", "async")])  # fmt: skip
    if not rows:
        return []
    return list_table("greenmotor's speed-up: its throughput ÷ the other's, or for slow "
                      "workloads the other's wall time ÷ greenmotor's (above 1: greenmotor is "
                      "faster)", header, rows)  # fmt: skip


def targets(results: Results) -> list[tuple[str, str, bool | None]]:
    """The issue's targets for greenmotor: (target, measured, met)."""
    out = []
    r = results

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append((target, measured, met))

    for n in ("seq_ping", "seq_find_one", "seq_insert_one"):
        vs = r.vs("canned", n)
        if not vs:
            continue
        if "sync" in vs:
            add("``%s``: >= 0.9× sync" % n, ratio(vs["sync"]), vs["sync"] >= 0.9)
        for c in ("motor", "async"):
            if c in vs:
                add("``%s``: >= 1.5× %s" % (n, SHORT[c]), ratio(vs[c]), vs[c] >= 1.5)
    for n in ("conc50_find_one", "conc500_find_one"):
        vs = r.vs("canned", n)
        others = [vs[c] for c in ("motor", "async") if c in vs]
        if others:
            worst = min(others)
            add("``%s``: >= 1.5× the better of Motor 3 and AsyncMongoClient" % n, ratio(worst),
                worst >= 1.5)  # fmt: skip
    warm = r.summary("canned", "slow10000_warm").get("greenmotor", {})
    if "wall_s" in warm:
        add("``slow10000_warm``: <= 3 s wall", "%.2f s" % warm["wall_s"]["median"],
            warm["wall_s"]["median"] <= 3.0)  # fmt: skip
    cold = r.summary("canned", "slow10000_cold")
    if "wall_s" in cold.get("greenmotor", {}) and "wall_s" in cold.get("async", {}):
        g, a = cold["greenmotor"]["wall_s"]["median"], cold["async"]["wall_s"]["median"]
        add("``slow10000_cold``: <= 0.6× AsyncMongoClient's wall time",
            "%.2f s vs %.2f s: %.2f×" % (g, a, g / a), g / a <= 0.6)  # fmt: skip
    for n in ("slow10000_warm", "slow10000_cold", "slow1000_warm", "slow1000_cold"):
        s = r.summary("canned", n).get("greenmotor", {})
        if "threads_peak" in s:
            extra = s["threads_peak"] - s["threads_base"]
            add("``%s``: no OS thread per operation" % n,
                "%d threads at peak (%d before)" % (s["threads_peak"], s["threads_base"]),
                extra < 10)  # fmt: skip
            add(
                "``%s``: <= 10 KiB RSS per pending operation, its connection included" % n,
                "%.1f KiB" % (s["rss_per_pending_op"] / 1024),
                s["rss_per_pending_op"] <= 10240,
            )
    for n in ("find_many", "insert_many"):
        vs = r.vs("canned", n)
        if "async" in vs:
            add("``%s``: >= AsyncMongoClient's throughput" % n, ratio(vs["async"]),
                vs["async"] >= 1.0)  # fmt: skip
    return out


def targets_table(results: Results) -> list[str]:
    rows = [[t, m, "yes" if ok else ("no" if ok is not None else "-")]
            for t, m, ok in targets(results)]  # fmt: skip
    if not rows:
        return []
    return list_table("The targets of issue 6, canned-reply server", ["Target", "Measured", "Met"],
                      rows, widths=[60, 30, 10])  # fmt: skip


def profile_section(results: Results) -> list[str]:
    profiles = results.part("canned").get("profiles") or {}
    out = []
    for workload, by_contender in profiles.items():
        ops = results.part("canned")["workloads"][workload]["spec"]["ops"]
        for c in ("greenmotor", "sync"):
            rows_in = by_contender.get(c)
            if not rows_in:
                continue
            rows = []
            for r in rows_in[:15]:
                rows.append(["``%s``" % r["function"].replace("`", "'"),
                             "%.2f" % (r["ncalls"] / ops),
                             "%.1f" % (1e6 * r["tottime_s"] / ops),
                             "%.1f" % (1e6 * r["cumtime_s"] / ops),
                             "%.0f%%" % (100 * r["tottime_share"])])  # fmt: skip
            out += list_table(
                "%s, ``%s`` under cProfile (%s operations): the 15 functions with the most "
                "own time" % (SHORT[c], workload, num(ops)),
                ["Function", "calls per op", "own µs per op", "cumulative µs per op",
                 "share of own time"], rows, widths=[52, 12, 12, 12, 12])  # fmt: skip
    return out


def wall_text(r: Results, workload: str, contender: str) -> str:
    """A contender's wall time on a slow workload, saying which figures are projections."""
    s = r.summary("canned", workload).get(contender, {})
    run = r.part("canned")["workloads"][workload]["runs"].get(contender, {})
    reps = run.get("reps") or []
    if s.get("capped") and any(not rep.get("capped") for rep in reps):
        return " and ".join("%.0f s (projected)" % rep["wall_s"] if rep.get("capped")
                            else "%.1f s" % rep["wall_s"] for rep in reps)  # fmt: skip
    return "%.1f s%s" % (s["wall_s"]["median"], " (projected)" if s.get("capped") else "")


def verdict(r: Results) -> list[str]:
    """One line per rival: where greenmotor wins, and by how much."""
    quick = [n for n, _ in r.workloads("canned", slow=False)]
    slow = [n for n, _ in r.workloads("canned", slow=True)]
    lines = []
    for c in ("motor", "async", "threads"):
        q = [(r.vs("canned", n).get(c), n) for n in quick if r.vs("canned", n).get(c)]
        sl = [(r.vs("canned", n).get(c), n) for n in slow if r.vs("canned", n).get(c)]
        if not q and not sl:
            continue
        text = "* **vs %s**: " % SHORT[c]
        if q:
            wins = [v for v, _ in q if v >= 1.0]
            text += "faster on %d of %d quick workloads (%s the other's throughput)" % (
                len(wins),
                len(q),
                span([v for v, _ in q]),
            )
        if sl:
            text += "; %s on the slow ones (the other's wall time ÷ greenmotor's: %s)" % (
                "faster" if all(v >= 1.0 for v, _ in sl) else "mixed",
                span([v for v, _ in sl]),
            )
        lines.append(text + ".")
    q = [r.vs("canned", n).get("sync") for n in quick if r.vs("canned", n).get("sync")]
    if q:
        lines.append(
            "* **vs sync PyMongo on one thread** (the floor: the same code with "
            "nothing around it): %s its throughput." % span(q)
        )
    return lines + [""] if lines else []


def tail_latency(r: Results, conc: list[str]) -> list[str]:
    """A paragraph on the latency spread under concurrency, when it says something."""
    bits, skewed = [], False
    for n in conc:
        s = r.summary("canned", n)
        lat = ["%s %s / %s ms" % (SHORT[c], num(s[c]["p50_us"] / 1000, 1), num(s[c]["p99_us"] / 1000, 1))
               for c in ("greenmotor", "motor", "async") if "p50_us" in s.get(c, {})]  # fmt: skip
        bits.append("``%s``: %s" % (n, ", ".join(lat)))
        g = s.get("greenmotor", {})
        if g.get("p50_us") and g["p99_us"] / g["p50_us"] > 20:
            skewed = True
    text = "Latency under concurrency, p50 / p99: " + "; ".join(bits) + "."
    if skewed:
        text += (
            " greenmotor's operations are served unevenly: most finish in about one round "
            "trip, a few wait far longer than anyone's average. An operation that never has to "
            "wait - the reply is already in the socket when PyMongo reads it, which is common "
            "when the server shares the CPU - completes inside the call, and ``await`` on an "
            "already finished Future does not return to the loop, so that coroutine goes "
            "straight on to its next operation while the others wait for the loop. (Measured "
            "while writing the suite, 50 coroutines doing 40 ``find_one`` each: the loop went "
            "292 ms without running a waiting callback while 624 operations completed, and no "
            "operation waited more than 19 ms for a pooled connection.)"
        )
    return [text, ""]


def answer(results: Results) -> list[str]:
    """The written answer, with its figures taken from the results."""
    r = results
    out = []
    seq = [n for n in ("seq_ping", "seq_find_one", "seq_insert_one") if r.vs("canned", n)]
    conc = [n for n in ("conc50_find_one", "conc500_find_one") if r.vs("canned", n)]
    bulk = [n for n in ("find_many", "insert_many") if r.vs("canned", n)]

    def vs_list(names, contender):
        return [r.vs("canned", n).get(contender) for n in names]

    out += verdict(r)
    if seq:
        out.append(
            "**Quick operations, one at a time** (canned-reply server, so the driver is what "
            "is measured): greenmotor ran at %s the speed of sync PyMongo on one thread "
            "(it runs the same code, plus a greenlet switch and a loop iteration per wait), "
            "%s Motor 3's and %s AsyncMongoClient's (%s)."
            % (span(vs_list(seq, "sync")), span(vs_list(seq, "motor")),
               span(vs_list(seq, "async")), ", ".join("``%s``" % n for n in seq)))  # fmt: skip
        out.append("")
    if conc:
        parts = []
        for n in conc:
            vs = r.vs("canned", n)
            parts.append("%s: %s Motor 3's throughput and %s AsyncMongoClient's"
                         % ("``%s``" % n, ratio(vs.get("motor")), ratio(vs.get("async"))))  # fmt: skip
        out.append("**Many quick operations at once** - " + "; ".join(parts) + ". "
                   "One thread does all the work in every contender (the GIL, and here one "
                   "CPU), so what decides is the CPU each operation costs; the thread pools "
                   "add a thread hand-off in each direction per operation.")  # fmt: skip
        out.append("")
        out += tail_latency(r, conc)
    slow_bits = []
    for n in ("slow1000_warm", "slow1000_cold", "slow10000_warm", "slow10000_cold"):
        s = r.summary("canned", n)
        g = s.get("greenmotor", {})
        if "wall_s" not in g:
            continue
        others = ["%s %s" % (SHORT[c], wall_text(r, n, c)) for c in ("async", "threads", "motor")
                  if "wall_s" in s.get(c, {})]  # fmt: skip
        slow_bits.append("``%s`` greenmotor %.2f s (client CPU %.1f s), %.1f KiB per pending "
                         "operation, %d OS threads; %s" % (
                             n, g["wall_s"]["median"], g["cpu_s"], g["rss_per_pending_op"] / 1024,
                             g["threads_peak"], ", ".join(others)))  # fmt: skip
    if slow_bits:
        out.append("**Many slow operations** (1 s each on the server): " + "; ".join(slow_bits) +
                   ". Waiting is cheap for greenmotor and AsyncMongoClient alike - a parked "
                   "greenlet or a suspended coroutine, plus the connection - while a thread "
                   "pool either caps concurrency (Motor's 10 workers: N/10 seconds) or pays "
                   "an OS thread per waiting operation (the thread-pool contender, sized to "
                   "N up to 1,000).")  # fmt: skip
        out.append("")
    if bulk:
        parts = ["``%s`` %s AsyncMongoClient's and %s sync's throughput"
                 % (n, ratio(r.vs("canned", n).get("async")), ratio(r.vs("canned", n).get("sync")))
                 for n in bulk]  # fmt: skip
        cpu = []
        for n in bulk:
            sm = r.summary("canned", n)
            cpu.append(
                "``%s`` %s"
                % (
                    n,
                    ", ".join(
                        "%s %.1f ms" % (SHORT[c], sm[c]["cpu_us_per_op"] / 1000)
                        for c in ("sync", "greenmotor", "async")
                        if "cpu_us_per_op" in sm.get(c, {})
                    ),
                )
            )
        out.append("**Bulk reads and writes** (1,000 documents per call): " + "; ".join(parts)
                   + ". Client CPU per call: " + "; ".join(cpu) + ". Each call costs one "
                   "greenlet and a handful of waits, so greenmotor's overhead is spread over "
                   "1,000 documents.")  # fmt: skip
        out.append("")
    sec = [n for n in ("seq_ping", "seq_find_one", "seq_insert_one", "conc50_find_one")
           if r.vs("secantus", n)]  # fmt: skip
    if sec:
        out.append(
            "**On real storage** (SecantusDB, a Python server that spends more time per "
            "operation than any driver): greenmotor ran at %s Motor 3's and %s "
            "AsyncMongoClient's speed (%s). The slower the server, the smaller the share of "
            "the time the driver decides."
            % (span([r.vs("secantus", n).get("motor") for n in sec]),
               span([r.vs("secantus", n).get("async") for n in sec]),
               ", ".join("``%s``" % n for n in sec)))  # fmt: skip
        out.append("")
    return out


WHY = """\
Every contender here runs its operations from one event loop thread (sync PyMongo runs them
on its only thread), and all Python code holds the GIL; on this machine every client process
also had a single CPU, shared with the server. So each contender's speed comes down to how
much CPU one operation costs it, and how many times the operation is handed from one thread
to another - the "CPU per operation" table above shows the first directly.

* **Sync PyMongo** is the floor: PyMongo's own work (building the command, BSON, pool
  checkout, server selection) and one blocking ``sendall`` and ``recv``. Nothing else runs,
  nothing else is possible.
* **greenmotor** runs exactly that code in a greenlet on the loop's thread. The extra cost
  per operation is starting a greenlet, registering the socket with the loop when the reply
  is not there yet, one switch to the loop and one back when it is, and resolving a Future.
  No thread is involved, so nothing is handed over, and an operation that would wait keeps
  the loop free for the others.
* **Motor 3** runs the same sync PyMongo code too, but on a worker thread: every operation is
  queued to the executor, a worker is woken, and the result is posted back to the loop with
  ``call_soon_threadsafe`` (a write to the loop's self-pipe). Those two hand-offs, and the
  GIL changing hands with them, cost more CPU than the greenlet switches. With 10 workers
  (5 per CPU) it also runs at most 10 operations at a time: 1,000 one-second operations need
  100 s.
* **The thread-pool contender** is the same idea with a pool as large as the concurrency (up
  to 1,000 threads): it lifts Motor's cap, but every waiting operation holds an OS thread
  and its stack, and hundreds of threads contending for the GIL cost CPU of their own.
* **AsyncMongoClient** is a second implementation of the driver in asyncio: every operation
  goes through several layers of coroutines, asyncio Futures and the loop's transport and
  protocol machinery. It waits as cheaply as greenmotor, but costs more CPU per operation.

Real storage changes the proportions, not the order: when the server takes a millisecond, a
driver's 100 µs matter less, so the contenders' figures move closer together.

**Memory per waiting operation.** RSS counts user-space memory only: the greenlet or
coroutine frames, PyMongo's connection object and buffers. The kernel's socket buffers are
not in it. The "RSS per idle connection" column is the memory of the warm pool before any
slow operation ran; the difference to "per pending op" is what waiting costs on top.
"""


def other_work(results: Results) -> str:
    """How busy the CPUs the suite did not use were, per workload: other processes."""
    m = results.data.get("machine", {})
    if m.get("placement") != "same":
        return "not measured (only with --placement same)"
    used = {cpu for server in ("canned", "secantus") for _, w in results.workloads(server)
            for run in w.get("runs", {}).values() for cpu in run.get("affinity") or ()}  # fmt: skip
    shares = []
    for server in ("canned", "secantus"):
        for n, w in results.workloads(server):
            busy = w.get("cpu_busy_pct")
            if busy:
                others = [v for cpu, v in busy.items() if int(cpu) not in used]
                if others:
                    shares.append((max(others), server, n))
    if not shares:
        return "not measured"
    shares.sort()
    median = shares[len(shares) // 2][0]
    top = shares[-1]
    return (
        "the CPUs the suite did not use were busy %.0f%% of the time (median over "
        "workloads; most: %.0f%% during %s ``%s``). The load average also counts the "
        "thread-pool contender's own threads." % (median, top[0], top[1], top[2])
    )


def motor_workers(results: Results) -> int | None:
    for server in ("canned", "secantus"):
        for _, w in results.workloads(server):
            s = w["summary"].get("motor", {})
            if "max_parallel" in s:
                return s["max_parallel"]
    return None


def capped_note(results: Results) -> str:
    capped = sorted({c for _, w in results.workloads("canned", slow=True)
                     for c, s in w["summary"].items() if s.get("capped")},
                    key=ORDER.index)  # fmt: skip
    if not capped:
        return "; no run needed it"
    return "; in this run: " + ", ".join(SHORT[c] for c in capped)


def method_section(results: Results) -> list[str]:
    d = results.data
    m = d.get("machine", {})
    v = d.get("versions", {})
    canned = results.part("canned")
    ceiling = canned.get("ceiling", {})
    out = heading("How it was measured", "-")
    rows = [
        ["Command", "``%s``" % d.get("command", "python -m benchmark")],
        ["Date (UTC)", d.get("generated", "-")],
        ["Machine", "%s CPUs (``nproc``), %s, %.0f GiB RAM, %s" % (
            m.get("nproc"), m.get("cpu_model"), (m.get("memory_bytes") or 0) / 2**30,
            m.get("platform"))],
        ["Placement", "``--placement %s``: %s" % (m.get("placement"), m.get("placement_description"))],
        ["Load average (1 min) at start / end", "%s / %s" % (
            "%.2f" % m["loadavg_start"][0] if m.get("loadavg_start") else "-",
            "%.2f" % m["loadavg_end"][0] if m.get("loadavg_end") else "-")],
        ["Other work on the machine", other_work(results)],
        ["Python", m.get("python", "-")],
        ["Packages", ", ".join("%s %s" % (k, val) for k, val in v.items()
                               if k != "greenmotor_commit" and val)],
        ["greenmotor commit", "``%s``" % v.get("greenmotor_commit")],
        ["Duration", "%.0f s" % d.get("duration_s", 0)],
    ]  # fmt: skip
    out += list_table("Machine and versions", ["Item", "Value"], rows, widths=[25, 75])
    out += [
        "Contenders, each in a fresh process per workload (per repetition for the slow "
        "workloads), all driven by the same harness code (``benchmark/worker.py``):",
        "",
        "* **sync**: ``pymongo.MongoClient`` called directly on the main thread. The floor: "
        "greenmotor runs this same code.",
        "* **thread pool**: the same sync client called from an asyncio loop through "
        "``loop.run_in_executor`` on a ``ThreadPoolExecutor`` with one thread per concurrent "
        "operation (1 for the sequential workloads, 50 or 500 for the concurrent ones, N for "
        "N slow operations up to 1,000: 10,000 threads on one CPU did not finish opening "
        "their connections within 8 minutes, GIL hand-offs among thousands of runnable "
        "threads).",
        "* **greenmotor**: ``greenmotor.MotorClient(uri, io_loop=IOLoop.current())``.",
        "* **Motor 3**: ``motor.motor_tornado.MotorClient(uri, io_loop=IOLoop.current())``; "
        "Motor runs every operation on its executor of 5 × cpu_count = %s worker threads."
        % (motor_workers(results) or "5 × cpu_count"),
        "* **AsyncMongoClient**: ``pymongo.AsyncMongoClient(uri)``.",
        "",
        "The asynchronous contenders run under ``asyncio.run`` (for the Tornado ones, "
        "``IOLoop.current()`` is that loop), one coroutine per concurrent stream of "
        "operations. Pool settings are the same for all: PyMongo's defaults (maxPoolSize 100, "
        "maxConnecting 2) for the quick workloads; ``maxPoolSize=N`` and the default "
        "maxConnecting for N slow operations - so ``maxPoolSize=10000`` for the "
        "10,000-operation runs.",
        "",
        "Each quick workload is warmed up (a tenth of its operations, same concurrency) and "
        "then repeated; tables give the median and the spread of the repetitions, and every "
        "figure also as a ratio to sync PyMongo's. Latencies are measured around each "
        "operation (p50, p99: nearest rank over one repetition, median over repetitions). "
        "CPU per operation is the client process's user + system time (all threads) during "
        "the repetitions, divided by the operations.",
        "",
        "Slow workloads send ``{slow: 1, delayMS: 1000}`` with ``db.command``; the canned "
        "server answers each after 1 s without blocking the others. *Warm pool*: the client "
        "first sends N ``barrier`` commands that the server holds until all N have arrived, "
        "so N connections are open and idle when the measured run starts (Motor can only "
        "ever use 10). *Cold pool*: one connection is open (after a ``ping``). Memory per "
        "pending operation is (peak RSS during warm-up and run - RSS before any of the N "
        "connections existed) ÷ N, so it includes the connection; the peak is the kernel's "
        "high-water mark (``VmHWM``, reset first). Threads are sampled every 20 ms from the "
        "loop. A run that has not finished after %.0f s is stopped and its wall time "
        "projected from the operations done (marked *projected*)%s."
        % (d.get("slow_cap_s", 30), capped_note(results)),
        "",
        "Why one CPU for server and client: a round trip between processes on different "
        "CPUs of this virtual machine waits for the hypervisor to wake the other CPU. While "
        "writing the suite, ``--placement split`` (server on CPU 1, client on CPU 0) gave "
        "sync PyMongo about 750 ``find_one`` per second against about 3,000 with "
        "``--placement same``, and made greenmotor and AsyncMongoClient slower on the "
        "concurrent and 10,000-operation workloads too; with everything on one CPU the figures "
        "measure the drivers' CPU cost, not the wake-ups. Every process - server, each "
        "contender's client, its threads - had the same placement.",
        "",
        "Servers run as separate processes: ``benchmark/canned_server.py`` (fixed, "
        "precomputed replies; driver overhead) and SecantusDB (``python -m secantus "
        "--storage-path :memory:``; real storage, fewer workloads, no slow ones since it has "
        "no delayed command; its inserts slow down as data accumulates, so every contender "
        "gets a fresh server for the writing workloads).",
        "",
    ]
    if ceiling and "error" not in ceiling:
        best = max((results.ops("canned", "seq_ping", c) or 0) for c in ORDER)
        out += [
            "The canned server's ceiling, measured with raw sockets and no driver "
            "(``benchmark/ceiling.py``) under the same placement: %s sequential pings/s on "
            "one connection, %s pipelined pings/s, %s sequential finds of 100 documents/s%s."
            % (num(ceiling.get("ping_sequential_per_s")), num(ceiling.get("ping_pipelined_per_s")),
               num(ceiling.get("find100_sequential_per_s")),
               ("; the fastest driver's sequential pings reached %s/s, %.0f%% of it"
                % (num(best), 100 * best / ceiling["ping_sequential_per_s"])) if best else ""),
            "",
        ]  # fmt: skip
    return out


def render(results: Results, charts: dict, images_rel: str) -> str:
    d = results.data
    out = [
        ".. This page is generated by benchmark/report.py from benchmark/results/latest.json.",
        "   Re-run the suite (tools/run-benchmarks) or the report instead of editing it.",
        "",
    ]
    out += heading("Benchmarks: greenlets, a thread pool, or native async?", "=")
    out += [
        "For a Tornado application talking to a MongoDB server close by, is it faster to run "
        "synchronous PyMongo in greenlets on the loop (greenmotor), on a thread pool (Motor 3), "
        "or to use PyMongo's native ``AsyncMongoClient``? And does the greenlet approach keep "
        "async's cheap waiting? These figures come from one run of the suite in "
        "``benchmark/``%s."
        % (
            " (a ``--quick`` smoke run: few repetitions, small workloads)" if d.get("quick") else ""
        ),
        "",
    ]
    out += heading("The answer", "-")
    out += answer(results)
    out += heading("Run it", "-")
    out += [
        "From a fresh checkout (needs Python >= 3.11; makes ``.venv`` and installs "
        "``.[bench]``: Motor, SecantusDB, matplotlib, psutil)::",
        "",
        "    tools/run-benchmarks            # the full suite, about 20 minutes",
        "    tools/run-benchmarks --quick    # a smoke run, about 3 minutes",
        "    tools/run-benchmarks --contenders greenmotor,async --workloads seq_ping --no-report",
        "",
        "Results go to ``benchmark/results/latest.json``; this page and its charts are then "
        "regenerated from it (``python -m benchmark.report``).",
        "",
    ]
    out += method_section(results)
    for server, title in (("canned", "Quick operations, canned-reply server"),
                          ("secantus", "Quick operations, SecantusDB (real storage)")):  # fmt: skip
        tables = quick_tables(results, server)
        if not tables:
            continue
        out += heading(title, "-")
        names = [n for n, _ in results.workloads(server, slow=False)]
        out += ["* ``%s``: %s" % (n, DESCRIPTIONS.get(n, n)) for n in names] + [""]
        for key, alt in ((server + "-throughput", "throughput relative to sync PyMongo"),
                         (server + "-latency", "latency p50 and p99")):  # fmt: skip
            if key in charts:
                out += [".. image:: %s/%s" % (images_rel, charts[key]), "   :alt: %s" % alt,
                        "   :width: 100%", ""]  # fmt: skip
        out += tables
    slow = slow_table(results)
    if slow:
        out += heading("Many slow operations, canned-reply server", "-")
        if "slow" in charts:
            out += [".. image:: %s/%s" % (images_rel, charts["slow"]),
                    "   :alt: wall time, memory and threads for concurrent slow operations",
                    "   :width: 100%", ""]  # fmt: skip
        out += slow
    ratios = ratio_table(results)
    if ratios:
        out += heading("greenmotor against the others", "-")
        out += ratios
        out += targets_table(results)
    out += heading("Why", "-")
    out += WHY.splitlines() + [""]
    prof = profile_section(results)
    if prof:
        out += heading("Where greenmotor's time goes", "-")
        out += [
            "One extra run of greenmotor and of sync PyMongo under ``cProfile`` (not part of "
            "the timings; cProfile slows Python calls down, so read the shares, not the "
            "absolute times). What greenmotor adds is the difference between the two. The "
            "time in ``send`` includes the server's: with both on one CPU the kernel often "
            "runs the server as soon as the request is written, before ``send`` returns.",
            "",
        ]
        out += prof
    if os.path.exists(OPTIMISATIONS):
        out += heading("greenmotor's hot-path optimisations", "-")
        with open(OPTIMISATIONS) as f:
            out += f.read().rstrip().splitlines() + [""]
    errors = [(s, n, c, w["runs"][c].get("error")) for s in ("canned", "secantus")
              for n, w in results.workloads(s) for c in w.get("runs", {})
              if "error" in w["runs"][c]]  # fmt: skip
    if errors:
        out += heading("Failed runs", "-")
        out += [
            "* %s ``%s`` %s: %s" % (s, n, SHORT.get(c, c), e.replace("*", ""))
            for s, n, c, e in errors
        ]
        out += [""]
    return "\n".join(wrap_page(out)).rstrip() + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=DEFAULT_INPUT)
    parser.add_argument("--rst", default=DEFAULT_RST)
    parser.add_argument("--images", default=DEFAULT_IMAGES)
    args = parser.parse_args(argv)
    with open(args.input) as f:
        results = Results(json.load(f))
    charts = make_charts(results, args.images)
    images_rel = os.path.relpath(args.images, os.path.dirname(os.path.abspath(args.rst)))
    text = render(results, charts, images_rel.replace(os.sep, "/"))
    with open(args.rst, "w") as f:
        f.write(text)
    print("wrote %s and %d charts in %s" % (args.rst, len(charts), args.images))


if __name__ == "__main__":
    main()
