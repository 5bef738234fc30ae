"""The seed parser: exact extraction of the five seeds, the quirks, and refusing the unknown.

The expected records of each seed are in ``seed_expected/<seed>.json``; they were written from
the documents read line by line (``cat -n``), not dumped from the parser.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber.refdata import seeds as seeds_module
from scrubber.refdata.seeds import (
    SeedCode,
    SeedDocument,
    SeedModifier,
    SeedParseError,
    parse_seed,
    parse_seeds,
    parse_text,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS_DIR = ROOT / "seeds"
EXPECTED_DIR = pathlib.Path(__file__).parent / "seed_expected"
SEED_NAMES = sorted(p.name for p in SEEDS_DIR.glob("*.txt"))
RECORD_FIELDS = (
    "codes",
    "modifiers",
    "taxonomies",
    "diagnoses",
    "related_codes",
    "indicators",
    "add_ons",
    "facts",
    "mentions",
)
NBSP = "\xa0"


def _plain(records: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(record) for record in records]


def _expected(name: str) -> dict[str, Any]:
    path = EXPECTED_DIR / f"{name.removesuffix('.txt')}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write(tmp_path: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------
# The five seeds, exactly
# ------------------------------------------------------------------------------------------


def test_the_five_seeds_are_there() -> None:
    assert len(SEED_NAMES) == 5
    assert sorted(p.name for p in EXPECTED_DIR.glob("*.json")) == [
        n.replace(".txt", ".json") for n in SEED_NAMES
    ]


@pytest.mark.parametrize("name", SEED_NAMES)
@pytest.mark.parametrize("field", RECORD_FIELDS)
def test_seed_records_are_exactly_the_expected(name: str, field: str) -> None:
    doc = parse_seed(SEEDS_DIR / name)
    assert _plain(getattr(doc, field)) == _expected(name)[field]


@pytest.mark.parametrize("name", SEED_NAMES)
def test_seed_name_and_kind(name: str) -> None:
    doc = parse_seed(SEEDS_DIR / name)
    expected = _expected(name)
    assert (doc.name, doc.kind) == (expected["name"], expected["kind"])


def test_counts_per_seed() -> None:
    counts = {
        doc.name[:3]: tuple(len(getattr(doc, field)) for field in RECORD_FIELDS)
        for doc in parse_seeds(SEEDS_DIR)
    }
    # codes, modifiers, taxonomies, diagnoses, related, indicators, add-ons, facts, mentions
    assert counts == {
        "000": (1, 14, 5, 5, 5, 0, 0, 2, 0),
        "001": (5, 0, 0, 0, 0, 0, 0, 0, 5),
        "002": (1, 2, 0, 0, 0, 0, 0, 2, 0),
        "003": (1, 14, 5, 5, 6, 0, 0, 6, 0),
        "004": (1, 27, 0, 0, 0, 15, 1, 0, 0),
    }


#: For each kind of record, the attribute whose value its source line must contain.
_KEY_ON_SOURCE_LINE = {
    "codes": "description",
    "modifiers": "code",
    "taxonomies": "code",
    "diagnoses": "code",
    "related_codes": "code",
    "indicators": "text",
    "add_ons": "add_on",
    "facts": "text",
    "mentions": "code",
}


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_source_points_at_a_line_holding_the_fact(name: str) -> None:
    lines = (SEEDS_DIR / name).read_text(encoding="utf-8").split("\n")
    doc = parse_seed(SEEDS_DIR / name)
    for field, attr in _KEY_ON_SOURCE_LINE.items():
        for record in getattr(doc, field):
            file_name, number = record.source.rsplit(":", 1)
            assert file_name == name
            assert getattr(record, attr) in lines[int(number) - 1], record


def test_parse_seeds_on_the_seed_directory_is_sorted_by_name() -> None:
    docs = parse_seeds(SEEDS_DIR)
    assert [d.name for d in docs] == SEED_NAMES
    assert [d.kind for d in docs] == [
        "code_publication",
        "advocacy",
        "code_publication",
        "code_publication",
        "coding_reference",
    ]


def test_no_seed_value_is_written_into_the_parser() -> None:
    source = pathlib.Path(seeds_module.__file__).read_text(encoding="utf-8")
    values: set[str] = set()
    for doc in parse_seeds(SEEDS_DIR):
        for field in RECORD_FIELDS:
            for record in getattr(doc, field):
                for attr in ("code", "add_on", "description", "specialty"):
                    value = getattr(record, attr, None)
                    if isinstance(value, str) and len(value) >= 5:
                        values.add(value)
    assert values
    assert sorted(v for v in values if v in source) == []


def test_records_are_frozen_plain_data() -> None:
    doc = parse_seed(SEEDS_DIR / SEED_NAMES[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.modifiers[0].code = "XX"  # type: ignore[misc]
    assert not hasattr(doc, "__dict__")
    assert not hasattr(doc.codes[0], "__dict__")
    assert isinstance(doc.modifiers, tuple)


# ------------------------------------------------------------------------------------------
# Code publication quirks
# ------------------------------------------------------------------------------------------

PUBLICATION = """\
Summary & Overview
CPT 99999: Made-up Procedure
Prose about CPT code 99999.
Billing Code Overview
-
Service type: Imaginary
- Inline bullet
Coding Specifications
| Modifier | Description | When to Use |
|---|---|---|
| AA | With both pipes | Use A. |
BB | No leading pipe | Use B. |
| CC | No trailing pipe | Use C.
DD | Neither pipe | Use D.
EE | Only two cells
FF | Empty trailing cells | Use F. | | |
| Taxonomy Code | Specialty | Notes |
|---|---|---|
1234567890 | Some Specialty | Right after the modifier rows, no blank line |
| Payer | Policy | Notes |
|---|---|---|
| Unknown table | skipped | entirely |
Related Diagnoses
| ICD-10 Code | Description | Clinical Relevance |
|---|---|---|
Z99.9 | A diagnosis | Relevant
Some Unknown Section
Text that is skipped.
| CPT Code | Description | Relationship to This Procedure |
|---|---|---|
88888 | Another code | Ends the file mid-table"""


def test_publication_quirks(tmp_path: pathlib.Path) -> None:
    doc = parse_seed(_write(tmp_path, "pub.txt", PUBLICATION))
    assert doc.kind == "code_publication"
    assert doc.codes == (
        SeedCode("99999", False, "Made-up Procedure", None, None, "pub.txt:2", "pub.txt:2"),
    )
    assert [(m.code, m.description, m.when_to_use, m.source) for m in doc.modifiers] == [
        ("AA", "With both pipes", "Use A.", "pub.txt:11"),
        ("BB", "No leading pipe", "Use B.", "pub.txt:12"),
        ("CC", "No trailing pipe", "Use C.", "pub.txt:13"),
        ("DD", "Neither pipe", "Use D.", "pub.txt:14"),
        ("EE", "Only two cells", None, "pub.txt:15"),
        ("FF", "Empty trailing cells", "Use F.", "pub.txt:16"),
    ]
    assert all(m.for_code == "99999" for m in doc.modifiers)
    assert [(t.code, t.specialty, t.source) for t in doc.taxonomies] == [
        ("1234567890", "Some Specialty", "pub.txt:19"),
    ]
    assert [(d.code, d.relevance, d.source) for d in doc.diagnoses] == [
        ("Z99.9", "Relevant", "pub.txt:26"),
    ]
    assert [(r.code, r.relationship, r.source) for r in doc.related_codes] == [
        ("88888", "Ends the file mid-table", "pub.txt:31"),
    ]
    assert [(f.section, f.label, f.text, f.source) for f in doc.facts] == [
        ("Billing Code Overview", "Service type", "Imaginary", "pub.txt:6"),
        ("Billing Code Overview", None, "Inline bullet", "pub.txt:7"),
    ]
    assert doc.indicators == doc.add_ons == doc.mentions == ()


def test_publication_ending_mid_row_keeps_the_partial_row(tmp_path: pathlib.Path) -> None:
    text = "CPT 99999: Title\n| Modifier | Description | When to Use |\n|---|---|---|\n22 | Incr"
    doc = parse_seed(_write(tmp_path, "cut.txt", text))
    assert doc.modifiers == (SeedModifier("22", "Incr", None, "99999", "cut.txt:4"),)


def test_publication_blank_line_inside_a_table_does_not_end_it(tmp_path: pathlib.Path) -> None:
    text = (
        "CPT 99999: Title\n| Modifier | Description | When to Use |\n|---|---|---|\n"
        "AA | a | x\n\nBB | b | y\nProse ends it.\nCC | c | z\n"
    )
    doc = parse_seed(_write(tmp_path, "gap.txt", text))
    assert [(m.code, m.source) for m in doc.modifiers] == [("AA", "gap.txt:4"), ("BB", "gap.txt:6")]


def test_publication_crlf_line_endings(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(PUBLICATION.replace("\n", "\r\n").encode("utf-8"))
    doc = parse_seed(path)
    assert doc.modifiers[2].when_to_use == "Use C."
    assert doc.related_codes[0].source == "crlf.txt:31"


def test_publication_row_with_more_cells_than_its_header_is_refused(
    tmp_path: pathlib.Path,
) -> None:
    text = (
        "CPT 99999: Title\n| Modifier | Description | When to Use |\n|---|---|---|\n"
        "22 | a | b | c\n"
    )
    with pytest.raises(SeedParseError, match=r"^extra\.txt:4: modifier row has 4 cells"):
        parse_seed(_write(tmp_path, "extra.txt", text))


def test_publication_row_without_description_is_refused(tmp_path: pathlib.Path) -> None:
    text = "CPT 99999: Title\n| Taxonomy Code | Specialty | Notes |\n|---|---|---|\n| 123 |\n"
    with pytest.raises(SeedParseError, match=r"^short\.txt:4: taxonomy row"):
        parse_seed(_write(tmp_path, "short.txt", text))


def test_publication_known_table_with_unexpected_columns_is_refused(
    tmp_path: pathlib.Path,
) -> None:
    text = "CPT 99999: Title\n| Modifier | When to Use | Description |\n|---|---|---|\n"
    with pytest.raises(SeedParseError, match=r"^cols\.txt:2: modifier table header"):
        parse_seed(_write(tmp_path, "cols.txt", text))


# ------------------------------------------------------------------------------------------
# Coding reference page quirks
# ------------------------------------------------------------------------------------------

REFERENCE = f"""\
Site navigation
Official Description

