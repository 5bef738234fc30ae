"""Steady load: half an hour of lines at 70 % of the worker's peak leaves nothing behind.

A rate-limited producer sends lines at STEADY_SHARE of the peak the worker just measured on a
burst, for CHAOS_STEADY_SECONDS (`make test`: 2 minutes; `make soak`: 30). Every
CHAOS_STEADY_SAMPLE_SECONDS the test records the worker's consumer lag, RSS, open file
descriptors, history size (patients in its table) and the p99 age of the lines it handled in that
interval. It fails when RSS grows more than 15 % after the warm-up, when lag leaves its bound,
when open descriptors or history entries keep growing, or when any line is lost or answered
twice. The curves go to build/chaos/steady_load.png beside the JSON report.

The lines come from a fixed population of patients whose dates of service move forward, the way a
real stream does: histories reach a steady size (old lines are pruned past the lateness window)
instead of growing with every line, so growth in RSS is a leak, not data. Dates of service run
past today within the first minute, so most lines carry the future-date finding: the run
measures resources and delivery, not a realistic verdict mix.
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from scrubber.accounting import collect, end_offsets, key_of, publish
from scrubber.contracts import (
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    HEADER_TRIGGER,
)
from scrubber.examples import generate
from scrubber.kafka import client_kwargs
from tests.integration.background import Background
from tests.integration.conftest import REPO, load_bundle

pytestmark = pytest.mark.integration

STEADY_SECONDS = float(os.environ.get("CHAOS_STEADY_SECONDS", "120"))
SAMPLE_SECONDS = float(os.environ.get("CHAOS_STEADY_SAMPLE_SECONDS", "10"))
WARMUP_SECONDS = float(os.environ.get("CHAOS_STEADY_WARMUP_SECONDS", "40"))
STEADY_SHARE = 0.7
RSS_GROWTH_MAX = 0.15
#: Lag may not exceed this many seconds of input at any sample after the warm-up.
LAG_SECONDS_MAX = 30.0
PEAK_LINES = 6000
#: The population and the pace of time are chosen so that the histories reach their steady size
#: early: each line's patient is one of PATIENTS at random (every patient has lines after about
#: 15,000 lines), and dates of service move 20 days per chunk of lines, so with a 365-day
#: lateness window and 91 days of influence a history holds its patient's lines of the last 23
#: chunks (about 11 lines). The warm-up lasts WARMUP_SECONDS and at least WARMUP_LINES lines.
PATIENTS = 2000
CHUNK = 1000
DAYS_PER_CHUNK = 20
WARMUP_LINES = 25_000
#: Open descriptors may vary by a few (a connection to a new broker node, a log file).
FDS_SLACK = 8


def chunk(bundle: Any, k: int) -> list[tuple[bytes | None, bytes]]:
    """The k-th CHUNK lines: generated, then moved onto the fixed population and forward in time."""
    out: list[tuple[bytes | None, bytes]] = []
    shift = timedelta(days=DAYS_PER_CHUNK * k)
    for raw in generate(bundle, CHUNK, seed=1000 + k, patients=CHUNK):
        try:
            doc = orjson.loads(raw)
            member = doc["patient"]["member_id"]
            day = date.fromisoformat(doc["service_date"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            out.append((key_of(raw), raw))  # a malformed line stays as it is: a dead letter
            continue
        n = zlib.crc32(member.encode()) % PATIENTS
        doc["patient"] = {
            "member_id": f"S{n:09d}",
            "birth_date": (date(1940, 1, 1) + timedelta(days=n * 37 % 20000)).isoformat(),
            "sex": "FMU"[n % 3],
        }
        doc["claim_id"] = f"S{k:06d}{doc['claim_id']}"
        doc["service_date"] = (day + shift).isoformat()
        line = orjson.dumps(doc)
        out.append((key_of(line), line))
    return out


class Producer(Background):
    """Sends chunk after chunk at ``rate`` lines a second until stopped."""

    def __init__(self, settings: Any, bundle: Any, rate: float, first_chunk: int) -> None:
        self.settings = settings
        self.bundle = bundle
        self.rate = rate
        self.next_chunk = first_chunk
        self.sent = 0
        self.began = 0.0
        self.ended = 0.0
        super().__init__("steady-producer", join_seconds=60)

    def run(self) -> None:
        asyncio.run(self._send())

    async def _send(self) -> None:
        producer = AIOKafkaProducer(
            **client_kwargs(self.settings), acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        pending: list[tuple[bytes | None, bytes]] = []
        try:
            self.began = time.monotonic()
            while not self.stop.is_set():
                # At most a second's worth at once: after a stall the producer does not burst.
                due = min(
                    int((time.monotonic() - self.began) * self.rate) - self.sent, int(self.rate)
                )
                while due > 0:
                    if not pending:
                        pending = chunk(self.bundle, self.next_chunk)
                        self.next_chunk += 1
                    key, value = pending.pop(0)
                    await producer.send(self.settings.input_topic, value=value, key=key)
                    self.sent += 1
                    due -= 1
                await asyncio.sleep(0.05)
            await producer.flush()
            self.ended = time.monotonic()
        finally:
            await producer.stop()


def _scrape(worker: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The worker's /metrics as name -> [(labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(worker.base_url + "/metrics", timeout=10).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _buckets(metrics: dict[str, list[tuple[dict[str, str], float]]]) -> dict[float, float]:
    return {
        float(labels["le"]): value
        for labels, value in metrics.get("scrubber_line_age_seconds_bucket", [])
    }


def _p99(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The upper bound of the bucket holding the 99th percentile of what arrived in between."""
    delta = {le: after[le] - before.get(le, 0.0) for le in after}
    total = delta.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for le in sorted(delta):
        if delta[le] >= 0.99 * total:
            return le
    return None


