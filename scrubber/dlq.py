"""Tools for the dead-letter topic: see what is there, and send fixed messages back.

``inspect`` counts dead letters by error code and shows where they are (partition, offset,
source offset), without payload text unless asked: a dead letter's value is the original input,
and the input holds PHI. ``replay`` re-publishes chosen dead letters to the topic they came from
(the input topic, or the X12 topic), unchanged apart from an attempt counter header; a message
that has already failed three times is refused, so a poison pill cannot circle forever, and so
is a dead letter that holds only the first bytes of a message too large for the dead-letter
topic (its source headers say where the whole message is, while the input topic keeps it).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from scrubber.config import Settings
from scrubber.contracts import (
    DEAD_LETTER_MAX_BYTES,
    HEADER_ATTEMPT,
    HEADER_DETAIL,
    HEADER_ERROR_CODE,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_KEY_BYTES,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    HEADER_STAGE,
)
from scrubber.kafka import client_kwargs, partition_counts, producer_kwargs

#: Attempts a message gets in all: the first delivery and two replays.
MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One record of the dead-letter topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def error_code(self) -> str:
        """The closed-set reason."""
        return self.headers.get(HEADER_ERROR_CODE, b"unknown").decode()

    def _number(self, name: str) -> int | None:
        """A decimal header: None when absent, -1 when unreadable."""
        raw = self.headers.get(name)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            return -1

    @property
    def attempt(self) -> int:
        """How many times this message has failed so far."""
        attempt = self._number(HEADER_ATTEMPT)
        return 1 if attempt is None or attempt < 1 else attempt

    @property
    def original_bytes(self) -> int | None:
        """The original value's size when this letter holds only its first bytes, else None."""
        return self._number(HEADER_ORIGINAL_BYTES)

    @property
    def original_key_bytes(self) -> int | None:
        """The original key's size when this letter holds only its first bytes, else None."""
        return self._number(HEADER_ORIGINAL_KEY_BYTES)

    @property
    def cut(self) -> bool:
        """Whether the letter holds only part of the original message (value or key)."""
        return self.original_bytes is not None or self.original_key_bytes is not None

    @property
    def source_topic(self) -> str:
        """The topic the failed message was read from (empty when the header is missing)."""
        return self.headers.get(HEADER_SOURCE_TOPIC, b"").decode(errors="replace")

    def describe(self, show_payload: bool = False) -> dict[str, object]:
        """A PHI-free description; the payload only when explicitly asked for."""
        out: dict[str, object] = {
            "partition": self.partition,
            "offset": self.offset,
            "error_code": self.error_code,
            "stage": self.headers.get(HEADER_STAGE, b"").decode(),
            "source_topic": self.source_topic,
            "detail": self.headers.get(HEADER_DETAIL, b"").decode(),
            "source_partition": self.headers.get(HEADER_SOURCE_PARTITION, b"").decode(),
            "source_offset": self.headers.get(HEADER_SOURCE_OFFSET, b"").decode(),
            "attempt": self.attempt,
            "bytes": len(self.value),
            "original_bytes": self.original_bytes,
            "original_key_bytes": self.original_key_bytes,
        }
        if show_payload:
            out["key"] = self.key.decode(errors="replace") if self.key else None
            out["value"] = self.value.decode(errors="replace")
        return out


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters to act on."""

    error_codes: frozenset[str] = frozenset()
    partition: int | None = None
    from_offset: int = 0
    to_offset: int | None = None

    def matches(self, rec: DeadLetterRecord) -> bool:
        """Whether a record is selected."""
        if self.error_codes and rec.error_code not in self.error_codes:
            return False
        if self.partition is not None and rec.partition != self.partition:
            return False
        if rec.offset < self.from_offset:
            return False
        return self.to_offset is None or rec.offset <= self.to_offset


async def read_dead_letters(settings: Settings, selection: Selection) -> list[DeadLetterRecord]:
    """Every selected record of the dead-letter topic, up to its end at the time of the call."""
    counts = await partition_counts(settings, [settings.dlq_topic])
    tps = [TopicPartition(settings.dlq_topic, p) for p in range(counts.get(settings.dlq_topic, 0))]
    if selection.partition is not None:
        tps = [tp for tp in tps if tp.partition == selection.partition]
    if not tps:
        return []
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[DeadLetterRecord] = []
    try:
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, selection.from_offset)
        pending = {tp for tp in tps if ends[tp] > selection.from_offset}
        deadline = time.monotonic() + 60  # a DLQ read is bounded; it is a tool, not a service
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=2000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    rec = DeadLetterRecord(
                        tp.partition, r.offset, r.key, r.value or b"", dict(r.headers)
                    )
                    if selection.matches(rec):
                        out.append(rec)
                last = records[-1].offset if records else -1
                stop = ends[tp] - 1
                if selection.to_offset is not None:
                    stop = min(stop, selection.to_offset)
                if last >= stop:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return out


@dataclass
class Inspection:
    """What ``scrubber dlq inspect`` reports."""

    total: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, object]] = field(default_factory=list)


async def inspect(
    settings: Settings, selection: Selection, show_payload: bool = False, limit: int = 50
) -> Inspection:
    """Counts by error code, and the first ``limit`` records described."""
    records = await read_dead_letters(settings, selection)
    result = Inspection(total=len(records))
    for rec in records:
        result.by_code[rec.error_code] += 1
    result.records = [rec.describe(show_payload) for rec in records[:limit]]
    return result


@dataclass
class ReplayReport:
    """What ``scrubber dlq replay`` did (or would do, in a dry run)."""

    selected: int = 0
    replayed: int = 0
    refused: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset)
    #: Letters holding only the first bytes of their message: replaying them would send a
    #: different message. (partition, offset)
    cut: list[tuple[int, int]] = field(default_factory=list)
    dry_run: bool = True


def sort_out(
    records: list[DeadLetterRecord], dry_run: bool
) -> tuple[ReplayReport, list[DeadLetterRecord]]:
    """The report before sending, and the records that may be replayed.

    A cut letter is refused whatever its attempt: replaying its first bytes would send a
    different message.
    """
    report = ReplayReport(selected=len(records), dry_run=dry_run)
    allowed = []
    for rec in records:
        if rec.cut:
            report.cut.append((rec.partition, rec.offset))
        elif rec.attempt >= MAX_ATTEMPTS:
            report.refused.append((rec.partition, rec.offset))
        else:
            allowed.append(rec)
    return report, allowed


async def replay(settings: Settings, selection: Selection, dry_run: bool = True) -> ReplayReport:
    """Send selected dead letters back to the topic they came from, original key and bytes.

    A dead letter of the X12 topic goes back to the X12 topic; every other one to the input
    topic (the lines' topic, where a line's dead letter always comes from).

    The replayed record carries ``scrubber-attempt`` = failures so far + 1, and the worker
    copies it onto the dead letter if the message fails again; a record that already failed
    ``MAX_ATTEMPTS`` times is refused, and so is one cut to fit the dead-letter topic.
    """
    sending = producer_kwargs(settings)  # a codec this install lacks fails before any read
    records = await read_dead_letters(settings, selection)
    report, allowed = sort_out(records, dry_run)
    if dry_run or not allowed:
        return report
    # A whole dead letter can be as large as the dead-letter topic takes: so can its replay.
    producer = AIOKafkaProducer(
        **sending, acks="all", enable_idempotence=True, max_request_size=DEAD_LETTER_MAX_BYTES
    )
    await producer.start()
    try:
        for rec in allowed:
            destination = (
                settings.x12_topic
                if rec.source_topic == settings.x12_topic
                else settings.input_topic
            )
            await producer.send_and_wait(
                destination,
                value=rec.value,
                key=rec.key,
                headers=[(HEADER_ATTEMPT, str(rec.attempt + 1).encode())],
            )
            report.replayed += 1
    finally:
        await producer.stop()
    return report
