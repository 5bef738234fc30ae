"""The reference-data lint: the real errors of the shipped seeds, and each kind on both sides.

The expected findings for the five shipped seeds were written from the documents read line by
line (``cat -n``) and checked against the master lists and the CMS extract, not dumped from the
lint: every line below is a seed statement that a shipped source contradicts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE, MASTER_DIR
from scrubber.refdata.lint import (
    LintFinding,
    LintReference,
    exit_status,
    lint,
    load_reference,
    render_text,
    run_lint,
)
from scrubber.refdata.master import MasterListError, read_master_lists
from scrubber.refdata.seeds import SeedDocument, parse_seeds, parse_text

ROOT = Path(__file__).resolve().parents[2]
SEEDS_DIR = ROOT / "seeds"
S0 = "000_62d55b151c6621bc.txt"
S1 = "001_4808b7436d89e971.txt"
S2 = "002_6c3c19d7e4484fcb.txt"
S3 = "003_e6f6fded7714a52a.txt"
S4 = "004_f39bc7b80f4060ac.txt"

#: (severity, kind, file, line, subject) of every finding on the shipped seeds.
EXPECTED: list[tuple[str, str, str, int, str]] = [
    # 000 (CPT 11960, a code publication). Modifier table: 00 and 11 do not exist; 50, 62 and 66
    # are offered although 11960's BILAT SURG, CO-SURG and TEAM SURG are 0 (PPRRVU line 15);
    # 63 applies to 20100-69990 (and some cardiology codes) only.
    ("error", "modifier.not_real", S0, 18, "00"),
    ("error", "modifier.not_real", S0, 19, "11"),
    ("error", "modifier.forbidden_by_cms", S0, 22, "50"),
    ("error", "modifier.forbidden_by_cms", S0, 27, "62"),
    ("error", "modifier.not_applicable", S0, 28, "63"),
    ("error", "modifier.forbidden_by_cms", S0, 29, "66"),
    # Taxonomy table: every code is another specialty's, or not on the master list.
    ("error", "taxonomy.specialty_contradicts", S0, 34, "207K00000X"),  # Allergy & Immunology
    ("warning", "taxonomy.unverified", S0, 35, "2080P0227X"),
    ("error", "taxonomy.specialty_contradicts", S0, 36, "2084P0800X"),  # Psychiatry
    ("error", "taxonomy.specialty_contradicts", S0, 37, "207L00000X"),  # Anesthesiology
    ("error", "taxonomy.specialty_contradicts", S0, 38, "208100000X"),  # PM&R
    # Diagnoses: S81.81- is the lower leg, not the knee; T81.4XXA and M79.6 are not codes a
    # claim can carry.
    ("warning", "diagnosis.description_contradicts", S0, 42, "S81.811A"),
    ("warning", "diagnosis.description_contradicts", S0, 43, "S81.812A"),
    ("warning", "diagnosis.not_billable", S0, 44, "T81.4XXA"),
    ("warning", "diagnosis.not_billable", S0, 46, "M79.6"),
    # Related codes: 11961 does not exist (breast expanders are 19357); 15730 is a midface
    # flap; 12032 is 2.6 cm to 7.5 cm (003:63 has it right).
    ("error", "related_code.not_real", S0, 50, "11961"),
    ("error", "related_code.contradicts", S0, 51, "15730"),
    ("error", "related_code.contradicts", S0, 53, "12032"),
    # 001 (advocacy page): code families named as codes, in prose and in the candidate table.
    ("info", "code.family_not_billable", S1, 7, "1310X"),
    ("info", "code.family_not_billable", S1, 7, "1430X"),
    ("info", "code.family_not_billable", S1, 53, "1430X"),
    ("info", "code.family_not_billable", S1, 54, "1310X"),
    ("info", "code.family_not_billable", S1, 55, "1577X"),
    ("info", "code.family_not_billable", S1, 60, "1430X"),
    ("info", "code.family_not_billable", S1, 62, "1930X"),
    # 002 (CPT 32960): "11" described as a return to the operating room, which is 78.
    ("error", "modifier.description_contradicts", S2, 16, "11"),
    ("error", "modifier.not_real", S2, 16, "11"),
    # 003 (CPT 14020). Modifiers: 25 belongs on the E/M visit; 26 with PC/TC 0; 50 with BILAT
    # SURG 0; 62 with CO-SURG 0; QK is anesthesia medical direction.
    ("error", "modifier.not_applicable", S3, 27, "25"),
    ("error", "modifier.forbidden_by_cms", S3, 28, "26"),
    ("error", "modifier.forbidden_by_cms", S3, 29, "50"),
    ("error", "modifier.forbidden_by_cms", S3, 34, "62"),
    ("error", "modifier.not_applicable", S3, 40, "QK"),
    ("error", "taxonomy.specialty_contradicts", S3, 43, "333600000X"),  # Pharmacy
    ("error", "taxonomy.specialty_contradicts", S3, 44, "207Q00000X"),  # Family Medicine
    ("warning", "taxonomy.unverified", S3, 45, "207LR0400X"),
    ("error", "taxonomy.specialty_contradicts", S3, 46, "208000000X"),  # Pediatrics
    ("warning", "taxonomy.unverified", S3, 47, "293W00000X"),
    # S41.011A is the shoulder, S61.011A the thumb, C44.311 a basal cell carcinoma of the
    # nose; T14.8 needs its 7th character.
    ("warning", "diagnosis.description_contradicts", S3, 51, "S41.011A"),
    ("warning", "diagnosis.description_contradicts", S3, 52, "S61.011A"),
    ("warning", "diagnosis.not_billable", S3, 54, "T14.8"),
    ("warning", "diagnosis.description_contradicts", S3, 55, "C44.311"),
    # 13131/13132 are complex repairs, 14021 is scalp/arms/legs, 15260 a full thickness graft.
    ("error", "related_code.contradicts", S3, 60, "13131"),
    ("error", "related_code.contradicts", S3, 61, "14021"),
    ("error", "related_code.contradicts", S3, 62, "15260"),
    ("error", "related_code.contradicts", S3, 64, "13132"),
    # 004 (CPT 11004, a coding reference page): assistants offered although the page itself
    # says assistant indicator 1 (line 56), as CMS does.
    ("error", "modifier.forbidden_by_cms", S4, 79, "80"),
    ("error", "modifier.forbidden_by_cms", S4, 80, "82"),
    ("error", "modifier.forbidden_by_cms", S4, 83, "AS"),
]


@pytest.fixture(scope="module")
def reference() -> LintReference:
    return load_reference(EXTRACT_MPFS, EXTRACT_MUE)


@pytest.fixture(scope="module")
def shipped(reference: LintReference) -> list[LintFinding]:
    return lint(parse_seeds(SEEDS_DIR), reference)


def _lint(reference: LintReference, *docs: tuple[str, str]) -> list[LintFinding]:
    return lint([parse_text(name, text) for name, text in docs], reference)


def _keys(findings: list[LintFinding]) -> set[tuple[str, str, str]]:
    return {(f.kind, f.source, f.subject) for f in findings}


# ------------------------------------------------------------------------- shipped seeds


def test_shipped_seeds_exact_findings(shipped: list[LintFinding]) -> None:
    expected = {(kind, f"{name}:{line}", subject) for _, kind, name, line, subject in EXPECTED}
    assert _keys(shipped) == expected
    assert len(shipped) == len(EXPECTED)  # no duplicates


def test_shipped_seeds_severities(shipped: list[LintFinding]) -> None:
    severity = {(k, f"{n}:{line}", s): sev for sev, k, n, line, s in EXPECTED}
    assert {f: f.severity for f in shipped} == {
        f: severity[(f.kind, f.source, f.subject)] for f in shipped
    }


def test_findings_are_sorted_by_file_then_line_number(shipped: list[LintFinding]) -> None:
    keys = [(f.source.rsplit(":", 1)[0], int(f.source.rsplit(":", 1)[1])) for f in shipped]
    assert keys == sorted(keys)


def test_every_finding_names_its_evidence(shipped: list[LintFinding]) -> None:
    """Errors and warnings cite a master list row or a CMS record, never memory."""
    evidence = (".csv:", "modifiers.csv", "taxonomy.csv")
    for f in shipped:
        if f.severity != "info":
            assert any(e in f.message for e in evidence), f


def test_messages_carry_the_facts(shipped: list[LintFinding]) -> None:
    by_key = {(f.kind, f.source, f.subject): f.message for f in shipped}
    cosurg = by_key[("modifier.forbidden_by_cms", f"{S0}:27", "62")]
    assert "CO-SURG indicator 0" in cosurg and "PPRRVU2025_Oct-extract.csv:15" in cosurg
    assistant = by_key[("modifier.forbidden_by_cms", f"{S4}:79", "80")]
    assert f"the document itself says 1 at {S4}:56" in assistant
    assert "78" in by_key[("modifier.description_contradicts", f"{S2}:16", "11")]
    size = by_key[("related_code.contradicts", f"{S0}:53", "12032")]
    assert "2.6 cm to 7.5 cm" in size and f"{S3}:63" in size
    assert "19357" in by_key[("related_code.not_real", f"{S0}:50", "11961")]
    assert "208200000X" in by_key[("taxonomy.specialty_contradicts", f"{S0}:34", "207K00000X")]
    assert "14301, 14302" in by_key[("code.family_not_billable", f"{S1}:53", "1430X")]


def test_render_text_lists_every_finding_and_counts(shipped: list[LintFinding]) -> None:
    text = render_text(shipped)
    lines = text.splitlines()
    assert len(lines) == len(shipped) + 1
    assert lines[0].startswith(f"{S0}:18: error modifier.not_real 00: ")
    assert lines[-1] == "48 finding(s): 30 error(s), 11 warning(s), 7 info"
    assert render_text([]).splitlines() == ["0 finding(s): 0 error(s), 0 warning(s), 0 info"]


def test_exit_status_fails_only_strict_runs_with_errors(shipped: list[LintFinding]) -> None:
    assert exit_status(shipped, strict=True) == 1
    assert exit_status(shipped, strict=False) == 0
    not_errors = [f for f in shipped if f.severity != "error"]
    assert not_errors and exit_status(not_errors, strict=True) == 0


def test_run_lint_defaults_to_the_shipped_full_cms_tables(shipped: list[LintFinding]) -> None:
    """The lint judges the seeds against what a default build merges: the full CMS tables."""
    from scrubber.refdata.inputs import DEFAULT_MPFS, DEFAULT_MUE

    defaults = run_lint(SEEDS_DIR, None, None)
    assert defaults == run_lint(SEEDS_DIR, DEFAULT_MPFS, DEFAULT_MUE)
    assert run_lint(SEEDS_DIR, EXTRACT_MPFS, EXTRACT_MUE) == shipped


# ------------------------------------------------------------------ synthetic documents


def _publication(code: str, title: str, *tables: str) -> str:
    return f"Summary & Overview\nCPT {code}: {title}\nText.\n" + "\n".join(tables) + "\n"


def _modifiers(*rows: str) -> str:
    return "| Modifier | Description | When to Use |\n|---|---|---|\n" + "\n".join(rows)


def _taxonomies(*rows: str) -> str:
    return "| Taxonomy Code | Specialty | Notes |\n|---|---|---|\n" + "\n".join(rows)


def _diagnoses(*rows: str) -> str:
    return "| ICD-10 Code | Description | Clinical Relevance |\n|---|---|---|\n" + "\n".join(rows)


def _related(*rows: str) -> str:
    return (
        "| CPT Code | Description | Relationship to This Procedure |\n|---|---|---|\n"
        + "\n".join(rows)
    )


def test_modifier_not_real(reference: LintReference) -> None:
    doc = _publication("14020", "Local tissue transfer", _modifiers("00 | Placeholder | x |"))
    doc += _modifiers("22 | Increased procedural services | y |") + "\n"
    found = _lint(reference, ("900.txt", doc))
    assert _keys(found) == {("modifier.not_real", "900.txt:6", "00")}


def test_modifier_description_contradicts(reference: LintReference) -> None:
    doc = _publication(
        "99213",
        "Office visit",
        _modifiers(
            "25 | Decision for surgery | x |",  # 57's meaning
            "25 | Significant, separately identifiable E/M service on the day of a procedure |",
            "11 | Unplanned return to the operating room for a related procedure |",  # 78's
            "12 | Something nobody defines |",
        ),
    )
    found = _lint(reference, ("900.txt", doc))
    assert _keys(found) == {
        ("modifier.description_contradicts", "900.txt:6", "25"),
        ("modifier.description_contradicts", "900.txt:8", "11"),
        ("modifier.not_real", "900.txt:8", "11"),
        ("modifier.not_real", "900.txt:9", "12"),
    }
    assert "57" in next(f.message for f in found if f.source == "900.txt:6")


def test_modifier_forbidden_by_cms_and_documentation(reference: LintReference) -> None:
    forbidden = _publication(
        "11960",  # PPRRVU: BILAT 0, ASST 1, CO-SURG 0, TEAM 0, PC/TC 0
        "Tissue expander",
        _modifiers("50 | Bilateral procedure |", "80 | Assistant surgeon |", "TC | Technical |"),
    )
    allowed = _publication(
        "19307",  # PPRRVU: BILAT 1, ASST 2, CO-SURG 1
        "Mastectomy",
        _modifiers("50 | Bilateral procedure |", "80 | Assistant surgeon |", "62 | Two surgeons |"),
    )
    found = _lint(reference, ("900.txt", forbidden), ("901.txt", allowed))
    assert _keys(found) == {
        ("modifier.forbidden_by_cms", "900.txt:6", "50"),
        ("modifier.forbidden_by_cms", "900.txt:7", "80"),
        ("modifier.forbidden_by_cms", "900.txt:8", "TC"),
        ("modifier.needs_documentation", "901.txt:8", "62"),
    }
    assert {f.severity for f in found if f.kind == "modifier.needs_documentation"} == {"warning"}


def test_modifier_forbidden_by_the_seeds_own_indicator_without_cms(
    reference: LintReference,
) -> None:
    """A code CMS does not list is judged by what its own page says."""
    page = (
        "Official Description\n\nFrobnication of the widget\n\n"
        "The CPT® Code 99999 refers to frobnication.\n\n"
        "Short Descr FROB\nLong Descr Frobnication of the widget\n"
        "Bilateral Surgery (50) 1 - 150% payment adjustment applies.\n"
        "Co-Surgeons (62) 0 - Co-surgeons not permitted for this procedure.\n\n"
        "62 Two surgeons\n50 Bilateral procedure\nDate\n"
    )
    found = _lint(reference, ("900.txt", page))
    assert _keys(found) == {("modifier.forbidden_by_cms", "900.txt:12", "62")}
    assert "the seed's CO-SURG indicator 0" in found[0].message and "900.txt:10" in found[0].message


#: (seed indicator line, modifier line, values that refuse the modifier, values that need
#: documentation, every value): the RVU25D layout's scales, and what CMS says of each modifier.
GLOBAL_DAYS = ["000", "010", "090", "MMM", "XXX", "YYY", "ZZZ"]
INDICATOR_CASES: list[tuple[str, str, list[str], list[str], list[str]]] = [
    ("Bilateral Surgery (50)", "50 Bilateral procedure", [*"0239"], [], [*"01239"]),
    ("Assistant Surgeon", "80 Assistant surgeon", [*"19"], ["0"], [*"0129"]),
    ("Co-Surgeons (62)", "62 Two surgeons", [*"09"], ["1"], [*"0129"]),
    ("Team Surgery (66)", "66 Surgical team", [*"09"], ["1"], [*"0129"]),
    ("PC/TC Indicator", "26 Professional component", [*"02345789"], [], [*"0123456789"]),
    ("PC/TC Indicator", "TC Technical component", [*"023456789"], [], [*"0123456789"]),
    ("Global Days", "54 Surgical care only", ["000", "MMM", "XXX", "YYY", "ZZZ"], [], GLOBAL_DAYS),
    ("Global Days", "51 Multiple procedures", ["ZZZ"], [], GLOBAL_DAYS),
]


@pytest.mark.parametrize(
    ("label", "modifier", "refusing", "documentation", "values"), INDICATOR_CASES
)
def test_each_indicator_value_refuses_exactly_the_modifiers_the_layout_says(
    reference: LintReference,
    label: str,
    modifier: str,
    refusing: list[str],
    documentation: list[str],
    values: list[str],
) -> None:
    """Every value of the scale, stated by a page for a code CMS does not list (99999)."""
    verdicts: dict[str, str | None] = {}
    for value in values:
        page = (
            "Official Description\n\nFrobnication of the widget\n\n"
            "The CPT® Code 99999 refers to frobnication.\n\n"
            "Short Descr FROB\nLong Descr Frobnication of the widget\n"
            f"{label} {value} - as the layout says.\n\n{modifier}\nDate\n"
        )
        kinds = {f.kind for f in _lint(reference, ("900.txt", page))}
        assert len(kinds) <= 1, kinds
        verdicts[value] = next(iter(kinds), None)
    refused = dict.fromkeys(refusing, "modifier.forbidden_by_cms")
    documented = dict.fromkeys(documentation, "modifier.needs_documentation")
    assert verdicts == {value: refused.get(value) or documented.get(value) for value in values}


def test_modifier_not_applicable(reference: LintReference) -> None:
    surgical = _publication(
        "14020", "Local tissue transfer", _modifiers("QK | Medical direction |", "57 | Decision |")
    )
    anesthesia = _publication("00400", "Anesthesia", _modifiers("QK | Medical direction |"))
    visit = _publication("99213", "Office visit", _modifiers("57 | Decision for surgery |"))
    level_two = _publication("G0438", "Annual wellness visit", _modifiers("25 | Significant |"))
    found = _lint(
        reference, ("900.txt", surgical), ("901.txt", anesthesia), ("902.txt", visit),
        ("903.txt", level_two),
    )  # fmt: skip
    assert _keys(found) == {
        ("modifier.not_applicable", "900.txt:6", "QK"),
        ("modifier.not_applicable", "900.txt:7", "57"),
    }


def test_taxonomy_checks(reference: LintReference) -> None:
    doc = _publication(
        "14020",
        "Local tissue transfer",
        _taxonomies(
            "| 207K0000X | Plastic Surgery | |",  # 9 characters
            "| 207K00000X | Plastic Surgery | |",  # Allergy & Immunology
            "| 208200000X | Plastic Surgery | |",
            "| 2086X0206X | Surgery | |",  # its classification: right
            "| 2086S0105X | Hand Surgery | |",  # an alias of Surgery of the Hand
            "| 2080P0227X | General Surgery | |",  # not on the list, specialty is
            "| 111N00000X | Chiropractor | |",  # neither is on the list: nothing to say
        ),
    )
    found = _lint(reference, ("900.txt", doc))
    assert _keys(found) == {
        ("taxonomy.malformed", "900.txt:6", "207K0000X"),
        ("taxonomy.specialty_contradicts", "900.txt:7", "207K00000X"),
        ("taxonomy.unverified", "900.txt:11", "2080P0227X"),
    }
    assert [f.severity for f in found] == ["error", "error", "warning"]


def test_diagnosis_checks(reference: LintReference) -> None:
    doc = _publication(
        "14020",
        "Local tissue transfer",
        _diagnoses(
            "8S1.811A | Laceration | x |",  # shape: a digit first
            "S81.811A. | Laceration | x |",  # shape: a trailing dot
            "M79.6 | Pain in limb | x |",  # a subcategory
            "S81.811A | Laceration of right knee | x |",  # the lower leg, not the knee
            "S81.811A | Open wound of right lower leg, initial encounter | x |",  # broader: fine
            "S81811A | Laceration of left lower leg | x |",  # no dot is fine; the side is not
            "C44.311 | Squamous cell carcinoma of nose | x |",  # basal cell
            "M79.601 | Pain in right arm | x |",  # not on the list: nothing to say
        ),
    )
    found = _lint(reference, ("900.txt", doc))
    assert _keys(found) == {
        ("diagnosis.malformed", "900.txt:6", "8S1.811A"),
        ("diagnosis.malformed", "900.txt:7", "S81.811A."),
        ("diagnosis.not_billable", "900.txt:8", "M79.6"),
        ("diagnosis.description_contradicts", "900.txt:9", "S81.811A"),
        ("diagnosis.description_contradicts", "900.txt:11", "S81811A"),
        ("diagnosis.description_contradicts", "900.txt:12", "C44.311"),
    }
    messages = {f.source: f.message for f in found}
    assert "side: left" in messages["900.txt:11"]
    assert "kind: squamous cell carcinoma" in messages["900.txt:12"]


def test_related_code_against_the_master_list(reference: LintReference) -> None:
    doc = _publication(
        "14020",
        "Local tissue transfer",
        _related(
            "12032 | Repair, intermediate, scalp, arms and/or legs; 2.5 cm to 7.5 cm | x |",
            "12032 | Repair, intermediate, scalp, arms and/or legs; 2.6 cm to 7.5 cm | x |",
            "13131 | Complex repair of the forehead, 1.1 cm to 2.5 cm | x |",
            "13131 | Island pedicle flap of the forehead | x |",  # a flap: wrong kind
            "14061 | Adjacent tissue transfer, eyelids; 10.1 sq cm to 30.0 sq cm | x |",
            "14061 | Local flap of the scalp | x |",  # wrong site (a local flap is fine)
            "11961 | Tissue expander, breast | x |",  # no such code
            "11971 | Removal of tissue expander | x |",
        ),
    )
    found = _lint(reference, ("900.txt", doc))
    assert _keys(found) == {
        ("related_code.contradicts", "900.txt:6", "12032"),
        ("related_code.contradicts", "900.txt:9", "13131"),
        ("related_code.contradicts", "900.txt:11", "14061"),
        ("related_code.not_real", "900.txt:12", "11961"),
    }


def test_related_codes_without_a_master_entry_are_compared_with_each_other(
    reference: LintReference,
) -> None:
    """12034 is not on the master list: two documents that disagree are both reported."""
    one = _publication(
        "14020", "Local tissue transfer", _related("12034 | Repair, trunk; 7.6 cm to 12.5 cm |")
    )
    two = _publication(
        "11960", "Tissue expander", _related("12034 | Repair, trunk; 7.5 cm to 12.5 cm |")
    )
    three = _publication("15730", "Midface flap", _related("12034 | Repair; 12.5 cm |"))
    found = _lint(reference, ("900.txt", one), ("901.txt", two), ("902.txt", three))
    assert _keys(found) == {
        ("related_code.contradicts", "900.txt:6", "12034"),
        ("related_code.contradicts", "901.txt:6", "12034"),
    }
    assert {f.severity for f in found} == {"warning"}
    agreeing = _lint(reference, ("900.txt", one), ("902.txt", three))
    assert agreeing == []


def test_a_documents_own_code_against_the_master_list(reference: LintReference) -> None:
    wrong = _publication("14021", "Local flap of eyelids and nose (10.1 to 30 sq cm)")
    right = _publication("14020", "Local Tissue Transfer for Scalp, Arms, or Legs (≤10 cm2)")
    found = _lint(reference, ("900.txt", wrong), ("901.txt", right))
    assert _keys(found) == {("code.description_contradicts", "900.txt:2", "14021")}


def test_code_families_are_info(reference: LintReference) -> None:
    page = (
        "Candidates\n\nCodeProcedure DescriptionRVUNotes\n"
        "1430X“tissue rearrangement” – adjacent tissue transfer6.37For contouring\n"
        "15839Excision, excessive skin10.50Likely denied\n"
    )
    found = _lint(reference, ("900.txt", page))
    assert [(f.severity, f.kind, f.source, f.subject) for f in found] == [
        ("info", "code.family_not_billable", "900.txt:4", "1430X")
    ]


def test_seed_indicators_that_cms_contradicts(reference: LintReference) -> None:
    page = (
        "Official Description\n\nDebridement\n\nThe CPT® Code 11004 refers to debridement.\n\n"
        "Long Descr Debridement\n"
        "Bilateral Surgery (50) 1 - 150% payment adjustment applies.\n"  # CMS: 0
        "Co-Surgeons (62) 0 - Co-surgeons not permitted for this procedure.\n"  # CMS: 0
        "MUE 4\n"  # CMS: 1
    )
    found = _lint(reference, ("900.txt", page))
    assert _keys(found) == {
        ("indicator.contradicts_cms", "900.txt:8", "11004"),
        ("indicator.contradicts_cms", "900.txt:10", "11004"),
    }


def test_no_cms_data_means_no_cms_findings() -> None:
    """Without CMS rows the lint still checks the master lists, and invents no indicator."""
    bare = LintReference.from_rows(read_master_lists(), (), ())
    found = lint(parse_seeds(SEEDS_DIR), bare)
    kinds = {f.kind for f in found}
    assert "modifier.not_real" in kinds and "taxonomy.specialty_contradicts" in kinds
    forbidden = {(f.source, f.subject) for f in found if f.kind == "modifier.forbidden_by_cms"}
    # Only 004 states its own indicators; 000 and 003 state none.
    assert forbidden == {(f"{S4}:79", "80"), (f"{S4}:80", "82"), (f"{S4}:83", "AS")}


# ------------------------------------------------------------------------- master lists


def test_master_lists_cite_their_publications() -> None:
    master = read_master_lists()
    for entries in (
        master.modifiers.values(),
        master.taxonomies.values(),
        master.diagnoses.values(),
        master.procedures.values(),
        master.ranges,
    ):
        for entry in entries:
            assert ".csv:" in entry.source and ", " in entry.source, entry
    assert all(
        t.source.endswith("NUCC Health Care Provider Taxonomy code set")
        for t in master.taxonomies.values()
    )


@pytest.mark.parametrize(
    ("name", "row", "error"),
    [
        ("taxonomy.csv", "207K0000X,G,Allergy,,,NUCC", "is not a NUCC code"),
        ("icd10cm.csv", "M79.9,Pain,N,,CMS", "needs a note"),
        ("cpt_codes.csv", "12002,stitching,,,x,AMA", "not in the lint's vocabulary"),
        ("modifier_scope.csv", "ZZ,00100,01999,x,CMS", "not on the modifier master list"),
    ],
)
def test_a_bad_master_row_fails_with_file_and_line(
    tmp_path: Path, name: str, row: str, error: str
) -> None:
    master = tmp_path / "master"
    shutil.copytree(MASTER_DIR, master)
    path = master / name
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, row]) + "\n", encoding="utf-8")
    with pytest.raises(MasterListError, match=rf"^{name}:{len(lines) + 1}: .*{error}"):
        read_master_lists(master)


def test_documents_are_plain_data() -> None:
    """lint() takes parsed documents, so a caller can lint text it never wrote to disk."""
    doc: SeedDocument = parse_text("x.txt", _publication("14020", "Local tissue transfer"))
    assert lint([doc], LintReference.from_rows(read_master_lists(), (), ())) == []
