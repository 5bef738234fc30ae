"""The X12 edge: an X12 record's lines, acknowledgements or dead letter, in order, counted.

Real intake (pyx12); a stand-in for the producer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from scrubber.contracts import (
    HEADER_ATTEMPT,
    HEADER_ERROR_CODE,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_TOPIC,
)
from scrubber.metrics import IntakeMetrics
from scrubber.processor import Headers, SourcePosition
from scrubber.stream.edge import X12Runtime
from scrubber.x12.intake import X12Intake
from tests.unit.x12data import Claim, Line, render, simple

NOW = datetime(2024, 3, 20, 10, 30, tzinfo=UTC)
X12 = "claims.x12.v1"
LINES, ACKS, DLQ = "claims.lines.v1", "claims.x12.ack.v1", "claims.dlq.v1"

Sent = list[tuple[str, bytes | None, bytes, dict[str, bytes]]]


def _interchange(control: str = "101", claims: int = 2) -> bytes:
    batch = [
        Claim(claim_id=f"C{n}", lines=[Line(), Line(procedure="11042")]) for n in range(claims)
    ]
    return render([(control, [simple(batch)])], control=f"{int(control):09d}")


def _edge(fail_on: str | None = None) -> tuple[X12Runtime, Sent, IntakeMetrics]:
    sent: Sent = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        if topic == fail_on:
            raise ConnectionError("producer away")
        sent.append((topic, key, value, dict(headers)))

    metrics = IntakeMetrics()
    return (
        X12Runtime(X12Intake(), metrics, send, LINES, ACKS, DLQ, clock=lambda: NOW),
        sent,
        metrics,
    )


def _handle(
    runtime: X12Runtime, offset: int, value: bytes | None, partition: int = 0, attempt: int = 1
) -> None:
    asyncio.run(runtime.handle(X12, partition, offset, None, value, None, attempt))


def _sample(metrics: IntakeMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


def test_an_interchange_publishes_its_lines_then_its_999_and_is_acknowledged() -> None:
    runtime, sent, metrics = _edge()
    _handle(runtime, 7, _interchange())
    topics = [s[0] for s in sent]
    assert topics == [LINES] * 4 + [ACKS]
    lines = [orjson.loads(s[2]) for s in sent[:4]]
    assert [(d["claim_id"], d["line_number"]) for d in lines] == [
        ("C0", 1), ("C0", 2), ("C1", 1), ("C1", 2),
    ]  # fmt: skip
    assert all(s[1] == b"MEMBER001" for s in sent[:4])  # keyed by member id, like any line
    assert all(s[3][HEADER_SOURCE_TOPIC] == X12.encode() for s in sent)
    assert sent[4][1] == b"SUBMITTER01" and b"AK9*A*1*1*1~" in sent[4][2]
    assert sent[4][3][HEADER_SOURCE_OFFSET] == b"7"  # the 999 names the record it answers
    assert _sample(metrics, "scrubber_x12_records_total") == 1
    assert _sample(metrics, "scrubber_x12_interchanges_total", outcome="accepted") == 1
    assert _sample(metrics, "scrubber_x12_transaction_sets_total", outcome="accepted") == 1
    assert _sample(metrics, "scrubber_x12_lines_published_total") == 4


def test_the_stream_publishes_exactly_what_the_offline_intake_gives() -> None:
    raw = _interchange("202", claims=3)
    runtime, sent, _metrics = _edge()
    _handle(runtime, 0, raw, partition=1)
    offline = X12Intake().process(raw, SourcePosition(X12, 1, 0), NOW)
    assert [(s[1], s[2]) for s in sent if s[0] == LINES] == [
        (r.key, r.value) for r in offline.lines
    ]


def test_a_rejected_transaction_set_publishes_no_line_and_a_rejecting_999() -> None:
    raw = _interchange().replace(b"CLM*C0*", b"CLX*C0*", 1)
    runtime, sent, metrics = _edge()
    _handle(runtime, 0, raw)
    assert [s[0] for s in sent] == [ACKS]
    assert b"IK5*R" in sent[0][2]
    assert _sample(metrics, "scrubber_x12_transaction_sets_total", outcome="rejected") == 1
    assert _sample(metrics, "scrubber_x12_lines_published_total") == 0


@pytest.mark.parametrize(
    ("raw", "code"), [(b"", "empty_value"), (b'{"claim_id": "C1"}', "not_x12")]
)
def test_a_record_that_is_not_x12_is_a_dead_letter_with_its_attempt(raw: bytes, code: str) -> None:
    runtime, sent, metrics = _edge()
    _handle(runtime, 3, raw, attempt=2)
    assert len(sent) == 1
    topic, _key, value, headers = sent[0]
    assert topic == DLQ and value == raw
    assert headers[HEADER_ERROR_CODE] == code.encode() and headers[HEADER_ATTEMPT] == b"2"
    assert _sample(metrics, "scrubber_dead_letters_total", error_code=code) == 1


def test_a_failed_send_raises_so_nothing_is_committed() -> None:
    runtime, sent, _metrics = _edge(fail_on=ACKS)
    with pytest.raises(ConnectionError):
        _handle(runtime, 0, _interchange())
    assert [s[0] for s in sent] == [LINES] * 4  # the lines were handed over, the 999 was not


def test_an_intake_failure_is_a_processing_error_dead_letter_not_a_stalled_partition() -> None:
    class Broken(X12Intake):
        def process(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug")

    sent: Sent = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        sent.append((topic, key, value, dict(headers)))

    runtime = X12Runtime(Broken(), IntakeMetrics(), send, LINES, ACKS, DLQ, clock=lambda: NOW)
    raw = _interchange()
    _handle(runtime, 0, raw)
    ((topic, _key, value, headers),) = sent
    assert (topic, value) == (DLQ, raw)
    assert headers[HEADER_ERROR_CODE] == b"processing_error"


def test_the_dead_letter_topic_and_the_producer_take_a_dead_letter_of_any_input() -> None:
    from scrubber.config import Settings
    from scrubber.contracts import DEAD_LETTER_MAX_BYTES
    from scrubber.kafka import topic_specs

    settings = Settings()
    (dlq,) = [s for s in topic_specs(settings) if s.name == settings.dlq_topic]
    assert int(dlq.configs["max.message.bytes"]) == DEAD_LETTER_MAX_BYTES
    assert DEAD_LETTER_MAX_BYTES >= 1024 * 1024 + 64 * 1024  # Kafka's default record, headers


def test_an_x12_record_too_large_for_the_dead_letter_topic_is_cut_not_refused() -> None:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    from scrubber.contracts import (
        DEAD_LETTER_MAX_BYTES,
        DEAD_LETTER_PREVIEW_BYTES,
        HEADER_ORIGINAL_BYTES,
    )

    raw = b"ISA*" + b"x" * (3 * 1024 * 1024)  # what a compressing upstream can deliver
    runtime, sent, metrics = _edge()
    asyncio.run(runtime.handle(X12, 0, 4, b"SUBMITTER01", raw, None, 1))
    ((topic, key, value, headers),) = sent
    assert topic == DLQ and key == b"SUBMITTER01"
    assert value == raw[:DEAD_LETTER_PREVIEW_BYTES]
    assert headers[HEADER_ERROR_CODE] == b"oversize"
    assert headers[HEADER_ORIGINAL_BYTES] == str(len(raw)).encode()
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers.items()))
    assert size <= DEAD_LETTER_MAX_BYTES
    assert _sample(metrics, "scrubber_dead_letters_total", error_code="oversize") == 1
