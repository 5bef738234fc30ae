"""The shared path from raw bytes to emissions: exactly one output per input, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from scrubber.contracts import (
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTER_PAYLOAD_BYTES,
    DEAD_LETTER_PREVIEW_BYTES,
    HEADER_ERROR_CODE,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_KEY_BYTES,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    Category,
    DeadLetterCode,
    Finding,
    ScrubResult,
    Severity,
)
from scrubber.history import line_json
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition, result_json
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


_X12_CLAIM = {
    "charge": "150.00",
    "patient": {"entity_type": "1", "last_name": "Ångström", "first_name": "Zoë"},
    "billing": {"entity_type": "2", "last_name": "Clinique Saint-Éloi", "identifier": "1234"},
    "submitter": {"entity_type": "2", "last_name": 'Submitter "Q" \\ Co'},
    "receiver": {"entity_type": "2", "last_name": "Payer\u2028Line"},
    "batch": "B-1",
    "envelope": {
        "sender_qualifier": "ZZ",
        "sender": "SENDER",
        "receiver_qualifier": "ZZ",
        "receiver": "RECEIVER",
        "usage": "T",
        "group_sender": "GS",
        "group_receiver": "GR",
    },
}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"modifiers": ["LT", "lt", "99", "25", "59"], "procedure_code": "11960", "units": 2.5},
        {"claim_line_count": 3, "charge": "0.10"},
        {"claim_id": "Ä-ß-漢字-\u00e9\u0301", "procedure_code": "00000", "units": 1e-05},
        {"x12": {"interchange_control": "1", "group_control": "2", "transaction_set_control": "3"}},
        {
            "claim_line_count": 1,
            "x12": {
                "interchange_control": "000000001",
                "group_control": "7",
                "transaction_set_control": "0001",
                "service_to": "2025-05-03",
                "procedure_qualifier": "HC",
                "units_text": "2",
                "claim": _X12_CLAIM,
            },
        },
    ],
)
@pytest.mark.parametrize("stored", [True, False])
def test_result_bytes_are_the_models_own_json(line, snapshot, overrides, stored) -> None:
    """``result_json`` gives exactly ``ScrubResult.model_dump_json()``: findings with and
    without a reference, X12 traces, optional fields absent and present, non-ASCII text."""
    claim_line = line(**overrides)
    evaluation = default_engine().evaluate(claim_line, snapshot, NOW.date())
    findings = [
        *evaluation.findings,
        Finding(
            rule_id="ncci_ptp.edit",
            category=Category.NCCI_PTP,
            severity=Severity.ERROR,
            message="“quoted” – ünïcode \u0007 \t control",
            field="procedure_code",
            carc="236",
            reference={"column1": "11960", "deletion": None, "n": 3, "pair": ("a", "b")},
        ),
        Finding(rule_id="x", category=Category.CODE, severity=Severity.INFO, message=""),
    ]
    for reference, profile, when in (
        (evaluation.reference, None, NOW),
        (None, "commercial ✓", datetime(2025, 6, 1, 12, 0, 0, 123456)),
        ({"code": "11960", "mue_value": 0, "add_on_codes": ("x",)}, "p", NOW.astimezone()),
    ):
        result = ScrubResult.model_construct(
            line_id=claim_line.line_id,
            revision=7,
            outcome=evaluation.outcome,
            findings=findings,
            line=claim_line,
            reference=reference,
            refdata_version="v-ü",
            scrubbed_at=when,
            profile=profile,
        )
        expected = result.model_dump_json().encode()
        assert result_json(result, line_json(claim_line) if stored else None) == expected
        assert result_json(result.model_copy(update={"findings": []})) == (
            result.model_copy(update={"findings": []}).model_dump_json().encode()
        )


def test_every_emitted_result_is_the_models_own_json(line_bytes, snapshot) -> None:
    """Through the processor (the input's verdict reuses the history's line JSON, revisions
    do not): every emitted value is the result's ``model_dump_json``."""
    processor = LineProcessor(default_engine())
    store = MemoryHistoryStore()
    raws = [
        line_bytes(procedure_code="99213", service_date="2025-05-02"),
        line_bytes(claim_id="C2", procedure_code="11960", service_date="2025-05-01"),
        line_bytes(claim_id="C3", procedure_code="99213", service_date="2025-05-02"),
        line_bytes(procedure_code="99213", service_date="2025-05-02", claim_line_count=2),
    ]
    values = 0
    for offset, raw in enumerate(raws):
        processed = processor.process(
            raw, b"M1", SourcePosition("t", 0, offset), snapshot, store, NOW
        )
        for emission in processed.emissions:
            assert emission.result is not None
            assert emission.value == emission.result.model_dump_json().encode()
            values += 1
    assert values > len(raws)  # the surgery revised the visits


