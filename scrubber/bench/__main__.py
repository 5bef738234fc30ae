"""``python -m scrubber.bench``: the whole benchmark in one run (``make bench``).

Generates the stream, measures (e) the engine alone, (d) the offline scrub and (f) the
worker's own work per line without Kafka (``worker_path``), then, on the
local Kafka, (a) a raw aiokafka passthrough, (b) a bare Faust passthrough with Faust's defaults
and tuned as the worker tunes Faust (part ``faust`` runs both), (c) the scrubber worker, two
scrubber workers in one group, and a worker holding the full-size reference data.
Writes ``report.json`` and ``report.png`` into the output directory and prints a table.
``--only`` picks parts; ``--lines``/``--patients`` make smaller runs. Timings are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from scrubber.config import Settings
from scrubber.refdata.build import build_bundle
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import Bundle, ReferenceSnapshot

from . import report as reporting
from .generator import StreamGenerator
from .local import BENCH_NOW, engine_cases, time_engine, time_offline

PARTS = ("engine", "offline", "work", "refdata", "raw", "faust", "scrubber", "scale", "memory")
REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m scrubber.bench", description=__doc__)
    p.add_argument("--lines", type=int, default=200_000, help="lines in the stream")
    p.add_argument("--patients", type=int, default=20_000, help="patients in the stream")
    p.add_argument("--seed", type=int, default=20260101)
    p.add_argument("--repeats", type=int, default=3, help="runs of the engine and offline scrub")
    p.add_argument(
        "--stream-repeats", type=int, default=1, help="runs of each Kafka case (a, b, c)"
    )
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    p.add_argument("--out", type=Path, default=Path("build/bench"), help="report directory")
    p.add_argument("--bootstrap", default=None, help="Kafka (default: SCRUBBER_KAFKA_BOOTSTRAP)")
    p.add_argument(
        "--ptp",
        type=Path,
        action="append",
        default=None,
        help="NCCI PTP file(s) of the full-size reference data (refdata and memory parts; "
        "default: the 2.14-million-pair sizing table beside the repo, else the shipped extract)",
    )
    p.add_argument("--memory-lines", type=int, default=20_000, help="lines for the memory case")
    p.add_argument(
        "--memory-patients",
        type=int,
        default=1_000_000,
        help="patient histories the memory case's worker holds (rocksdb:// store); 0: none",
    )
    p.add_argument("--keep-topics", action="store_true", help="leave the benchmark's topics")
    p.add_argument("--profile-worker", action="store_true", help="run workers under pyinstrument")
    p.add_argument("--timeout", type=float, default=1800.0, help="per phase, seconds")
    return p.parse_args(argv)


def describe(raws: list[bytes], bundle: Bundle) -> dict[str, Any]:
    """What the stream is made of: code kinds, arrival order, unreadable messages."""
    em = surgical = add_on = readable = late = 0
    newest: dict[str, str] = {}
    for raw in raws:
        try:
            doc = orjson.loads(raw)
            member = doc["patient"]["member_id"]
            code = doc["procedure_code"]
            day = doc["service_date"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        readable += 1
        ref = bundle.codes.get(code)
        if code.isdigit() and 99202 <= int(code) <= 99499:
            em += 1
        if ref is not None and ref.global_days in ("000", "010", "090"):
            surgical += 1
        if ref is not None and ref.global_days == "ZZZ":
            add_on += 1
        if member in newest and day < newest[member]:
            late += 1
        if day > newest.get(member, ""):
            newest[member] = day
    n = max(1, len(raws))
    return {
        "lines": len(raws),
        "patients": len(newest),
        "em_share": em / n,
        "surgical_share": surgical / n,
        "add_on_share": add_on / n,
        "out_of_order_share": late / n,
        "unreadable_share": 1 - readable / n,
    }


#: Above this many partitions the broker's own upkeep shows in the numbers: a local broker that
#: held 15,000 partitions left by earlier test runs used 85-90 % of a core during the worker's
#: peak, against 13-15 % once they were gone (docs/performance.md).
CROWDED_BROKER_PARTITIONS = 2_000


def broker_partitions(bootstrap: str, containing: str = "") -> tuple[int | None, int | None]:
    """How many topics (whose name holds ``containing``) and partitions the broker holds.

    (None, None) when the broker cannot be asked: unknown, never taken for an empty broker.
    """
    from aiokafka.client import AIOKafkaClient

    async def count() -> tuple[int | None, int | None]:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await client.bootstrap()
            if not await client.force_metadata_update():  # False, not an error, on a failure
                return None, None
            topics = [
                t for t in client.cluster.topics(exclude_internal_topics=False) if containing in t
            ]
            parts = sum(len(client.cluster.partitions_for_topic(t) or ()) for t in topics)
            return len(topics), parts
        except Exception:
            return None, None
        finally:
            await client.close()

    return asyncio.run(count())


def kafka_reachable(bootstrap: str) -> bool:
    """Whether a Kafka broker answers on the bootstrap address."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 10)
            await admin.close()
            return True
        except Exception:
            return False

    return asyncio.run(probe())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0 (numbers are reported, not judged)."""
    args = parse_args(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        print(f"unknown part(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    bootstrap = args.bootstrap or Settings().kafka_bootstrap
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    report: dict[str, Any] = {
        "command": "python -m scrubber.bench " + shlex.join(argv or sys.argv[1:]),
        "started_at": datetime.now(UTC).isoformat(),
        "machine": reporting.machine(),
        "config": {
            "lines": args.lines,
            "patients": args.patients,
            "seed": args.seed,
            "repeats": args.repeats,
            "stream_repeats": args.stream_repeats,
            "parts": sorted(parts),
            "bootstrap": bootstrap,
            "partitions": 4,
        },
    }

    def say(text: str) -> None:
        print(f"[{time.monotonic() - began:7.1f}s] {text}", flush=True)

    bundle = build_bundle(REPO / "seeds", mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    snapshot = ReferenceSnapshot(bundle)
    say(f"generating {args.lines:,} lines for {args.patients:,} patients")
    raws = StreamGenerator(bundle, seed=args.seed, patients=args.patients).generate(args.lines)
    report["stream"] = describe(raws, bundle)

    if "engine" in parts:
        say("engine alone")
        report["engine"] = time_engine(engine_cases(raws), snapshot, BENCH_NOW.date(), args.repeats)
        say(f"  {report['engine']['us_per_line']:.1f} us/line")
    if "offline" in parts:
        say("offline scrub")
        report["offline"] = time_offline(raws, snapshot, args.repeats)
        say(f"  {report['offline']['lines_per_s']:,.0f} lines/s")
        cores = os.cpu_count() or 1
        if cores > 1:
            say(f"offline scrub in {cores} processes (--jobs {cores})")
            report["offline_parallel"] = time_offline(raws, snapshot, args.repeats, jobs=cores)
            same = report["offline_parallel"]["digest"] == report["offline"]["digest"]
            report["offline_parallel"]["same_bytes"] = same
            say(f"  {report['offline_parallel']['lines_per_s']:,.0f} lines/s, same bytes: {same}")
    if "work" in parts:
        from .worker_path import time_worker_path

        say("the worker's own work, without Kafka")
        report["work"] = time_worker_path(raws, snapshot, args.repeats)
        say(f"  {report['work']['us_per_line']:.1f} us/line")
    if "refdata" in parts:
        from .refdata import describe as describe_refdata
        from .refdata import measure_refdata

        say("reference data: the full tables, built, swapped and used")
        with tempfile.TemporaryDirectory(prefix="scrubber-bench-refdata-") as work:
            report["refdata"] = measure_refdata(
                args.ptp, engine_cases(raws), args.repeats, Path(work)
            )
        say("  " + describe_refdata(report["refdata"]))

    stream_parts = parts & {"raw", "faust", "scrubber", "scale", "memory"}
    if stream_parts and not kafka_reachable(bootstrap):
        say(f"Kafka not reachable at {bootstrap}: skipping {', '.join(sorted(stream_parts))}")
        report["kafka_skipped"] = f"no broker at {bootstrap} (deploy/local/stack.sh up)"
        stream_parts = set()
    if stream_parts:
        topics, partitions = broker_partitions(bootstrap)
        report["machine"]["broker_topics"] = topics
        report["machine"]["broker_partitions"] = partitions
        if partitions is not None and topics is not None and partitions > CROWDED_BROKER_PARTITIONS:
            say(
                f"the broker holds {partitions:,} partitions of {topics:,} topics: a broker that "
                "crowded spends CPU of its own on them (make stack-reset clears the local one)"
            )
        _stream(args, report, stream_parts, raws, bundle, bootstrap, out, say)

    report["summary"] = reporting.summarise(report)
    report["finished_at"] = datetime.now(UTC).isoformat()
    report["seconds"] = time.monotonic() - began
    report["machine"]["load_average_end"] = list(os.getloadavg())
    reporting.write_json(report, out / "report.json")
    charted = reporting.chart(report, out / "report.png")
    print(reporting.table(report))
    print(f"report: {out / 'report.json'}" + (f", chart: {out / 'report.png'}" if charted else ""))
    return 0


def _stream(
    args: argparse.Namespace,
    report: dict[str, Any],
    parts: set[str],
    raws: list[bytes],
    bundle: Bundle,
    bootstrap: str,
    out: Path,
    say: Any,
) -> None:
    from .stream import (
        Environment,
        StreamPlan,
        run_faust,
        run_memory,
        run_raw,
        run_scrubber,
    )

    n = len(raws)
    plan = StreamPlan(
        raws,
        peak=int(n * 0.6),
        full=int(n * 0.2),
        half=n - int(n * 0.6) - int(n * 0.2),
        bootstrap=bootstrap,
        timeout=args.timeout,
        out_dir=out,
    )
    with tempfile.TemporaryDirectory(prefix="scrubber-bench-") as work:
        ctx = Environment(
            tag=os.urandom(4).hex(),
            log_dir=out / "logs",
            data_dir=Path(work) / "data",
            env=dict(os.environ),
            keep_topics=args.keep_topics,
            profile_dir=out / "profiles" if args.profile_worker else None,
        )
        report["config"]["tag"] = ctx.tag
        kafka: dict[str, Any] = report.setdefault("kafka", {})
        cases: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
            ("raw", "(a) raw aiokafka passthrough", partial(run_raw, plan, ctx)),
            ("faust", "(b) Faust passthrough, Faust's defaults", partial(run_faust, plan, ctx)),
            (
                "faust_tuned",
                "(b) Faust passthrough, tuned",
                partial(run_faust, plan, ctx, tuned=True),
            ),
            (
                "scrubber",
                "(c) scrubber worker",
                lambda suffix: run_scrubber(plan, ctx, bundle, 1, suffix),
            ),
        ]
        for repeat in range(max(1, args.stream_repeats)):
            for part, label, run in cases:
                if part.removesuffix("_tuned") in parts:
                    say(f"{label}, run {repeat + 1}")
                    result = run(f"r{repeat}")
                    kafka.setdefault(part, []).append(result)
                    _say_case(say, result)
        if "scale" in parts:
            say("(c) two scrubber workers in one group")
            result = run_scrubber(plan, ctx, bundle, 2, "s", phases=("peak",))
            kafka.setdefault("scrubber_x2", []).append(result)
            _say_case(say, result)
        if "memory" in parts:
            from .refdata import SIZING_PTP, full_bundle

            ptp = args.ptp or ([SIZING_PTP] if SIZING_PTP.exists() else [])
            big = full_bundle(ptp)
            say(
                f"memory: a worker with the full reference data ({len(big.codes):,} codes, "
                f"{big.ptp.count if big.ptp else 0:,} NCCI PTP edits) and "
                f"{args.memory_patients:,} patients' histories"
            )
            kafka["memory"] = run_memory(
                ctx,
                bootstrap,
                big,
                raws[: args.memory_lines],
                args.timeout,
                history_patients=args.memory_patients,
            )
            say(
                f"  idle RSS {kafka['memory'].get('idle_rss_bytes', 0) / 2**20:,.0f} MB, "
                f"peak {kafka['memory'].get('peak_rss_bytes', 0) / 2**20:,.0f} MB"
            )


def _say_case(say: Any, result: dict[str, Any]) -> None:
    for name, phase in result.get("phases", {}).items():
        lat = phase.get("latency_ms") or {}
        say(
            f"  {name}: {phase.get('answered', 0):,}/{phase.get('lines', 0):,} answered, "
            f"{phase.get('lines_per_s', 0):,.0f} lines/s, p50/p99 "
            f"{lat.get('p50', 0):,.0f}/{lat.get('p99', 0):,.0f} ms"
            + (
                f", {phase['cpu_s_per_1k_lines']:.2f} CPU s/1k lines"
                if "cpu_s_per_1k_lines" in phase
                else ""
            )
        )


if __name__ == "__main__":
    sys.exit(main())
