"""NCCI procedure-to-procedure edits: each indicator, modifier group, date boundary and order."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber.contracts import ClaimLine, Outcome, Severity
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.refdata.model import Bundle, CodeReference, ModifierReference, ReferenceSnapshot
from scrubber.refdata.ptp import PtpRow, PtpTable
from scrubber.rules.library import default_engine
from scrubber.rules.ncci import (
    ANATOMIC_MODIFIERS,
    DISTINCT_SERVICE_MODIFIERS,
    GLOBAL_SURGERY_MODIFIERS,
)

ENGINE = default_engine()
DAY = date(2025, 3, 14)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
RATIONALE = "Mutually exclusive procedures"


def _row(c1: str, c2: str, ind: str, eff: str = "20200101", dele: str | None = None) -> PtpRow:
    return PtpRow(
        column1=c1,
        column2=c2,
        prior_1996=False,
        effective=date.fromisoformat(f"{eff[:4]}-{eff[4:6]}-{eff[6:]}"),
        deletion=date.fromisoformat(f"{dele[:4]}-{dele[4:6]}-{dele[6:]}") if dele else None,
        modifier_indicator=ind,
        rationale=RATIONALE,
        source="t.txt:1",
    )


ROWS = (
    _row("20610", "20604", "0"),  # never bypassed
    _row("29881", "29877", "1"),  # bypassed by an NCCI-associated modifier
    _row("64483", "64484", "9"),  # not applicable: never fires
    _row("11042", "97597", "1", "20210401", "20231231"),  # a closed window
    _row("36415", "36416", "0"),  # two rows in force: 0 wins over 1
    _row("36415", "36416", "1"),
    _row("13121", "13120", "9", "19960101", "19960101"),  # retroactive 9 beside the row in force
    _row("13121", "13120", "0", "19960101"),
)
CODES = sorted({c for r in ROWS for c in (r.column1, r.column2)} | {"99213"})
MODIFIERS = sorted(ANATOMIC_MODIFIERS | GLOBAL_SURGERY_MODIFIERS | DISTINCT_SERVICE_MODIFIERS)


def _snapshot(rows: tuple[PtpRow, ...] = ROWS) -> ReferenceSnapshot:
    bundle = Bundle(
        codes={c: CodeReference(code=c, status="A", global_days="XXX") for c in CODES},
        modifiers={m: ModifierReference(code=m, description=m) for m in MODIFIERS},
        ptp=PtpTable.from_rows(rows),
    ).with_version()
    return ReferenceSnapshot(bundle)


SNAP = _snapshot()


def _line(line: Any, code: str, claim: str = "C1", n: int = 1, **kw: Any) -> ClaimLine:
    kw.setdefault("service_date", DAY.isoformat())
    return line(claim_id=claim, line_number=n, procedure_code=code, **kw)  # type: ignore[no-any-return]


def _ptp(line: ClaimLine, *others: ClaimLine) -> list[Any]:
    verdict = ENGINE.evaluate(line, SNAP, NOW.date(), others=tuple(others))
    return [f for f in verdict.findings if f.category.value == "ncci_ptp"]


def test_indicator_0_flags_the_column_2_line_only(line) -> None:
    c1, c2 = _line(line, "20610", n=1), _line(line, "20604", n=2)
    (finding,) = _ptp(c2, c1)
    assert (finding.rule_id, finding.severity, finding.carc) == (
        "ncci_ptp.edit",
        Severity.ERROR,
        "236",
    )
    for part in ("20610", "C1:1", "modifier indicator 0", RATIONALE, "2020-01-01", "no modifier"):
        assert part in finding.message
    assert finding.reference == {
        "column1": "20610",
        "column2": "20604",
        "column1_line_id": "C1:1",
        "effective": "2020-01-01",
        "deletion": None,
        "modifier_indicator": "0",
        "rationale": RATIONALE,
    }
    assert _ptp(c1, c2) == []


@pytest.mark.parametrize("modifier", ["59", "XS", "25", "LT"])
def test_indicator_0_is_never_bypassed(line, modifier) -> None:
    c1 = _line(line, "20610", n=1, modifiers=["RT"])
    c2 = _line(line, "20604", n=2, modifiers=[modifier])
    assert [f.rule_id for f in _ptp(c2, c1)] == ["ncci_ptp.edit"]


def test_indicator_1_without_a_modifier_is_an_error(line) -> None:
    (finding,) = _ptp(_line(line, "29877", n=2), _line(line, "29881", n=1))
    assert finding.rule_id == "ncci_ptp.edit"
    assert "modifier indicator 1" in finding.message


@pytest.mark.parametrize("modifier", sorted(GLOBAL_SURGERY_MODIFIERS | DISTINCT_SERVICE_MODIFIERS))
@pytest.mark.parametrize("on", ["column2", "column1"])
def test_indicator_1_bypassed_by_each_modifier_on_either_line(line, modifier, on) -> None:
    c1 = _line(line, "29881", n=1, modifiers=[modifier] if on == "column1" else [])
    c2 = _line(line, "29877", n=2, modifiers=[modifier] if on == "column2" else [])
    (finding,) = _ptp(c2, c1)
    assert (finding.rule_id, finding.severity) == ("ncci_ptp.bypassed", Severity.INFO)
    where = "this line" if on == "column2" else "line C1:1"
    assert f"bypassed by modifier {modifier} on {where}" in finding.message
    assert finding.reference is not None and finding.reference["bypass_modifier"] == modifier
    verdict = ENGINE.evaluate(c2, SNAP, NOW.date(), others=(c1,))
    assert "ncci_ptp.edit" not in [f.rule_id for f in verdict.findings]


@pytest.mark.parametrize(
    ("mods1", "mods2", "bypassed"),
    [
        (["LT"], ["RT"], True),
        (["RT"], ["LT"], True),
        (["LT"], ["LT"], False),
        ([], ["RT"], False),
        (["LT"], [], False),
        (["F1"], ["F2"], True),
        (["LT", "F1"], ["LT", "F2"], True),
        (["FA"], ["FA"], False),
        (["T5"], ["TA"], True),
        (["E1"], ["E3"], True),
        (["E2"], ["E2"], False),
        (["LC"], ["RC"], True),
        (["LD"], ["LD"], False),
        (["LM"], ["RI"], True),
        (["F6"], ["RT"], False),  # a right finger is on the right side
        (["F1"], ["RT"], True),  # a left finger is not
        (["TA"], ["LT"], False),  # the left great toe is on the left
        (["E4"], ["LT"], True),
        (["LC"], ["LT"], False),  # coronary arteries and body sides are not comparable
        (["RT", "F6"], ["RT", "F7"], True),  # two fingers of the right hand
    ],
)
def test_anatomic_modifiers_bypass_only_for_different_sites(line, mods1, mods2, bypassed) -> None:
    c1 = _line(line, "29881", n=1, modifiers=mods1)
    c2 = _line(line, "29877", n=2, modifiers=mods2)
    (finding,) = _ptp(c2, c1)
    assert finding.rule_id == ("ncci_ptp.bypassed" if bypassed else "ncci_ptp.edit")


def test_indicator_9_never_fires(line) -> None:
    assert _ptp(_line(line, "64484", n=2), _line(line, "64483", n=1)) == []


@pytest.mark.parametrize(
    ("day", "fires"),
    [
        (date(2021, 3, 31), False),  # the day before the effective date
        (date(2021, 4, 1), True),  # the effective date
        (date(2023, 12, 31), True),  # the deletion date is still in force
        (date(2024, 1, 1), False),  # the day after the deletion date
    ],
)
def test_both_sides_of_every_date_boundary(line, day, fires) -> None:
    c1 = _line(line, "11042", n=1, service_date=day.isoformat())
    c2 = _line(line, "97597", n=2, service_date=day.isoformat())
    assert [f.rule_id for f in _ptp(c2, c1)] == (["ncci_ptp.edit"] if fires else [])


def test_an_open_edit_is_in_force_on_any_later_date(line) -> None:
    later = "2026-12-01"
    c1 = _line(line, "20610", n=1, service_date=later)
    c2 = _line(line, "20604", n=2, service_date=later)
    assert [f.rule_id for f in _ptp(c2, c1)] == ["ncci_ptp.edit"]
    early = "2019-12-31"
    c1 = _line(line, "20610", n=1, service_date=early)
    c2 = _line(line, "20604", n=2, service_date=early)
    assert _ptp(c2, c1) == []


def test_other_provider_or_other_date_is_no_pair(line) -> None:
    c1 = _line(line, "20610", n=1)
    other_npi = _line(line, "20604", n=2, rendering_provider={"npi": "1245319599"})
    assert _ptp(other_npi, c1) == []
    other_day = _line(line, "20604", n=2, service_date=(DAY + timedelta(days=1)).isoformat())
    assert _ptp(other_day, c1) == []


def test_a_pair_across_claims_fires(line) -> None:
    c1 = _line(line, "20610", claim="A", n=1)
    c2 = _line(line, "20604", claim="B", n=3)
    (finding,) = _ptp(c2, c1)
    assert "line A:1" in finding.message


def test_indicator_0_wins_over_1_when_both_are_in_force(line) -> None:
    c1 = _line(line, "36415", n=1)
    c2 = _line(line, "36416", n=2, modifiers=["59"])
    (finding,) = _ptp(c2, c1)
    assert finding.rule_id == "ncci_ptp.edit" and "modifier indicator 0" in finding.message


def test_a_retroactive_indicator_9_row_leaves_the_row_in_force(line) -> None:
    c1 = _line(line, "13121", n=1)
    c2 = _line(line, "13120", n=2, modifiers=["59"])
    (finding,) = _ptp(c2, c1)
    assert "modifier indicator 0" in finding.message and "1996-01-01" in finding.message


def test_one_finding_per_column_1_line_in_line_id_order(line) -> None:
    c2 = _line(line, "20604", claim="Z", n=1)
    first, second = _line(line, "20610", claim="B", n=1), _line(line, "20610", claim="A", n=2)
    findings = _ptp(c2, first, second)
    assert [f.reference["column1_line_id"] for f in findings] == ["A:2", "B:1"]  # type: ignore[index]


def test_no_ptp_table_means_no_finding(line) -> None:
    bare = ReferenceSnapshot(Bundle(codes=SNAP.codes, modifiers=SNAP.modifiers).with_version())
    c1, c2 = _line(line, "20610", n=1), _line(line, "20604", n=2)
    verdict = ENGINE.evaluate(c2, bare, NOW.date(), others=(c1,))
    assert [f for f in verdict.findings if f.category.value == "ncci_ptp"] == []


def _run(raws: list[bytes], snapshot: ReferenceSnapshot = SNAP) -> list[Any]:
    processor, store, out = LineProcessor(ENGINE, require_key=False), MemoryHistoryStore(), []
    for n, raw in enumerate(raws):
        out += processor.process(
            raw, None, SourcePosition("f", 0, n), snapshot, store, NOW
        ).emissions
    return out


def test_column_2_arriving_first_is_revised_when_column_1_arrives(line_doc) -> None:
    c2 = orjson.dumps(line_doc(claim_id="B", procedure_code="20604"))
    c1 = orjson.dumps(line_doc(claim_id="A", procedure_code="20610"))
    first, (own, revised) = _run([c2]), _run([c2, c1])[1:]
    assert first[0].result.outcome is Outcome.ACCEPTED
    assert own.result.line_id == "A:1" and own.result.outcome is Outcome.ACCEPTED
    assert revised.result.line_id == "B:1" and revised.result.revision == 2
    assert revised.result.outcome is Outcome.FLAGGED
    assert dict(revised.headers)["scrubber-trigger"] == b"revision"
    again = _run([c2, c1, c1])[3:]
    assert [e.result.revision for e in again] == [1, 2] and all(e.repeat for e in again)


def _final(emissions: list[Any]) -> dict[str, tuple[Any, ...]]:
    best: dict[str, Any] = {}
    for e in emissions:
        r = e.result
        if r is not None and (r.line_id not in best or r.revision > best[r.line_id].revision):
            best[r.line_id] = r
    return {k: (r.outcome, tuple(f.rule_id for f in r.findings)) for k, r in best.items()}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 100_000), n=st.integers(2, 9))
def test_final_verdicts_do_not_depend_on_arrival_order(line_doc, seed, n) -> None:
    rng = random.Random(seed)
    codes = [c for r in ROWS for c in (r.column1, r.column2)]
    raws = [
        orjson.dumps(
            line_doc(
                claim_id=f"C{rng.randrange(3)}",
                line_number=i + 1,
                procedure_code=rng.choice(codes),
                service_date=(date(2022, 6, 1) + timedelta(days=rng.randrange(2))).isoformat(),
                modifiers=rng.choice([[], ["59"], ["LT"], ["RT"], ["25"]]),
                rendering_provider={"npi": rng.choice(["1234567893", "1245319599"])},
            )
        )
        for i in range(n)
    ]
    shuffled = raws[:]
    rng.shuffle(shuffled)
    assert _final(_run(raws)) == _final(_run(shuffled)) == _final(_run(shuffled + raws[:2]))