def _record_bytes(emission) -> int:
    """What aiokafka's producer counts a record as against ``max_request_size``."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    return DefaultRecordBatchBuilder.estimate_size_in_bytes(
        emission.key, emission.value, list(emission.headers)
    )


def test_an_input_of_kafkas_default_limit_is_dead_lettered_whole(snapshot) -> None:
    raw = b"x" * (1024 * 1024)
    (emission,) = _process(raw, b"M1", snapshot).emissions
    assert emission.kind == "dlq" and emission.value == raw and emission.key == b"M1"
    assert HEADER_ORIGINAL_BYTES not in dict(emission.headers)
    assert emission.dead_letter is not None and emission.dead_letter.original_bytes is None


def test_an_input_that_just_fits_is_kept_whole(snapshot) -> None:
    raw = b"y" * (DEAD_LETTER_PAYLOAD_BYTES - 1)
    (emission,) = _process(raw, b"M", snapshot).emissions  # key 1 byte: exactly the room
    assert emission.value == raw
    assert HEADER_ORIGINAL_BYTES not in dict(emission.headers)
    assert _record_bytes(emission) <= DEAD_LETTER_MAX_BYTES


@pytest.mark.parametrize("size", [DEAD_LETTER_PAYLOAD_BYTES, 3 * 1024 * 1024, 40 * 1024 * 1024])
def test_an_input_too_large_for_the_dead_letter_topic_keeps_its_first_bytes(size, snapshot) -> None:
    """A compressing upstream can send it; a dead letter Kafka refuses would stop the worker."""
    raw = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    (emission,) = _process(raw, b"M1", snapshot).emissions
    assert emission.kind == "dlq" and emission.key == b"M1"
    assert emission.value == raw[:DEAD_LETTER_PREVIEW_BYTES]
    headers = dict(emission.headers)
    assert headers[HEADER_ORIGINAL_BYTES] == str(size).encode()
    assert headers[HEADER_ERROR_CODE] == b"oversize"
    assert HEADER_ORIGINAL_KEY_BYTES not in headers
    letter = emission.dead_letter
    assert letter is not None
    assert (letter.original_bytes, letter.original_key_bytes) == (size, None)
    assert _record_bytes(emission) <= DEAD_LETTER_MAX_BYTES


def test_a_huge_key_is_cut_and_a_small_value_kept(snapshot) -> None:
    key = b"k" * (3 * 1024 * 1024)
    (emission,) = _process(b"not json", key, snapshot).emissions
    assert emission.key == key[:DEAD_LETTER_KEY_BYTES] and emission.value == b"not json"
    headers = dict(emission.headers)
    assert headers[HEADER_ORIGINAL_KEY_BYTES] == str(len(key)).encode()
    assert HEADER_ORIGINAL_BYTES not in headers  # the value itself was kept whole
    letter = emission.dead_letter
    assert letter is not None
    assert (letter.original_bytes, letter.original_key_bytes) == (None, len(key))
    assert _record_bytes(emission) <= DEAD_LETTER_MAX_BYTES


def test_a_huge_key_and_value_are_both_cut(snapshot) -> None:
    key, raw = b"k" * (1024 * 1024), b"v" * (1024 * 1024)
    (emission,) = _process(raw, key, snapshot).emissions
    assert emission.key == key[:DEAD_LETTER_KEY_BYTES]
    assert emission.value == raw[:DEAD_LETTER_PREVIEW_BYTES]
    headers = dict(emission.headers)
    assert headers[HEADER_ORIGINAL_BYTES] == str(len(raw)).encode()
    assert headers[HEADER_ORIGINAL_KEY_BYTES] == str(len(key)).encode()


def test_the_largest_headers_still_fit(snapshot) -> None:
    """Kafka's longest topic name, a huge offset and attempt: the cut letter still fits."""
    source = SourcePosition("t" * 249, 2**31 - 1, 2**63 - 1)
    key, raw = b"k" * (DEAD_LETTER_MAX_BYTES // 2), b"v" * (DEAD_LETTER_MAX_BYTES // 2)
    processed = LineProcessor(default_engine()).process(
        raw, key, source, snapshot, MemoryHistoryStore(), NOW, attempt=10**100
    )
    (emission,) = processed.emissions
    assert _record_bytes(emission) <= DEAD_LETTER_MAX_BYTES


def test_a_large_key_that_fits_is_kept(snapshot) -> None:
    key = b"k" * (DEAD_LETTER_KEY_BYTES * 4)
    (emission,) = _process(b"not json", key, snapshot).emissions
    assert emission.key == key and HEADER_ORIGINAL_KEY_BYTES not in dict(emission.headers)
