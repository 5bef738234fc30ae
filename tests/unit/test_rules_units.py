"""MUE rules: per line (indicator 1) and per date of service over the patient's lines (2, 3)."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from scrubber.contracts import Category, Finding, Severity
from scrubber.refdata.model import Bundle, CodeReference, ReferenceSnapshot
from scrubber.rules.library import default_engine

evaluate = default_engine().evaluate

TODAY = date(2025, 6, 1)


def _snapshot(value: int | None, indicator: str | None) -> ReferenceSnapshot:
    codes = {
        "20610": CodeReference(code="20610", mue_value=value, mue_indicator=indicator),
        "99213": CodeReference(code="99213", mue_value=5, mue_indicator="3"),
    }
    return ReferenceSnapshot(Bundle(codes=codes).with_version())


def _hits(rule_id: str, line, snapshot, others=()) -> list[Finding]:
    verdict = evaluate(line, snapshot, TODAY, others=tuple(others))
    found = [f for f in verdict.findings if f.rule_id == rule_id]
    for f in found:
        assert (f.category, f.severity, f.carc, f.field) == (
            Category.UNITS,
            Severity.ERROR,
            "151",
            "units",
        )
    return found


@pytest.mark.parametrize(
    ("value", "indicator", "units", "flagged"),
    [
        (2, "1", 1, False),
        (2, "1", 2, False),
        (2, "1", 2.5, True),
        (2, "1", 3, True),
        (0, "1", 1, True),
        (0, "1", 0.25, True),
        (2, "2", 3, False),  # a date-of-service edit, not a line edit
        (2, "3", 3, False),
        (None, "1", 50, False),
        (2, None, 50, False),
    ],
)
def test_mue_line(line, value, indicator, units, flagged) -> None:
    doc = line(procedure_code="20610", units=units)
    found = _hits("units.mue_line", doc, _snapshot(value, indicator))
    assert len(found) == int(flagged)
    if flagged:
        assert f"MUE value {value}" in found[0].message and "indicator 1" in found[0].message


def test_mue_line_ignores_other_lines(line) -> None:
    doc = line(procedure_code="20610", units=2)
    other = line(claim_id="C2", procedure_code="20610", units=2)
    assert _hits("units.mue_line", doc, _snapshot(2, "1"), [other]) == []


@pytest.mark.parametrize("indicator", ["2", "3"])
@pytest.mark.parametrize(
    ("units", "others", "flagged"),
    [
        (2, [], False),
        (3, [], True),  # a single line over the value
        (1, [("20610", "2025-03-14", 1)], False),
        (1, [("20610", "2025-03-14", 2)], True),
        (1, [("20610", "2025-03-14", 0.5), ("20610", "2025-03-14", 0.5)], False),
        (1, [("20610", "2025-03-14", 0.5), ("20610", "2025-03-14", 0.75)], True),
        (1, [("20610", "2025-03-15", 5)], False),  # another date
        (1, [("99213", "2025-03-14", 5)], False),  # another code
    ],
)
def test_mue_date_of_service(line, indicator, units, others, flagged) -> None:
    doc = line(procedure_code="20610", units=units)
    other_lines = [
        line(claim_id=f"O{n}", procedure_code=code, service_date=day, units=u)
        for n, (code, day, u) in enumerate(others)
    ]
    found = _hits("units.mue_date_of_service", doc, _snapshot(2, indicator), other_lines)
    assert len(found) == int(flagged)
    if flagged:
        message = found[0].message
        assert "MUE value 2" in message and f"indicator {indicator}" in message
        assert "2025-03-14" in message
        wording = "policy, absolute" if indicator == "2" else "clinical, appealable"
        assert wording in message


@pytest.mark.parametrize(("value", "indicator"), [(None, "2"), (2, None), (2, "1"), (2, "4")])
def test_mue_date_of_service_needs_a_date_edit(line, value, indicator) -> None:
    doc = line(procedure_code="20610", units=5)
    assert _hits("units.mue_date_of_service", doc, _snapshot(value, indicator)) == []


def test_mue_value_zero_flags_any_units(line) -> None:
    (finding,) = _hits(
        "units.mue_date_of_service", line(procedure_code="20610", units=1), _snapshot(0, "3")
    )
    assert "not payable" in finding.message


def _verdicts_over_every_order(line, snap, units: list[float]) -> dict[str, set[tuple[str, ...]]]:
    lines = [line(claim_id=f"C{n}", procedure_code="20610", units=u) for n, u in enumerate(units)]
    bystander = line(claim_id="X", procedure_code="99213", units=1)
    everyone = [*lines, bystander]
    verdicts: dict[str, set[tuple[str, ...]]] = {}
    for order in itertools.permutations(everyone):
        for current in order:
            rest = tuple(o for o in order if o is not current)
            found = _hits("units.mue_date_of_service", current, snap, rest)
            verdicts.setdefault(current.claim_id, set()).add(tuple(f.message for f in found))
    return verdicts


def test_every_contributing_line_is_flagged_whatever_the_order(line) -> None:
    """The date-of-service verdict is a property of the set of lines, not of arrival order."""
    verdicts = _verdicts_over_every_order(line, _snapshot(3, "2"), [1.0, 0.5, 1.0, 1.0])
    assert all(len(seen) == 1 for seen in verdicts.values()), verdicts
    assert all(verdicts[f"C{n}"] != {()} for n in range(4))
    assert verdicts["X"] == {()}


def test_float_units_at_the_value_are_not_flagged_in_any_order(line) -> None:
    """0.1 + 0.2 + 1.7 + 1.0 is 3.0000000000000004 in some orders when summed naively."""
    verdicts = _verdicts_over_every_order(line, _snapshot(3, "2"), [0.1, 0.2, 1.7, 1.0])
    assert all(seen == {()} for seen in verdicts.values()), verdicts
