"""Add-on codes need a primary procedure for the same patient on the same date of service."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from scrubber.contracts import Category, Finding, Severity
from scrubber.refdata.model import Bundle, CodeReference, ReferenceSnapshot
from scrubber.rules.codes import is_add_on, is_em, primaries_of
from scrubber.rules.library import default_engine

evaluate = default_engine().evaluate

TODAY = date(2025, 6, 1)
DAY = "2025-03-14"

SNAPSHOT = ReferenceSnapshot(
    Bundle(
        codes={
            # 11008 names its primary; 13102 and 99292 name none (as in the seeds).
            "11004": CodeReference(code="11004", global_days="000", add_on_codes=("11008",)),
            "11005": CodeReference(code="11005", global_days="000"),
            "11008": CodeReference(code="11008", global_days="ZZZ"),
            "13100": CodeReference(code="13100", global_days="010"),
            "13102": CodeReference(code="13102", global_days="ZZZ"),
            "99213": CodeReference(code="99213", global_days="XXX"),
            "99291": CodeReference(code="99291", global_days="XXX"),
            "99292": CodeReference(code="99292", global_days="ZZZ"),
            "20610": CodeReference(code="20610"),  # no global days known
        }
    ).with_version()
)


def _hits(line, others) -> list[Finding]:
    verdict = evaluate(line, SNAPSHOT, TODAY, others=tuple(others))
    found = [f for f in verdict.findings if f.rule_id == "add_on.no_primary"]
    for f in found:
        assert (f.category, f.severity, f.carc, f.field) == (
            Category.ADD_ON,
            Severity.ERROR,
            "107",
            "procedure_code",
        )
    return found


@pytest.mark.parametrize(
    ("code", "others", "flagged"),
    [
        # the reference data names the primary: only it will do
        ("11008", [], True),
        ("11008", [("11004", DAY)], False),
        ("11008", [("11004", "2025-03-13")], True),
        ("11008", [("11005", DAY)], True),
        ("11008", [("99213", DAY), ("11004", DAY)], False),
        # no primary named: any known, non-add-on, non-E/M procedure that day
        ("13102", [("13100", DAY)], False),
        ("13102", [("20610", DAY)], False),
        ("13102", [("99213", DAY)], True),
        ("13102", [("11008", DAY)], True),
        ("13102", [("99999", DAY)], True),  # unknown to the reference data
        ("13102", [("13100", "2025-03-15")], True),
        # an E/M add-on (additional critical care) takes an E/M primary
        ("99292", [("99291", DAY)], False),
        ("99292", [], True),
        ("99292", [("99292", DAY)], True),
        # not add-ons, or unknown: nothing to say
        ("11004", [], False),
        ("20610", [], False),
        ("99999", [], False),
    ],
)
def test_add_on_needs_a_primary(line, code, others, flagged) -> None:
    doc = line(procedure_code=code, service_date=DAY)
    other_lines = [
        line(claim_id=f"O{n}", procedure_code=c, service_date=d) for n, (c, d) in enumerate(others)
    ]
    found = _hits(doc, other_lines)
    assert len(found) == int(flagged)
    if flagged:
        assert code in found[0].message and DAY in found[0].message


def test_message_names_the_listed_primaries(line) -> None:
    (finding,) = _hits(line(procedure_code="11008"), [])
    assert "11004" in finding.message


def test_verdict_does_not_depend_on_the_order_of_others(line) -> None:
    add_on = line(procedure_code="13102", service_date=DAY)
    others = [
        line(claim_id="A", procedure_code="99213", service_date=DAY),
        line(claim_id="B", procedure_code="13100", service_date=DAY),
        line(claim_id="C", procedure_code="11008", service_date=DAY),
    ]
    verdicts = {tuple(_hits(add_on, order)) for order in itertools.permutations(others)}
    assert verdicts == {()}


@pytest.mark.parametrize(
    ("code", "em"),
    [
        ("99202", True),
        ("99499", True),
        ("99213", True),
        ("99201", False),
        ("99500", False),
        ("11960", False),
        ("G0463", False),
        ("9921", False),
        ("992130", False),
        ("٩٩٢١٣", False),
    ],
)
def test_is_em(code, em) -> None:
    assert is_em(code) is em


def test_add_on_helpers() -> None:
    assert is_add_on(SNAPSHOT.code("11008"))
    assert not is_add_on(SNAPSHOT.code("11004"))
    assert not is_add_on(SNAPSHOT.code("20610"))
    assert not is_add_on(None)
    assert primaries_of(SNAPSHOT, "11008") == {"11004"}
    assert primaries_of(SNAPSHOT, "13102") == frozenset()


def test_primary_index_follows_the_snapshot() -> None:
    """The reverse index is cached per snapshot; a new snapshot never sees an old index."""
    primaries = ("11004", "11005", "11006", "11007", "11009", "11010")
    snapshots = {
        primary: ReferenceSnapshot(
            Bundle(
                codes={
                    primary: CodeReference(code=primary, add_on_codes=("11008",)),
                    "11008": CodeReference(code="11008", global_days="ZZZ"),
                }
            ).with_version()
        )
        for primary in primaries
    }
    for _ in range(2):
        for primary, snap in snapshots.items():
            assert primaries_of(snap, "11008") == {primary}
