"""The first two rules, on their flagging and their passing side, and the outcome policy."""

from __future__ import annotations

from datetime import date

import pytest

from scrubber.contracts import Category, Finding, Outcome, Severity
from scrubber.rules.engine import outcome_of
from scrubber.rules.library import default_engine, default_rules

evaluate = default_engine().evaluate

TODAY = date(2025, 6, 1)


def _rule_ids(line, snapshot) -> list[str]:
    verdict = evaluate(line, snapshot, TODAY)
    return [f.rule_id for f in verdict.findings]


@pytest.mark.parametrize(
    ("code", "flagged"),
    [("11960", False), ("99213", False), ("11961", True), ("1430X", True), ("11960 ", True)],
)
def test_unknown_code(line, snapshot, code, flagged) -> None:
    ids = _rule_ids(line(procedure_code=code), snapshot)
    assert ("code.unknown" in ids) is flagged


def test_unknown_code_finding_names_code_and_version(line, snapshot) -> None:
    verdict = evaluate(line(procedure_code="11961"), snapshot, TODAY)
    (finding,) = verdict.findings
    assert finding.category is Category.CODE
    assert finding.severity is Severity.ERROR
    assert finding.carc == "181"
    assert finding.field == "procedure_code"
    assert "11961" in finding.message and snapshot.version in finding.message
    assert verdict.reference is None
    assert verdict.outcome is Outcome.FLAGGED


@pytest.mark.parametrize(
    ("modifiers", "bad_positions"),
    [
        ([], []),
        (["LT"], []),
        (["59", "XS", "RT", "22"], []),
        (["lt"], [0]),
        (["5"], [0]),
        (["RTT"], [0]),
        (["2 "], [0]),
        (["LT", "r1", "59", "-5"], [1, 3]),
        (["ÄB"], [0]),
    ],
)
def test_malformed_modifier(line, snapshot, modifiers, bad_positions) -> None:
    verdict = evaluate(line(modifiers=modifiers), snapshot, TODAY)
    malformed = [f for f in verdict.findings if f.rule_id == "modifier.malformed"]
    assert [f.field for f in malformed] == [f"modifiers[{i}]" for i in bad_positions]
    assert all(f.category is Category.MODIFIER and f.carc == "182" for f in malformed)


def test_clean_line_is_accepted_with_its_reference(line, snapshot) -> None:
    verdict = evaluate(line(), snapshot, TODAY)
    assert verdict.findings == ()
    assert verdict.outcome is Outcome.ACCEPTED
    assert verdict.reference is not None and verdict.reference["global_days"] == "090"


def _finding(severity: Severity) -> Finding:
    return Finding(rule_id="x", category=Category.CODE, severity=severity, message="m")


@pytest.mark.parametrize(
    ("severities", "outcome"),
    [
        ((), Outcome.ACCEPTED),
        ((Severity.INFO,), Outcome.ACCEPTED),
        ((Severity.WARNING,), Outcome.FLAGGED),
        ((Severity.INFO, Severity.ERROR), Outcome.FLAGGED),
    ],
)
def test_outcome_is_flagged_exactly_on_error_or_warning(severities, outcome) -> None:
    assert outcome_of(tuple(_finding(s) for s in severities)) is outcome


def test_catalogue_entries_are_complete() -> None:
    rules = default_rules()
    assert {"code.unknown", "modifier.malformed"} <= {r.rule_id for r in rules}
    for rule in rules:
        assert rule.description and rule.source
        assert rule.rule_id.split(".")[0] in {c.value for c in Category} | {"global"}
