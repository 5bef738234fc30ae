"""The CMS file readers: the shipped extracts read exactly, damaged files fail with file and line.

The readers feed indicators straight into adjudication, so every test of a bad file checks that
the error names the file and the 1-based line a person would open the file at.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from scrubber.refdata import cms
from scrubber.refdata.cms import (
    CmsFileError,
    MpfsRow,
    MueRow,
    read_mpfs,
    read_mpfs_header,
    read_mue,
)

CMS_DIR = Path(cms.__file__).parent / "cms"
PPRRVU = CMS_DIR / "PPRRVU2025_Oct-extract.csv"
MUE = CMS_DIR / "MUE-practitioner-2026Q2-extract.csv"
PPRRVU_NAME = PPRRVU.name

#: Line numbers in the shipped PPRRVU extract (1-based, as an editor shows them).
HEADER_LINE = 10
LINE_11960 = 15
LAST_LINE = 77


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _cells(line: str) -> list[str]:
    return next(csv.reader([line]))


def _join(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(cells)  # quotes cells with line breaks
    return buf.getvalue()[:-2]


def _edited(
    tmp_path: Path,
    source: Path,
    line: int,
    edit: Callable[[list[str]], list[str]],
    name: str | None = None,
) -> Path:
    """A copy of ``source`` with the cells of one 1-based line rewritten by ``edit``."""
    lines = _lines(source)
    lines[line - 1] = _join(edit(_cells(lines[line - 1])))
    out = tmp_path / (name or source.name)
    out.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return out


def _set(index: int, value: str) -> Callable[[list[str]], list[str]]:
    def edit(cells: list[str]) -> list[str]:
        cells[index] = value
        return cells

    return edit


def _column_index(name: str) -> int:
    """0-based position of a column in the shipped extract (header line cells)."""
    header = read_mpfs_header(PPRRVU)
    return header.names.index(name)


def _raises_at(path: Path, line: int, *fragments: str) -> CmsFileError:
    reader = read_mue if "MUE" in path.name else read_mpfs
    with pytest.raises(CmsFileError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(f"{path.name}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.line == line
    return info.value


# ------------------------------------------------------------------ the shipped extracts


def test_pprrvu_extract_reads_whole() -> None:
    mpfs = read_mpfs(PPRRVU)
    assert len(mpfs.rows) == 67
    assert (
        mpfs.release == "2025 National Physician Fee Schedule Relative Value File October Release"
    )
    assert mpfs.released == "2025-09-11"
    assert {row.modifier for row in mpfs.rows} == {""}  # the extract has no 26/TC/53 rows
    assert mpfs.rows[0].source == f"{PPRRVU_NAME}:11"
    assert mpfs.rows[-1].source == f"{PPRRVU_NAME}:{LAST_LINE}"
    assert len({row.code for row in mpfs.rows}) == 67
    assert {row.conversion_factor for row in mpfs.rows} == {"32.3465"}


def test_pprrvu_extract_11960_exactly() -> None:
    rows = {row.code: row for row in read_mpfs(PPRRVU).rows}
    assert rows["11960"] == MpfsRow(
        code="11960",
        modifier="",
        description="",
        status="A",
        pctc="0",
        global_days="090",
        mult_proc="2",
        bilateral="0",
        assistant="1",
        co_surgeons="0",
        team_surgery="0",
        endo_base="",
        work_rvu="11.49",
        pre_op="0.10",
        intra_op="0.71",
        post_op="0.19",
        conversion_factor="32.3465",
        source=f"{PPRRVU_NAME}:{LINE_11960}",
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("11970", {"global_days": "090", "bilateral": "1", "assistant": "1"}),
        ("11971", {"bilateral": "1", "assistant": "0", "work_rvu": "7.02"}),
        ("11008", {"global_days": "ZZZ", "mult_proc": "0", "assistant": "0"}),
        ("12032", {"global_days": "010", "pre_op": "0.10", "intra_op": "0.80", "post_op": "0.10"}),
        ("14301", {"assistant": "2", "global_days": "090"}),
        ("15730", {"co_surgeons": "1", "bilateral": "0"}),
        ("19302", {"bilateral": "1", "assistant": "2", "co_surgeons": "1", "team_surgery": "0"}),
        (
            "19499",
            {
                "status": "C",
                "global_days": "YYY",
                "bilateral": "1",
                "assistant": "0",
                "co_surgeons": "1",
                "team_surgery": "1",
                "work_rvu": "0.00",
            },
        ),
        ("99024", {"status": "B", "pctc": "9", "mult_proc": "9", "global_days": "XXX"}),
        (
            "99242",
            {
                "status": "I",
                "pctc": "9",
                "global_days": "XXX",
                "mult_proc": "9",
                "bilateral": "9",
                "assistant": "9",
                "co_surgeons": "9",
                "team_surgery": "9",
                "work_rvu": "1.08",
            },
        ),
        ("99213", {"status": "A", "global_days": "XXX", "work_rvu": "1.30", "mult_proc": "0"}),
        ("99292", {"global_days": "ZZZ"}),
    ],
)
def test_pprrvu_extract_rows(code: str, expected: dict[str, str]) -> None:
    row = next(r for r in read_mpfs(PPRRVU).rows if r.code == code)
    assert {name: getattr(row, name) for name in expected} == expected


def test_mue_extract_reads_whole() -> None:
    rows = read_mue(MUE)
    assert len(rows) == 67
    by_code = {row.code: row for row in rows}
    assert by_code["11960"] == MueRow(
        code="11960",
        value=2,
        indicator="3",
        indicator_text="3 Date of Service Edit: Clinical",
        rationale="Clinical: Data",
        source=f"{MUE.name}:6",
    )
    assert by_code["11004"].indicator == "2"
    assert by_code["11004"].indicator_text == "2 Date of Service Edit: Policy"
    assert by_code["11004"].rationale == "Anatomic Consideration"
    assert by_code["13102"].value == 9
    assert by_code["99242"].value == 0
    assert by_code["99292"].source == f"{MUE.name}:68"
    assert {row.indicator for row in rows} == {"2", "3"}
    # the two extracts cover the same codes
    assert set(by_code) == {row.code for row in read_mpfs(PPRRVU).rows}


# ------------------------------------------------------------------ damaged PPRRVU files


def test_missing_hcpcs_header_row(tmp_path: Path) -> None:
    path = _edited(tmp_path, PPRRVU, HEADER_LINE, _set(0, "CODE"))
    _raises_at(path, LAST_LINE, "no column header row", "HCPCS")


def test_missing_required_column(tmp_path: Path) -> None:
    path = _edited(tmp_path, PPRRVU, HEADER_LINE, _set(_column_index("GLOB DAYS"), "DAZE"))
    _raises_at(path, HEADER_LINE, "required column 'GLOB DAYS' not found")


def test_missing_required_column_in_header_block(tmp_path: Path) -> None:
    # "CO-" sits one row above "SURG"; without it the column is just "SURG".
    path = _edited(tmp_path, PPRRVU, HEADER_LINE - 1, _set(_column_index("CO-SURG"), ""))
    _raises_at(path, HEADER_LINE, "required column 'CO-SURG' not found")


def test_doubled_required_column(tmp_path: Path) -> None:
    def add(cells: list[str]) -> list[str]:
        return [*cells, "STATUS CODE"]

    path = _edited(tmp_path, PPRRVU, HEADER_LINE, add)
    _raises_at(path, HEADER_LINE, "'STATUS CODE' appears more than once")


def test_bad_status(tmp_path: Path) -> None:
    path = _edited(tmp_path, PPRRVU, LINE_11960, _set(_column_index("STATUS CODE"), "Z"))
    _raises_at(path, LINE_11960, "STATUS CODE", "'Z'")


def test_bad_global_days(tmp_path: Path) -> None:
    path = _edited(tmp_path, PPRRVU, LINE_11960, _set(_column_index("GLOB DAYS"), "091"))
    _raises_at(path, LINE_11960, "GLOB DAYS", "'091'")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("HCPCS", "1196"),
        ("HCPCS", "11960X"),
        ("MOD", "TCX"),
        ("STATUS CODE", ""),
        ("STATUS CODE", "Q"),
        ("PCTC IND", "X"),
        ("PCTC IND", "10"),
        ("MULT PROC", "8"),
        ("BILAT SURG", "4"),
        ("ASST SURG", "3"),
        ("CO-SURG", "3"),
        ("TEAM SURG", "5"),
        ("ENDO BASE", "ABC"),
        ("WORK RVU", "abc"),
        ("WORK RVU", "-1.00"),
        ("PRE OP", "1.50"),
        ("INTRA OP", "NA"),
        ("POST OP", "x"),
        ("CONV FACTOR", "32,3465"),
        ("GLOB DAYS", "90"),
        ("GLOB DAYS", ""),
    ],
)
def test_bad_values_name_the_column(tmp_path: Path, column: str, value: str) -> None:
    line = LINE_11960 + 3
    path = _edited(tmp_path, PPRRVU, line, _set(_column_index(column), value))
    _raises_at(path, line, f"column {column!r}")


def test_short_row(tmp_path: Path) -> None:
    path = _edited(tmp_path, PPRRVU, 20, lambda cells: cells[:14])
    _raises_at(path, 20, "short row", "14 cells", "GLOB DAYS")


def test_blank_line_inside_data(tmp_path: Path) -> None:
    lines = _lines(PPRRVU)
    lines.insert(30, "")
    path = tmp_path / PPRRVU_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _raises_at(path, 31, "blank line")


def test_duplicate_record(tmp_path: Path) -> None:
    lines = _lines(PPRRVU)
    lines.append(lines[LINE_11960 - 1])
    path = tmp_path / PPRRVU_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _raises_at(path, LAST_LINE + 1, "duplicate record for 11960", f"first at {LINE_11960}")


def test_bad_release_date(tmp_path: Path) -> None:
    path = _edited(tmp_path, PPRRVU, 5, _set(2, "RELEASED 13/45/2025"))
    _raises_at(path, 5, "release date")


def test_not_csv(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    _raises_at(path, 1, "no column header row")


# ------------------------------------------------------------- quirks the real file has


def test_real_file_quirks_are_accepted(tmp_path: Path) -> None:
    """BOM, quoted cells, padded codes, trailing empty columns, LF endings, blank lines at end."""
    lines = _lines(PPRRVU)
    rows = [_cells(line) for line in lines]
    rows[HEADER_LINE - 1][0] = " HCPCS "
    row = rows[LINE_11960 - 1]
    row[0], row[1] = " 11960 ", ""
    row[2] = 'INSERTION, TISSUE "EXPANDER"'
    rows = [[*r, "", ""] for r in rows]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(rows)
    path = tmp_path / PPRRVU_NAME
    path.write_bytes(b"\xef\xbb\xbf" + buf.getvalue().encode() + b"\n\n,,,,\n")
    mpfs = read_mpfs(path)
    assert len(mpfs.rows) == 67
    first = next(r for r in mpfs.rows if r.code == "11960")
    assert first.description == 'INSERTION, TISSUE "EXPANDER"'
    assert first.global_days == "090"
    assert first.source == f"{PPRRVU_NAME}:{LINE_11960}"
    assert mpfs.released == "2025-09-11"


def test_windows_1252_description(tmp_path: Path) -> None:
    path = _edited(tmp_path, PPRRVU, LINE_11960, _set(2, "TISSUE EXPANDER – BREAST"))
    path.write_bytes(path.read_text(encoding="utf-8").encode("cp1252"))
    row = next(r for r in read_mpfs(path).rows if r.code == "11960")
    assert row.description == "TISSUE EXPANDER – BREAST"


def test_an_inserted_column_still_reads(tmp_path: Path) -> None:
    """A future release with a new column before STATUS CODE: values follow their names."""
    lines = _lines(PPRRVU)
    out = []
    for number, line in enumerate(lines, start=1):
        cells = _cells(line)
        new = (
            "LONG" if number == HEADER_LINE - 1 else "DESCRIPTION" if number == HEADER_LINE else ""
        )
        if number > HEADER_LINE:
            new = "x"
        out.append(_join([*cells[:3], new, *cells[3:]]))
    path = tmp_path / PPRRVU_NAME
    path.write_text("\r\n".join(out) + "\r\n", encoding="utf-8")
    mpfs = read_mpfs(path)
    assert [(r.code, r.status, r.global_days, r.bilateral) for r in mpfs.rows] == [
        (r.code, r.status, r.global_days, r.bilateral) for r in read_mpfs(PPRRVU).rows
    ]
    assert {r.description for r in mpfs.rows} == {""}  # "DESCRIPTION", not "LONG DESCRIPTION"


def test_multiline_quoted_cell_keeps_line_numbers(tmp_path: Path) -> None:
    path = _edited(tmp_path, PPRRVU, 12, _set(2, "TWO\r\nLINES"))
    rows = read_mpfs(path).rows
    assert rows[1].description == "TWO\r\nLINES"
    assert rows[1].source == f"{PPRRVU_NAME}:12"
    assert rows[2].source == f"{PPRRVU_NAME}:14"  # the quoted line break took line 13
    bad = _edited(tmp_path, path, 15, _set(_column_index("STATUS CODE"), "?"), name="bad.csv")
    _raises_at(bad, 15, "STATUS CODE")  # physical line 15: 11008, after the two-line record


def test_component_rows(tmp_path: Path) -> None:
    lines = _lines(PPRRVU)
    global_row = _cells(lines[LINE_11960 - 1])
    for mod in ("26", "TC", "53"):
        lines.append(_join([global_row[0], mod, *global_row[2:]]))
    path = tmp_path / PPRRVU_NAME
    path.write_text("\n".join(lines), encoding="utf-8")  # no newline at the end, too
    rows = [r for r in read_mpfs(path).rows if r.code == "11960"]
    assert [r.modifier for r in rows] == ["", "26", "TC", "53"]


def test_no_release_lines(tmp_path: Path) -> None:
    lines = _lines(PPRRVU)[5:]  # title, copyright and RELEASED lines gone, column headers kept
    path = tmp_path / PPRRVU_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mpfs = read_mpfs(path)
    assert (mpfs.release, mpfs.released) == (None, None)
    assert len(mpfs.rows) == 67
    assert mpfs.rows[0].source == f"{PPRRVU_NAME}:6"


# -------------------------------------------------------------------------- damaged MUE


def test_mue_non_numeric_value(tmp_path: Path) -> None:
    path = _edited(tmp_path, MUE, 6, _set(1, "two"))
    _raises_at(path, 6, "Practitioner Services MUE Values", "'two'")


@pytest.mark.parametrize("value", ["-1", "1.5", ""])
def test_mue_not_a_whole_number(tmp_path: Path, value: str) -> None:
    path = _edited(tmp_path, MUE, 7, _set(1, value))
    _raises_at(path, 7, "Practitioner Services MUE Values")


@pytest.mark.parametrize(
    "value", ["4 Date of Service Edit: Policy", "Date of Service Edit", "", "2 Line Edit"]
)
def test_mue_bad_indicator(tmp_path: Path, value: str) -> None:
    path = _edited(tmp_path, MUE, 6, _set(2, value))
    _raises_at(path, 6, "MUE Adjudication Indicator")


def test_mue_bare_indicator_digit(tmp_path: Path) -> None:
    path = _edited(tmp_path, MUE, 6, _set(2, " 1 "))
    row = read_mue(path)[4]
    assert (row.indicator, row.indicator_text) == ("1", "1")


@pytest.mark.parametrize("value", ["1100", "110041", "ABCDE", "A12B4", "11-04"])
def test_mue_bad_code(tmp_path: Path, value: str) -> None:
    path = _edited(tmp_path, MUE, 3, _set(0, value))
    _raises_at(path, 3, "HCPCS/CPT Code", f"{value!r} is not a HCPCS/CPT code")


@pytest.mark.parametrize("value", ["27447", "0001U", "3008F", "0591T", "G0121", "D0120", "j1100"])
def test_mue_every_kind_of_code(tmp_path: Path, value: str) -> None:
    """CPT Category I, PLA, II and III codes, level II HCPCS and dental codes all read."""
    path = _edited(tmp_path, MUE, 3, _set(0, value))
    assert read_mue(path)[1].code == value.upper()


def test_mue_short_row(tmp_path: Path) -> None:
    path = _edited(tmp_path, MUE, 9, lambda cells: cells[:2])
    _raises_at(path, 9, "short row", "MUE Adjudication Indicator")


def test_mue_missing_header(tmp_path: Path) -> None:
    path = _edited(tmp_path, MUE, 1, _set(0, "Code"))
    _raises_at(path, 68, "no header row")


def test_mue_missing_column(tmp_path: Path) -> None:
    path = _edited(tmp_path, MUE, 1, _set(2, "Indicator"))
    _raises_at(path, 1, "required column 'MUE Adjudication Indicator' not found")


def test_mue_duplicate(tmp_path: Path) -> None:
    path = _edited(tmp_path, MUE, 3, _set(0, "11004"))
    _raises_at(path, 3, "duplicate record for 11004", "first at 2")


def test_mue_preamble_and_quirks(tmp_path: Path) -> None:
    """Copyright lines before the header, quoted header cells with line breaks, no rationale."""
    lines = _lines(MUE)
    header = _cells(lines[0])
    header[1] = "Practitioner Services\nMUE Values"
    preamble = [
        '"CPT codes, descriptions and other data only are copyright 2025 American Medical'
        ' Association.\nAll Rights Reserved."',
        "",
        "Effective 04/01/2026,,,",
    ]
    body = [*preamble, _join(header), *lines[1:], "", ""]
    path = tmp_path / MUE.name
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(body).encode())
    rows = read_mue(path)
    assert len(rows) == 67
    # preamble takes 4 physical lines, the header 2: 11004 is on line 7
    assert rows[0].code == "11004"
    assert rows[0].source == f"{MUE.name}:7"

    no_rationale = tmp_path / "no-rationale" / MUE.name
    no_rationale.parent.mkdir()
    no_rationale.write_text(
        "\n".join(_join(_cells(line)[:3]) for line in lines) + "\n", encoding="utf-8"
    )
    assert {row.rationale for row in read_mue(no_rationale)} == {None}
