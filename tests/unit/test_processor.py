"""The shared path from raw bytes to emissions: exactly one output per input, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from scrubber.contracts import (
    HEADER_ERROR_CODE,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    Category,
    DeadLetterCode,
    ScrubResult,
    Severity,
)
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.rules.base import Rule
from scrubber.rules.engine import Engine
from scrubber.rules.library import default_engine, default_rules

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SOURCE = SourcePosition("claims.lines.v1", 3, 1234)


def _process(raw, key, snapshot):
    return LineProcessor(default_engine()).process(
        raw, key, SOURCE, snapshot, MemoryHistoryStore(), NOW
    )


def test_valid_line_gives_one_accepted_result(line_bytes, snapshot) -> None:
    processed = _process(line_bytes(), b"M1", snapshot)
    (emission,) = processed.emissions
    assert emission.kind == "accepted"
    assert emission.key == b"M1"
    result = ScrubResult.model_validate_json(emission.value)
    assert result.line_id == "C1:1"
    assert result.revision == 1
    assert result.refdata_version == snapshot.version
    assert result.scrubbed_at == NOW
    assert result.reference is not None and result.reference["code"] == "11960"
    headers = dict(emission.headers)
    assert headers[HEADER_SOURCE_PARTITION] == b"3"
    assert headers[HEADER_SOURCE_OFFSET] == b"1234"
    assert headers[HEADER_SOURCE_TOPIC] == b"claims.lines.v1"
    assert processed.member_id == "M1"
    assert processed.redelivery is False


def test_flag_worthy_line_goes_to_flagged(line_bytes, snapshot) -> None:
    (emission,) = _process(line_bytes(procedure_code="99999"), b"M1", snapshot).emissions
    assert emission.kind == "flagged"
    assert [f["rule_id"] for f in orjson.loads(emission.value)["findings"]] == ["code.unknown"]


@pytest.mark.parametrize(
    ("raw", "key", "code"),
    [
        (b"", b"M1", DeadLetterCode.EMPTY_VALUE),
        (b"\x00\x01 binary", b"M1", DeadLetterCode.NOT_JSON),
        (b'{"claim_id": 5}', b"M1", DeadLetterCode.CONTRACT_VIOLATION),
        (None, None, DeadLetterCode.EMPTY_VALUE),
    ],
)
def test_unreadable_input_is_dead_lettered_unchanged(raw, key, code, snapshot) -> None:
    (emission,) = _process(raw, key, snapshot).emissions
    assert emission.kind == "dlq"
    assert emission.value == (raw or b"")
    assert emission.key == key
    assert emission.dead_letter is not None
    assert dict(emission.headers)[HEADER_ERROR_CODE] == code.value.encode()
    assert emission.dead_letter.source_offset == 1234


def test_dead_letter_headers_carry_no_input_text(line_doc, snapshot) -> None:
    canary = "CANARY-PHI-4411"
    doc = line_doc(units=canary)
    doc["patient"] = {"member_id": canary, "birth_date": canary}
    (emission,) = _process(orjson.dumps(doc), canary.encode(), snapshot).emissions
    assert emission.kind == "dlq"
    for name, value in emission.headers:
        assert canary.encode() not in value, name


def test_engine_failure_is_a_dead_letter_not_a_crash(line_bytes, snapshot) -> None:
    def broken(ctx):
        raise RuntimeError("boom")

    rule = Rule("code.test_broken", Category.CODE, Severity.ERROR, "t", "t", None, broken)
    processor = LineProcessor(Engine([*default_rules(), rule]))
    processed = processor.process(line_bytes(), b"M1", SOURCE, snapshot, MemoryHistoryStore(), NOW)
    (emission,) = processed.emissions
    assert emission.kind == "dlq"
    assert emission.dead_letter is not None
    assert emission.dead_letter.error_code is DeadLetterCode.PROCESSING_ERROR
    assert emission.value == line_bytes()


def test_same_input_same_output(line_bytes, snapshot) -> None:
    first = _process(line_bytes(modifiers=["lt"]), b"M1", snapshot).emissions
    again = _process(line_bytes(modifiers=["lt"]), b"M1", snapshot).emissions
    assert first[0].value == again[0].value
