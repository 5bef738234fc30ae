"""Publish claim lines and account for every one of them: the demo's and the tests' ledger.

``publish`` sends a JSONL file to the input topic and remembers where each record landed
(partition, offset). ``collect`` reads the three output topics from where they stood before the
publish and matches every output to its input through the source headers that every result and
dead letter carries. The ledger is complete when each input has an output; it proves that
nothing was lost, and counts duplicates (a redelivered record yields its result again).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from scrubber.config import Settings
from scrubber.contracts import (
    HEADER_ERROR_CODE,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    HEADER_TRIGGER,
)
from scrubber.kafka import client_kwargs, partition_counts, producer_kwargs

Position = tuple[int, int]  # (partition, offset) in the input topic


def key_of(raw: bytes) -> bytes | None:
    """The record key for a JSONL line: the patient's member id where the line has one.

    Malformed lines are published too (the demo shows what the scrubber does with them); they
    get whatever key can be read, or none.
    """
    try:
        doc = orjson.loads(raw)
        member = doc["patient"]["member_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return member.encode() if isinstance(member, str) and member else None


def read_jsonl(path: Path) -> list[bytes]:
    """The non-blank lines of a JSONL file, as raw bytes, exactly as they will be sent."""
    return [line for line in path.read_bytes().splitlines() if line.strip()]


async def _partitions(settings: Settings, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the given topics."""
    counts = await partition_counts(settings, topics)
    return [TopicPartition(t, p) for t in topics for p in range(counts.get(t, 0))]


async def end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    """Where each partition of the given topics ends now."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await _partitions(settings, topics)
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


async def publish(settings: Settings, records: list[tuple[bytes | None, bytes]]) -> list[Position]:
    """Send (key, value) records to the input topic, durably; return where each one landed."""
    producer = AIOKafkaProducer(
        **producer_kwargs(settings), acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        futures = [
            await producer.send(settings.input_topic, value=value, key=key)
            for key, value in records
        ]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


@dataclass(frozen=True, slots=True)
class Output:
    """One record of an output topic, matched to the input position it came from."""

    kind: str  # accepted, flagged or dlq
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def own(self) -> bool:
        """True for the output about the input record itself (its result or dead letter)."""
        return self.kind == "dlq" or self.headers.get(HEADER_TRIGGER, b"input") == b"input"

    @property
    def identity(self) -> tuple[str, int] | None:
        """(line id, revision) of a result; None for a dead letter."""
        if self.kind == "dlq":
            return None
        doc = orjson.loads(self.value)
        return doc["line_id"], int(doc["revision"])

    @property
    def verdict(self) -> tuple[object, ...]:
        """What a consumer acts on: a result's outcome and findings' rules, a dead letter's code.

        Two outputs with one identity must agree on it, or a consumer that keeps the first of a
        (line id, revision) could keep the wrong one.
        """
        if self.kind == "dlq":
            return ("dlq", self.headers.get(HEADER_ERROR_CODE, b""))
        doc = orjson.loads(self.value)
        return (doc["outcome"], tuple(f["rule_id"] for f in doc["findings"]))


@dataclass(frozen=True)
class Fault:
    """Where the worker group stood when a worker died: what a restart may handle again."""

    committed: dict[int, int]
    """The group's committed offset per input partition."""
    answered: frozenset[Position]
    """Inputs past the commit that already had their own output."""
    in_flight: int
    """The outputs of the inputs past the commit (for a report: not a bound on duplicates)."""

    def past(self, pos: Position) -> bool:
        """Whether the input at ``pos`` lay past the group's commit."""
        return pos[1] >= self.committed.get(pos[0], 0)


