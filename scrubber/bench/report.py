"""The benchmark's outputs: the JSON report, a printed table, and a chart (with matplotlib).

Everything here reads the report dictionary that ``scrubber.bench.__main__`` fills; the chart
is optional (``pip install matplotlib``) and its absence only skips the picture.
"""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

Direction = Literal[">=", "<="]

#: What the project aims for (docs/performance.md, "Goals"): name -> (direction, goal). Each is
#: printed with the measured value and whether it is met; none is asserted.
GOALS: dict[str, tuple[Direction, float]] = {
    "tuned_faust_vs_raw": (">=", 0.4),
    "worker_vs_tuned_faust": (">=", 0.5),
    "worker_lines_per_s": (">=", 6_000.0),
    "worker_cpu_s_per_1k_lines": ("<=", 0.15),
    "p99_ms_at_half_peak": ("<=", 100.0),
    "peak_rss_mb": ("<=", 350.0),
    "offline_lines_per_s": (">=", 15_000.0),
}


#: The Kafka cases of the report, by their key, with their labels.
CASES: dict[str, str] = {
    "raw": "(a) raw aiokafka",
    "faust": "(b) Faust, defaults",
    "faust_tuned": "(b) Faust, tuned",
    "scrubber": "(c) scrubber worker",
    "scrubber_x2": "(c) 2 scrubber workers",
}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "kafka_version": os.environ.get("KAFKA_VERSION", "4.1.1 (deploy/local default)"),
        "load_average": list(os.getloadavg()),
    }


