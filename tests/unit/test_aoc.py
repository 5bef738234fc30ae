"""CMS add-on code edits: the xlsx reader, the bundle table and the per-date index.

Workbooks are written with openpyxl in ``tmp_path`` the way CMS lays them out: a notice row, then
the header row, then one row per add-on/primary pair. Line numbers in errors are spreadsheet rows.
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pydantic
import pytest

from scrubber.refdata.aoc import AocIndex, AocRow, AocRule, AocTable
from scrubber.refdata.cms import CmsFileError
from scrubber.refdata.cms_aoc import julian_date, read_aoc

NOTICE = "CPT codes, descriptions and other data only are copyright American Medical Association."

#: CMS's column names, in CMS's order.
CMS_HEADER = (
    "AOC_Edit_Type",
    "Add-On_Code",
    "AOC_DelDT",
    "Primary_Code",
    "Primary_Code_DelDT",
    "AOC_Edit_EffDT",
    "AOC_Edit_DelDT",
    "Special_Instruction_Notes",
)

#: The same columns reordered and spelled loosely: the reader finds them by name.
LOOSE_HEADER = (
    "add on code",
    "Primary Code",
    "aoc-edit-type",
    "AOC_EDIT_EFFDT",
    "Aoc Edit DelDT",
    "Special Instruction Notes",
    "primary_code_deldt",
    "AOC DelDT",
    "Unrelated column",
)
_LOOSE_ORDER = (1, 3, 0, 5, 6, 7, 4, 2)  # LOOSE_HEADER's column i holds CMS column _LOOSE_ORDER[i]

#: Rows in CMS order: type, add-on, add-on deletion, primary, primary deletion, effective,
#: edit deletion, notes. Cells as openpyxl gives them: numbers where Excel stores numbers.
ROWS: list[tuple[object, ...]] = [
    (1, 99292, "*", 99291, "*", 2024001, "*", None),  # row 3
    (1, "22552", "*", "22551", "*", "2024001", "*", ""),  # row 4
    (1, "22552", "*", "22554", 2024182, 2024001, "*", ""),  # row 5: primary deleted 2024-06-30
    (2, "99417", "*", "CCCCC", "*", 2024001, "*", "Prolonged service"),  # row 6
    (3, "11001", "*", "11000", "*", 2023001, 2023365, "Debridement"),  # row 7: 2023 only
    (1, 1953, "*", 1951, "*", 2024001, "*", None),  # row 8: anesthesia codes stored as numbers
    (1, "15101", 2024366, "15100", "*", 2024001, "*", None),  # row 9: add-on deleted 2024-12-31
    (1, "64480", "*", "64479", "*", 2024001, "*", "type 1 row"),  # row 10
    (2, "64480", "*", "CCCCC", "*", 2024001, "*", "type 2 row"),  # row 11
    (3, "64484", "*", "64483", "*", 2024001, "*", None),  # row 12
    (2, "64484", "*", "CCCCC", "*", 2024001, "*", None),  # row 13
    (3, "0001T", "*", "CCCCC", "*", 2024001, "*", None),  # row 14: type 3 deferring as well
    (3, "0001T", "*", "0000T", "*", 2024001, "*", None),  # row 15
]


def _workbook(
    path: Path,
    rows: Sequence[Sequence[object]],
    header: Sequence[object] = CMS_HEADER,
    notice: bool = True,
    extra_sheets: Sequence[str] = (),
    title: str = "AOC",
) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title
    if notice:
        sheet.append([NOTICE])
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    for name in extra_sheets:
        workbook.create_sheet(name).append(["Notes on this file"])
    workbook.save(path)
    return path


def _loose(row: Sequence[object]) -> list[object]:
    return [*(row[i] for i in _LOOSE_ORDER), "ignored"]


@pytest.fixture
def aoc_file(tmp_path: Path) -> Path:
    return _workbook(tmp_path / "AOC_V2025Q1.xlsx", ROWS)


@pytest.fixture
def index(aoc_file: Path) -> AocIndex:
    return AocIndex.from_table(AocTable.from_rows(read_aoc(aoc_file)))


def _error(path: Path, line: int, *fragments: str, name: str | None = None) -> CmsFileError:
    with pytest.raises(CmsFileError) as info:
        read_aoc(path)
    err = info.value
    assert err.line == line, str(err)
    assert str(err).startswith(f"{name or path.name}:{line}: "), str(err)
    for fragment in fragments:
        assert fragment in str(err), str(err)
    return err


# ---------------------------------------------------------------------------- Julian dates


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2024001, date(2024, 1, 1)),
        ("2024001", date(2024, 1, 1)),
        (" 2024060 ", date(2024, 2, 29)),
        (2024366, date(2024, 12, 31)),
        (2023365, date(2023, 12, 31)),
        (2024001.0, date(2024, 1, 1)),
        ("*", None),
        (" * ", None),
        (datetime(2024, 3, 1, 0, 0), date(2024, 3, 1)),
        (date(2024, 3, 1), date(2024, 3, 1)),
    ],
)
def test_julian_dates(value: object, expected: date | None) -> None:
    assert julian_date(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (2023366, "2023 has no day 366"),
        (2024000, "2024 has no day 0"),
        ("20240101", "not a Julian date YYYYDDD"),
        ("24001", "not a Julian date YYYYDDD"),
        ("", "not a Julian date YYYYDDD"),
        (None, "not a Julian date YYYYDDD"),
        ("2024-01-01", "not a Julian date YYYYDDD"),
        (1800001, "year 1800"),
        (2024001.5, "not a Julian date YYYYDDD"),
        (True, "not a Julian date YYYYDDD"),
    ],
)
def test_bad_julian_dates_are_refused(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        julian_date(value)


# ---------------------------------------------------------------------------- reading


def test_rows_are_read_with_values_converted_and_sources(aoc_file: Path) -> None:
    rows = read_aoc(aoc_file)
    assert len(rows) == len(ROWS)
    assert rows[0] == AocRow(
        edit_type=1,
        add_on="99292",
        add_on_deletion=None,
        primary="99291",
        primary_deletion=None,
        effective=date(2024, 1, 1),
        deletion=None,
        notes="",
        source="AOC_V2025Q1.xlsx:3",
    )
    assert rows[2].primary_deletion == date(2024, 6, 30)
    assert (rows[3].primary, rows[3].notes) == (None, "Prolonged service")  # CCCCC
    assert (rows[4].effective, rows[4].deletion) == (date(2023, 1, 1), date(2023, 12, 31))
    assert (rows[5].add_on, rows[5].primary) == ("01953", "01951")  # leading zeros back
    assert rows[6].add_on_deletion == date(2024, 12, 31)
    assert [r.source for r in rows][-1] == f"AOC_V2025Q1.xlsx:{len(ROWS) + 2}"


def test_columns_are_found_by_name_in_any_order_and_spelling(
    tmp_path: Path, aoc_file: Path
) -> None:
    loose = _workbook(tmp_path / "loose.xlsx", [_loose(r) for r in ROWS], header=LOOSE_HEADER)
    read = read_aoc(loose)
    assert [replace(r, source="") for r in read] == [
        replace(r, source="") for r in read_aoc(aoc_file)
    ]
    assert read[0].source == "loose.xlsx:3"


def test_a_header_without_a_notice_row_and_trailing_blank_rows_are_fine(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "aoc.xlsx", [*ROWS[:2], (None,) * 8, ("",) * 8], notice=False)
    rows = read_aoc(path)
    assert [r.source for r in rows] == ["aoc.xlsx:2", "aoc.xlsx:3"]


def test_several_sheets_read_the_one_with_the_header_and_name_it_in_errors(
    tmp_path: Path,
) -> None:
    good = _workbook(tmp_path / "aoc.xlsx", ROWS[:2], extra_sheets=["Read Me"])
    assert len(read_aoc(good)) == 2
    bad = _workbook(tmp_path / "bad.xlsx", [ROWS[0], (4, *ROWS[0][1:])], extra_sheets=["Read Me"])
    _error(bad, 4, "column 'AOC_Edit_Type': '4' is not an AOC edit type", name="bad.xlsx[AOC]")


def test_a_zip_holding_the_workbook_is_read_and_named_in_sources(
    tmp_path: Path, aoc_file: Path
) -> None:
    path = tmp_path / "AOC_V2025Q1.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(aoc_file, "AOC_V2025Q1/AOC_V2025Q1.xlsx")
        archive.writestr("AOC_V2025Q1/Read Me.pdf", b"%PDF")
        archive.writestr("__MACOSX/AOC_V2025Q1/._AOC_V2025Q1.xlsx", b"junk")
    rows = read_aoc(path)
    assert len(rows) == len(ROWS)
    assert rows[0].source == "AOC_V2025Q1.zip!AOC_V2025Q1.xlsx:3"


def test_errors_inside_a_zip_name_archive_and_member(tmp_path: Path) -> None:
    book = _workbook(tmp_path / "AOC.xlsx", [(1, "9929", "*", "99291", "*", 2024001, "*", "")])
    path = tmp_path / "AOC.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(book, "AOC.xlsx")
    _error(path, 3, "column 'Add-On_Code': '9929'", name="AOC.zip!AOC.xlsx")


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        ({"Read Me.pdf": b"%PDF"}, "no .xlsx member"),
        ({"a.xlsx": b"x", "b.xlsx": b"x"}, "2 (a.xlsx, b.xlsx) .xlsx member"),
    ],
)
def test_a_zip_without_exactly_one_workbook_is_refused(
    tmp_path: Path, members: dict[str, bytes], fragment: str
) -> None:
    path = tmp_path / "AOC.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=r"AOC\.zip: ") as info:
        read_aoc(path)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [("AOC.xlsx", b"not a workbook"), ("AOC.zip", b"not a zip")],
)
def test_a_file_that_is_not_a_workbook_is_refused(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{name}: not a readable"):
        read_aoc(path)


def _replace(row: int, column: int, value: object) -> list[tuple[object, ...]]:
    """ROWS with one cell changed; ``row`` is the spreadsheet row (data starts at row 3)."""
    rows = list(ROWS)
    cells = list(rows[row - 3])
    cells[column] = value
    rows[row - 3] = tuple(cells)
    return rows


@pytest.mark.parametrize(
    ("rows", "line", "fragment"),
    [
        (_replace(4, 0, 4), 4, "column 'AOC_Edit_Type': '4' is not an AOC edit type (1, 2 or 3)"),
        (_replace(4, 0, None), 4, "column 'AOC_Edit_Type': '' is not an AOC edit type"),
        (_replace(4, 0, "type 1"), 4, "'type 1' is not an AOC edit type"),
        (_replace(5, 1, "2255"), 5, "column 'Add-On_Code': '2255' is not a 5-character"),
        (_replace(5, 1, "225522"), 5, "'225522' is not a 5-character HCPCS/CPT code"),
        (_replace(5, 1, 123456), 5, "'123456' is not a 5-character"),
        (_replace(5, 1, None), 5, "column 'Add-On_Code': '' is not a 5-character"),
        (_replace(6, 3, "CCCC"), 6, "column 'Primary_Code': 'CCCC' is not a 5-character"),
        (_replace(6, 3, "22-51"), 6, "'22-51' is not a 5-character"),
        (_replace(7, 2, "2024-01-01"), 7, "column 'AOC_DelDT': '2024-01-01' is not a Julian"),
        (_replace(7, 4, 2023366), 7, "column 'Primary_Code_DelDT': '2023366' is not a Julian "
         "date: 2023 has no day 366"),
        (_replace(7, 5, "*"), 7, "column 'AOC_Edit_EffDT': '*' is not allowed"),
        (_replace(7, 5, None), 7, "column 'AOC_Edit_EffDT': '' is not a Julian date"),
        (_replace(7, 6, ""), 7, "column 'AOC_Edit_DelDT': '' is not a Julian date"),
        (_replace(8, 6, 20240101), 8, "'20240101' is not a Julian date YYYYDDD"),
        ([*ROWS[:3], (None,) * 8, *ROWS[3:]], 6, "blank row between data rows"),
    ],
)  # fmt: skip
def test_a_bad_cell_is_an_error_naming_file_row_and_column(
    tmp_path: Path, rows: list[tuple[object, ...]], line: int, fragment: str
) -> None:
    _error(_workbook(tmp_path / "AOC_V2025Q1.xlsx", rows), line, fragment)


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    header = [h for h in CMS_HEADER if h != "Primary_Code_DelDT"]
    rows = [[c for i, c in enumerate(r) if i != 4] for r in ROWS]
    _error(_workbook(tmp_path / "aoc.xlsx", rows, header=header), 2,
           "required column 'Primary_Code_DelDT' not found", "'Add-On_Code'")  # fmt: skip


def test_a_doubled_column_is_refused(tmp_path: Path) -> None:
    header = [*CMS_HEADER, "Add On Code"]
    _error(_workbook(tmp_path / "aoc.xlsx", [(*r, "x") for r in ROWS], header=header), 2,
           "column 'Add-On_Code' appears twice (cells 2, 9)")  # fmt: skip


def test_a_workbook_without_the_header_is_refused(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "aoc.xlsx", ROWS, header=["Code", "Type"])
    with pytest.raises(ValueError, match=r"aoc\.xlsx: no sheet has a header row"):
        read_aoc(path)


def test_a_header_without_rows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no AOC edit rows"):
        read_aoc(_workbook(tmp_path / "aoc.xlsx", []))


# ---------------------------------------------------------------------------- the table


def test_the_table_is_sorted_deterministic_and_round_trips(aoc_file: Path) -> None:
    rows = read_aoc(aoc_file)
    table = AocTable.from_rows(rows)
    assert table == AocTable.from_rows(reversed(rows))
    assert table.model_dump_json() == AocTable.from_rows(reversed(rows)).model_dump_json()
    assert [r[1] for r in table.rows] == sorted(r[1] for r in table.rows)
    again = AocTable.model_validate_json(table.model_dump_json())
    assert again == table
    assert set(again.to_rows()) == set(rows)
    assert '"2024-06-30"' in table.model_dump_json()  # dates as ISO text in the bundle


def test_the_table_describes_itself_for_status(aoc_file: Path) -> None:
    assert AocTable.from_rows(read_aoc(aoc_file)).describe() == {
        "files": ["AOC_V2025Q1.xlsx"],
        "rows": len(ROWS),
        "add_ons": 9,
        "add_ons_by_type": {"1": 5, "2": 3, "3": 3},  # 64480 and 64484 carry two types
        "newest_effective": date(2024, 1, 1),
    }
    assert AocTable.from_rows([]).describe()["newest_effective"] is None


def test_the_table_is_frozen_and_strict() -> None:
    table = AocTable.from_rows([])
    with pytest.raises(pydantic.ValidationError):
        table.rows = ()  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        AocTable.model_validate({"rows": [[1, "99292"]]})  # a short row
    with pytest.raises(pydantic.ValidationError):
        AocTable.model_validate({"rows": [], "other": 1})


_ROW = (1, "22552", None, "22551", None, "2024-01-01", None, "", "f:3")


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([(4, *_ROW[1:])], "edit type 4 is not 1, 2 or 3"),
        ([(1, "2255", *_ROW[2:])], "'2255' is not a 5-character code"),
        ([(*_ROW[:3], "CCCCC ", *_ROW[4:])], "'CCCCC ' is not a 5-character code"),
        ([(*_ROW[:3], "22554", *_ROW[4:]), _ROW], "not in the table's order"),
    ],
)
def test_the_table_refuses_rows_a_reader_would_not_give(
    rows: list[tuple[object, ...]], fragment: str
) -> None:
    AocTable.model_validate({"rows": [_ROW]})  # the baseline is valid
    with pytest.raises(pydantic.ValidationError, match=fragment):
        AocTable.model_validate({"rows": rows})


# ---------------------------------------------------------------------------- the index


@pytest.mark.parametrize(
    ("add_on", "day", "rule"),
    [
        ("99292", date(2023, 12, 31), None),  # before the edit's effective date
        ("99292", date(2024, 1, 1), AocRule(1, frozenset({"99291"}), False, "")),
        ("22552", date(2024, 6, 30), AocRule(1, frozenset({"22551", "22554"}), False, "")),
        ("22552", date(2024, 7, 1), AocRule(1, frozenset({"22551"}), False, "")),  # 22554 gone
        ("99417", date(2024, 1, 1), AocRule(2, frozenset(), True, "Prolonged service")),
        ("11001", date(2022, 12, 31), None),
        ("11001", date(2023, 1, 1), AocRule(3, frozenset({"11000"}), False, "Debridement")),
        ("11001", date(2023, 12, 31), AocRule(3, frozenset({"11000"}), False, "Debridement")),
        ("11001", date(2024, 1, 1), None),  # after the edit's deletion date
        ("01953", date(2024, 1, 1), AocRule(1, frozenset({"01951"}), False, "")),
        ("15101", date(2024, 12, 31), AocRule(1, frozenset({"15100"}), False, "")),
        ("15101", date(2025, 1, 1), None),  # the add-on code itself deleted
        ("64480", date(2024, 1, 1), AocRule(1, frozenset({"64479"}), False, "type 1 row")),
        ("64484", date(2024, 1, 1), AocRule(3, frozenset({"64483"}), False, "")),
        ("0001T", date(2024, 1, 1), AocRule(3, frozenset({"0000T"}), True, "")),
        ("99999", date(2024, 1, 1), None),  # not in the file
    ],
)
def test_rule_for_by_date_of_service(
    index: AocIndex, add_on: str, day: date, rule: AocRule | None
) -> None:
    assert index.rule_for(add_on, day) == rule


def test_add_ons_and_primaries_on_any_day(index: AocIndex) -> None:
    assert index.add_ons() == {
        *("99292", "22552", "99417", "11001", "01953", "15101", "64480", "64484", "0001T")
    }
    assert index.primaries_anyday("22552") == {"22551", "22554"}
    assert index.primaries_anyday("99417") == frozenset()
    assert index.primaries_anyday("99999") == frozenset()


def test_notes_of_several_rows_are_joined_in_a_fixed_order(tmp_path: Path) -> None:
    rows = [
        (1, "22552", "*", "22551", "*", 2024001, "*", "second note"),
        (1, "22552", "*", "22554", "*", 2024001, "*", "first note"),
        (1, "22552", "*", "22556", "*", 2024001, "*", "first note"),
    ]
    index = AocIndex.from_table(AocTable.from_rows(read_aoc(_workbook(tmp_path / "a.xlsx", rows))))
    rule = index.rule_for("22552", date(2024, 5, 1))
    assert rule is not None
    assert rule.notes == "first note; second note"


def test_overlapping_edit_types_apply_the_most_restrictive_while_they_overlap(
    tmp_path: Path,
) -> None:
    rows = [
        (2, "64480", "*", "CCCCC", "*", 2024001, "*", None),
        (1, "64480", "*", "64479", "*", 2024100, 2024200, None),  # 2024-04-09 .. 2024-07-18
    ]
    index = AocIndex.from_table(AocTable.from_rows(read_aoc(_workbook(tmp_path / "a.xlsx", rows))))
    only_2 = AocRule(2, frozenset(), True, "")
    only_1 = AocRule(1, frozenset({"64479"}), False, "")
    assert index.rule_for("64480", date(2024, 4, 8)) == only_2
    assert index.rule_for("64480", date(2024, 4, 9)) == only_1
    assert index.rule_for("64480", date(2024, 7, 18)) == only_1
    assert index.rule_for("64480", date(2024, 7, 19)) == only_2


def _reference_rule(rows: Sequence[AocRow], add_on: str, day: date) -> AocRule | None:
    """The semantics written out plainly: the rows in force, the strictest type, its primaries."""
    live = [
        r
        for r in rows
        if r.add_on == add_on
        and r.effective <= day
        and (r.deletion is None or day <= r.deletion)
        and (r.add_on_deletion is None or day <= r.add_on_deletion)
    ]
    if not live:
        return None
    types = {r.edit_type for r in live}
    edit_type = 1 if 1 in types else 3 if 3 in types else 2
    chosen = [r for r in live if r.edit_type == edit_type]
    return AocRule(
        edit_type,
        frozenset(
            r.primary
            for r in chosen
            if r.primary and (r.primary_deletion is None or day <= r.primary_deletion)
        ),
        any(r.primary is None for r in chosen),
        "; ".join(sorted({r.notes for r in chosen if r.notes})),
    )


ADD_ONS = tuple(f"1000{n}" for n in range(10))


def test_the_index_answers_like_the_plain_semantics_on_every_day() -> None:
    rng = random.Random(7)
    start = date(2024, 1, 1)

    def some_day() -> date:
        return start + timedelta(days=rng.randint(0, 200))

    def maybe_day() -> date | None:
        return None if rng.random() < 0.5 else some_day()

    rows = [
        AocRow(
            edit_type=rng.choice((1, 2, 3)),
            add_on=rng.choice(ADD_ONS[:-1]),
            add_on_deletion=maybe_day() if rng.random() < 0.3 else None,
            primary=rng.choice((None, "20001", "20002", "20003", "20004")),
            primary_deletion=maybe_day(),
            effective=some_day(),
            deletion=maybe_day(),
            notes=rng.choice(("", "a", "b")),
            source=f"random:{i}",
        )
        for i in range(60)
    ]
    index = AocIndex.from_table(AocTable.from_rows(rows))
    for offset in range(-1, 203):
        day = start + timedelta(days=offset)
        for add_on in ADD_ONS:  # the last one is not in the table
            assert index.rule_for(add_on, day) == _reference_rule(rows, add_on, day), (add_on, day)