@dataclass
class Ledger:
    """Every output matched to its input position.

    An input owns exactly one output (its result or its dead letter); it may also trigger new
    revisions of earlier lines. A duplicate is the same (line id, revision), or the same dead
    letter, seen more than once: at-least-once delivery allows them, consumers drop them.
    """

    expected: set[Position]
    outputs: dict[Position, list[Output]] = field(default_factory=dict)

    def own(self, pos: Position) -> list[Output]:
        """The outputs about the input itself (one, unless it was redelivered)."""
        return [o for o in self.outputs.get(pos, []) if o.own]

    def missing(self) -> set[Position]:
        """Inputs that have no output about themselves yet."""
        return {pos for pos in self.expected if not self.own(pos)}

    def complete(self) -> bool:
        """Whether every input has its own output."""
        return not self.missing()

    def describe_missing(self, limit: int = 8) -> str:
        """The inputs without output as offset ranges per partition, for a person reading a log.

        A lost run and a stalled partition look different here (a hole in the middle of the
        published offsets, or everything from one offset on), which says where to look.
        """
        by_partition: dict[int, list[int]] = {}
        for partition, offset in sorted(self.missing()):
            by_partition.setdefault(partition, []).append(offset)
        published: dict[int, list[int]] = {}
        for partition, offset in self.expected:
            published.setdefault(partition, []).append(offset)
        parts = []
        for partition, offsets in sorted(by_partition.items()):
            ranges: list[tuple[int, int]] = []
            for offset in offsets:
                if ranges and offset == ranges[-1][1] + 1:
                    ranges[-1] = (ranges[-1][0], offset)
                else:
                    ranges.append((offset, offset))
            shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges[:limit])
            more = f" (+{len(ranges) - limit} more runs)" if len(ranges) > limit else ""
            sent = published.get(partition, [])
            parts.append(
                f"partition {partition}: {len(offsets)} of {len(sent)} without output at "
                f"offsets {shown}{more}; published {min(sent)}-{max(sent)}"
            )
        return "; ".join(parts) if parts else "none missing"

    def _by_identity(self) -> dict[object, list[tuple[Position, Output]]]:
        """Every output with its input position, grouped by identity.

        A dead letter's identity is its input position.
        """
        groups: dict[object, list[tuple[Position, Output]]] = {}
        for pos, outs in self.outputs.items():
            for out in outs:
                groups.setdefault(out.identity or ("dlq", pos), []).append((pos, out))
        return groups

    def duplicates(self) -> int:
        """Outputs that repeat one already seen."""
        return sum(len(group) - 1 for group in self._by_identity().values())

    def redone(self) -> set[Position]:
        """Inputs with more than one output about themselves: handled again after a fault."""
        return {pos for pos in self.outputs if len(self.own(pos)) > 1}

    def repeat_sources(self) -> set[Position]:
        """The inputs that emitted an output whose identity was emitted more than once.

        A restart may repeat only what came from inputs past the group's commit: after a crash
        that kept a line's history but lost its outputs, the line's own input and the later
        line that revised it both re-send the revision (one of them is then a duplicate no
        output in flight accounts for), yet both inputs are uncommitted.
        """
        return {pos for group in self._by_identity().values() if len(group) > 1 for pos, _ in group}

    def beyond(self, faults: list[Fault]) -> list[str]:
        """What was repeated that the faults do not account for; empty when all is explained.

        After each fault a restart handles again the inputs past the group's commit, so an
        input may have one own output more for every fault at which it was past the commit and
        already answered; every output of a repeated identity must come from an input past the
        commit at some fault; and repeats of one identity must carry one verdict, so a consumer
        may keep either. (A revision's cause is a later line of the same patient, in the same
        partition, so both sources of a repeated revision lie past a commit if either does.)
        """
        problems = []
        for pos in sorted(self.redone()):
            allowed = 1 + sum(pos in f.answered for f in faults)
            if len(self.own(pos)) > allowed:
                problems.append(
                    f"input {pos} answered {len(self.own(pos))} times, {allowed} allowed"
                )
        for pos in sorted(self.repeat_sources()):
            if not any(f.past(pos) for f in faults):
                problems.append(f"input {pos} repeated an output but was committed at every fault")
        for ident, verdicts in self.conflicts().items():
            problems.append(
                f"{ident} repeated with different verdicts: {sorted(map(str, verdicts))}"
            )
        return problems

    def conflicts(self) -> dict[object, set[tuple[object, ...]]]:
        """Identities emitted more than once with different verdicts (there must be none)."""
        found: dict[object, set[tuple[object, ...]]] = {}
        for ident, group in self._by_identity().items():
            if len(group) > 1:
                verdicts = {out.verdict for _, out in group}
                if len(verdicts) > 1:
                    found[ident] = verdicts
        return found

    def final(self) -> dict[str, dict[str, Any]]:
        """The latest result per line id: what a consumer keeping the highest revision holds."""
        latest: dict[str, dict[str, Any]] = {}
        for outs in self.outputs.values():
            for out in outs:
                if out.kind == "dlq":
                    continue
                doc = orjson.loads(out.value)
                have = latest.get(doc["line_id"])
                if have is None or int(doc["revision"]) > int(have["revision"]):
                    latest[doc["line_id"]] = doc
        return latest

    def summary(self) -> dict[str, object]:
        """Counts for people: final outcomes by line, findings by rule, dead letters by code."""
        rules: Counter[str] = Counter()
        dead: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        for doc in self.final().values():
            outcomes[str(doc["outcome"])] += 1
            for finding in doc["findings"]:
                if finding["severity"] in ("error", "warning"):
                    rules[finding["rule_id"]] += 1
        for pos in self.expected:
            for out in self.own(pos)[:1]:
                if out.kind == "dlq":
                    dead[out.headers.get(HEADER_ERROR_CODE, b"?").decode()] += 1
        revisions = sum(
            1 for outs in self.outputs.values() for o in outs if o.kind != "dlq" and not o.own
        )
        return {
            "lines_in": len(self.expected),
            "with_output": len(self.expected) - len(self.missing()),
            "accepted": outcomes["accepted"],
            "flagged": outcomes["flagged"],
            "dead_lettered": sum(dead.values()),
            "flagged_by_rule": dict(sorted(rules.items())),
            "dead_letters_by_code": dict(sorted(dead.items())),
            "revisions": revisions,
            "duplicates": self.duplicates(),
        }


