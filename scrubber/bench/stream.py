"""The Kafka cases of the benchmark: raw passthrough, Faust passthrough, the scrubber worker.

Every case runs on its own topics (a unique tag, never the default names), with the same data
and the same partition count, in three phases:

1. **peak**: the first slice of the stream is written to the input topic before the consumer
   starts; the consumer then drains it as fast as it can. Throughput is taken over the middle
   80% of the outputs (from the 10th to the 90th percentile of output timestamps), which leaves
   out start-up (imports, group join, table recovery) and the tail. CPU is the process's own
   (``/proc``) over that same window.
2. **full**: with the consumer idle and caught up, the next slice is produced as fast as the
   producer can; end-to-end latency (input record timestamp to output record timestamp) shows
   what a burst does (it includes the queueing while the consumer is behind).
3. **half**: the last slice is produced at half the peak rate by a rate-limited producer;
   latency there is the number that matters for a worker that is not overloaded.

Completion is read from the consumer group's committed offsets, outputs are read back after
each phase and matched to inputs by the source headers every case writes. Nothing asserts on
a timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from scrubber.accounting import key_of
from scrubber.config import Settings
from scrubber.contracts import (
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_TRIGGER,
)
from scrubber.kafka import compression_type, ensure_topics, history_changelog
from scrubber.refdata.model import Bundle
from scrubber.refdata.store import RefdataStore, connect

from .procs import Measured, free_port, python_module

PARTITIONS = 4


@dataclass(frozen=True, slots=True)
class Sent:
    """Where an input record landed and when it was produced (ms since the epoch)."""

    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Out:
    """An output record: the input it answers, when it was written, and whether it is own.

    ``own`` is false for a new revision of an earlier line that the input changed.
    """

    partition: int
    offset: int
    timestamp_ms: int
    own: bool


@dataclass
class CaseSetup:
    """What one case runs on: topics, consumer group, how to start its process(es)."""

    name: str
    input_topic: str
    output_topics: list[str]
    group: str
    extra_topics: list[str] = field(default_factory=list)
    workers: int = 1


# ------------------------------------------------------------------------------- Kafka helpers
async def create_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Create topics with the benchmark's partition count (existing ones are left alone)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in names:
            with contextlib.suppress(Exception):
                await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Delete the benchmark's topics (missing ones are ignored)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            with contextlib.suppress(Exception):
                await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def topics_with(bootstrap: str, tag: str) -> list[str]:
    """Every topic whose name contains the run's tag (Faust makes a few of its own)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if tag in t)
    finally:
        await admin.close()


async def produce(
    bootstrap: str, topic: str, raws: Sequence[bytes], rate: float | None = None
) -> list[Sent]:
    """Send the lines keyed by member id; at ``rate`` lines per second if given, else at once."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    futures = []
    try:
        started = time.monotonic()
        for index, raw in enumerate(raws):
            if rate is not None:
                due = started + index / rate
                delay = due - time.monotonic()
                if delay > 0.002:
                    await asyncio.sleep(delay)
            futures.append(
                await producer.send(
                    topic, value=raw, key=key_of(raw), timestamp_ms=int(time.time() * 1000)
                )
            )
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Sent(m.partition, m.offset, m.timestamp) for m in metas]


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of a topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(off) for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def wait_committed(
    bootstrap: str,
    group: str,
    topic: str,
    ends: dict[int, int],
    processes: Sequence[Measured],
    seconds: float,
) -> bool:
    """Wait until the group has committed every input offset (or a process died, or timeout)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not all(p.alive() for p in processes):
                return False
            with contextlib.suppress(Exception):
                offsets = await admin.list_consumer_group_offsets(group)
                done = {
                    tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic
                }
                if all(done.get(p, -1) >= end for p, end in ends.items()):
                    return True
            await asyncio.sleep(0.5)
        return False
    finally:
        await admin.close()