Doing something to a made-up body part

The CPT® Code 99998 refers to a made-up procedure; see CPT® Codes 99996 and 99997.
More about CPT® Code 99998.

Short{NBSP}Descr MADE UP
Long{NBSP}Descr Doing something to a made-up body part, long form
Status Code Non-Covered Services
Global{NBSP}Days 090 - Major Surgery
Endo Base 12345
PC/TC{NBSP}Indicator{NBSP}(26,{NBSP}TC) 1 - Diagnostic Tests
MUE 2 (Date of service edit)

APC{NBSP}Status{NBSP}Indicator T - Procedure or Service

This is a primary code that can be used with these additional add-on codes.

99995 Addon Code MPFS Status: Active Code APC N Illustration for Code An add-on
99994 Addon Code An add-on written plainly
A1 First modifier
B2 Second modifier: with a colon
Date
Action
ZZ Not a modifier: after the history header
Example: "What is CPT code 99213?"
"""


def test_reference_page(tmp_path: pathlib.Path) -> None:
    doc = parse_seed(_write(tmp_path, "ref.txt", REFERENCE))
    assert doc.kind == "coding_reference"
    assert doc.codes == (
        SeedCode(
            code="99998",
            is_family=False,
            description="Doing something to a made-up body part, long form",
            rvu=None,
            notes=None,
            source="ref.txt:10",
            code_source="ref.txt:6",
            short_description="MADE UP",
            medium_description=None,
            official_description="Doing something to a made-up body part",
        ),
    )
    assert [(i.name, i.value, i.text, i.source) for i in doc.indicators] == [
        ("status", "N", "Non-Covered Services", "ref.txt:11"),
        ("global_days", "090", "090 - Major Surgery", "ref.txt:12"),
        ("pctc", "1", "1 - Diagnostic Tests", "ref.txt:14"),
        ("mue", "2", "2 (Date of service edit)", "ref.txt:15"),
        ("apc_status", "T", "T - Procedure or Service", "ref.txt:17"),
    ]
    assert all(i.for_code == "99998" for i in doc.indicators)
    assert [(a.primary, a.add_on, a.description, a.mpfs_status, a.apc) for a in doc.add_ons] == [
        ("99998", "99995", "An add-on", "Active Code", "N"),
        ("99998", "99994", "An add-on written plainly", None, None),
    ]
    assert [(m.code, m.description, m.when_to_use, m.source) for m in doc.modifiers] == [
        ("A1", "First modifier", None, "ref.txt:23"),
        ("B2", "Second modifier: with a colon", None, "ref.txt:24"),
    ]


def test_reference_page_without_long_descr_uses_the_official_description(
    tmp_path: pathlib.Path,
) -> None:
    text = "Official Description\n\nOfficial text\n\nCPT® Code 99998 prose\n\nMUE 3\n"
    doc = parse_seed(_write(tmp_path, "off.txt", text))
    assert (doc.codes[0].description, doc.codes[0].source) == ("Official text", "off.txt:3")
    assert [(i.name, i.value) for i in doc.indicators] == [("mue", "3")]


def test_reference_page_prose_that_looks_like_a_label_is_not_the_block(
    tmp_path: pathlib.Path,
) -> None:
    text = (
        "Official Description\n\nX\n\nCPT Code 99998 is described here.\n"
        "MUE limits may apply to this code.\n\n"
        "Global Days 010 - Minor Procedure\nMUE 2\n"
        "This is a primary code that can be used with these additional add-on codes.\n"
        "99997 Addon Code An add-on\nZ1 A modifier\n"
    )
    doc = parse_seed(_write(tmp_path, "prose.txt", text))
    assert [(i.name, i.value, i.source) for i in doc.indicators] == [
        ("global_days", "010", "prose.txt:8"),
        ("mue", "2", "prose.txt:9"),
    ]
    assert [(a.add_on, a.source) for a in doc.add_ons] == [("99997", "prose.txt:11")]
    assert [(m.code, m.source) for m in doc.modifiers] == [("Z1", "prose.txt:12")]


def test_reference_page_status_without_known_name_keeps_the_text(tmp_path: pathlib.Path) -> None:
    text = "Official Description\n\nX\n\nCPT Code 99998\n\nStatus Code Something New\n"
    doc = parse_seed(_write(tmp_path, "st.txt", text))
    assert [(i.name, i.value, i.text) for i in doc.indicators] == [
        ("status", "Something New", "Something New"),
    ]


def test_reference_page_naming_two_codes_as_its_own_is_refused(tmp_path: pathlib.Path) -> None:
    text = "Official Description\n\nX\n\nCPT® Code 99998 and CPT® Code 99997.\nMUE 1\n"
    with pytest.raises(SeedParseError, match=r"^two\.txt: .*several codes.*99998.*99997"):
        parse_seed(_write(tmp_path, "two.txt", text))


def test_reference_page_without_its_code_is_refused(tmp_path: pathlib.Path) -> None:
    text = "Official Description\n\nSomething\n\nMUE 1\n"
    with pytest.raises(SeedParseError, match=r"^nocode\.txt: "):
        parse_seed(_write(tmp_path, "nocode.txt", text))


def test_reference_page_announcing_unreadable_add_ons_is_refused(tmp_path: pathlib.Path) -> None:
    text = (
        "Official Description\n\nX\n\nCPT Code 99998\n\nMUE 1\n\n"
        "This is a primary code that can be used with these additional add-on codes.\n"
        "something else entirely\n"
    )
    with pytest.raises(SeedParseError, match=r"^addon\.txt:9: add-on codes announced"):
        parse_seed(_write(tmp_path, "addon.txt", text))


# ------------------------------------------------------------------------------------------
# Advocacy page quirks
# ------------------------------------------------------------------------------------------

ADVOCACY = """\
A page title

