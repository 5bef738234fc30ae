"""The X12 edge: 837P interchanges on the X12 topic, read by `scrubber x12 serve` beside the
worker, over the real broker.

Every X12 record ends in a 999 (or a dead letter); every line of an accepted transaction set
reaches the input topic exactly as `scrubber x12 lines` writes it, and gets the verdict the
offline scrub of the same 837 gives.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from scrubber.accounting import collect, end_offsets
from scrubber.contracts import (
    HEADER_ATTEMPT,
    HEADER_ERROR_CODE,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    ScrubResult,
)
from scrubber.dlq import Selection, replay
from scrubber.kafka import client_kwargs
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.x12.envelope import split_interchanges
from scrubber.x12.files import scrub_837
from scrubber.x12.intake import read_interchanges
from scrubber.x12.validator import ACK_277CA, validate
from tests.unit.x12data import Claim, Line, render, simple

from .conftest import REPO, WorkerProcess, assert_complete, load_bundle

pytestmark = pytest.mark.integration

SAMPLE = REPO / "tests" / "unit" / "data" / "x12" / "two-payers.837"


def _interchanges() -> list[bytes]:
    """Several interchanges: the two-payer file, generated ones, one with a rejected set."""
    generated = [
        render(
            [
                (
                    str(n),
                    [
                        simple(
                            [
                                Claim(claim_id=f"G{n}-{c}", lines=[Line(), Line(procedure="11042")])
                                for c in range(3)
                            ]
                        )
                    ],
                )
            ],
            control=f"{n:09d}",
        )
        for n in range(201, 205)
    ]
    rejected = render([("299", [simple([Claim(claim_id="BAD")])])], control="000000299")
    rejected = rejected.replace(b"CLM*BAD*", b"CLX*BAD*", 1)
    return [SAMPLE.read_bytes(), *generated, rejected]


async def _publish(settings, values: list[bytes]) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        # One submitter's key: its interchanges stay in order on one partition, so their lines
        # reach the input topic in the order the offline scrub of the whole file reads them.
        metas = [
            await producer.send_and_wait(settings.x12_topic, key=b"SUBMITTER01", value=v)
            for v in values
        ]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


async def _read(settings, topic: str, start: dict[TopicPartition, int], want, seconds: float):
    """Records of ``topic`` after ``start`` until ``want(records)`` holds or time runs out."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    records: list = []
    try:
        tps = [tp for tp in start if tp.topic == topic]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start[tp])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not want(records):
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


@pytest.fixture
def intake(settings, worker, tmp_path):
    """`scrubber x12 serve` with the test's settings, started and stopped around the test."""
    proc = WorkerProcess(settings, tmp_path / "x12.log", command=("x12", "serve"))
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log_tail()


def _source(record) -> tuple[str, int, int]:
    headers = dict(record.headers)
    return (
        headers[HEADER_SOURCE_TOPIC].decode(),
        int(headers[HEADER_SOURCE_PARTITION]),
        int(headers[HEADER_SOURCE_OFFSET]),
    )