class OutputReader:
    """Reads the output topics of a case from the beginning, phase after phase."""

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self.tps = [TopicPartition(t, p) for t in self.topics for p in range(PARTITIONS)]

    async def start(self) -> None:
        """Connect and seek to the beginning of every output partition."""
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)

    async def stop(self) -> None:
        """Disconnect."""
        await self.consumer.stop()

    async def read_to_end(self) -> list[Out]:
        """Every output written since the last call (up to the end offsets as of now)."""
        ends = await self.consumer.end_offsets(self.tps)
        out: list[Out] = []
        while True:
            pending = [tp for tp in self.tps if await self.consumer.position(tp) < ends[tp]]
            if not pending:
                return out
            batch = await self.consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for rec in records:
                    headers = dict(rec.headers)
                    try:
                        partition = int(headers[HEADER_SOURCE_PARTITION])
                        offset = int(headers[HEADER_SOURCE_OFFSET])
                    except (KeyError, ValueError):
                        continue
                    own = headers.get(HEADER_TRIGGER, b"input") == b"input"
                    out.append(Out(partition, offset, int(rec.timestamp), own))


# ------------------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[rank])


def phase_stats(
    name: str,
    sent: Sequence[Sent],
    outputs: Sequence[Out],
    processes: Sequence[Measured],
    include_cpu: bool,
) -> dict[str, Any]:
    """Throughput, latency, CPU and a per-second timeline for one phase."""
    first_out: dict[tuple[int, int], int] = {}
    for o in outputs:
        if o.own:
            key = (o.partition, o.offset)
            if key not in first_out or o.timestamp_ms < first_out[key]:
                first_out[key] = o.timestamp_ms
    matched = [
        (s.timestamp_ms, first_out[(s.partition, s.offset)])
        for s in sent
        if (s.partition, s.offset) in first_out
    ]
    n = len(matched)
    stats: dict[str, Any] = {
        "phase": name,
        "lines": len(sent),
        "answered": n,
        "outputs": len(outputs),
        "revisions": sum(1 for o in outputs if not o.own),
    }
    if n < 10:
        return stats
    outs = sorted(t for _, t in matched)
    lo, hi = outs[int(0.1 * n)], outs[int(0.9 * n) - 1]
    steady = (0.8 * n) / max(1e-3, (hi - lo) / 1000)

    def rate(first: float, last: float) -> float:
        """Lines answered per second between two shares of the phase's outputs."""
        a, b = outs[int(first * n)], outs[int(last * n) - 1]
        return ((last - first) * n) / max(1e-3, (b - a) / 1000)

    latencies = [max(0, o - i) for i, o in matched]
    start = min(i for i, _ in matched)
    timeline: dict[int, int] = {}
    for t in outs:
        second = (t - start) // 1000
        timeline[second] = timeline.get(second, 0) + 1
    stats.update(
        {
            "lines_per_s": steady,
            "lines_per_s_first_to_last": n / max(1e-3, (outs[-1] - outs[0]) / 1000),
            # Histories grow while a phase runs: its rate early on against its rate at the end.
            "lines_per_s_early": rate(0.1, 0.3),
            "lines_per_s_late": rate(0.7, 0.9),
            "seconds": (outs[-1] - start) / 1000,
            "latency_ms": {
                "p50": percentile(latencies, 50),
                "p95": percentile(latencies, 95),
                "p99": percentile(latencies, 99),
                "max": float(max(latencies)),
                "mean": statistics.fmean(latencies),
            },
            "latency_sample_ms": latencies[:: max(1, n // 5000)],
            "timeline_per_s": [timeline.get(s, 0) for s in range(max(timeline) + 1)],
        }
    )
    if include_cpu:
        cpu = sum(p.samples.cpu_between(lo / 1000, hi / 1000) for p in processes)
        stats["cpu_s_per_1k_lines"] = cpu / (0.8 * n) * 1000
        stats["cpu_cores_busy"] = cpu / max(1e-3, (hi - lo) / 1000)
    return stats


# ------------------------------------------------------------------------------- the cases
@dataclass
class StreamPlan:
    """The data and the slices of the three phases, shared by every case."""

    raws: list[bytes]
    peak: int
    full: int
    half: int
    bootstrap: str = "127.0.0.1:19092"
    timeout: float = 1800.0
    out_dir: Path = Path("build/bench")

    def slices(self) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """The lines of the peak, full-speed and half-peak phases."""
        a = self.raws[: self.peak]
        b = self.raws[self.peak : self.peak + self.full]
        c = self.raws[self.peak + self.full : self.peak + self.full + self.half]
        return a, b, c


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def scrubber_settings(tag: str, case: str, redis_prefix: str, data_dir: Path) -> Settings:
    """Settings private to one benchmark case: own topics, group, Redis prefix, port, data."""
    return Settings(
        input_topic=f"bench.{tag}.{case}.lines",
        accepted_topic=f"bench.{tag}.{case}.accepted",
        flagged_topic=f"bench.{tag}.{case}.flagged",
        dlq_topic=f"bench.{tag}.{case}.dlq",
        app_id=f"claim-scrubber-bench-{tag}-{case}",
        redis_prefix=redis_prefix,
        web_port=free_port(),
        data_dir=str(data_dir),
        partitions=PARTITIONS,
    )


def settings_env(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """The environment that makes ``scrubber worker`` use these settings."""
    env = dict(base)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"SCRUBBER_{name.upper()}"] = str(value)
    return env


async def load_refdata(settings: Settings, bundle: Bundle) -> None:
    """Put a bundle into Redis under the benchmark's prefix and make it current."""
    redis = connect(settings)
    try:
        await RefdataStore(redis, settings.redis_prefix).load(bundle)
    finally:
        await redis.aclose()


async def drop_redis_prefix(settings: Settings) -> None:
    """Delete every Redis key of the benchmark's prefix."""
    redis = connect(settings)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*", count=500)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def wait_ready(port: int, proc: Measured, seconds: float = 120.0) -> float:
    """Wait until a worker's /readyz answers 200; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        with (
            contextlib.suppress(Exception),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r,
        ):
            if r.status == 200:
                return time.monotonic() - started
        time.sleep(0.25)
    raise RuntimeError(f"{proc.name} not ready after {seconds} s:\n{proc.log_tail()}")


async def run_case(
    plan: StreamPlan,
    setup: CaseSetup,
    start: Any,
    phases: Sequence[str] = ("peak", "full", "half"),
) -> dict[str, Any]:
    """Run one case through its phases; ``start()`` starts its process(es) and returns them."""
    peak_lines, full_lines, half_lines = plan.slices()
    await create_topics(plan.bootstrap, [setup.input_topic, *setup.output_topics])
    sent_peak = await produce(plan.bootstrap, setup.input_topic, peak_lines)
    processes: list[Measured] = start()
    reader = OutputReader(plan.bootstrap, setup.output_topics)
    await reader.start()
    result: dict[str, Any] = {"case": setup.name, "workers": setup.workers, "phases": {}}
    try:
        ends = await end_offsets(plan.bootstrap, setup.input_topic)
        ok = await wait_committed(
            plan.bootstrap, setup.group, setup.input_topic, ends, processes, plan.timeout
        )
        outputs = await reader.read_to_end()
        peak = phase_stats("peak", sent_peak, outputs, processes, include_cpu=True)
        peak["completed"] = ok
        result["phases"]["peak"] = peak
        rate = peak.get("lines_per_s", 0.0)
        for phase, lines, limit in (
            ("full", full_lines, None),
            ("half", half_lines, rate / 2 if rate else None),
        ):
            if phase not in phases or not lines or not all(p.alive() for p in processes):
                continue
            sent = await produce(plan.bootstrap, setup.input_topic, lines, rate=limit)
            ends = await end_offsets(plan.bootstrap, setup.input_topic)
            ok = await wait_committed(
                plan.bootstrap, setup.group, setup.input_topic, ends, processes, plan.timeout
            )
            outputs = await reader.read_to_end()
            stats = phase_stats(phase, sent, outputs, processes, include_cpu=False)
            stats["completed"] = ok
            stats["target_lines_per_s"] = limit
            result["phases"][phase] = stats
    finally:
        await reader.stop()
        result["peak_rss_bytes"] = max((p.samples.peak_rss for p in processes), default=0)
        result["peak_rss_bytes_each"] = [p.samples.peak_rss for p in processes]
        result["exit_codes"] = [p.stop() for p in processes]
    return result


# ------------------------------------------------------------------------------- case runners
@dataclass
class Environment:
    """What every case shares: the run's tag, where logs go, the base environment."""

    tag: str
    log_dir: Path
    data_dir: Path
    env: dict[str, str]
    keep_topics: bool = False
    profile_dir: Path | None = None
    """Run the scrubber workers under pyinstrument and write their profiles here."""


def run_raw(plan: StreamPlan, ctx: Environment, suffix: str = "") -> dict[str, Any]:
    """Case (a): the raw aiokafka passthrough."""
    name = f"raw{suffix}"
    setup = CaseSetup(
        name="raw_aiokafka_passthrough",
        input_topic=f"bench.{ctx.tag}.{name}.in",
        output_topics=[f"bench.{ctx.tag}.{name}.out"],
        group=f"bench-{ctx.tag}-{name}",
    )

    def start() -> list[Measured]:
        argv = python_module(
            "scrubber.bench.passthrough",
            setup.input_topic,
            setup.output_topics[0],
            setup.group,
            plan.bootstrap,
        )
        return [Measured(name, argv, ctx.env, ctx.log_dir / f"{name}.log")]

    return _run(plan, ctx, setup, start)


def run_faust(
    plan: StreamPlan, ctx: Environment, suffix: str = "", tuned: bool = False
) -> dict[str, Any]:
    """Case (b): the bare Faust passthrough agent, as Faust's defaults have it or tuned."""
    name = f"faust{'_tuned' if tuned else ''}{suffix}"
    app_id = f"bench-{ctx.tag}-{name}"
    setup = CaseSetup(
        name="faust_passthrough",
        input_topic=f"bench.{ctx.tag}.{name}.in",
        output_topics=[f"bench.{ctx.tag}.{name}.out"],
        group=app_id,
    )

    def start() -> list[Measured]:
        env = dict(ctx.env)
        env.update(
            {
                "BENCH_APP_ID": app_id,
                "BENCH_INPUT": setup.input_topic,
                "BENCH_OUTPUT": setup.output_topics[0],
                "BENCH_BOOTSTRAP": plan.bootstrap,
                "BENCH_DATADIR": str(ctx.data_dir / name),
                "BENCH_PARTITIONS": str(PARTITIONS),
                "BENCH_TUNED": "1" if tuned else "",
            }
        )
        argv = python_module("scrubber.bench.faust_passthrough")
        return [Measured(name, argv, env, ctx.log_dir / f"{name}.log")]

    return _run(plan, ctx, setup, start)


def run_scrubber(
    plan: StreamPlan,
    ctx: Environment,
    bundle: Bundle,
    workers: int = 1,
    suffix: str = "",
    phases: Sequence[str] = ("peak", "full", "half"),
) -> dict[str, Any]:
    """Case (c): ``scrubber worker`` processes (one, or several in one group to scale out)."""
    name = f"scrubber{workers}{suffix}"
    prefix = f"scrubber-bench-{ctx.tag}-{name}"
    settings = [
        scrubber_settings(ctx.tag, name, prefix, ctx.data_dir / f"{name}-{i}")
        for i in range(workers)
    ]
    first = settings[0]
    # Every worker of the case shares topics, group and prefix; only port and data dir differ.
    settings = [first] + [
        first.model_copy(update={"web_port": free_port(), "data_dir": s.data_dir})
        for s in settings[1:]
    ]
    setup = CaseSetup(
        name="scrubber_worker" if workers == 1 else f"scrubber_worker_x{workers}",
        input_topic=first.input_topic,
        output_topics=[first.accepted_topic, first.flagged_topic, first.dlq_topic],
        group=first.app_id,
        extra_topics=[history_changelog(first)],
        workers=workers,
    )

    async def prepare() -> None:
        await ensure_topics(first)
        await load_refdata(first, bundle)

    asyncio.run(prepare())

    def argv(index: int) -> list[str]:
        if ctx.profile_dir is None:
            return python_module("scrubber", "worker")
        ctx.profile_dir.mkdir(parents=True, exist_ok=True)
        out = ctx.profile_dir / f"{name}-{index}.txt"
        return python_module(
            "pyinstrument", "-r", "text", "--show-all", "-o", str(out), "-m", "scrubber", "worker"
        )

    def start() -> list[Measured]:
        return [
            Measured(
                f"{name}-{i}",
                argv(i),
                settings_env(s, ctx.env),
                ctx.log_dir / f"{name}-{i}.log",
            )
            for i, s in enumerate(settings)
        ]

    try:
        return _run(plan, ctx, setup, start, phases)
    finally:
        asyncio.run(drop_redis_prefix(first))


async def seed_histories(
    bootstrap: str, topic: str, raws: Sequence[bytes], patients: int, lines_each: int = 3
) -> int:
    """Write ``patients`` patient histories straight into the history table's changelog.

    Each history holds ``lines_each`` lines of the stream, re-keyed to a patient of its own, so
    a worker starting on the table recovers as many patients as a long-running one would hold.
    Keys are partitioned as the input is (by member id), like the worker's own writes. Returns
    the bytes written.
    """
    from scrubber.contracts import ClaimLine
    from scrubber.history import HistoryEntry, PatientHistory, content_digest

    docs = []
    for raw in raws:
        with contextlib.suppress(Exception):
            docs.append(ClaimLine.model_validate_json(raw).model_dump(mode="json"))
        if len(docs) >= 2000:
            break
    # Compressed as the worker's own changelog records are (SCRUBBER_KAFKA_COMPRESSION).
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        compression_type=compression_type(Settings()),
    )
    await producer.start()
    written = 0
    try:
        pending = []
        for n in range(patients):
            member = f"HP{n:09d}"
            entries = []
            for k in range(lines_each):
                doc = docs[(n * lines_each + k) % len(docs)]
                doc = {**doc, "patient": {**doc["patient"], "member_id": member}}
                doc["claim_id"] = f"H{n}-{k}"
                line = ClaimLine.model_validate(doc, strict=False)
                entries.append(HistoryEntry(line, content_digest(line), 1, "v", cause=line.line_id))
            value = PatientHistory(member_id=member, entries=tuple(entries)).to_bytes()
            written += len(value)
            pending.append(await producer.send(topic, key=member.encode(), value=value))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return written


def run_memory(
    ctx: Environment,
    bootstrap: str,
    bundle: Bundle,
    raws: Sequence[bytes],
    timeout: float,
    history_patients: int = 0,
) -> dict[str, Any]:
    """The memory case: a worker holding a full-size fee schedule, idle and after some lines.

    With ``history_patients``, the worker also holds that many patients' histories in a
    ``rocksdb://`` table store, recovered from its changelog at start.
    """
    name = "memory"
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"scrubber-bench-{ctx.tag}-{name}"
    settings = scrubber_settings(ctx.tag, name, prefix, ctx.data_dir / name)
    if history_patients:
        settings = settings.model_copy(update={"table_store": "rocksdb://"})
    result: dict[str, Any] = {
        "codes": len(bundle.codes),
        "lines": len(raws),
        "history_patients": history_patients,
        "table_store": settings.table_store,
    }

    async def prepare() -> None:
        await ensure_topics(settings)
        await load_refdata(settings, bundle)
        if history_patients:
            began = time.monotonic()
            result["history_bytes"] = await seed_histories(
                bootstrap, history_changelog(settings), raws, history_patients
            )
            result["history_seed_seconds"] = time.monotonic() - began

    asyncio.run(prepare())
    proc = Measured(
        name,
        python_module("scrubber", "worker"),
        settings_env(settings, ctx.env),
        ctx.log_dir / f"{name}.log",
    )
    try:
        result["ready_seconds"] = wait_ready(settings.web_port, proc, seconds=max(120.0, timeout))
        time.sleep(1.0)
        from .procs import memory

        result["idle_rss_bytes"] = memory(proc.pid)[0]

        async def feed() -> bool:
            await produce(bootstrap, settings.input_topic, raws)
            ends = await end_offsets(bootstrap, settings.input_topic)
            return await wait_committed(
                bootstrap, settings.app_id, settings.input_topic, ends, [proc], timeout
            )

        result["completed"] = asyncio.run(feed())
        result["rss_after_lines_bytes"] = memory(proc.pid)[0]
    finally:
        result["peak_rss_bytes"] = max(proc.samples.peak_rss, result.get("idle_rss_bytes", 0))
        result["exit_code"] = proc.stop()
        asyncio.run(drop_redis_prefix(settings))
        if not ctx.keep_topics:
            asyncio.run(_drop_case_topics(bootstrap, f"bench.{ctx.tag}.{name}.", settings.app_id))
    return result


async def _drop_case_topics(bootstrap: str, *fragments: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if any(f in t for f in fragments)]
    finally:
        await admin.close()
    await delete_topics(bootstrap, names)


def _run(
    plan: StreamPlan,
    ctx: Environment,
    setup: CaseSetup,
    start: Any,
    phases: Sequence[str] = ("peak", "full", "half"),
) -> dict[str, Any]:
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(run_case(plan, setup, start, phases))
    finally:
        if not ctx.keep_topics:
            fragments = [setup.input_topic.rsplit(".", 1)[0] + ".", setup.group]
            asyncio.run(_drop_case_topics(plan.bootstrap, *fragments))
