"""Faults during a running stream. Every scenario checks conservation:

- each input ends with its own result or its dead letter;
- after keeping the highest revision per line id, the final verdicts equal the offline scrub's;
- only what a fault left uncommitted is handled again: an input answered twice was answered and
  past the group's commit at a fault, every repeated output comes from such an input, repeats
  carry the same verdict, and none remain after dedupe (by line id and revision, which is what a
  consumer keeps).
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from scrubber.accounting import (
    Fault,
    Ledger,
    collect,
    committed_offsets,
    end_offsets,
    key_of,
    publish,
)
from scrubber.contracts import HEADER_ERROR_CODE, MAX_MESSAGE_BYTES, ScrubResult
from scrubber.examples import generate
from scrubber.offline import scrub_lines
from scrubber.processor import Rejection, decode
from scrubber.refdata.model import ReferenceSnapshot
from tests.integration.background import Background
from tests.integration.conftest import (
    REPO,
    WorkerProcess,
    assert_complete,
    free_port,
    load_bundle,
    progress,
    wait_progress,
)

from .conftest import CHAOS_LINES
from .latency import LatencyProxy

pytestmark = pytest.mark.integration


def _outputs(settings):
    return [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]


def _offline_final(records, bundle):
    results = io.BytesIO()
    scrub_lines(
        [raw for _key, raw in records],
        ReferenceSnapshot(bundle),
        results,
        io.BytesIO(),
        "in",
        clock=lambda: datetime.now(UTC),
    )
    final: dict[str, ScrubResult] = {}
    for raw in results.getvalue().splitlines():
        r = ScrubResult.model_validate_json(raw)
        if r.line_id not in final or r.revision > final[r.line_id].revision:
            final[r.line_id] = r
    return {k: (v.outcome.value, tuple(f.rule_id for f in v.findings)) for k, v in final.items()}


def _conserved(
    ledger: Ledger, records, bundle, scenario: str, seconds: float, in_flight: int | None = None
) -> None:
    final = {
        k: (d["outcome"], tuple(f["rule_id"] for f in d["findings"]))
        for k, d in ledger.final().items()
    }
    offline = _offline_final(records, bundle)
    differences = sum(1 for k in offline.keys() | final.keys() if offline.get(k) != final.get(k))
    raw = sum(len(v) for v in ledger.outputs.values())
    report = {
        "scenario": scenario,
        "lines": len(records),
        "lost": len(ledger.missing()),
        "raw_outputs": raw,
        "raw_duplicates": ledger.duplicates(),
        "in_flight_at_faults": in_flight,
        "duplicates_after_dedupe": 0 if final.keys() == offline.keys() else -1,
        "verdict_differences": differences,
        "seconds_to_complete": round(seconds, 1),
    }
    out = REPO / "build" / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{scenario}.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(report)
    assert ledger.complete(), f"{len(ledger.missing())} inputs without their own output"
    assert differences == 0 and final == offline, _explain(ledger, offline, final)


def _explain(ledger: Ledger, offline, final) -> str:
    """The lines whose final verdicts differ, each with every output the stream gave for it."""
    differ = sorted(k for k in offline.keys() | final.keys() if offline.get(k) != final.get(k))
    emitted: dict[str, list[str]] = {k: [] for k in differ[:10]}
    for (partition, offset), outs in sorted(ledger.outputs.items()):
        for out in outs:
            if out.kind == "dlq":
                continue
            doc = orjson.loads(out.value)
            if doc["line_id"] in emitted:
                rules = ",".join(f["rule_id"] for f in doc["findings"])
                emitted[doc["line_id"]].append(
                    f"input {partition}:{offset} rev {doc['revision']} {doc['outcome']} [{rules}]"
                )
    lines = [
        f"{k}: offline {offline.get(k)}, stream {final.get(k)}; outputs: {emitted[k]}"
        for k in emitted
    ]
    return f"{len(differ)} final verdicts differ:\n" + "\n".join(lines)


def _run_with(settings, worker, bundle, records, fault) -> tuple[Ledger, list[tuple[int, int]]]:
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(publish(settings, records))
    began = time.monotonic()
    fault(positions, start)
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=240))
    ledger.seconds = time.monotonic() - began  # type: ignore[attr-defined]
    return ledger, positions


def _records(bundle, n, seed):
    return [(key_of(r), r) for r in generate(bundle, n, seed=seed, patients=max(50, n // 8))]


def _settled(settings, limit: float = 15.0) -> dict[int, int]:
    """Wait until the output topics and the group's commit stop moving (two quiet polls in a
    row), and return the commit: the requests a killed worker had written to its sockets still
    reach the broker after the process is gone."""

    def state():
        outputs = asyncio.run(end_offsets(settings, _outputs(settings)))
        return outputs, asyncio.run(committed_offsets(settings))

    before, quiet = state(), 0
    deadline = time.monotonic() + limit
    while quiet < 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"the outputs or the commit still moved after {limit} s: {before}")
        time.sleep(0.5)
        now = state()
        quiet = quiet + 1 if now == before else 0
        before = now
    return before[1]


def _fault(settings, positions, start) -> Fault:
    """The group's commit and the outputs already written once the dead worker's last requests
    have landed."""
    committed = _settled(settings)
    now = asyncio.run(collect(settings, positions, start, wait_seconds=60, to_end=True))
    past = {pos: outs for pos, outs in now.outputs.items() if pos[1] >= committed[pos[0]]}
    return Fault(
        committed,
        frozenset(pos for pos in past if now.own(pos)),
        sum(len(outs) for outs in past.values()),
    )


def _repeats_within(ledger: Ledger, faults: list[Fault]) -> None:
    """Only what the faults left uncommitted was handled again, and every repeat agrees."""
    problems = ledger.beyond(faults)
    assert not problems, problems[:20]


def test_sigkill_three_times(settings, worker, bundle) -> None:
    records = _records(bundle, CHAOS_LINES, seed=41)
    faults: list[Fault] = []

    def kill_three_times(positions, start):
        for share in (0.2, 0.45, 0.7):
            wait_progress(settings, positions, start, share)
            assert worker.proc is not None
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait()
            faults.append(_fault(settings, positions, start))
            worker.start()
            worker.wait_ready(120)

    ledger, _positions = _run_with(settings, worker, bundle, records, kill_three_times)
    in_flight = sum(f.in_flight for f in faults)
    _conserved(ledger, records, bundle, "sigkill_x3", ledger.seconds, in_flight=in_flight)
    _repeats_within(ledger, faults)


def test_broker_restart_mid_run(settings, worker, bundle) -> None:
    records = _records(bundle, CHAOS_LINES // 2, seed=43)
    stack = str(REPO / "deploy/local/stack.sh")

    def restart_broker(positions, start):
        wait_progress(settings, positions, start, 0.3)
        subprocess.run([stack, "kafka-down"], check=True, timeout=120)
        time.sleep(3)
        subprocess.run([stack, "kafka-up"], check=True, timeout=300)

    ledger, _positions = _run_with(settings, worker, bundle, records, restart_broker)
    _conserved(ledger, records, bundle, "broker_restart", ledger.seconds)
    assert worker.proc is not None and worker.proc.poll() is None, "the worker must survive it"


#: The slow broker: every byte between the worker and the broker this late, each way, and for
#: SLOW_SPIKE_SECONDS of the run SLOW_SPIKE_DELAY late (a broker in a long GC pause or a
#: congested link).
SLOW_DELAY = float(os.environ.get("CHAOS_SLOW_DELAY", "0.1"))
SLOW_SPIKE_DELAY = float(os.environ.get("CHAOS_SLOW_SPIKE_DELAY", "1.0"))
SLOW_SPIKE_SECONDS = float(os.environ.get("CHAOS_SLOW_SPIKE_SECONDS", "15"))


class CommitSampler(Background):
    """The worker group's committed offsets, summed over the input partitions, every second."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.samples: list[tuple[float, int]] = []
        super().__init__("commit-sampler")

    def run(self) -> None:
        while not self.stop.is_set():
            committed = asyncio.run(committed_offsets(self.settings))
            self.samples.append((time.monotonic(), sum(committed.values())))
            self.stop.wait(1)