async def collect(
    settings: Settings,
    expected: list[Position],
    start: dict[TopicPartition, int],
    wait_seconds: float,
    *,
    to_end: bool = False,
) -> Ledger:
    """Read the output topics from ``start`` until every expected input has an output.

    With ``to_end``, read instead exactly what the topics hold now (up to their end offsets at
    the call), complete or not: a picture of the outputs at one moment.
    """
    kinds = {
        settings.accepted_topic: "accepted",
        settings.flagged_topic: "flagged",
        settings.dlq_topic: "dlq",
    }
    ledger = Ledger(expected=set(expected))
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = await _partitions(settings, list(kinds))
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start.get(tp, 0))
        ends = await consumer.end_offsets(tps) if to_end else {}

        async def more() -> bool:
            if to_end:
                return any([await consumer.position(tp) < end for tp, end in ends.items()])
            return not ledger.complete()

        deadline = time.monotonic() + wait_seconds
        while await more() and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for rec in records:
                    headers = {k: v for k, v in rec.headers}
                    if headers.get(HEADER_SOURCE_TOPIC, b"").decode() != settings.input_topic:
                        continue
                    pos = (
                        int(headers[HEADER_SOURCE_PARTITION]),
                        int(headers[HEADER_SOURCE_OFFSET]),
                    )
                    if pos in ledger.expected:
                        ledger.outputs.setdefault(pos, []).append(
                            Output(kinds[tp.topic], rec.key, rec.value or b"", headers)
                        )
    finally:
        await consumer.stop()
    return ledger


async def committed_offsets(settings: Settings) -> dict[int, int]:
    """The worker group's committed offset per input partition (0 where none is committed)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    committed = {p: 0 for p in range(settings.partitions)}
    for tp, meta in offsets.items():
        if tp.topic == settings.input_topic and meta.offset >= 0:
            committed[tp.partition] = meta.offset
    return committed


async def run_file(settings: Settings, path: Path, wait_seconds: float) -> tuple[Ledger, float]:
    """Publish a JSONL file and wait until every line has an output.

    Returns the ledger and the seconds from the first send until the ledger was complete.
    """
    outputs = [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]
    start = await end_offsets(settings, outputs)
    records = [(key_of(raw), raw) for raw in read_jsonl(path)]
    began = time.monotonic()
    positions = await publish(settings, records)
    ledger = await collect(settings, positions, start, wait_seconds)
    return ledger, time.monotonic() - began