def median_of(runs: Sequence[dict[str, Any]], *path: str) -> float | None:
    """The median of a nested value over several runs (runs without it are skipped)."""
    values = []
    for run in runs:
        node: Any = run
        for key in path:
            if not isinstance(node, dict) or key not in node:
                node = None
                break
            node = node[key]
        if isinstance(node, int | float):
            values.append(float(node))
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Medians per case, the ratios and the goals, from the raw runs in the report."""
    kafka = report.get("kafka", {})
    summary: dict[str, Any] = {}
    for case in CASES:
        runs = kafka.get(case) or []
        if not runs:
            continue
        summary[case] = {
            "runs": len(runs),
            "peak_lines_per_s": median_of(runs, "phases", "peak", "lines_per_s"),
            "peak_lines_per_s_runs": [
                run.get("phases", {}).get("peak", {}).get("lines_per_s") for run in runs
            ],
            "cpu_s_per_1k_lines": median_of(runs, "phases", "peak", "cpu_s_per_1k_lines"),
            "cpu_s_per_1k_lines_runs": [
                run.get("phases", {}).get("peak", {}).get("cpu_s_per_1k_lines") for run in runs
            ],
            "peak_early_lines_per_s": median_of(runs, "phases", "peak", "lines_per_s_early"),
            "peak_late_lines_per_s": median_of(runs, "phases", "peak", "lines_per_s_late"),
            "peak_rss_mb": (median_of(runs, "peak_rss_bytes") or 0) / 2**20,
            "latency_full_ms": {
                q: median_of(runs, "phases", "full", "latency_ms", q) for q in ("p50", "p95", "p99")
            },
            "latency_half_ms": {
                q: median_of(runs, "phases", "half", "latency_ms", q) for q in ("p50", "p95", "p99")
            },
            "latency_half_p99_runs": [
                run.get("phases", {}).get("half", {}).get("latency_ms", {}).get("p99")
                for run in runs
            ],
            "half_rate_lines_per_s": median_of(runs, "phases", "half", "target_lines_per_s"),
        }

    def get(case: str) -> float | None:
        value = summary.get(case, {}).get("peak_lines_per_s")
        return float(value) if value is not None else None

    summary["ratios"] = {
        "scrubber_vs_raw": _ratio(get("scrubber"), get("raw")),
        "scrubber_vs_faust": _ratio(get("scrubber"), get("faust")),
        "scrubber_vs_faust_tuned": _ratio(get("scrubber"), get("faust_tuned")),
        "faust_vs_raw": _ratio(get("faust"), get("raw")),
        "faust_tuned_vs_raw": _ratio(get("faust_tuned"), get("raw")),
        "scale_out_2_workers": _ratio(get("scrubber_x2"), get("scrubber")),
    }
    worker = summary.get("scrubber", {})
    # The RSS goal is about the full reference data and 1,000,000 patients: only the memory
    # part measures that (a stream case's worker holds the extracts and a few thousand).
    memory_bytes = (kafka.get("memory", {}) or {}).get("peak_rss_bytes")
    rss = memory_bytes / 2**20 if memory_bytes else None
    measured = {
        "tuned_faust_vs_raw": summary["ratios"]["faust_tuned_vs_raw"],
        "worker_vs_tuned_faust": summary["ratios"]["scrubber_vs_faust_tuned"],
        "worker_lines_per_s": get("scrubber"),
        "worker_cpu_s_per_1k_lines": worker.get("cpu_s_per_1k_lines"),
        "p99_ms_at_half_peak": (worker.get("latency_half_ms") or {}).get("p99"),
        "peak_rss_mb": rss,
        # The offline scrub as fast as the command runs it here: in one process per core
        # (``--jobs``) where there is more than one.
        "offline_lines_per_s": (report.get("offline_parallel") or report.get("offline") or {}).get(
            "lines_per_s"
        ),
    }
    summary["goals"] = {
        name: goal_status(measured[name], direction, goal)
        for name, (direction, goal) in GOALS.items()
    }
    return summary


def goal_status(value: float | None, direction: Direction, goal: float) -> dict[str, Any]:
    """A measured value against its goal; ``met`` is None when the value was not measured."""
    met = None if value is None else (value >= goal if direction == ">=" else value <= goal)
    return {"value": value, "direction": direction, "goal": goal, "met": met}


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    """The results as a plain-text table for the terminal."""
    lines = []
    m = report.get("machine", {})
    lines.append(
        f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB, "
        f"Python {m.get('python')}; load at start {m.get('load_average')}"
    )
    if "broker_partitions" in m:
        held = m["broker_partitions"]
        lines.append(
            "broker: unknown partitions at start"
            if held is None
            else f"broker: {held:,} partitions of {m['broker_topics']:,} topics at start"
        )
    s = report.get("stream", {})
    lines.append(
        f"stream: {s.get('lines'):,} lines, {s.get('patients'):,} patients, "
        f"E/M {s.get('em_share', 0):.0%}, surgical {s.get('surgical_share', 0):.0%}, "
        f"add-on {s.get('add_on_share', 0):.1%}, out of date order "
        f"{s.get('out_of_order_share', 0):.0%}, unreadable {s.get('unreadable_share', 0):.1%}"
    )
    e = report.get("engine")
    if e:
        lines.append(
            f"(e) engine alone: {e['us_per_line']:.1f} us/line (median of "
            f"{len(e['us_per_line_runs'])}; {e['lines_per_s']:,.0f} lines/s; mean "
            f"{e['mean_other_lines']:.1f} other lines)"
        )
    o = report.get("offline")
    if o:
        lines.append(
            f"(d) offline scrub: {o['lines_per_s']:,.0f} lines/s (median of "
            f"{len(o['lines_per_s_runs'])}); flagged {o['flagged_share']:.1%}, rejected "
            f"{o['rejected_share']:.1%}, revisions {o['revisions']:,}"
        )
    p = report.get("offline_parallel")
    if p:
        lines.append(
            f"(d) offline scrub in {p['jobs']} processes: {p['lines_per_s']:,.0f} lines/s "
            f"(median of {len(p['lines_per_s_runs'])}); the same bytes as one process: "
            f"{'yes' if p.get('same_bytes') else 'NO'}"
        )
    w = report.get("work")
    if w:
        lines.append(
            f"(f) the worker's own work, without Kafka: {w['us_per_line']:.1f} us of CPU per line "
            f"(median of {len(w['us_per_line_runs'])}: "
            + ", ".join(f"{v:.1f}" for v in w["us_per_line_runs"])
            + ")"
        )
    rd = report.get("refdata")
    if rd:
        from .refdata import describe

        lines.append(describe(rd))
    summary = report.get("summary", {})
    header = (
        f"{'case':<28}{'lines/s':>10}{'CPU s/1k':>10}{'RSS MB':>8}"
        f"{'full p50/p95/p99 ms':>24}{'half-peak p50/p95/p99 ms':>28}"
    )
    rows = [header]
    for key, label in CASES.items():
        c = summary.get(key)
        if not c:
            continue
        full = c.get("latency_full_ms") or {}
        half = c.get("latency_half_ms") or {}
        rows.append(
            f"{label:<28}{_fmt(c.get('peak_lines_per_s')):>10}"
            f"{_fmt(c.get('cpu_s_per_1k_lines'), 2):>10}{_fmt(c.get('peak_rss_mb')):>8}"
            f"{'/'.join(_fmt(full.get(q)) for q in ('p50', 'p95', 'p99')):>24}"
            f"{'/'.join(_fmt(half.get(q)) for q in ('p50', 'p95', 'p99')):>28}"
        )
    if len(rows) > 1:
        lines.extend(rows)
    r = summary.get("ratios") or {}
    if r:
        lines.append(
            "ratios: c/a "
            + _fmt(r.get("scrubber_vs_raw"), 2)
            + ", c/b "
            + _fmt(r.get("scrubber_vs_faust"), 2)
            + ", c/b tuned "
            + _fmt(r.get("scrubber_vs_faust_tuned"), 2)
            + ", b/a "
            + _fmt(r.get("faust_vs_raw"), 2)
            + ", b tuned/a "
            + _fmt(r.get("faust_tuned_vs_raw"), 2)
            + ", 2 workers / 1 "
            + _fmt(r.get("scale_out_2_workers"), 2)
        )
    for key, label in CASES.items():
        c = summary.get(key)
        if c and c["runs"] > 1:
            lines.append(
                f"{label} over {c['runs']} runs: lines/s "
                + ", ".join(_fmt(v) for v in c["peak_lines_per_s_runs"])
                + "; CPU s/1k "
                + ", ".join(_fmt(v, 3) for v in c["cpu_s_per_1k_lines_runs"])
                + "; half-peak p99 ms "
                + ", ".join(_fmt(v) for v in c["latency_half_p99_runs"])
            )
    c = summary.get("scrubber")
    if c and c.get("peak_early_lines_per_s"):
        lines.append(
            "(c) capacity while its histories grow: "
            f"{_fmt(c['peak_early_lines_per_s'])} lines/s early in the peak phase, "
            f"{_fmt(c.get('peak_late_lines_per_s'))} late"
        )
    mem = report.get("kafka", {}).get("memory")
    if mem:
        lines.append(
            f"memory: worker with {mem['codes']:,} codes: idle RSS "
            f"{mem.get('idle_rss_bytes', 0) / 2**20:,.0f} MB, peak "
            f"{mem.get('peak_rss_bytes', 0) / 2**20:,.0f} MB after {mem['lines']:,} lines"
        )
    goals = summary.get("goals") or {}
    if goals:
        parts = []
        for name, g in goals.items():
            verdict = {True: "met", False: "not met", None: "not measured"}[g["met"]]
            value, goal = _fmt(g["value"], 3), _fmt(g["goal"], 3)
            parts.append(f"{name} {value} ({g['direction']} {goal}: {verdict})")
        lines.append("goals:\n  " + "\n  ".join(parts))
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: Path) -> None:
    """The whole report, indented, with sorted keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def chart(report: dict[str, Any], path: Path) -> bool:
    """Throughput over time and latency distributions as a PNG; False without matplotlib."""
    try:
        mpl = importlib.import_module("matplotlib")
        mpl.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return False
    kafka = report.get("kafka", {})
    labels = CASES
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0][0]
    for key, label in labels.items():
        runs = kafka.get(key) or []
        if runs and "timeline_per_s" in runs[0]["phases"].get("peak", {}):
            series = runs[0]["phases"]["peak"]["timeline_per_s"]
            ax.plot(range(len(series)), series, label=label)
    ax.set_title("Throughput while draining the peak backlog (first run)")
    ax.set_xlabel("seconds since the first input")
    ax.set_ylabel("lines answered per second")
    ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    for ax, phase, title in (
        (axes[0][1], "half", "Latency at half of each case's peak (CDF)"),
        (axes[1][0], "full", "Latency of a full-speed burst (CDF)"),
    ):
        for key, label in labels.items():
            runs = kafka.get(key) or []
            sample = runs[0]["phases"].get(phase, {}).get("latency_sample_ms") if runs else None
            if sample:
                ordered = sorted(sample)
                n = len(ordered)
                ax.plot(ordered, [(i + 1) / n for i in range(n)], label=label)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("input timestamp to output timestamp, ms")
        ax.set_ylabel("share of lines")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    ax = axes[1][1]
    summary = report.get("summary", {})
    names, values = [], []
    for key, label in labels.items():
        value = summary.get(key, {}).get("peak_lines_per_s")
        if value:
            names.append(label.replace(" ", "\n", 1))
            values.append(value)
    if report.get("offline"):
        names.append("(d) offline\nscrub")
        values.append(report["offline"]["lines_per_s"])
    if report.get("offline_parallel"):
        names.append(f"(d) offline\n--jobs {report['offline_parallel']['jobs']}")
        values.append(report["offline_parallel"]["lines_per_s"])
    if report.get("engine"):
        names.append("(e) engine\nalone")
        values.append(report["engine"]["lines_per_s"])
    ax.bar(names, values, color="tab:blue")
    ax.set_yscale("log")
    ax.set_ylabel("lines per second (median)")
    ax.set_title("Peak throughput per case")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    fig.suptitle(
        f"claim-scrubber benchmark: {report.get('stream', {}).get('lines', 0):,} lines, "
        f"{report.get('machine', {}).get('cores')} cores"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
