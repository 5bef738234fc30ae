"""The bundle build: CMS over seeds, every value sourced, refused seed facts recorded, determinism.

The corrections expected for the shipped seeds are the lint's findings on them (see
test_lint.py, where each is explained) turned into what the build does with the fact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scrubber.bench.synthetic import synthetic_mpfs
from scrubber.refdata.build import build_bundle, corrections_from_findings
from scrubber.refdata.cms import read_mpfs
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.lint import run_lint
from scrubber.refdata.model import Bundle, CodeReference
from scrubber.refdata.seeds import parse_seeds

ROOT = Path(__file__).resolve().parents[2]
SEEDS_DIR = ROOT / "seeds"
S0 = "000_62d55b151c6621bc.txt"
S1 = "001_4808b7436d89e971.txt"
S2 = "002_6c3c19d7e4484fcb.txt"
S3 = "003_e6f6fded7714a52a.txt"
S4 = "004_f39bc7b80f4060ac.txt"
PPRRVU = EXTRACT_MPFS.name
MUE = EXTRACT_MUE.name

#: (file, line, subject, action) of every correction a build of the shipped seeds records.
EXPECTED_CORRECTIONS = [
    (S0, 18, "modifier 00", "excluded"),
    (S0, 19, "modifier 11", "excluded"),
    (S0, 22, "modifier 50", "not offered for 11960"),
    (S0, 27, "modifier 62", "not offered for 11960"),
    (S0, 28, "modifier 63", "not offered for 11960"),
    (S0, 29, "modifier 66", "not offered for 11960"),
    (S0, 34, "taxonomy 207K00000X", "excluded"),
    (S0, 35, "taxonomy 2080P0227X", "excluded"),
    (S0, 36, "taxonomy 2084P0800X", "excluded"),
    (S0, 37, "taxonomy 207L00000X", "excluded"),
    (S0, 38, "taxonomy 208100000X", "excluded"),
    (S0, 42, "diagnosis S81.811A", "excluded"),
    (S0, 43, "diagnosis S81.812A", "excluded"),
    (S0, 44, "diagnosis T81.4XXA", "excluded"),
    (S0, 46, "diagnosis M79.6", "excluded"),
    (S0, 50, "related code 11961", "excluded"),
    (S0, 51, "related code 15730", "excluded"),
    (S0, 53, "related code 12032", "excluded"),
    (S1, 53, "code family 1430X", "not taken as a code"),
    (S1, 54, "code family 1310X", "not taken as a code"),
    (S1, 55, "code family 1577X", "not taken as a code"),
    (S2, 16, "modifier 11", "description not used"),
    (S2, 16, "modifier 11", "excluded"),
    (S3, 27, "modifier 25", "not offered for 14020"),
    (S3, 28, "modifier 26", "not offered for 14020"),
    (S3, 29, "modifier 50", "not offered for 14020"),
    (S3, 34, "modifier 62", "not offered for 14020"),
    (S3, 40, "modifier QK", "not offered for 14020"),
    (S3, 43, "taxonomy 333600000X", "excluded"),
    (S3, 44, "taxonomy 207Q00000X", "excluded"),
    (S3, 45, "taxonomy 207LR0400X", "excluded"),
    (S3, 46, "taxonomy 208000000X", "excluded"),
    (S3, 47, "taxonomy 293W00000X", "excluded"),
    (S3, 51, "diagnosis S41.011A", "excluded"),
    (S3, 52, "diagnosis S61.011A", "excluded"),
    (S3, 54, "diagnosis T14.8", "excluded"),
    (S3, 55, "diagnosis C44.311", "excluded"),
    (S3, 60, "related code 13131", "excluded"),
    (S3, 61, "related code 14021", "excluded"),
    (S3, 62, "related code 15260", "excluded"),
    (S3, 64, "related code 13132", "excluded"),
    (S4, 79, "modifier 80", "not offered for 11004"),
    (S4, 80, "modifier 82", "not offered for 11004"),
    (S4, 83, "modifier AS", "not offered for 11004"),
]


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return build_bundle(SEEDS_DIR, mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)


def _seeds_copy(tmp_path: Path) -> Path:
    target = tmp_path / "seeds"
    target.mkdir()
    for path in SEEDS_DIR.glob("*.txt"):
        shutil.copy(path, target / path.name)
    return target


def _write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")


def _reference_page(code: str, *lines: str) -> str:
    return (
        f"Official Description\n\nA procedure\n\nThe CPT® Code {code} refers to it.\n\n"
        "Long Descr A procedure\n" + "\n".join(lines) + "\n"
    )


# -------------------------------------------------------------------------- precedence


def test_cms_overrides_a_seed_indicator_and_records_it(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    _write(
        seeds,
        "900.txt",
        _reference_page(
            "11004",
            "Bilateral Surgery (50) 1 - 150% payment adjustment applies.",  # CMS: 0
            "Global Days 000 - Endoscopic or Minor Procedure",  # CMS agrees
            "MUE 4",  # CMS: 1
        ),
    )
    built = build_bundle(seeds, mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    code = built.codes["11004"]
    assert (code.bilateral, code.sources["bilateral"]) == ("0", f"{PPRRVU}:11")
    assert (code.mue_value, code.sources["mue_value"]) == (1, f"{MUE}:2")
    overrides = [(c.source, c.subject, c.action) for c in built.corrections]
    assert overrides == [
        ("900.txt:8", "11004 bilateral", "overridden by CMS ('0' instead of '1')"),
        ("900.txt:10", "11004 mue_value", "overridden by CMS (1 instead of 4)"),
    ]
    assert code.sources["global_days"] == f"{PPRRVU}:11"  # CMS wins even when it agrees


def test_a_seed_only_fact_keeps_its_seed_source(tmp_path: Path, bundle: Bundle) -> None:
    # The PPRRVU extract's DESCRIPTION column is blank: descriptions come from the seeds.
    assert bundle.codes["11960"].sources["description"] == f"{S0}:2"
    assert bundle.codes["11004"].sources["description"] == f"{S4}:49"
    assert bundle.codes["11004"].add_on_codes == ("11008",)
    assert bundle.codes["11004"].sources["add_on_codes"] == f"{S4}:68"
    # A code CMS does not list keeps everything its page says, with the page's lines.
    seeds = tmp_path / "seeds"
    _write(seeds, "900.txt", _reference_page("99999", "Co-Surgeons (62) 2 - Permitted."))
    built = build_bundle(seeds, mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    code = built.codes["99999"]
    assert (code.co_surgeons, code.sources["co_surgeons"]) == ("2", "900.txt:8")
    assert code.sources["description"] == "900.txt:7"


def _set_fields(code: CodeReference) -> set[str]:
    values = code.model_dump(exclude={"code", "sources"})
    return {name for name, value in values.items() if value not in (None, ())}


def test_every_value_has_a_source(bundle: Bundle) -> None:
    for code in bundle.codes.values():
        assert _set_fields(code) <= set(code.sources), code.code
        assert all(code.sources.values()), code.code
    for modifier in bundle.modifiers.values():
        assert modifier.sources and modifier.sources[0].startswith("modifiers.csv:")


def test_mpfs_and_mue_are_both_applied(bundle: Bundle) -> None:
    code = bundle.codes["11960"]
    assert (code.global_days, code.co_surgeons, code.bilateral) == ("090", "0", "0")
    assert code.sources["co_surgeons"] == f"{PPRRVU}:15"
    assert (code.mue_value, code.mue_indicator) == (2, "3")
    assert code.sources["mue_value"] == code.sources["mue_indicator"] == f"{MUE}:6"
    assert {s.kind for s in bundle.sources} >= {"cms:pprrvu", "cms:mue"}
    released = {s.name: s.effective_date for s in bundle.sources}
    assert released[PPRRVU] == "2025-09-11"


# ------------------------------------------------------------------------- corrections


def test_shipped_corrections(bundle: Bundle) -> None:
    got = [
        (*c.source.rsplit(":", 1), c.subject, c.action) for c in bundle.corrections
    ]  # the order is the build's: by file, line, subject
    assert [(name, int(line), subject, action) for name, line, subject, action in got] == (
        EXPECTED_CORRECTIONS
    )
    assert all(c.reason for c in bundle.corrections)


def test_corrections_say_why(bundle: Bundle) -> None:
    reasons = {(c.source, c.subject, c.action): c.reason for c in bundle.corrections}
    cosurg = reasons[(f"{S0}:27", "modifier 62", "not offered for 11960")]
    assert "CMS CO-SURG indicator 0 forbids it" in cosurg
    assert (
        "not a CPT (Appendix A) or HCPCS level II modifier"
        in reasons[(f"{S0}:18", "modifier 00", "excluded")]
    )


def test_corrections_are_the_lint_findings_the_build_acts_on(bundle: Bundle) -> None:
    """A documentation warning or a prose mention of a family refuses nothing."""
    findings = run_lint(SEEDS_DIR, EXTRACT_MPFS, EXTRACT_MUE)
    corrections = corrections_from_findings(parse_seeds(SEEDS_DIR), findings)
    assert set(corrections) == set(bundle.corrections)
    mentions = {f.source for f in findings if f.kind == "code.family_not_billable"}
    assert {f"{S1}:7", f"{S1}:60", f"{S1}:62"} <= mentions
    assert not {c.source for c in corrections} & {f"{S1}:7", f"{S1}:60", f"{S1}:62"}


def test_refused_modifier_lines_are_not_attestations(bundle: Bundle) -> None:
    assert "00" not in bundle.modifiers and "11" not in bundle.modifiers
    assert f"{S0}:27" not in bundle.modifiers["62"].sources  # offered for 11960: refused
    assert f"{S3}:40" not in bundle.modifiers["QK"].sources
    assert f"{S4}:79" not in bundle.modifiers["80"].sources
    assert f"{S3}:36" in bundle.modifiers["LT"].sources  # LT for 14020: nothing wrong
    assert f"{S0}:20" in bundle.modifiers["22"].sources


def test_code_families_are_not_codes(bundle: Bundle) -> None:
    assert not {"1430X", "1310X", "1577X", "1930X"} & set(bundle.codes)
    assert bundle.codes["15839"].sources["description"] == f"{S1}:58"


def test_a_code_that_does_not_exist_is_not_built(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    _write(
        seeds,
        "900.txt",
        "Summary & Overview\nCPT 11961: Breast tissue expander\nText.\n",
    )
    _write(
        seeds,
        "901.txt",
        _reference_page(
            "11004",
            "Status Code Active Code",
            "",
            "This is a primary code that can be used with these additional add-on codes.",
            "",
            "11965 Addon Code MPFS Status: Active Code APC C Illustration for Code Not a code",
            "11008 Addon Code MPFS Status: Active Code APC C Illustration for Code Removal",
        ),
    )
    built = build_bundle(seeds, mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    assert "11961" not in built.codes and "11965" not in built.codes
    assert built.codes["11004"].add_on_codes == ("11008",)
    refused = {(c.source, c.subject, c.action) for c in built.corrections}
    assert ("900.txt:2", "code 11961", "excluded") in refused
    assert ("901.txt:12", "code 11965", "excluded") in refused


def test_a_description_that_contradicts_cpt_is_not_taken(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    _write(seeds, "900.txt", "Summary & Overview\nCPT 14021: Local flap of eyelids\nText.\n")
    built = build_bundle(seeds, mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    assert built.codes["14021"].description is None
    assert "description" not in built.codes["14021"].sources
    refused = {(c.source, c.subject, c.action) for c in built.corrections}
    assert refused == {("900.txt:2", "code 14021", "description not used")}


# ------------------------------------------------------------------------- determinism


def test_two_builds_of_the_same_inputs_have_one_version(bundle: Bundle) -> None:
    again = build_bundle(SEEDS_DIR, mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    assert again.version == bundle.version
    assert again.to_json() == bundle.to_json()
    assert Bundle.from_json(bundle.to_json()) == bundle


def test_a_changed_seed_changes_the_version(tmp_path: Path, bundle: Bundle) -> None:
    seeds = _seeds_copy(tmp_path)
    path = seeds / S3
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("2.6 cm to 7.5 cm", "2.7 cm to 7.5 cm"), encoding="utf-8")
    changed = build_bundle(seeds, mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    assert changed.version != bundle.version
    # ... and the lint now refuses that row too.
    assert (f"{S3}:63", "related code 12032") in {
        (c.source, c.subject) for c in changed.corrections
    }


def test_a_changed_cms_file_changes_the_version(tmp_path: Path, bundle: Bundle) -> None:
    mpfs = tmp_path / PPRRVU
    lines = EXTRACT_MPFS.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[14].startswith("11960,")
    lines[14] = lines[14].replace(",2,0,1,0,0,", ",2,0,1,2,0,")  # CO-SURG 0 -> 2
    mpfs.write_text("".join(lines), encoding="utf-8")
    changed = build_bundle(SEEDS_DIR, mpfs=mpfs, mue=EXTRACT_MUE)
    assert changed.version != bundle.version
    assert changed.codes["11960"].co_surgeons == "2"
    # 62 is allowed now: 000:27 is no longer refused, and attests the modifier.
    assert f"{S0}:27" not in {c.source for c in changed.corrections}
    assert f"{S0}:27" in changed.modifiers["62"].sources


def test_a_seeds_only_build(bundle: Bundle) -> None:
    seeds_only = build_bundle(SEEDS_DIR)
    assert seeds_only.version != bundle.version
    assert seeds_only.codes["11004"].sources["assistant"] == f"{S4}:56"
    assert {s.kind for s in seeds_only.sources} & {"cms:pprrvu", "cms:mue"} == set()


# -------------------------------------------------------------------------------- scale


def test_a_full_size_fee_schedule_builds_every_code(tmp_path: Path) -> None:
    """The real PPRRVU file has ~19,000 records; no timing here, only completeness."""
    mpfs = tmp_path / "PPRRVU-synthetic.csv"
    synthetic_mpfs(mpfs, n_codes=19000)
    rows = read_mpfs(mpfs).rows
    assert len(rows) == 19000
    cms_codes = {r.code for r in rows if not r.modifier}
    seed_codes = {c.code for d in parse_seeds(SEEDS_DIR) for c in d.codes if not c.is_family} | {
        "11008"
    }
    built = build_bundle(SEEDS_DIR, mpfs=mpfs, mue=EXTRACT_MUE)
    mue_codes = {line.split(",", 1)[0] for line in EXTRACT_MUE.read_text().splitlines()[1:]}
    assert set(built.codes) == cms_codes | seed_codes | mue_codes
    assert len(built.codes) > 17000