def _proc(pid: int) -> tuple[float, int]:
    """(RSS in MB, open file descriptors) of a process."""
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def _tally(settings: Any, start: dict, inputs: dict[int, tuple[int, int]], seconds: float):
    """Read every output once: which inputs have their own output, and repeated outputs.

    Returns (lost, raw duplicates, answered twice after dedupe, lines). A raw duplicate repeats
    a (line id, revision) already seen, which a consumer drops; an input answered twice after
    dedupe has own outputs with different identities (a second verdict on one input), which no
    consumer can drop. Holds offsets and hashes, not the outputs, so a 30-minute run fits.
    """
    answered: dict[int, dict[int, int]] = {p: {} for p in inputs}
    seen: set[int] = set()
    duplicates = twice = 0
    expected = sum(end - first for first, end in inputs.values())
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = list(start)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start[tp])
        deadline = time.monotonic() + seconds
        ends: dict | None = None  # the output topics' ends once every input has an answer

        async def more() -> bool:
            nonlocal ends
            if ends is None:
                if sum(map(len, answered.values())) < expected:
                    return time.monotonic() < deadline
                ends = await consumer.end_offsets(tps)  # read on to them: later repeats count
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await more():
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for tp, records in batch.items():
                for rec in records:
                    headers = dict(rec.headers)
                    if headers.get(HEADER_SOURCE_TOPIC, b"").decode() != settings.input_topic:
                        continue
                    p = int(headers[HEADER_SOURCE_PARTITION])
                    o = int(headers[HEADER_SOURCE_OFFSET])
                    if tp.topic == settings.dlq_topic:
                        ident = hash(("dlq", p, o))
                        own = True
                    else:
                        doc = orjson.loads(rec.value or b"{}")
                        ident = hash((doc["line_id"], int(doc["revision"])))
                        own = headers.get(HEADER_TRIGGER, b"input") == b"input"
                    duplicates += ident in seen
                    seen.add(ident)
                    if own:
                        twice += answered[p].setdefault(o, ident) != ident
    finally:
        await consumer.stop()
    lost = sum(
        1 for p, (first, end) in inputs.items() for o in range(first, end) if o not in answered[p]
    )
    return lost, duplicates, twice, expected