def test_interchanges_become_lines_acknowledgements_and_the_offline_verdicts(
    settings, worker, intake, bundle
) -> None:
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    # The last: not X12, and bigger than Faust's default producer limit (1,000,000 bytes), so
    # its dead letter (the same bytes, with headers) needs the worker's own limit.
    values = [*_interchanges(), b"this is not an interchange " + b"x" * 1_000_000]
    topics = [
        settings.input_topic,
        settings.x12_ack_topic,
        settings.accepted_topic,
        settings.flagged_topic,
        settings.dlq_topic,
    ]
    start = asyncio.run(end_offsets(settings, topics))
    start_claims = asyncio.run(end_offsets(settings, [settings.claims_topic]))
    start_277 = asyncio.run(end_offsets(settings, [settings.x12_277ca_topic]))
    positions = asyncio.run(_publish(settings, values))
    x12_records = {(settings.x12_topic, p, o) for p, o in positions}

    # Every X12 record is answered: a 999 for each interchange, a dead letter for the rest.
    acks = asyncio.run(
        _read(settings, settings.x12_ack_topic, start, lambda r: len(r) >= len(values) - 1, 60)
    )
    assert sorted(_source(a) for a in acks) == sorted(
        (settings.x12_topic, p, o) for p, o in positions[:-1]
    )
    rejected_ack = next(
        a for a in acks if _source(a)[2] == positions[-2][1] and _source(a)[1] == positions[-2][0]
    )
    assert b"IK5*R" in rejected_ack.value and b"AK9*R*1*1*0" in rejected_ack.value
    assert all(b"AK9*A" in a.value for a in acks if a is not rejected_ack)

    # The lines on the input topic are exactly the offline intake's, record by record (a
    # record's lines spread over partitions by member id, so only each patient's keep order).
    expected_lines = [
        line.value
        for value in values[:-1]
        for outcome in read_interchanges(value, datetime.now(UTC))
        for line in outcome.lines
    ]
    lines = asyncio.run(
        _read(settings, settings.input_topic, start, lambda r: len(r) >= len(expected_lines), 60)
    )
    assert all(_source(r) in x12_records for r in lines)
    assert sorted(r.value for r in lines) == sorted(expected_lines)
    for p, o in positions[:-1]:
        from_record = [r.value for r in lines if _source(r)[1:] == (p, o)]
        offline = [
            line.value
            for outcome in read_interchanges(values[positions.index((p, o))], datetime.now(UTC))
            for line in outcome.lines
        ]
        assert sorted(from_record) == sorted(offline)
        for member in {orjson.loads(v)["patient"]["member_id"] for v in offline}:
            mine = [v for v in from_record if orjson.loads(v)["patient"]["member_id"] == member]
            assert mine == [v for v in offline if orjson.loads(v)["patient"]["member_id"] == member]
    assert all(r.key == orjson.loads(r.value)["patient"]["member_id"].encode() for r in lines)

    # Every line gets a verdict, the offline scrub's of the same 837.
    line_positions = [(r.partition, r.offset) for r in lines]
    ledger = asyncio.run(collect(settings, line_positions, start, wait_seconds=90))
    assert_complete(ledger, worker)
    stream = {
        k: (d["outcome"], sorted(f["rule_id"] for f in d["findings"]))
        for k, d in ledger.final().items()
    }
    offline: dict[str, tuple[int, str, list[str]]] = {}
    out = io.BytesIO()  # the interchanges as one file: one patient's claims meet, as above
    summary = scrub_837(
        b"".join(values[:-1]), ReferenceSnapshot(bundle), out, io.BytesIO(), "in.837"
    )
    for raw in out.getvalue().splitlines():
        r = ScrubResult.model_validate_json(raw)
        have = offline.get(r.line_id)
        if have is None or r.revision >= have[0]:
            offline[r.line_id] = (
                r.revision,
                r.outcome.value,
                sorted(f.rule_id for f in r.findings),
            )
    assert stream == {k: v[1:] for k, v in offline.items()}
    assert any("duplicate.line" in rules for _outcome, rules in stream.values())

    # One claim result per claim once all its lines have verdicts; the latest revision of each
    # is the offline scrub's verdict on the claim.
    def verdict(doc: dict) -> tuple:
        lines = tuple((s["line_id"], s["outcome"], tuple(s["rule_ids"])) for s in doc["lines"])
        return doc["outcome"], lines

    expected_claims = {
        c.claim_id: verdict(orjson.loads(c.model_dump_json())) for c in summary.claims
    }
    claim_records = asyncio.run(
        _read(
            settings,
            settings.claims_topic,
            start_claims,
            lambda r: len({orjson.loads(c.value)["claim_id"] for c in r}) >= len(expected_claims),
            60,
        )
    )
    members = {r.key for r in lines}
    latest: dict[str, dict] = {}
    for record in claim_records:
        doc = orjson.loads(record.value)
        assert record.key in members  # keyed by the patient's member id, like the lines
        if doc["claim_id"] not in latest or doc["revision"] > latest[doc["claim_id"]]["revision"]:
            latest[doc["claim_id"]] = doc
    assert {cid: verdict(doc) for cid, doc in latest.items()} == expected_claims
    assert "BAD" not in latest and len(expected_claims) >= 10

    # Each claim result is answered with a 277CA that pyx12 validates, keyed by the submitter:
    # one interchange per line that completed or changed claims (one submitter here).
    answered: set[str] = set()
    makers = {_source(r) for r in claim_records}
    ca_records = asyncio.run(
        _read(settings, settings.x12_277ca_topic, start_277, lambda r: len(r) >= len(makers), 60)
    )
    assert sorted(_source(r) for r in ca_records) == sorted(makers)
    for record in ca_records:
        assert record.key == b"SUBMITTER01"
        for framed in split_interchanges(record.value):
            report = validate(framed, ACK_277CA)
            assert report.failure is None and report.own_errors == 0
            assert all(ts.valid for ts in report.sets)
        answered |= set(re.findall(r"TRN\*2\*([^~*]+)~", record.value.decode()))
    assert answered >= set(expected_claims)

    # The record that is not X12 is a dead letter, and a replay sends it back to the X12 topic.
    dead = asyncio.run(_read(settings, settings.dlq_topic, start, lambda r: len(r) >= 1, 30))
    assert [(_source(d), dict(d.headers)[HEADER_ERROR_CODE]) for d in dead] == [
        ((settings.x12_topic, *positions[-1]), b"not_x12")
    ]
    assert dead[0].value == values[-1]  # the original bytes, all of them
    x12_end = asyncio.run(end_offsets(settings, [settings.x12_topic]))
    report = asyncio.run(replay(settings, Selection(), dry_run=False))
    assert report.replayed == 1
    after = asyncio.run(end_offsets(settings, [settings.x12_topic]))
    assert sum(after.values()) == sum(x12_end.values()) + 1
    again = asyncio.run(_read(settings, settings.dlq_topic, start, lambda r: len(r) >= 2, 30))
    assert dict(again[-1].headers)[HEADER_ATTEMPT] == b"2"
    assert _source(again[-1])[0] == settings.x12_topic

    for log in (worker.log_path, intake.log_path):
        text = log.read_text()
        assert "MEMBER001" not in text and "DOE" not in text  # no PHI from the 837 in a log


