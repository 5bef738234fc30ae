"""The MPFS status rules: every status value, on its flagging and its passing side."""

from __future__ import annotations

from datetime import date

import pytest

from scrubber.contracts import Category, Severity
from scrubber.refdata.model import Bundle, CodeReference, ReferenceSnapshot
from scrubber.rules.library import default_engine

evaluate = default_engine().evaluate

TODAY = date(2025, 6, 1)

#: The status rules and the severity and CARC each must carry.
SPEC = {
    "code.not_payable.invalid": (Severity.ERROR, "181"),
    "code.not_payable.non_covered": (Severity.ERROR, "96"),
    "code.not_payable.bundled": (Severity.ERROR, "97"),
    "code.reporting_only": (Severity.INFO, "246"),
    "code.carrier_priced": (Severity.INFO, None),
    "code.outside_fee_schedule": (Severity.INFO, None),
}


def _snapshot(status: str | None) -> ReferenceSnapshot:
    ref = CodeReference(code="11960", status=status, global_days="090")
    return ReferenceSnapshot(Bundle(codes={"11960": ref}).with_version())


@pytest.mark.parametrize(
    ("status", "rule_id", "meaning"),
    [
        ("I", "code.not_payable.invalid", "not valid for Medicare"),
        ("G", "code.not_payable.invalid", "not valid for Medicare"),
        ("D", "code.not_payable.invalid", "deleted"),
        ("F", "code.not_payable.invalid", "deleted/discontinued"),
        ("H", "code.not_payable.invalid", "deleted modifier"),
        ("N", "code.not_payable.non_covered", "not covered by Medicare"),
        ("X", "code.outside_fee_schedule", "statutory exclusion"),
        ("E", "code.outside_fee_schedule", "excluded from the physician fee schedule"),
        ("B", "code.not_payable.bundled", "bundled"),
        ("P", "code.not_payable.bundled", "bundled/excluded"),
        ("M", "code.reporting_only", "measurement code"),
        ("C", "code.carrier_priced", "contractors price"),
    ],
)
def test_status_flags(line, status, rule_id, meaning) -> None:
    verdict = evaluate(line(), _snapshot(status), TODAY)
    (finding,) = verdict.findings
    severity, carc = SPEC[rule_id]
    assert finding.rule_id == rule_id
    assert finding.category is Category.CODE
    assert finding.severity is severity
    assert finding.carc == carc
    assert finding.field == "procedure_code"
    assert f"status {status}" in finding.message and meaning in finding.message


@pytest.mark.parametrize("status", ["A", "R", "T", "J", None, "Q", "a", ""])
def test_payable_or_unknown_status_gives_no_finding(line, status) -> None:
    """A, R, T are payable, J is paid by the anesthesia formula; unknown values say nothing."""
    verdict = evaluate(line(), _snapshot(status), TODAY)
    assert verdict.findings == ()


def test_status_notes_do_not_flag_the_line(line) -> None:
    """C and M, and E and X: drugs, clinical lab and ambulance lines are paid outside the MPFS
    (RVU25D Attachment A), so they must not be held back as errors."""
    for status in ("C", "M", "E", "X"):
        verdict = evaluate(line(), _snapshot(status), TODAY)
        assert verdict.outcome.value == "accepted"
        assert [f.severity for f in verdict.findings] == [Severity.INFO]


def test_unknown_code_gets_no_status_finding(line) -> None:
    verdict = evaluate(line(procedure_code="11961"), _snapshot("N"), TODAY)
    assert [f.rule_id for f in verdict.findings] == ["code.unknown"]