def _chart(samples: list[dict[str, Any]], path: Path) -> bool:
    """The curves as a PNG; False without matplotlib (a dev dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    minutes = [s["t"] / 60 for s in samples]
    panels = [
        ("lag", "consumer lag (records)"),
        ("rss_mb", "RSS (MB)"),
        ("fds", "open file descriptors"),
        ("history_patients", "history table entries"),
        ("p99_line_age_s", "p99 line age (s, bucket bound)"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), sharex=True)
    for ax, (key, title) in zip(axes, panels, strict=True):
        ax.plot(minutes, [s[key] if s[key] is not None else float("nan") for s in samples])
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes of steady load")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def test_steady_load(settings, worker, bundle) -> None:
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    assert worker.proc is not None
    outputs = [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]
    start = asyncio.run(end_offsets(settings, outputs))
    inputs_start = asyncio.run(end_offsets(settings, [settings.input_topic]))

    # The peak: a burst, from the first send to the last output.
    burst = [line for k in range(PEAK_LINES // CHUNK) for line in chunk(bundle, k)]
    began = time.monotonic()
    positions = asyncio.run(publish(settings, burst))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=240))
    assert ledger.complete(), ledger.describe_missing()
    peak = len(burst) / (time.monotonic() - began)
    rate = STEADY_SHARE * peak
    lag_max = max(1000.0, rate * LAG_SECONDS_MAX)

    samples: list[dict[str, Any]] = []
    last = _buckets(_scrape(worker))
    with Producer(settings, bundle, rate, first_chunk=PEAK_LINES // CHUNK) as producer:
        t0 = time.monotonic()

        def warmed(sample: dict[str, Any]) -> bool:
            return sample["t"] >= WARMUP_SECONDS and sample["sent"] >= WARMUP_LINES

        # A slow machine takes longer to its warm-up lines: the run goes on (up to three times
        # its length) until three samples follow the warm-up.
        while (elapsed := time.monotonic() - t0) < STEADY_SECONDS or (
            sum(map(warmed, samples)) < 3 and elapsed < 3 * STEADY_SECONDS
        ):
            time.sleep(max(0.0, SAMPLE_SECONDS * (len(samples) + 1) - elapsed))
            metrics = _scrape(worker)
            rss, fds = _proc(worker.proc.pid)
            buckets = _buckets(metrics)
            samples.append(
                {
                    "t": round(time.monotonic() - t0, 1),
                    "sent": producer.sent,
                    "lag": sum(v for _, v in metrics.get("scrubber_consumer_lag", [])),
                    "rss_mb": round(rss, 1),
                    "fds": fds,
                    "history_patients": sum(
                        v for _, v in metrics.get("scrubber_history_patients", [])
                    ),
                    "p99_line_age_s": _p99(last, buckets),
                }
            )
            last = buckets
            assert worker.proc.poll() is None, worker.log_tail()
    steady_seconds = producer.ended - producer.began
    achieved = producer.sent / steady_seconds

    drained_from = time.monotonic()
    inputs_end = asyncio.run(end_offsets(settings, [settings.input_topic]))
    ends = {tp.partition: (inputs_start.get(tp, 0), end) for tp, end in inputs_end.items()}
    lost, duplicates, twice, expected = asyncio.run(_tally(settings, start, ends, 240))
    drained = time.monotonic() - drained_from

    warm = [s for s in samples if warmed(s)]
    assert len(warm) >= 3, "the run is too short for its warm-up"
    rss_base = warm[0]["rss_mb"]
    rss_growth = max(s["rss_mb"] for s in warm) / rss_base - 1
    report = {
        "scenario": "steady_load",
        "peak_lines_per_s": round(peak),
        "target_lines_per_s": round(rate),
        "achieved_lines_per_s": round(achieved),
        "seconds": round(steady_seconds, 1),
        "lines": expected,
        "lost": lost,
        "raw_duplicates": duplicates,
        "answered_twice_after_dedupe": twice,
        "seconds_to_read_every_answer": round(drained, 1),
        "warmup_ends_at_s": warm[0]["t"],
        "rss_growth_after_warmup": round(rss_growth, 3),
        "lag_max_after_warmup": max(s["lag"] for s in warm),
        "lag_bound": round(lag_max),
        "samples": samples,
    }
    out = REPO / "build" / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    (out / "steady_load.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    report["chart"] = _chart(samples, out / "steady_load.png")
    print({k: v for k, v in report.items() if k != "samples"})
    for s in samples:
        print(s)

    assert achieved >= 0.9 * rate, f"the producer sent {achieved:.0f}/s of {rate:.0f}/s"
    assert lost == 0, f"{lost} of {expected} lines without their own output"
    assert twice == 0, f"{twice} inputs answered twice after dedupe"
    assert duplicates == 0, f"{duplicates} outputs repeated without a fault"
    assert rss_growth <= RSS_GROWTH_MAX, (rss_growth, [s["rss_mb"] for s in samples])
    assert all(s["lag"] <= lag_max for s in warm), ([s["lag"] for s in samples], lag_max)
    assert max(s["fds"] for s in warm) <= warm[0]["fds"] + FDS_SLACK, [s["fds"] for s in samples]
    # One history per patient (JSON lines build no claim assemblies), the population fixed.
    assert max(s["history_patients"] for s in warm) <= PATIENTS, samples[-1]