def test_a_redelivered_interchange_changes_no_verdict(settings, worker, intake, bundle) -> None:
    """At least once: the same interchange twice gives the same lines and no new revision."""
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    value = _interchanges()[1]
    topics = [settings.input_topic, settings.accepted_topic, settings.flagged_topic]
    start = asyncio.run(end_offsets(settings, topics))
    asyncio.run(_publish(settings, [value, value]))
    count = sum(len(o.lines) for o in read_interchanges(value, datetime.now(UTC)))
    lines = asyncio.run(
        _read(settings, settings.input_topic, start, lambda r: len(r) >= 2 * count, 60)
    )
    assert len(lines) == 2 * count
    first, second = lines[:count], lines[count:]
    assert [r.value for r in first] == [r.value for r in second]
    ledger = asyncio.run(
        collect(settings, [(r.partition, r.offset) for r in lines], start, wait_seconds=60)
    )
    assert_complete(ledger, worker)
    # The final verdicts, revisions included, are those of one copy scrubbed offline.
    out = io.BytesIO()
    scrub_837(value, ReferenceSnapshot(bundle), out, io.BytesIO(), "in.837")
    once: dict[str, tuple[int, str]] = {}
    for raw in out.getvalue().splitlines():
        r = ScrubResult.model_validate_json(raw)
        once[r.line_id] = max(once.get(r.line_id, (0, "")), (r.revision, r.outcome.value))
    stream = {d["line_id"]: (d["revision"], d["outcome"]) for d in ledger.final().values()}
    assert len(stream) == count
    assert stream == once