Codes like 9990X and 99901 in prose; 12345.6 and 2020 are not codes.

CodeProcedure DescriptionRVUNotes
9990X“quoted” – a family (example: 10.1 sq cm)1.25For something
99901Exact code2.50
Continued notes
spread over two lines
99902Variable onevariable
99903Last one3.00(bracketed notes)

Family codes (9991X) have RVU values of 10.00 – 12.50 which is high. 99904 has none.
"""


def test_advocacy_page(tmp_path: pathlib.Path) -> None:
    doc = parse_seed(_write(tmp_path, "adv.txt", ADVOCACY))
    assert doc.kind == "advocacy"
    rows = [(c.code, c.is_family, c.description, c.rvu, c.notes, c.source) for c in doc.codes]
    assert rows == [
        (
            "9990X",
            True,
            "“quoted” – a family (example: 10.1 sq cm)",
            "1.25",
            "For something",
            "adv.txt:6",
        ),
        (
            "99901",
            False,
            "Exact code",
            "2.50",
            "Continued notes spread over two lines",
            "adv.txt:7",
        ),
        ("99902", False, "Variable one", "variable", None, "adv.txt:10"),
        ("99903", False, "Last one", "3.00", "(bracketed notes)", "adv.txt:11"),
    ]
    assert [(m.code, m.is_family, m.rvu, m.source) for m in doc.mentions] == [
        ("9990X", True, None, "adv.txt:3"),
        ("99901", False, None, "adv.txt:3"),
        ("9991X", True, "10.00 – 12.50", "adv.txt:13"),
        ("99904", False, None, "adv.txt:13"),
    ]
    assert doc.modifiers == doc.indicators == doc.add_ons == ()


def test_advocacy_header_with_spaces_is_recognised(tmp_path: pathlib.Path) -> None:
    text = "Code Procedure Description RVU Notes\n19499Unlisted thingvariableNotes\n"
    doc = parse_seed(_write(tmp_path, "spaced.txt", text))
    assert [(c.code, c.description, c.rvu, c.notes) for c in doc.codes] == [
        ("19499", "Unlisted thing", "variable", "Notes"),
    ]


def test_advocacy_row_without_rvu_is_refused(tmp_path: pathlib.Path) -> None:
    text = "CodeProcedure DescriptionRVUNotes\n1430XTissue rearrangement\n"
    with pytest.raises(SeedParseError, match=r"^norvu\.txt:2: candidate table row"):
        parse_seed(_write(tmp_path, "norvu.txt", text))


def test_advocacy_table_starting_with_a_continuation_is_refused(tmp_path: pathlib.Path) -> None:
    text = "CodeProcedure DescriptionRVUNotes\nNot a row\n"
    with pytest.raises(SeedParseError, match=r"^cont\.txt:2: "):
        parse_seed(_write(tmp_path, "cont.txt", text))


def test_advocacy_table_without_rows_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(SeedParseError, match=r"^empty\.txt:1: candidate table without rows"):
        parse_seed(_write(tmp_path, "empty.txt", "CodeProcedure DescriptionRVUNotes\n"))


# ------------------------------------------------------------------------------------------
# Unknown documents, directories
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "Just some prose about CPT code 11960 and nothing else.\n",
        "| Modifier | Description | When to Use |\n|---|---|---|\n22 | x | y |\n",
        "Line 1\nLine 2\nLine 3\nLine 4\nLine 5\nLine 6\nCPT 11960: Title too far down\n",
    ],
)
def test_unrecognised_document_is_refused_naming_the_file(
    tmp_path: pathlib.Path, text: str
) -> None:
    with pytest.raises(SeedParseError, match=r"^mystery\.txt: not a recognised seed document"):
        parse_seed(_write(tmp_path, "mystery.txt", text))


def test_ambiguous_document_is_refused(tmp_path: pathlib.Path) -> None:
    text = "CPT 99999: Title\nCodeProcedure DescriptionRVUNotes\n99999Thing1.00\n"
    with pytest.raises(SeedParseError, match=r"^both\.txt: ambiguous"):
        parse_seed(_write(tmp_path, "both.txt", text))


def test_non_utf8_file_is_refused_naming_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("CPT 99999: Caf\xe9\n".encode("latin-1"))
    with pytest.raises(SeedParseError, match=r"^latin1\.txt: not UTF-8"):
        parse_seed(path)


def test_parse_seeds_reads_only_txt_files_directly_in_the_directory(
    tmp_path: pathlib.Path,
) -> None:
    _write(tmp_path, "b.txt", "CPT 99992: B\n")
    _write(tmp_path, "a.txt", "CPT 99991: A\n")
    _write(tmp_path, "c.md", "CPT 99993: not a seed\n")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "d.txt", "CPT 99994: nested\n")
    (tmp_path / "dir.txt").mkdir()
    docs = parse_seeds(tmp_path)
    assert [(d.name, d.codes[0].code) for d in docs] == [("a.txt", "99991"), ("b.txt", "99992")]
    assert parse_seeds(tmp_path / "sub")[0].codes[0].source == "d.txt:1"


def test_parse_text_is_parse_seed_without_the_file() -> None:
    name = SEED_NAMES[0]
    text = (SEEDS_DIR / name).read_text(encoding="utf-8")
    assert parse_text(name, text) == parse_seed(SEEDS_DIR / name)


# ------------------------------------------------------------------------------------------
# Robustness: damaged seeds parse or are refused, never crash
# ------------------------------------------------------------------------------------------

_SEED_LINES = {
    name: (SEEDS_DIR / name).read_text(encoding="utf-8").split("\n") for name in SEED_NAMES
}


@st.composite
def _damaged_seed(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(SEED_NAMES))
    lines = list(_SEED_LINES[name])
    for _ in range(draw(st.integers(1, 6))):
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        operation = draw(st.sampled_from(["cut", "drop", "dup", "pipe", "unpipe", "noise"]))
        if operation == "cut":
            lines[index] = line[: draw(st.integers(0, len(line)))]
        elif operation == "drop" and len(lines) > 1:
            del lines[index]
        elif operation == "dup":
            lines.insert(index, line)
        elif operation == "pipe":
            lines[index] = line + " | extra"
        elif operation == "unpipe":
            lines[index] = line.replace("|", "", 1)
        else:
            lines[index] = draw(st.text(max_size=40))
    return name, "\n".join(lines)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_damaged_seed())
def test_damaged_seed_parses_or_is_refused_naming_the_file(case: tuple[str, str]) -> None:
    name, text = case
    try:
        doc = parse_text(name, text)
    except SeedParseError as exc:
        assert str(exc).startswith(f"{name}:")
        return
    assert isinstance(doc, SeedDocument)
    for field in RECORD_FIELDS:
        for record in getattr(doc, field):
            assert re.fullmatch(rf"{re.escape(name)}:[1-9][0-9]*", record.source)
