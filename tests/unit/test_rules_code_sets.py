"""Diagnosis code sets by date of service, and add-on code edits: both sides of every boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from scrubber.contracts import Outcome, Severity
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.refdata.aoc import AocRow, AocTable
from scrubber.refdata.icd10cm import Icd10CodeSet
from scrubber.refdata.model import Bundle, CodeReference, ModifierReference, ReferenceSnapshot
from scrubber.rules.library import default_engine

ENGINE = default_engine()
NOW = datetime(2027, 6, 1, tzinfo=UTC)


def _set(name: str, fy: int, start: date, billable: str, headers: str, manif: str = "") -> Any:
    return Icd10CodeSet(
        name=name,
        fiscal_year=fy,
        effective_from=start,
        billable=billable,
        headers=headers,
        manifestation=manif,
    )


# FY2025 knows E119 and S81811A; FY2026 deletes S81811A and adds E1165. G63 is a manifestation
# header, G630 its billable child (invented for the test, in the real shape).
FY2025 = _set(
    "icd10cm-order-2025.txt",
    2025,
    date(2024, 10, 1),
    "E119 G630 S81811A W010XXA",
    "E11 G63 S81 W01",
)
FY2026 = _set(
    "icd10cm-order-2026.txt",
    2026,
    date(2025, 10, 1),
    "E1165 E119 G630 W010XXA",
    "E11 E116 G63 W01",
    "G63 G630",
)
FY2025_MANIF = FY2025.model_copy(update={"manifestation": "G63 G630"})


def _snapshot(*sets: Any, aoc: AocTable | None = None) -> ReferenceSnapshot:
    codes = {
        c: CodeReference(code=c, status="A", global_days=g)
        for c, g in (
            ("11042", "000"),
            ("11045", "ZZZ"),
            ("99213", "XXX"),
            ("22551", "090"),
            ("22552", "ZZZ"),
            ("20610", "000"),
        )
    }
    bundle = Bundle(
        codes=codes,
        modifiers={m: ModifierReference(code=m, description=m) for m in ("59", "25")},
        icd10cm=tuple(sets),
        aoc=aoc,
    ).with_version()
    return ReferenceSnapshot(bundle)


SETS = _snapshot(FY2025_MANIF, FY2026)


def _dx(line: Any, codes: list[str], day: str, snap: ReferenceSnapshot = SETS) -> list[Any]:
    verdict = ENGINE.evaluate(
        line(diagnosis_codes=codes, service_date=day, procedure_code="99213"), snap, NOW.date()
    )
    return [(f.rule_id, f.severity, f.field) for f in verdict.findings]


@pytest.mark.parametrize(
    ("codes", "day", "expected"),
    [
        (["E11.9"], "2025-06-01", []),
        (["E119"], "2025-06-01", []),  # with or without the dot
        (["S81.811A"], "2025-09-30", []),  # last day of FY2025: still valid
        (
            ["S81.811A"],
            "2025-10-01",
            [("diagnosis.invalid_for_date", Severity.ERROR, "diagnosis_codes[0]")],
        ),
        (
            ["E11.65"],
            "2025-09-30",
            [("diagnosis.invalid_for_date", Severity.ERROR, "diagnosis_codes[0]")],
        ),
        (["E11.65"], "2025-10-01", []),  # new in FY2026
        (["E11"], "2025-06-01", [("diagnosis.header_code", Severity.ERROR, "diagnosis_codes[0]")]),
        (
            ["E11.9", "E11"],
            "2025-06-01",
            [("diagnosis.header_code", Severity.ERROR, "diagnosis_codes[1]")],
        ),
        (
            ["Z99.99"],
            "2025-06-01",
            [("diagnosis.invalid_for_date", Severity.ERROR, "diagnosis_codes[0]")],
        ),
    ],
)
def test_validity_by_date_of_service(line, codes, day, expected) -> None:
    assert _dx(line, codes, day) == expected


def test_header_message_names_billable_codes_under_it(line) -> None:
    verdict = ENGINE.evaluate(
        line(diagnosis_codes=["E11"], service_date="2025-11-01"), SETS, NOW.date()
    )
    (finding,) = [f for f in verdict.findings if f.rule_id == "diagnosis.header_code"]
    assert "such as E11.65 or E11.9" in finding.message
    assert finding.carc == "146"


def test_invalid_message_names_the_set_in_force(line) -> None:
    verdict = ENGINE.evaluate(
        line(diagnosis_codes=["S81.811A"], service_date="2025-10-01", procedure_code="99213"),
        SETS,
        NOW.date(),
    )
    (finding,) = verdict.findings
    assert "icd10cm-order-2026.txt, FY2026, in force from 2025-10-01" in finding.message


def test_a_date_before_every_set_is_checked_for_shape_only(line) -> None:
    assert _dx(line, ["ZZ9.99", "E11"], "2024-09-30") == [
        ("diagnosis.no_code_set", Severity.INFO, "diagnosis_codes")
    ]
    assert _dx(line, ["1bad"], "2024-09-30") == [
        ("diagnosis.malformed", Severity.ERROR, "diagnosis_codes[0]"),
        ("diagnosis.no_code_set", Severity.INFO, "diagnosis_codes"),
    ]


def test_no_code_set_loaded_at_all_says_nothing(line) -> None:
    assert _dx(line, ["ZZ9.99"], "2025-06-01", _snapshot()) == []


def test_a_set_older_than_the_fiscal_year_gives_warnings_not_errors(line) -> None:
    only_2025 = _snapshot(FY2025)
    assert _dx(line, ["E11.65"], "2025-10-01", only_2025) == [
        ("diagnosis.unverified_for_date", Severity.WARNING, "diagnosis_codes[0]")
    ]
    assert _dx(line, ["E11.65"], "2025-09-30", only_2025) == [
        ("diagnosis.invalid_for_date", Severity.ERROR, "diagnosis_codes[0]")
    ]


@pytest.mark.parametrize(
    ("codes", "day", "expected"),
    [
        (["W01.0XXA", "S81.811A"], "2025-06-01", ["diagnosis.external_cause_first"]),
        (["S81.811A", "W01.0XXA"], "2025-06-01", []),
        (["G63.0", "E11.9"], "2025-06-01", ["diagnosis.manifestation_first"]),
        (["E11.9", "G63.0"], "2025-06-01", []),
        (["G63.0"], "2024-09-30", ["diagnosis.no_code_set"]),  # no set: no manifestation data
        (["W01.0XXA"], "2024-09-30", ["diagnosis.no_code_set", "diagnosis.external_cause_first"]),
    ],
)
def test_first_listed_diagnosis(line, codes, day, expected) -> None:
    assert [r for r, _, _ in _dx(line, codes, day)] == expected


def test_first_listed_warnings_flag_the_line(line) -> None:
    verdict = ENGINE.evaluate(
        line(
            diagnosis_codes=["W01.0XXA", "S81.811A"],
            service_date="2025-06-01",
            procedure_code="99213",
        ),
        SETS,
        NOW.date(),
    )
    assert verdict.outcome is Outcome.FLAGGED
    assert [f.severity for f in verdict.findings] == [Severity.WARNING]


# ----------------------------------------------------------------------------------- add-on codes


def _aoc(*rows: tuple[int, str, str | None, str, str | None]) -> AocTable:
    out = []
    for edit_type, add_on, primary, start, end in rows:
        out.append(
            AocRow(
                edit_type=edit_type,
                add_on=add_on,
                add_on_deletion=None,
                primary=primary,
                primary_deletion=None,
                effective=date.fromisoformat(start),
                deletion=date.fromisoformat(end) if end else None,
                notes="",
                source="aoc.xlsx:1",
            )
        )
    return AocTable.from_rows(out)


AOC = _aoc(
    (1, "11045", "11042", "2020-01-01", "2025-12-31"),  # type 1 until the end of 2025
    (2, "11045", None, "2026-01-01", None),  # then type 2
    (3, "22552", "22551", "2020-01-01", None),
    (1, "99213", "20610", "2020-01-01", None),  # a code the fee schedule does not call ZZZ
)
AOC_SNAP = _snapshot(aoc=AOC)
OTHER_NPI = {"npi": "1245319599"}


def _addon(line: Any, code: str, primary: str | None, day: str, **kw: Any) -> list[str]:
    add_on = line(claim_id="A", procedure_code=code, service_date=day)
    others = ()
    if primary is not None:
        others = (line(claim_id="P", procedure_code=primary, service_date=day, **kw),)
    verdict = ENGINE.evaluate(add_on, AOC_SNAP, NOW.date(), others=others)
    return [f.rule_id for f in verdict.findings if f.category.value == "add_on"]


@pytest.mark.parametrize(
    ("code", "primary", "day", "kw", "expected"),
    [
        # type 1: a listed primary by the same rendering NPI, else an error
        ("11045", "11042", "2025-12-31", {}, []),
        ("11045", "20610", "2025-12-31", {}, ["add_on.primary_not_listed"]),
        ("11045", None, "2025-12-31", {}, ["add_on.no_primary"]),  # no primary at all
        (
            "11045",
            "11042",
            "2025-12-31",
            {"rendering_provider": OTHER_NPI},
            ["add_on.primary_not_listed"],
        ),
        # the day after: type 2, any primary procedure
        ("11045", "20610", "2026-01-01", {}, []),
        ("11045", None, "2026-01-01", {}, ["add_on.no_primary"]),
        # type 3: the listed primary; another primary is a warning; none is an error
        ("22552", "22551", "2025-06-01", {}, []),
        ("22552", "20610", "2025-06-01", {}, ["add_on.primary_not_listed_warning"]),
        ("22552", None, "2025-06-01", {}, ["add_on.no_primary"]),
        # the AOC file makes 99213 an add-on here, though its global days are XXX
        ("99213", "20610", "2025-06-01", {}, []),
        ("99213", "11042", "2025-06-01", {}, ["add_on.primary_not_listed"]),
        # before the file's edits start: the rule without the file (any known procedure)
        ("11045", "20610", "2019-12-31", {}, []),
        ("11045", None, "2019-12-31", {}, ["add_on.no_primary"]),
        ("99213", None, "2019-12-31", {}, []),
    ],
)
def test_aoc_edit_types_by_date(line, code, primary, day, kw, expected) -> None:
    assert _addon(line, code, primary, day, **kw) == expected


def test_type_1_message_names_the_primaries(line) -> None:
    add_on = line(claim_id="A", procedure_code="11045", service_date="2025-06-01")
    other = line(claim_id="P", procedure_code="20610", service_date="2025-06-01")
    verdict = ENGINE.evaluate(add_on, AOC_SNAP, NOW.date(), others=(other,))
    (finding,) = [f for f in verdict.findings if f.category.value == "add_on"]
    assert "(11042)" in finding.message and "edit type 1" in finding.message
    assert (finding.severity, finding.carc) == (Severity.ERROR, "107")


def test_a_later_primary_revises_the_add_on(line_doc) -> None:
    add_on = orjson.dumps(line_doc(claim_id="A", procedure_code="11045", service_date="2025-06-01"))
    primary = orjson.dumps(
        line_doc(claim_id="P", procedure_code="11042", service_date="2025-06-01")
    )
    processor, store = LineProcessor(ENGINE, require_key=False), MemoryHistoryStore()
    out = []
    for n, raw in enumerate((add_on, primary)):
        out += processor.process(
            raw, None, SourcePosition("f", 0, n), AOC_SNAP, store, NOW
        ).emissions
    assert [(e.result.line_id, e.result.revision, e.result.outcome) for e in out] == [
        ("A:1", 1, Outcome.FLAGGED),
        ("P:1", 1, Outcome.ACCEPTED),
        ("A:1", 2, Outcome.ACCEPTED),
    ]


def test_an_add_on_billed_alone_is_flagged_whatever_the_profile(line) -> None:
    """Dropping the Medicare policy group leaves ``add_on.no_primary`` (a CPT convention)."""
    from scrubber.refdata.payers_file import parse_payer_profiles

    specs = ENGINE.rule_specs()
    profiles = parse_payer_profiles(
        'profiles:\n  - name: lax\n    payers: ["*"]\n    disable: ["medicare_policy"]\n',
        "payers.yaml",
        rule_ids=[r for r, _, _ in specs],
        categories=sorted({c for _, c, _ in specs}),
        groups=ENGINE.groups(),
    )
    snap = ReferenceSnapshot(
        AOC_SNAP.bundle.model_copy(update={"payers": profiles, "version": ""}).with_version()
    )
    alone = line(claim_id="A", procedure_code="11045", service_date="2025-06-01")
    verdict = ENGINE.evaluate(alone, snap, NOW.date())
    assert [f.rule_id for f in verdict.findings] == ["add_on.no_primary"]
    assert verdict.profile == "lax"


def test_a_type_1_list_whose_primaries_are_all_deleted_accepts_any_primary(line) -> None:
    row = AocRow(
        edit_type=1,
        add_on="11045",
        add_on_deletion=None,
        primary="11042",
        primary_deletion=date(2024, 12, 31),
        effective=date(2020, 1, 1),
        deletion=None,
        notes="",
        source="aoc.xlsx:2",
    )
    snap = _snapshot(aoc=AocTable.from_rows([row]))
    add_on = line(claim_id="A", procedure_code="11045", service_date="2025-06-01")
    other = line(claim_id="P", procedure_code="20610", service_date="2025-06-01")
    before = line(claim_id="A", procedure_code="11045", service_date="2024-12-31")
    other_before = line(claim_id="P", procedure_code="20610", service_date="2024-12-31")
    assert ENGINE.evaluate(add_on, snap, NOW.date(), others=(other,)).findings == ()
    assert [
        f.rule_id
        for f in ENGINE.evaluate(before, snap, NOW.date(), others=(other_before,)).findings
    ] == ["add_on.primary_not_listed"]
