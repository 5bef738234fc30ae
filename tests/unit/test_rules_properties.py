"""Properties of the engine over any contract-valid line, and the seeds' world it must accept.

For any lines the contract accepts (known and unknown codes, real and bogus modifiers,
diagnoses, NPIs, units, dates), the engine never raises, gives equal verdicts for equal inputs,
and each line's verdict over a set of lines does not depend on the order of ``others``.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber.contracts import ClaimLine, Outcome
from scrubber.identifiers import make_npi
from scrubber.refdata.build import build_bundle
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.library import default_engine

evaluate = default_engine().evaluate

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2025, 6, 1)


@functools.cache
def real_snapshot() -> ReferenceSnapshot:
    """The bundle the seeds and the CMS extracts build (built once per test session)."""
    return ReferenceSnapshot(build_bundle(REPO / "seeds", mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE))


SNAP = real_snapshot()
KNOWN_CODES = sorted(SNAP.codes)
KNOWN_MODIFIERS = sorted(SNAP.modifiers)

short_text = st.text(max_size=16)
codes = st.one_of(
    st.sampled_from(KNOWN_CODES),
    st.sampled_from(["99999", "1430X", "11960 ", "A", "٩٩٢١٣"]),
    st.text(min_size=1, max_size=16),
)
modifiers = st.lists(
    st.one_of(st.sampled_from(KNOWN_MODIFIERS), st.sampled_from(["ZZ", "lt", "5", ""]), short_text),
    max_size=6,
)
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALNUM = UPPER + "0123456789"


def _icd10(letter: str, digit: str, third: str, dot: str, tail: str) -> str:
    return letter + digit + third + (dot if tail else "") + tail


def _npi(first_nine: int) -> str:
    return make_npi(str(first_nine))


icd10_shaped = st.builds(
    _icd10,
    st.sampled_from(UPPER),
    st.sampled_from("0123456789"),
    st.sampled_from(ALNUM),
    st.sampled_from(["", "."]),
    st.text(alphabet=ALNUM, max_size=4),
)
diagnoses = st.lists(
    st.one_of(
        st.sampled_from(["S81.811A", "S81811A", "Z48.817", "s81.811a", "S81.", "U07.1"]),
        icd10_shaped,
        short_text,
    ),
    min_size=1,
    max_size=12,
)
npis = st.one_of(
    st.integers(100_000_000, 299_999_999).map(_npi),
    st.sampled_from(["1234567890", "1²34567893", "1٢٣٤٥٦٧٨٩٣"]),
    st.text(min_size=1, max_size=16),
)
days = st.dates(min_value=AS_OF - timedelta(days=5), max_value=AS_OF + timedelta(days=2))
units = st.one_of(
    st.sampled_from([1.0, 2.0, 0.5, 3.0]),
    st.floats(min_value=0, max_value=100_000, exclude_min=True, allow_nan=False),
)
charges = st.decimals(
    min_value=Decimal(0), max_value=Decimal("9999999999.99"), places=2, allow_nan=False
)


@st.composite
def claim_lines(draw: st.DrawFn) -> ClaimLine:
    """A line of patient M1, as the contract reads it from JSON."""
    doc: dict[str, Any] = {
        "claim_id": draw(st.sampled_from(["C1", "C2", "C3"])),
        "line_number": draw(st.integers(1, 999)),
        "payer_id": "MCR-J15",
        "patient": {"member_id": "M1"},
        "rendering_provider": {
            "npi": draw(npis),
            "taxonomy": draw(st.one_of(st.none(), st.just("207X00000X"), short_text)),
        },
        "billing_provider": {"npi": draw(npis), "tax_id": "123456789"},
        "service_date": draw(days).isoformat(),
        "procedure_code": draw(codes),
        "modifiers": draw(modifiers),
        "units": draw(units),
        "charge": str(draw(charges)),
        "diagnosis_codes": draw(diagnoses),
    }
    return ClaimLine.model_validate_json(orjson.dumps(doc))


line_sets = st.lists(claim_lines(), min_size=1, max_size=5)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=line_sets, data=st.data())
def test_engine_is_total_deterministic_and_order_free(lines, data) -> None:
    for index, line in enumerate(lines):
        others = tuple(o for i, o in enumerate(lines) if i != index)
        first = evaluate(line, SNAP, AS_OF, others=others)
        again = evaluate(line, SNAP, AS_OF, others=others)
        assert first == again
        shuffled = tuple(data.draw(st.permutations(others)))
        assert evaluate(line, SNAP, AS_OF, others=shuffled) == first
        assert first.outcome in (Outcome.ACCEPTED, Outcome.FLAGGED)


# --------------------------------------------------------------------------- the seeds' world
def _seed_line(line, **overrides: Any) -> ClaimLine:
    base: dict[str, Any] = {
        "rendering_provider": {"npi": "1093758369", "taxonomy": "207K00000X"},
        "billing_provider": {"npi": "1434640979", "tax_id": "161973069"},
        "service_date": "2025-04-13",
        "modifiers": [],
        "units": 1,
        "diagnosis_codes": ["S81.811A"],
    }
    base.update(overrides)
    return line(**base)


@pytest.mark.parametrize(
    "codes_on_the_day",
    [
        ["11960"],
        ["19302"],
        ["99213"],
        ["11004", "11008"],
        ["13100", "13102"],
        ["99291", "99292"],
        ["20610", "13100"],
    ],
)
def test_clean_lines_of_the_seeds_world_are_accepted(line, codes_on_the_day) -> None:
    """Real codes, valid NPIs and diagnoses, no modifiers, one unit, a past date: no finding."""
    lines = [
        _seed_line(line, claim_id="C1", line_number=n + 1, procedure_code=code)
        for n, code in enumerate(codes_on_the_day)
    ]
    for current in lines:
        others = tuple(o for o in lines if o is not current)
        verdict = evaluate(current, SNAP, AS_OF, others=others)
        assert verdict.findings == (), current.procedure_code
        assert verdict.outcome is Outcome.ACCEPTED


def test_the_seeds_world_is_not_blind(line) -> None:
    """The same bundle does flag what it should: 80 on 11960 (assistant indicator 1)."""
    verdict = evaluate(
        _seed_line(line, procedure_code="11960", modifiers=["80"]),
        SNAP,
        AS_OF,
    )
    assert "modifier.assistant_not_allowed" in [f.rule_id for f in verdict.findings]
    assert verdict.outcome is Outcome.FLAGGED
