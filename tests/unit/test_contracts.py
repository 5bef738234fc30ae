"""The input contract: what it accepts, what it rejects, and that errors carry no input."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from scrubber.contracts import (
    MAX_MESSAGE_BYTES,
    ClaimLine,
    DeadLetterCode,
    DeadLetterStage,
    describe_errors,
)
from scrubber.processor import Rejection, decode


def test_valid_line_parses_with_its_line_id(line) -> None:
    parsed = line()
    assert parsed.line_id == "C1:1"
    assert str(parsed.charge) == "1450.00"
    assert parsed.units == 1.0


def test_charge_as_number_and_units_as_fraction(line) -> None:
    parsed = line(charge=12.5, units=1.5)
    assert str(parsed.charge) == "12.5"
    assert parsed.units == 1.5


def test_unknown_fields_are_ignored(line_doc) -> None:
    doc = line_doc(future_field={"anything": 1})
    doc["patient"]["nickname"] = "x"
    parsed = ClaimLine.model_validate_json(orjson.dumps(doc))
    assert "future_field" not in parsed.model_dump()


def test_modifiers_default_to_empty(line_doc) -> None:
    doc = line_doc()
    del doc["modifiers"]
    assert ClaimLine.model_validate_json(orjson.dumps(doc)).modifiers == []


def test_five_modifiers_are_readable(line) -> None:
    # Four is the 837P limit, but a fifth is the scrubber's finding, not a contract error.
    assert len(line(modifiers=["22", "59", "LT", "XS", "51"]).modifiers) == 5


@pytest.mark.parametrize(
    ("overrides", "location", "error_type"),
    [
        ({"line_number": 0}, "line_number", "greater_than_equal"),
        ({"line_number": 1000}, "line_number", "less_than_equal"),
        ({"line_number": "1"}, "line_number", "int_type"),
        ({"claim_id": ""}, "claim_id", "string_too_short"),
        ({"claim_id": "x" * 65}, "claim_id", "string_too_long"),
        ({"units": 0}, "units", "greater_than"),
        ({"units": "2"}, "units", "float_type"),
        ({"charge": "-1.00"}, "charge", "greater_than_equal"),
        ({"charge": "1.005"}, "charge", "decimal_max_places"),
        ({"charge": "abc"}, "charge", "decimal_parsing"),
        ({"service_date": "14/03/2025"}, "service_date", "date_parsing"),
        ({"diagnosis_codes": []}, "diagnosis_codes", "too_short"),
        ({"diagnosis_codes": ["A00"] * 13}, "diagnosis_codes", "too_long"),
        ({"modifiers": ["LT"] * 13}, "modifiers", "too_long"),
        ({"modifiers": "LT"}, "modifiers", "list_type"),
        ({"procedure_code": 11960}, "procedure_code", "string_type"),
        ({"patient": {"member_id": "M1", "sex": "X"}}, "patient.sex", "literal_error"),
        ({"patient": {"sex": "F"}}, "patient.member_id", "missing"),
    ],
)
def test_each_kind_of_invalid_line_is_rejected(line_doc, overrides, location, error_type) -> None:
    with pytest.raises(ValidationError) as info:
        ClaimLine.model_validate_json(orjson.dumps(line_doc(**overrides)))
    described = describe_errors(info.value)
    assert f"{location}:{error_type}" in described


def test_missing_required_field(line_doc) -> None:
    doc = line_doc()
    del doc["service_date"]
    with pytest.raises(ValidationError) as info:
        ClaimLine.model_validate_json(orjson.dumps(doc))
    assert describe_errors(info.value) == "service_date:missing"


def test_errors_never_carry_input_values(line_doc) -> None:
    canary = "CANARY-PHI-7731"
    doc = line_doc(units=canary, charge=canary, service_date=canary, line_number=canary)
    doc["patient"] = {"member_id": canary, "birth_date": canary, "sex": canary}
    with pytest.raises(ValidationError) as info:
        ClaimLine.model_validate_json(orjson.dumps(doc))
    assert canary not in describe_errors(info.value)
    assert canary not in str(info.value)


RAW_CASES: list[tuple[bytes | None, bytes | None, DeadLetterCode, DeadLetterStage]] = [
    (b"", b"M1", DeadLetterCode.EMPTY_VALUE, DeadLetterStage.DECODE),
    (None, b"M1", DeadLetterCode.EMPTY_VALUE, DeadLetterStage.DECODE),
    (b"x" * (MAX_MESSAGE_BYTES + 1), b"M1", DeadLetterCode.OVERSIZE, DeadLetterStage.DECODE),
    (b"not json", b"M1", DeadLetterCode.NOT_JSON, DeadLetterStage.DECODE),
    (b'{"claim_id": "C1", "line_', b"M1", DeadLetterCode.NOT_JSON, DeadLetterStage.DECODE),
    (b'{"claim_id": "\xff\xfe"}', b"M1", DeadLetterCode.NOT_JSON, DeadLetterStage.DECODE),
    (b"[" * 5000 + b"]" * 5000, b"M1", DeadLetterCode.NOT_JSON, DeadLetterStage.DECODE),
    (b"[1, 2]", b"M1", DeadLetterCode.CONTRACT_VIOLATION, DeadLetterStage.VALIDATE),
    (b"null", b"M1", DeadLetterCode.CONTRACT_VIOLATION, DeadLetterStage.VALIDATE),
]


@pytest.mark.parametrize(("raw", "key", "code", "stage"), RAW_CASES)
def test_decode_classifies_unreadable_messages(raw, key, code, stage) -> None:
    result = decode(raw, key, require_key=True)
    assert isinstance(result, Rejection)
    assert (result.code, result.stage) == (code, stage)


def test_decode_requires_the_member_id_as_key(line_bytes) -> None:
    raw = line_bytes()
    missing = decode(raw, None, require_key=True)
    assert isinstance(missing, Rejection) and missing.code is DeadLetterCode.MISSING_KEY
    wrong = decode(raw, b"M2", require_key=True)
    assert isinstance(wrong, Rejection) and wrong.code is DeadLetterCode.KEY_MISMATCH
    assert isinstance(decode(raw, b"M1", require_key=True), ClaimLine)
    assert isinstance(decode(raw, None, require_key=False), ClaimLine)


def test_message_at_the_size_limit_is_read(line_doc) -> None:
    doc: dict[str, Any] = line_doc()
    raw = orjson.dumps(doc)
    doc["padding"] = "x" * (MAX_MESSAGE_BYTES - len(raw) - len(b',"padding":""'))
    padded = orjson.dumps(doc)
    assert len(padded) == MAX_MESSAGE_BYTES
    assert isinstance(decode(padded, b"M1", require_key=True), ClaimLine)
