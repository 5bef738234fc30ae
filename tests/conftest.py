"""Fixtures shared by every test: a small reference snapshot and line factories."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from scrubber.contracts import ClaimLine
from scrubber.refdata.model import Bundle, CodeReference, ModifierReference, ReferenceSnapshot

BASE_LINE: dict[str, Any] = {
    "claim_id": "C1",
    "line_number": 1,
    "payer_id": "MCR-J15",
    "patient": {"member_id": "M1", "birth_date": "1961-04-12", "sex": "F"},
    "rendering_provider": {"npi": "1234567893", "taxonomy": "208200000X"},
    "billing_provider": {"npi": "1245319599", "tax_id": "123456789"},
    "service_date": "2025-03-14",
    "place_of_service": "22",
    "procedure_code": "11960",
    "modifiers": [],
    "units": 1,
    "charge": "1450.00",
    "diagnosis_codes": ["S81.811A"],
}


@pytest.fixture
def line_doc() -> Callable[..., dict[str, Any]]:
    """A valid claim line as a dict, with top-level fields overridden by keyword."""

    def make(**overrides: Any) -> dict[str, Any]:
        doc = copy.deepcopy(BASE_LINE)
        doc.update(overrides)
        return doc

    return make


@pytest.fixture
def line_bytes(line_doc: Callable[..., dict[str, Any]]) -> Callable[..., bytes]:
    """A valid claim line as raw JSON bytes."""
    return lambda **overrides: orjson.dumps(line_doc(**overrides))


@pytest.fixture
def line(line_doc: Callable[..., dict[str, Any]]) -> Callable[..., ClaimLine]:
    """A validated ClaimLine."""
    return lambda **overrides: ClaimLine.model_validate_json(orjson.dumps(line_doc(**overrides)))


@pytest.fixture
def snapshot() -> ReferenceSnapshot:
    """A hand-made snapshot: one surgical code, one E/M code, a few modifiers."""
    bundle = Bundle(
        codes={
            "11960": CodeReference(code="11960", status="A", global_days="090", bilateral="0"),
            "99213": CodeReference(code="99213", status="A", global_days="XXX"),
        },
        modifiers={
            m: ModifierReference(code=m, description=m) for m in ("LT", "RT", "50", "25", "59")
        },
    ).with_version()
    return ReferenceSnapshot(bundle)
