"""Payer profiles applied by the engine: matching, disabling, severity overrides, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from scrubber.contracts import Category, Outcome, ScrubResult, Severity
from scrubber.offline import scrub_lines
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.refdata.build import build_bundle
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import Bundle, ReferenceSnapshot
from scrubber.refdata.payers_file import DEFAULT_PAYERS, PayerProfileError, parse_payer_profiles
from scrubber.rules.library import default_engine

ENGINE = default_engine()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]

PROFILES = """\
profiles:
  - name: medicare
    payers: ["MEDICARE", "MCR-*"]
  - name: acme
    payers: ["ACME-*"]
    disable: ["modifier.co_surgeons", "global_period"]
    severity:
      modifier.malformed: warning
      provider: info
  - name: strict
    payers: ["STRICT-?"]
    severity:
      modifier.pricing_not_first: error
      code.carrier_priced: error
  - name: nopolicy
    payers: ["NOPOL-*"]
    disable: ["medicare_policy"]
"""


def _snapshot(base: ReferenceSnapshot, text: str = PROFILES) -> ReferenceSnapshot:
    specs = ENGINE.rule_specs()
    profiles = parse_payer_profiles(
        text,
        "payers.yaml",
        rule_ids=[r for r, _, _ in specs],
        categories=[c.value for c in Category],
        groups=ENGINE.groups(),
        rule_categories={r: c for r, c, _ in specs},
    )
    bundle = base.bundle.model_copy(update={"payers": profiles, "version": ""}).with_version()
    return ReferenceSnapshot(bundle)


@pytest.fixture
def snap(snapshot: ReferenceSnapshot) -> ReferenceSnapshot:
    return _snapshot(snapshot)


def _ids(verdict: Any) -> list[str]:
    return [f.rule_id for f in verdict.findings]


@pytest.mark.parametrize(
    ("payer", "profile"),
    [
        ("MEDICARE", "medicare"),
        ("MCR-J15", "medicare"),
        ("mcr-j15", None),  # case-sensitive
        ("ACME-1", "acme"),
        ("STRICT-A", "strict"),
        ("STRICT-AB", None),  # ? is one character
        ("OTHER", None),
    ],
)
def test_the_first_matching_profile_applies(line, snap, payer, profile) -> None:
    verdict = ENGINE.evaluate(line(payer_id=payer), snap, NOW.date())
    assert verdict.profile == profile


def test_disable_by_rule_id(line, snap) -> None:
    surgery = line(modifiers=["62"])
    snap_codes = snap.codes["11960"].model_copy(update={"co_surgeons": "0"})
    bundle = snap.bundle.model_copy(
        update={"codes": {**snap.codes, "11960": snap_codes}, "version": ""}
    ).with_version()
    s = ReferenceSnapshot(bundle)
    mcr = ENGINE.evaluate(surgery.model_copy(update={"payer_id": "MCR-1"}), s, NOW.date())
    acme = ENGINE.evaluate(surgery.model_copy(update={"payer_id": "ACME-1"}), s, NOW.date())
    assert "modifier.co_surgeons" in _ids(mcr)
    assert "modifier.co_surgeons" not in _ids(acme)


def test_disable_by_category(line, snap) -> None:
    surgery = line(claim_id="S", procedure_code="11960", service_date="2025-03-01")
    visit = line(claim_id="V", procedure_code="99213", service_date="2025-03-10")
    for payer, expected in (("MCR-1", True), ("ACME-1", False)):
        v = ENGINE.evaluate(
            visit.model_copy(update={"payer_id": payer}),
            snap,
            NOW.date(),
            others=(surgery.model_copy(update={"payer_id": payer}),),
        )
        assert ("global_period.em_postop_without_24" in _ids(v)) is expected


def test_disable_by_group(line, snap) -> None:
    """The medicare_policy group: the MPFS status rules go, code-set rules stay."""
    s = snap
    carrier = s.codes["11960"].model_copy(update={"status": "N"})
    s = ReferenceSnapshot(
        s.bundle.model_copy(
            update={"codes": {**s.codes, "11960": carrier}, "version": ""}
        ).with_version()
    )
    bad = line(payer_id="NOPOL-1", modifiers=["zz"])
    assert _ids(ENGINE.evaluate(bad, s, NOW.date())) == ["modifier.malformed"]
    medicare = bad.model_copy(update={"payer_id": "MCR-1"})
    assert "code.not_payable.non_covered" in _ids(ENGINE.evaluate(medicare, s, NOW.date()))


def test_severity_down_turns_a_flag_into_a_warning_or_a_note(line, snap) -> None:
    bad_npi = {"npi": "1234567890"}
    mcr = ENGINE.evaluate(line(payer_id="MCR-1", rendering_provider=bad_npi), snap, NOW.date())
    acme = ENGINE.evaluate(line(payer_id="ACME-1", rendering_provider=bad_npi), snap, NOW.date())
    assert [(f.rule_id, f.severity) for f in mcr.findings] == [
        ("provider.npi_invalid", Severity.ERROR)
    ]
    assert [(f.rule_id, f.severity) for f in acme.findings] == [
        ("provider.npi_invalid", Severity.INFO)
    ]
    assert (mcr.outcome, acme.outcome) == (Outcome.FLAGGED, Outcome.ACCEPTED)
    malformed = ENGINE.evaluate(line(payer_id="ACME-1", modifiers=["zz"]), snap, NOW.date())
    assert [(f.rule_id, f.severity) for f in malformed.findings] == [
        ("modifier.malformed", Severity.WARNING)
    ]
    assert malformed.outcome is Outcome.FLAGGED  # a warning still flags


def test_severity_up_turns_a_note_into_a_flag(line, snap) -> None:
    carrier = snap.codes["11960"].model_copy(update={"status": "C"})
    s = ReferenceSnapshot(
        snap.bundle.model_copy(
            update={"codes": {**snap.codes, "11960": carrier}, "version": ""}
        ).with_version()
    )
    mcr = ENGINE.evaluate(line(payer_id="MCR-1"), s, NOW.date())
    strict = ENGINE.evaluate(line(payer_id="STRICT-1"), s, NOW.date())
    assert [(f.rule_id, f.severity) for f in mcr.findings] == [
        ("code.carrier_priced", Severity.INFO)
    ]
    assert mcr.outcome is Outcome.ACCEPTED
    assert [(f.rule_id, f.severity) for f in strict.findings] == [
        ("code.carrier_priced", Severity.ERROR)
    ]
    assert strict.outcome is Outcome.FLAGGED


def test_no_profiles_in_the_bundle_judges_with_every_rule(line, snapshot) -> None:
    verdict = ENGINE.evaluate(line(payer_id="ACME-1", modifiers=["zz"]), snapshot, NOW.date())
    assert verdict.profile is None
    assert [(f.rule_id, f.severity) for f in verdict.findings] == [
        ("modifier.malformed", Severity.ERROR)
    ]


def test_every_result_names_its_profile(line_bytes, snap) -> None:
    processor = LineProcessor(ENGINE, require_key=False)
    store = MemoryHistoryStore()
    for payer, profile in (("ACME-9", "acme"), ("XYZ", None)):
        raw = line_bytes(payer_id=payer, claim_id=payer)
        (emission,) = processor.process(
            raw, None, SourcePosition("f", 0, 1), snap, store, NOW
        ).emissions
        result = ScrubResult.model_validate_json(emission.value)
        assert result.profile == profile
        assert orjson.loads(emission.value)["profile"] == profile


def test_a_profile_change_in_a_new_version_changes_verdicts(line_bytes, snapshot) -> None:
    """Profiles travel with the reference data: the next version judges with the new ones."""
    raw = line_bytes(payer_id="ACME-1", modifiers=["zz"])
    old = _snapshot(snapshot)
    new = _snapshot(snapshot, PROFILES.replace("modifier.malformed: warning", "modifier: info"))
    assert old.version != new.version
    outcomes = []
    for s in (old, new):
        processor = LineProcessor(ENGINE, require_key=False)
        (e,) = processor.process(
            raw, None, SourcePosition("f", 0, 1), s, MemoryHistoryStore(), NOW
        ).emissions
        outcomes.append((e.result.outcome, e.result.refdata_version))  # type: ignore[union-attr]
    assert outcomes == [(Outcome.FLAGGED, old.version), (Outcome.ACCEPTED, new.version)]


def test_the_build_stores_the_shipped_profiles_and_refuses_bad_files(tmp_path) -> None:
    bundle = build_bundle(REPO / "seeds", EXTRACT_MPFS, EXTRACT_MUE, payers=DEFAULT_PAYERS)
    assert bundle.payers is not None
    assert bundle.payers.names()[-1] == "default"
    assert Bundle.from_json(bundle.to_json()) == bundle
    bad = tmp_path / "payers.yaml"
    bad.write_text(
        "profiles:\n  - name: x\n    payers: ['A']\n    severity:\n      units.mue_line: fatal\n"
    )
    with pytest.raises(PayerProfileError, match=r"^payers.yaml:5: "):
        build_bundle(REPO / "seeds", EXTRACT_MPFS, EXTRACT_MUE, payers=bad)


def test_a_bundle_without_profiles_keeps_its_version() -> None:
    """Optional sections absent from a bundle are not hashed: older bundles still load."""
    bundle = build_bundle(REPO / "seeds", EXTRACT_MPFS, EXTRACT_MUE)
    assert b'"payers"' not in bundle.to_json() and b'"ptp"' not in bundle.to_json()
    assert Bundle.from_json(bundle.to_json()).version == bundle.version


def test_offline_scrub_names_the_profiles(tmp_path, line_bytes, snapshot) -> None:
    import io

    snap = _snapshot(snapshot)
    raws = [
        line_bytes(payer_id=p, claim_id=p, patient={"member_id": p})
        for p in ("MCR-1", "ACME-1", "ZED")
    ]
    results, rejects = io.BytesIO(), io.BytesIO()
    scrub_lines(raws, snap, results, rejects, "in", clock=lambda: NOW)
    profiles = [orjson.loads(r)["profile"] for r in results.getvalue().splitlines()]
    assert profiles == ["medicare", "acme", None]
