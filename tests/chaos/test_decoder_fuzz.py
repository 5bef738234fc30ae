"""Fuzz the decoder and the contract: no input makes them raise past the dead-letter routing."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber.contracts import ClaimLine
from scrubber.processor import LineProcessor, MemoryHistoryStore, Rejection, SourcePosition, decode
from scrubber.refdata.model import Bundle, ReferenceSnapshot
from scrubber.rules.library import default_engine

SNAP = ReferenceSnapshot(Bundle().with_version())
NOW = datetime(2026, 1, 1, tzinfo=UTC)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
FIELDS = [
    "claim_id",
    "line_number",
    "payer_id",
    "patient",
    "rendering_provider",
    "billing_provider",
    "service_date",
    "procedure_code",
    "modifiers",
    "units",
    "charge",
    "diagnosis_codes",
    "place_of_service",
]
near_lines = st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS})


@settings(max_examples=6000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300), key=st.one_of(st.none(), st.binary(max_size=20)))
def test_arbitrary_bytes_never_raise(raw: bytes, key: bytes | None) -> None:
    out = decode(raw, key, require_key=True)
    assert isinstance(out, (Rejection, ClaimLine))


@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=near_lines)
def test_almost_lines_end_in_exactly_one_output(doc: dict[str, object]) -> None:
    raw = orjson.dumps(doc)
    processed = LineProcessor(default_engine(), require_key=False).process(
        raw, None, SourcePosition("fuzz", 0, 1), SNAP, MemoryHistoryStore(), NOW
    )
    assert len(processed.emissions) == 1
    (emission,) = processed.emissions
    assert (emission.result is None) != (emission.dead_letter is None)
    if emission.dead_letter is not None:
        assert emission.value == raw