def _metric(worker, name: str) -> float:
    text = httpx.get(worker.base_url + "/metrics", timeout=5).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] == name]
    assert len(values) == 1, (name, values)
    return values[0]


def test_slow_broker(settings, worker, bundle) -> None:
    """The worker talks to the broker only through a proxy that delays every byte.

    SLOW_DELAY each way for the whole run, and SLOW_SPIKE_DELAY for SLOW_SPIKE_SECONDS in the
    middle of it. The worker keeps committing while it has work, answers every line once (no
    crash and no rebalance, so no duplicate at all), and takes part in no rebalance once it is
    ready (a slow broker must not look like a dead consumer).
    """
    records = _records(bundle, CHAOS_LINES // 2, seed=61)
    half = len(records) // 2
    with LatencyProxy(delay=0.0) as proxy, CommitSampler(settings) as commits:
        worker.settings = settings.model_copy(
            update={"kafka_bootstrap": f"127.0.0.1:{proxy.listen}"}
        )
        asyncio.run(load_bundle(settings, bundle))
        worker.start()
        worker.wait_ready()
        assigned = _metric(worker, "scrubber_partition_assignments_total")
        start = asyncio.run(end_offsets(settings, _outputs(settings)))
        proxy.set_delay(SLOW_DELAY)
        began = time.monotonic()
        positions = asyncio.run(publish(settings, records[:half]))
        wait_progress(settings, positions, start, 0.5, seconds=180)
        # The spike hits while the second half waits: the worker has work all through it.
        proxy.set_delay(SLOW_SPIKE_DELAY)
        spike = time.monotonic()
        positions += asyncio.run(publish(settings, records[half:]))
        time.sleep(max(0.0, SLOW_SPIKE_SECONDS - (time.monotonic() - spike)))
        proxy.set_delay(SLOW_DELAY)
        calm = time.monotonic()
        ledger = asyncio.run(collect(settings, positions, start, wait_seconds=240))
        done = time.monotonic()
        # Everything handled is committed, through the proxy, within a few commit intervals.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and commits.samples[-1][1] < len(records):
            time.sleep(1)
        assert commits.samples[-1][1] == len(records), commits.samples[-5:]
        assignments = _metric(worker, "scrubber_partition_assignments_total") - assigned
        assert proxy.connections > 0 and proxy.bytes > 0, "the worker bypassed the proxy"
        assert worker.stop() == 0, worker.log_tail()  # its last commit goes through the proxy
    print(
        f"slow broker: {len(records)} lines in {done - began:.1f} s, "
        f"{done - calm:.1f} s to complete after the spike"
    )
    ledger.seconds = done - calm  # type: ignore[attr-defined]
    _conserved(ledger, records, bundle, "slow_broker", ledger.seconds)
    assert ledger.duplicates() == 0, ledger.duplicates()
    assert assignments == 0, f"{assignments} assignments: the slow broker caused rebalances"
    # Commits went on while the worker had work, the spike included: the first within 20 s of
    # the first publish (a fetch, a batch and a commit, each round trip slowed), then the
    # committed offset moved at least once in every 15 s (the spike's length) until the last
    # output; 9.4 s was the longest seen.
    during = [(t, n) for t, n in commits.samples if began <= t <= done]
    moves = [t for (t, n), (_, before) in zip(during[1:], during, strict=False) if n > before]
    gaps = [b - a for a, b in zip([began, *moves], [*moves, done], strict=True)]
    print(f"slow broker: commit gaps {[round(g, 1) for g in gaps]}")
    assert moves and gaps[0] <= 20.0 and max(gaps[1:]) <= 15.0, (gaps, during)


REDIS_OUTAGE_SECONDS = float(os.environ.get("CHAOS_REDIS_OUTAGE_SECONDS", "60"))


def test_redis_outage_mid_run(settings, worker, bundle) -> None:
    """Redis stopped for a minute under load, and the worker restarted while it is gone.

    The running worker keeps the snapshot it holds and goes on; the restarted one has no
    reference data, so it must hold the lines that arrive meanwhile without a verdict and
    without a dead letter (an outage is not the message's fault) until Redis returns; then
    everything completes, every result naming the one loaded version.
    """
    records = _records(bundle, CHAOS_LINES // 2, seed=59)
    half = len(records) // 2
    stack = str(REPO / "deploy/local/stack.sh")
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(publish(settings, records[:half]))
    wait_progress(settings, positions, start, 0.3)
    began = time.monotonic()
    subprocess.run([stack, "redis-down"], check=True, timeout=60)
    try:
        # The worker that holds a snapshot carries on; /readyz says Redis is gone.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
            status = worker.readyz()
            if status is not None and status[1].get("redis_ok") is False:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("/readyz never reported the Redis outage")
        # A restart during the outage: no reference data, so it must not judge anything.
        assert worker.stop() == 0
        worker.start()
        positions += asyncio.run(publish(settings, records[half:]))
        time.sleep(min(15.0, REDIS_OUTAGE_SECONDS / 4))
        status = worker.readyz()
        assert status is not None and status[0] == 503, status
        held = len(positions) - progress(settings, positions, start)
        assert held >= len(records) - half, "the lines sent during the outage were judged"
        time.sleep(max(0.0, REDIS_OUTAGE_SECONDS - (time.monotonic() - began)))
        assert len(positions) - progress(settings, positions, start) == held
    finally:
        subprocess.run([stack, "redis-up"], check=True, timeout=60)
    back = time.monotonic()
    worker.wait_ready(120)
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=240))
    recovered = time.monotonic() - back
    assert_complete(ledger, worker)

    # Dead letters only for the inputs that are malformed in themselves, not for the outage.
    dead = {pos for pos, outs in ledger.outputs.items() if any(o.kind == "dlq" for o in outs)}
    malformed = {
        pos
        for pos, (key, raw) in zip(positions, records, strict=True)
        if isinstance(decode(raw, key, require_key=True), Rejection)
    }
    assert dead == malformed
    versions = {
        orjson.loads(o.value)["refdata_version"]
        for outs in ledger.outputs.values()
        for o in outs
        if o.kind != "dlq"
    }
    assert versions == {bundle.version}
    _conserved(ledger, records, bundle, "redis_outage", recovered)


