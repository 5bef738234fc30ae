"""Global surgery periods: every window edge, every modifier, physician and group matching."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

import scrubber.rules.duplicates
import scrubber.rules.global_period  # noqa: F401  (registers the rules)
from scrubber.contracts import Category, Severity
from scrubber.refdata.model import Bundle, CodeReference, ModifierReference, ReferenceSnapshot
from scrubber.rules.global_period import surgical_codes
from scrubber.rules.library import default_engine

evaluate = default_engine().evaluate

D = date(2025, 5, 10)
SURGEON = {"npi": "1234567893", "taxonomy": "208200000X"}
PARTNER = {"npi": "1245319599", "taxonomy": "208200000X"}  # same group, same specialty
PARTNER_OTHER_SPECIALTY = {"npi": "1245319599", "taxonomy": "207X00000X"}
GROUP = {"npi": "1003000126", "tax_id": "111111111"}
OTHER_GROUP = {"npi": "1003000126", "tax_id": "222222222"}

CODES = {"090": "11960", "010": "12032", "000": "11004"}


@pytest.fixture(scope="module")
def snap() -> ReferenceSnapshot:
    codes = {
        "11960": CodeReference(code="11960", status="A", global_days="090"),
        "12032": CodeReference(code="12032", status="A", global_days="010"),
        "11004": CodeReference(code="11004", status="A", global_days="000"),
        "11008": CodeReference(code="11008", status="A", global_days="ZZZ"),
        "99213": CodeReference(code="99213", status="A", global_days="XXX"),
        "71046": CodeReference(code="71046", status="A", global_days="XXX"),
    }
    mods = ("24", "25", "57", "58", "78", "79", "FT", "55", "54", "LT")
    return ReferenceSnapshot(
        Bundle(
            codes=codes, modifiers={m: ModifierReference(code=m, description=m) for m in mods}
        ).with_version()
    )


def _line(line, claim, code, day, mods=(), provider=SURGEON, billing=GROUP):
    return line(
        claim_id=claim,
        procedure_code=code,
        service_date=day.isoformat(),
        modifiers=list(mods),
        rendering_provider=provider,
        billing_provider=billing,
    )


def _global_findings(line_obj, others, snap):
    verdict = evaluate(line_obj, snap, date(2026, 1, 1), others=tuple(others))
    return [f for f in verdict.findings if f.category is Category.GLOBAL_PERIOD]


# (global days, visit offset from D, visit modifiers, expected rule id or None)
EM_CASES = [
    ("090", -2, (), None),
    ("090", -1, (), "global_period.em_decision_without_57"),
    ("090", -1, ("57",), None),
    ("090", 0, (), "global_period.em_decision_without_57"),
    ("090", 0, ("57",), None),
    ("090", 0, ("25",), "global_period.em_decision_without_57"),
    ("090", 1, (), "global_period.em_postop_without_24"),
    ("090", 1, ("24",), None),
    ("090", 45, ("FT",), None),
    ("090", 90, (), "global_period.em_postop_without_24"),
    ("090", 90, ("24",), None),
    ("090", 91, (), None),
    ("010", -1, (), None),
    ("010", 0, (), "global_period.em_same_day_without_25"),
    ("010", 0, ("25",), None),
    ("010", 1, (), "global_period.em_postop_without_24"),
    ("010", 10, (), "global_period.em_postop_without_24"),
    ("010", 10, ("24",), None),
    ("010", 11, (), None),
    ("000", -1, (), None),
    ("000", 0, (), "global_period.em_same_day_without_25"),
    ("000", 0, ("25",), None),
    ("000", 1, (), None),
]


@pytest.mark.parametrize(("days", "offset", "mods", "expected"), EM_CASES)
def test_em_around_a_surgery(line, snap, days, offset, mods, expected) -> None:
    surgery = _line(line, "S", CODES[days], D)
    visit = _line(line, "V", "99213", D + timedelta(days=offset), mods)
    found = _global_findings(visit, [surgery], snap)
    assert [f.rule_id for f in found] == ([expected] if expected else [])
    for f in found:
        assert f.severity is Severity.ERROR and f.carc == "97" and "S:1" in f.message


PROCEDURE_CASES = [
    ("090", 0, (), None),  # same day: multiple procedures, not post-op
    ("090", 1, (), "global_period.procedure_postop_without_modifier"),
    ("090", 90, (), "global_period.procedure_postop_without_modifier"),
    ("090", 91, (), None),
    ("090", 30, ("58",), None),
    ("090", 30, ("78",), None),
    ("090", 30, ("79",), None),
    ("090", 30, ("LT",), "global_period.procedure_postop_without_modifier"),
    ("010", 10, (), "global_period.procedure_postop_without_modifier"),
    ("010", 11, (), None),
    ("000", 1, (), None),
]


@pytest.mark.parametrize(("days", "offset", "mods", "expected"), PROCEDURE_CASES)
def test_procedure_in_the_postop_days(line, snap, days, offset, mods, expected) -> None:
    surgery = _line(line, "S", CODES[days], D)
    second = _line(line, "P", "12032", D + timedelta(days=offset), mods)
    found = _global_findings(second, [surgery], snap)
    assert [f.rule_id for f in found] == ([expected] if expected else [])


def test_non_surgical_services_and_add_ons_are_not_judged_as_procedures(line, snap) -> None:
    surgery = _line(line, "S", "11960", D)
    xray = _line(line, "X", "71046", D + timedelta(days=5))
    add_on = _line(line, "A", "11008", D + timedelta(days=5))
    assert _global_findings(xray, [surgery], snap) == []
    assert _global_findings(add_on, [surgery], snap) == []


@pytest.mark.parametrize(
    ("provider", "billing", "bound"),
    [
        (SURGEON, OTHER_GROUP, True),  # the same physician, whatever the group
        (PARTNER, GROUP, True),  # another physician of the group, same specialty
        (PARTNER_OTHER_SPECIALTY, GROUP, False),  # same group, another specialty
        (PARTNER, OTHER_GROUP, False),  # another group
    ],
)
def test_package_binds_physician_or_group_and_specialty(line, snap, provider, billing, bound):
    surgery = _line(line, "S", "11960", D)
    visit = _line(line, "V", "99213", D + timedelta(days=3), provider=provider, billing=billing)
    assert bool(_global_findings(visit, [surgery], snap)) is bound


def test_group_match_needs_a_tax_id(line, snap) -> None:
    no_tax = {"npi": "1003000126"}
    surgery = _line(line, "S", "11960", D, billing=no_tax)
    visit = _line(line, "V", "99213", D + timedelta(days=3), provider=PARTNER, billing=no_tax)
    assert _global_findings(visit, [surgery], snap) == []


def test_78_does_not_open_a_period_but_58_and_79_do(line, snap) -> None:
    first = _line(line, "S", "12032", D)  # 010: post-op D+1..D+10
    for mod, opens in (("78", False), ("58", True), ("79", True)):
        second = _line(line, "R", "11960", D + timedelta(days=5), [mod])
        visit = _line(line, "V", "99213", D + timedelta(days=40))  # outside the first period
        found = _global_findings(visit, [first, second], snap)
        assert bool(found) is opens, mod


def test_return_modifier_without_surgery_is_a_note(line, snap) -> None:
    lone = _line(line, "R", "12032", D, ["79"])
    (note,) = _global_findings(lone, [], snap)
    assert note.rule_id == "global_period.return_without_surgery"
    assert note.severity is Severity.INFO
    surgery = _line(line, "S", "11960", D - timedelta(days=20))
    assert _global_findings(lone, [surgery], snap) == []


def test_one_finding_per_rule_from_the_earliest_surgery(line, snap) -> None:
    s1 = _line(line, "S1", "11960", D)
    s2 = _line(line, "S2", "11960", D + timedelta(days=10), ["79"])
    visit = _line(line, "V", "99213", D + timedelta(days=20))
    for others in ([s1, s2], [s2, s1]):
        (f,) = _global_findings(visit, others, snap)
        assert "S1:1" in f.message


def _dups(line_obj, others, snap):
    verdict = evaluate(line_obj, snap, date(2026, 1, 1), others=tuple(others))
    return [f for f in verdict.findings if f.category is Category.DUPLICATE]


def test_duplicates_flag_all_but_the_first_line_of_a_group(line, snap) -> None:
    a = _line(line, "A", "11960", D, ["LT"])
    b = _line(line, "B", "11960", D, ["LT"])
    assert _dups(a, [b], snap) == []
    (f,) = _dups(b, [a], snap)
    assert f.rule_id == "duplicate.line" and f.carc == "18" and "A:1" in f.message


@pytest.mark.parametrize(
    "change",
    [
        {"procedure_code": "12032"},
        {"service_date": (D + timedelta(days=1)).isoformat()},
        {"modifiers": ["RT"]},
        {"rendering_provider": PARTNER},
    ],
)
def test_lines_that_differ_are_not_duplicates(line, snap, change) -> None:
    a = _line(line, "A", "11960", D, ["LT"])
    doc = {
        "claim_id": "B",
        "procedure_code": "11960",
        "service_date": D.isoformat(),
        "modifiers": ["LT"],
        "rendering_provider": SURGEON,
        "billing_provider": GROUP,
    }
    doc.update(change)
    b = line(**doc)
    assert _dups(b, [a], snap) == []


def test_the_surgical_codes_follow_the_snapshot(snap) -> None:
    """The per-snapshot map of codes with a global period: built once, rebuilt for another."""
    codes = surgical_codes(snap)
    assert codes == {"11960": "090", "12032": "010", "11004": "000"}
    assert surgical_codes(snap) is codes
    other = ReferenceSnapshot(
        Bundle(codes={"10060": CodeReference(code="10060", status="A", global_days="010")})
    )
    assert surgical_codes(other) == {"10060": "010"}
    assert surgical_codes(snap) == codes
