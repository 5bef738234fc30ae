"""The stream's pure X12 step: line records, acks, rejects, dead letters; same input, same lines."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from scrubber.contracts import DeadLetterCode, ScrubResult
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.library import default_engine
from scrubber.x12.intake import (
    HEADER_X12_GROUP,
    HEADER_X12_INTERCHANGE,
    HEADER_X12_TRANSACTION_SET,
    X12Intake,
)
from tests.unit.x12data import Claim, Line, render, simple

SOURCE = SourcePosition("claims.x12.v1", 2, 41)
NOW = datetime(2024, 3, 20, 10, 30, tzinfo=UTC)


def two_claims() -> bytes:
    return render(
        [("101", [simple([Claim(lines=[Line(), Line(procedure="11042")]), Claim(claim_id="C2")])])]
    )


def test_lines_are_keyed_by_member_id_and_carry_the_envelope_and_source() -> None:
    out = X12Intake().process(two_claims(), SOURCE, NOW)
    assert out.dead_letter is None
    assert [r.key for r in out.lines] == [b"MEMBER001"] * 3
    headers = dict(out.lines[0].headers)
    assert headers[HEADER_X12_INTERCHANGE] == b"000000101"
    assert headers[HEADER_X12_GROUP] == b"101"
    assert headers[HEADER_X12_TRANSACTION_SET] == b"0001"
    assert headers["scrubber-source-offset"] == b"41" and headers["scrubber-contract"] == b"v1"
    assert [orjson.loads(r.value)["line_number"] for r in out.lines] == [1, 2, 1]
    assert len(out.acks) == 1 and b"AK9*A*1*1*1~" in out.acks[0].data
    assert out.acks[0].key == b"SUBMITTER01"
    assert out.rejects == () and [c.claim_id for c in out.claims] == ["CLAIM001", "C2"]
    assert out.summary.lines == 3


def test_the_same_interchange_twice_gives_byte_identical_line_records() -> None:
    intake = X12Intake()
    first = intake.process(two_claims(), SOURCE, NOW)
    again = intake.process(two_claims(), SOURCE, datetime(2031, 1, 1, tzinfo=UTC))
    assert first.lines == again.lines
    assert first.acks[0].data != again.acks[0].data  # the acknowledgement says when it was made


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, DeadLetterCode.EMPTY_VALUE),
        (b"  \n", DeadLetterCode.EMPTY_VALUE),
        (b'{"claim_id": "C1"}', DeadLetterCode.NOT_X12),
        (b"ISA*this is too short~", DeadLetterCode.NOT_X12),
        (b"ISA" + b"*" * 3000, DeadLetterCode.OVERSIZE),
    ],
)
def test_unreadable_records_are_dead_letters_with_their_bytes(
    raw: bytes | None, code: DeadLetterCode
) -> None:
    out = X12Intake(max_bytes=2048).process(raw, SOURCE, NOW, key=b"k")
    assert out.dead_letter is not None and out.lines == () and out.acks == ()
    assert out.dead_letter.dead_letter.error_code is code
    assert out.dead_letter.value == (raw or b"") and out.dead_letter.key == b"k"


def test_an_invalid_interchange_is_acknowledged_not_dead_lettered() -> None:
    out = X12Intake().process(two_claims()[:-40], SOURCE, NOW)
    assert out.dead_letter is None and out.lines == ()
    assert b"TA1*000000101*240315*1200*R*023~" in out.acks[0].data
    (reject,) = [orjson.loads(r) for r in out.rejects]
    assert reject["level"] == "interchange" and "MEMBER001" not in orjson.dumps(reject).decode()


def test_line_values_are_what_the_worker_reads(snapshot: ReferenceSnapshot) -> None:
    """The value of a line record is a claim line the JSON processor accepts as it is."""
    record = X12Intake().process(two_claims(), SOURCE, NOW).lines[0]
    processed = LineProcessor(default_engine()).process(
        record.value, record.key, SOURCE, snapshot, MemoryHistoryStore(), NOW
    )
    (emission,) = processed.emissions
    assert isinstance(emission.result, ScrubResult)
    assert emission.result.line.claim_line_count == 2 and emission.result.line.x12 is not None