def test_rebalance_one_two_one(settings, worker, bundle, tmp_path: Path) -> None:
    """1 -> 2 -> 1 workers, each rebalance while lines are in flight.

    The input goes in three parts: the second worker joins while the first part is being
    handled, the second part is sent to the two of them, and the second worker leaves while
    that part is being handled; the third part is the first worker's alone again.
    """
    records = _records(bundle, CHAOS_LINES, seed=47)
    first, middle = len(records) // 3, 2 * len(records) // 3
    second = WorkerProcess(
        settings.model_copy(update={"web_port": free_port(), "data_dir": str(tmp_path / "w2")}),
        tmp_path / "worker2.log",
    )
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    began = time.monotonic()
    try:
        positions = asyncio.run(publish(settings, records[:first]))
        wait_progress(settings, positions, start, 0.1)
        second.start()
        second.wait_alive()  # it has joined the group: partitions move now
        positions += asyncio.run(publish(settings, records[first:middle]))
        assert second.stop() == 0  # leaves with part of the second third in hand
        positions += asyncio.run(publish(settings, records[middle:]))
        ledger = asyncio.run(collect(settings, positions, start, wait_seconds=240))
    finally:
        if second.proc is not None and second.proc.poll() is None:
            second.stop()
    assert ledger.duplicates() == 0, "a graceful leave must not re-send anything"
    _conserved(ledger, records, bundle, "rebalance_1_2_1", time.monotonic() - began)


