"""The benchmark's parts that need no Kafka run, on a few hundred lines (structure, not timings).

The stream generator is deterministic and realistic enough to be worth its name; the engine-only
and offline measurements, the statistics of a phase, the report, the table and the chart are
exercised end to end through ``python -m scrubber.bench --only engine,offline``, so the
benchmark cannot rot between the runs someone makes by hand.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pytest

from scrubber.bench import report as reporting
from scrubber.bench.__main__ import describe, main
from scrubber.bench.generator import StreamGenerator, StreamMix
from scrubber.bench.local import engine_cases, time_engine, time_offline
from scrubber.bench.stream import Out, Sent, percentile, phase_stats
from scrubber.contracts import ClaimLine
from scrubber.refdata.build import build_bundle
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import Bundle, ReferenceSnapshot

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return build_bundle(REPO / "seeds", mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)


def test_generator_is_deterministic_and_realistic(bundle: Bundle) -> None:
    raws = StreamGenerator(bundle, seed=3, patients=40).generate(600)
    assert raws == StreamGenerator(bundle, seed=3, patients=40).generate(600)
    assert len(raws) == 600
    stats = describe(raws, bundle)
    assert stats["lines"] == 600 and 0 < stats["patients"] <= 40
    assert stats["em_share"] > stats["surgical_share"] > stats["add_on_share"] > 0
    assert 0 < stats["out_of_order_share"] < 0.5
    assert stats["unreadable_share"] < 0.1
    readable = []
    for raw in raws:
        try:
            readable.append(ClaimLine.model_validate_json(raw))
        except ValueError:
            continue
    assert len(readable) >= 0.9 * len(raws)
    # Claims have one to four lines, numbered from 1.
    assert {line.line_number for line in readable} <= {1, 2, 3, 4}


def test_a_clean_stream_is_mostly_accepted(bundle: Bundle) -> None:
    clean = StreamMix(flag_worthy=0.0, malformed=0.0, redelivered=0.0)
    raws = StreamGenerator(bundle, seed=5, patients=30, mix=clean).generate(300)
    result = time_offline(raws, ReferenceSnapshot(bundle), repeats=1)
    assert result["rejected"] == 0
    assert result["flagged_share"] < 0.05


def test_engine_and_offline_measurements(bundle: Bundle) -> None:
    snapshot = ReferenceSnapshot(bundle)
    raws = StreamGenerator(bundle, seed=4, patients=30).generate(300)
    cases = engine_cases(raws)
    assert 0 < len(cases) <= 300
    engine = time_engine(cases, snapshot, date(2026, 9, 1), repeats=2)
    assert set(engine) >= {"lines", "us_per_line", "us_per_line_runs", "lines_per_s"}
    assert len(engine["us_per_line_runs"]) == 2 and engine["us_per_line"] > 0
    offline = time_offline(raws, snapshot, repeats=1)
    assert offline["lines"] == 300
    assert offline["accepted"] + offline["flagged"] + offline["rejected"] <= 300
    assert offline["lines_per_s"] > 0
    parallel = time_offline(raws, snapshot, repeats=1, jobs=2)
    assert parallel["jobs"] == 2 and parallel["lines_per_s"] > 0
    assert parallel["digest"] == offline["digest"]  # the same bytes written
    other = time_offline(raws[:-1], snapshot, repeats=1)
    assert other["digest"] != offline["digest"]  # the digest tells outputs apart


def test_the_worker_path_runs_the_workers_code_over_every_line(bundle: Bundle) -> None:
    from scrubber.bench.worker_path import time_worker_path

    snapshot = ReferenceSnapshot(bundle)
    raws = StreamGenerator(bundle, seed=5, patients=30).generate(600)
    offline = time_offline(raws, snapshot, repeats=1)
    work = time_worker_path(raws, snapshot, repeats=2)
    assert work["lines"] == 600 and len(work["us_per_line_runs"]) == 2
    assert work["us_per_line"] > 0
    # Every line gives a result or a dead letter, plus the revisions it causes, and the
    # claims of any 837 lines: at least one output per line, as many as the offline scrub's
    # results and rejects (which count no claims).
    assert work["outputs"] >= offline["lines"]


def test_phase_statistics_from_positions_and_timestamps() -> None:
    sent = [Sent(i % 4, i // 4, 1000 + i) for i in range(100)]
    outs = [
        Out(s.partition, s.offset, s.timestamp_ms + 5 + (i % 10), True) for i, s in enumerate(sent)
    ]
    outs.append(Out(0, 0, 2000, False))  # a revision of an earlier line
    stats = phase_stats("peak", sent, outs, [], include_cpu=False)
    assert stats["answered"] == 100 and stats["revisions"] == 1
    assert stats["latency_ms"]["p50"] >= 5
    assert sum(stats["timeline_per_s"]) == 100
    assert percentile([1, 2, 3, 4], 100) == 4 and percentile([], 50) == 0


def test_the_bench_command_writes_a_report_without_kafka(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code = main(
        [
            "--lines", "400", "--patients", "40", "--repeats", "1",
            "--only", "engine,offline", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    report = orjson.loads((out / "report.json").read_bytes())
    assert set(report) >= {
        "machine", "config", "stream", "engine", "offline", "summary", "command",
    }  # fmt: skip
    assert report["config"]["lines"] == 400
    assert report["machine"]["cores"] >= 1
    assert "goals" in report["summary"] and "ratios" in report["summary"]
    assert "engine alone" in reporting.table(report)
    if report["machine"]["cores"] > 1:  # in one process per core too, and the same bytes
        assert report["offline_parallel"]["same_bytes"] is True
        assert "the same bytes as one process: yes" in reporting.table(report)
        goal = report["summary"]["goals"]["offline_lines_per_s"]["value"]
        assert goal == report["offline_parallel"]["lines_per_s"]
    if (out / "report.png").exists():
        assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_reads_medians_and_ratios() -> None:
    def run(rate: float) -> dict[str, object]:
        return {
            "phases": {"peak": {"lines_per_s": rate}, "half": {"latency_ms": {"p99": 50.0}}},
            "peak_rss_bytes": 100 * 2**20,
        }

    report = {
        "kafka": {
            "raw": [run(10_000.0)],
            "faust": [run(2_000.0), run(1_000.0), run(3_000.0)],
            "faust_tuned": [run(4_000.0)],
            "scrubber": [run(1_000.0)],
            "scrubber_x2": [run(1_500.0)],
        },
        "offline": {"lines_per_s": 20_000.0},
    }
    summary = reporting.summarise(report)
    assert summary["faust"]["peak_lines_per_s"] == 2_000.0
    assert summary["faust"]["peak_lines_per_s_runs"] == [2_000.0, 1_000.0, 3_000.0]
    assert summary["ratios"]["scrubber_vs_faust"] == 0.5
    assert summary["ratios"]["scrubber_vs_faust_tuned"] == 0.25
    assert summary["ratios"]["faust_tuned_vs_raw"] == 0.4
    assert summary["ratios"]["scale_out_2_workers"] == 1.5
    goals = summary["goals"]
    assert goals["p99_ms_at_half_peak"] == {
        "value": 50.0, "direction": "<=", "goal": 100.0, "met": True,
    }  # fmt: skip
    assert goals["tuned_faust_vs_raw"]["met"] is True
    assert goals["worker_vs_tuned_faust"]["met"] is False
    assert goals["worker_lines_per_s"]["met"] is False
    assert goals["offline_lines_per_s"]["met"] is True
    assert goals["worker_cpu_s_per_1k_lines"]["met"] is None  # not measured
    # A stream case's RSS is not the memory goal's (full tables, 1,000,000 patients).
    assert goals["peak_rss_mb"]["met"] is None
    measured = {**report, "kafka": {**report["kafka"], "memory": {"peak_rss_bytes": 400 * 2**20}}}
    assert reporting.summarise(measured)["goals"]["peak_rss_mb"] == {
        "value": 400.0, "direction": "<=", "goal": 350.0, "met": False,
    }  # fmt: skip
    stream = {"lines": 0, "patients": 0}
    text = reporting.table({"kafka": report["kafka"], "stream": stream, "summary": summary})
    assert "worker_lines_per_s 1,000.000 (>= 6,000.000: not met)" in text
    assert "(b) Faust, defaults over 3 runs: lines/s 2,000, 1,000, 3,000" in text


def test_the_table_names_how_crowded_the_broker_was() -> None:
    """A broker holding thousands of partitions spends CPU of its own: the report says so."""
    stream = {"lines": 10, "patients": 2}
    machine = {"cpu": "x", "cores": 2}
    crowded = {**machine, "broker_partitions": 15_135, "broker_topics": 4_063}
    text = reporting.table({"machine": crowded, "stream": stream})
    assert "broker: 15,135 partitions of 4,063 topics at start" in text
    assert "broker:" not in reporting.table({"machine": machine, "stream": stream})
    unknown = {**machine, "broker_partitions": None, "broker_topics": None}
    assert "broker: unknown partitions" in reporting.table({"machine": unknown, "stream": stream})