def _poison(rng: random.Random, good: bytes, kind: str) -> tuple[bytes | None, bytes]:
    key = key_of(good)
    if kind == "not_json":
        return key, b"\x00\x01 not json at all"
    if kind == "truncated":
        return key, good[: len(good) // 3]
    if kind == "oversize":
        return key, good[:-1] + b', "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    if kind == "wrong_types":
        doc = orjson.loads(good)
        doc["line_number"], doc["units"] = "one", [1]
        return key, orjson.dumps(doc)
    if kind == "deep_nesting":
        return key, b"[" * 10_000 + b"]" * 10_000  # 20 KB: under the size bound
    if kind == "huge_array":
        doc = orjson.loads(good)
        doc["diagnosis_codes"] = ["A00"] * 5000
        return key, orjson.dumps(doc)
    if kind == "invalid_utf8":
        return key, good.replace(b'"claim_id":"', b'"claim_id":"\xff\xfe', 1)
    if kind == "empty":
        return key, b""
    if kind == "missing_key":
        return None, good
    raise ValueError(kind)


POISON_KINDS = (
    "not_json",
    "truncated",
    "oversize",
    "wrong_types",
    "deep_nesting",
    "huge_array",
    "invalid_utf8",
    "empty",
    "missing_key",
)
EXPECTED_CODE = {
    "not_json": b"not_json",
    "truncated": b"not_json",
    "oversize": b"oversize",
    "wrong_types": b"contract_violation",
    "deep_nesting": b"not_json",
    "huge_array": b"contract_violation",
    "invalid_utf8": b"not_json",
    "empty": b"empty_value",
    "missing_key": b"missing_key",
}


def test_poison_pills_at_one_percent(settings, worker, bundle) -> None:
    rng = random.Random(53)
    clean = generate(bundle, CHAOS_LINES, seed=53, mix=None)
    records: list[tuple[bytes | None, bytes]] = []
    kinds: dict[int, str] = {}
    for raw in clean:
        key = key_of(raw)
        if key is None or isinstance(decode(raw, key, require_key=True), Rejection):
            # The generator's own malformed lines are not part of this scenario: a poison made
            # from one would be refused for the base line's fault before its own.
            continue
        if rng.random() < 0.01 or len(kinds) < len(POISON_KINDS):
            kind = POISON_KINDS[len(kinds) % len(POISON_KINDS)]
            kinds[len(records)] = kind
            records.append(_poison(rng, raw, kind))
        records.append((key_of(raw), raw))

    ledger, positions = _run_with(settings, worker, bundle, records, lambda positions, start: None)
    assert_complete(ledger, worker)
    for index, kind in kinds.items():
        outs = [o for o in ledger.outputs[positions[index]] if o.kind == "dlq"]
        assert len(outs) == 1, (kind, len(outs))  # in the dead-letter topic exactly once
        assert outs[0].headers[HEADER_ERROR_CODE] == EXPECTED_CODE[kind], kind
        assert outs[0].value == records[index][1]
    assert len(positions) == len(records)
    assert ledger.duplicates() == 0
