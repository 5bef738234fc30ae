"""The NCCI PTP edit table: the reader on the shipped extract and on broken files, the bundle
encoding and the lookup index.

The reader's errors must name the file and the 1-based line a person would open the file at, so
every broken-file case checks the exact ``name:line:`` prefix. The index is checked against a
naive filter of the rows it was built from, never against numbers copied from its own output.
"""

from __future__ import annotations

import gzip
import json
import random
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import astuple
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scrubber.bench import ptp as bench
from scrubber.refdata import ptp
from scrubber.refdata.cms import CmsFileError
from scrubber.refdata.cms_ptp import read_ptp
from scrubber.refdata.ptp import PtpEdit, PtpIndex, PtpRow, PtpTable

EXTRACT = Path(__file__).parent / "data" / "ptp" / "ccipra-extract.txt"
NAME = EXTRACT.name

#: The extract's layout, 1-based: notice, title, a header wrapped over lines 3-6, then rows.
HEADER_LINE = 3
FIRST_ROW = 7


def _text_lines() -> list[str]:
    """The extract's lines without their CRLF (the file is CRLF throughout)."""
    return EXTRACT.read_bytes().decode("latin-1").split("\r\n")[:-1]


def _write(path: Path, lines: Sequence[str], eol: str = "\r\n") -> Path:
    path.write_bytes("".join(line + eol for line in lines).encode("latin-1"))
    return path


def _naive(line: str, source: str) -> PtpRow:
    """A row parsed with nothing but ``split``: the oracle for what the reader must return."""
    c1, c2, prior, eff, dele, ind, why = line.split("\t")
    return PtpRow(
        column1=c1,
        column2=c2,
        prior_1996=prior == "*",
        effective=date(int(eff[:4]), int(eff[4:6]), int(eff[6:])),
        deletion=None if dele == "*" else date(int(dele[:4]), int(dele[4:6]), int(dele[6:])),
        modifier_indicator=ind,
        rationale=why,
        source=source,
    )


def _line_of(c1: str, c2: str, indicator: str) -> int:
    """The 1-based line of the extract's row for a pair and indicator."""
    for number, line in enumerate(_text_lines(), start=1):
        cells = line.split("\t")
        if cells[:2] == [c1, c2] and cells[5] == indicator:
            return number
    raise AssertionError(f"{c1}/{c2} indicator {indicator} is not in the extract")


# ------------------------------------------------------------------------------ the extract


def test_the_extract_reads_every_row_exactly() -> None:
    lines = _text_lines()
    expected = tuple(
        _naive(line, f"{NAME}:{number}")
        for number, line in enumerate(lines, start=1)
        if number >= FIRST_ROW
    )
    rows = read_ptp(EXTRACT)
    assert len(expected) == 25
    assert rows == expected
    assert [hash(r) for r in rows] == [hash(r) for r in expected]


def test_repeated_pairs_are_all_kept() -> None:
    rows = read_ptp(EXTRACT)
    pairs = [(r.column1, r.column2) for r in rows]
    repeated = {pair for pair in pairs if pairs.count(pair) > 1}
    assert repeated == {("13121", "13120"), ("17000", "17281")}
    assert len(rows) == len(_text_lines()) - FIRST_ROW + 1


def test_the_retroactive_indicator_9_row_is_kept_beside_the_row_in_force() -> None:
    rows = [r for r in read_ptp(EXTRACT) if (r.column1, r.column2) == ("13121", "13120")]
    by_indicator = {r.modifier_indicator: r for r in rows}
    assert set(by_indicator) == {"0", "9"}
    retroactive, in_force = by_indicator["9"], by_indicator["0"]
    assert retroactive.effective == retroactive.deletion == date(1996, 1, 1)
    assert not retroactive.prior_1996
    assert in_force.deletion is None and in_force.prior_1996
    assert in_force.source == f"{NAME}:{_line_of('13121', '13120', '0')}"


def test_a_deletion_date_may_equal_the_effective_date() -> None:
    row = next(r for r in read_ptp(EXTRACT) if (r.column1, r.column2) == ("0001A", "90473"))
    assert row.effective == row.deletion == date(2022, 1, 1)
    assert row.modifier_indicator == "9"


def test_lf_line_ends_read_like_crlf(tmp_path: Path) -> None:
    lf = _write(tmp_path / NAME, _text_lines(), eol="\n")
    assert b"\r" not in lf.read_bytes()
    assert read_ptp(lf) == read_ptp(EXTRACT)


def test_latin1_bytes_are_text_and_never_line_breaks(tmp_path: Path) -> None:
    lines = _text_lines()
    cells = lines[FIRST_ROW - 1].split("\t")
    cells[6] = "Proc\u00e9dures\x85exclusive"  # 0xE9 and 0x85 (NEL to str.splitlines)
    lines[FIRST_ROW - 1] = "\t".join(cells)
    path = _write(tmp_path / "latin.txt", lines)
    assert b"Proc\xe9dures\x85exclusive\t" not in path.read_bytes()  # the last cell: no tab
    assert b"Proc\xe9dures\x85exclusive\r\n" in path.read_bytes()
    rows = read_ptp(path)
    assert len(rows) == len(read_ptp(EXTRACT))
    assert rows[0].rationale == "Proc\u00e9dures exclusive"  # NEL is whitespace in a cell
    assert rows[1].source == f"latin.txt:{FIRST_ROW + 1}"


def test_trailing_empty_cells_and_blank_lines_at_the_end_are_fine(tmp_path: Path) -> None:
    lines = [line + "\t\t" if i >= FIRST_ROW else line for i, line in enumerate(_text_lines(), 1)]
    path = _write(tmp_path / NAME, [*lines, "", "\t\t\t", ""])
    assert read_ptp(path) == read_ptp(EXTRACT)


def test_the_preamble_is_optional(tmp_path: Path) -> None:
    lines = _text_lines()[HEADER_LINE - 1 :]  # no notice, no title
    rows = read_ptp(_write(tmp_path / NAME, lines))
    assert [r.source for r in rows] == [f"{NAME}:{n}" for n in range(5, 5 + len(rows))]
    assert _without_source(rows) == _without_source(read_ptp(EXTRACT))


def _without_source(rows: Sequence[PtpRow]) -> list[tuple[object, ...]]:
    """The rows' values, for files that hold the extract's rows at other lines or names."""
    return [astuple(row)[:-1] for row in rows]


# ---------------------------------------------------------------------------- broken files


def _cell(index: int, value: str) -> Callable[[list[str]], list[str]]:
    def edit(cells: list[str]) -> list[str]:
        cells[index] = value
        return cells

    return edit


#: (case, line to edit (1-based), edit of its cells, words the message must contain)
ROW_CASES: list[tuple[str, int, Callable[[list[str]], list[str]], str]] = [
    ("short column 1 code", 8, _cell(0, "0001"), "column 1: '0001' is not a 5-character"),
    ("column 2 code with a dash", 12, _cell(1, "G-008"), "column 2: 'G-008' is not a 5-char"),
    ("empty column 2", 20, _cell(1, ""), "column 2: '' is not a 5-character"),
    ("effective date with dashes", 9, _cell(3, "2022-01-01"), "effective date: '2022-01-01'"),
    ("seven-digit deletion date", 10, _cell(4, "2023123"), "deletion date: '2023123' is not"),
    ("impossible effective date", 11, _cell(3, "20220230"), "'20220230' is not a calendar date"),
    ("impossible deletion date", 13, _cell(4, "20231301"), "'20231301' is not a calendar date"),
    ("deletion before effective", 14, _cell(4, "20211231"), "20211231 is before effective"),
    ("indicator 2", 15, _cell(5, "2"), "modifier indicator: '2' is not 0"),
    ("empty indicator", 16, _cell(5, ""), "modifier indicator: '' is not 0"),
    ("prior-1996 cell Y", 17, _cell(2, "Y"), "prior to 1996: 'Y' is not '*'"),
    ("too few cells", 18, lambda cells: cells[:6], "too few cells: 6, expected 7"),
    ("a value after the rationale", 19, lambda c: [*c, "", "x"], "unexpected value in cell 9"),
    ("a last row with a bad code", 31, _cell(0, "17OOO!"), "column 1: '17OOO!'"),
]


@pytest.mark.parametrize(
    ("case", "line", "edit", "message"), ROW_CASES, ids=[c[0] for c in ROW_CASES]
)
def test_a_bad_row_names_file_and_line(
    tmp_path: Path, case: str, line: int, edit: Callable[[list[str]], list[str]], message: str
) -> None:
    lines = _text_lines()
    lines[line - 1] = "\t".join(edit(lines[line - 1].split("\t")))
    path = _write(tmp_path / "ccipra-v322r0-f1.TXT", lines)
    with pytest.raises(CmsFileError) as caught:
        read_ptp(path)
    assert str(caught.value).startswith(f"ccipra-v322r0-f1.TXT:{line}: ")
    assert message in str(caught.value)
    assert caught.value.line == line


#: (case, the file's lines from the extract's, the line the error names, words of the message)
FILE_CASES: list[tuple[str, Callable[[list[str]], list[str]], int, str]] = [
    ("blank line between rows", lambda ls: [*ls[:12], "", *ls[12:]], 13, "blank line between"),
    ("blank line after the header", lambda ls: [*ls[:6], "", *ls[6:]], 7, "blank line between"),
    ("no header at all", lambda ls: ls[:2] + ls[6:], 3, "data row before the column header"),
    ("no header, no preamble", lambda ls: ls[6:], 1, "data row before the column header"),
    (
        "header's wrapped lines missing",
        lambda ls: ls[:3] + ls[6:],
        3,
        "header column 3 reads '*=in existence',",
    ),
    ("header's last line missing", lambda ls: ls[:5] + ls[6:], 3, "header column 6 reads"),
    ("header without rows", lambda ls: [*ls[:6], "", ""], 8, "no data rows"),
    ("an empty file", lambda ls: [], 1, "no column header"),
    ("only a preamble", lambda ls: ls[:2], 2, "no column header"),
    (
        "columns in another order",
        lambda ls: ["\t".join([*c[:3], c[4], c[3], *c[5:]]) for c in (x.split("\t") for x in ls)],
        3,
        "header column 4 reads 'Deletion Date *=no data'",
    ),
]


@pytest.mark.parametrize(
    ("case", "change", "line", "message"), FILE_CASES, ids=[c[0] for c in FILE_CASES]
)
def test_a_bad_layout_names_file_and_line(
    tmp_path: Path, case: str, change: Callable[[list[str]], list[str]], line: int, message: str
) -> None:
    path = _write(tmp_path / "ptp.txt", change(_text_lines()))
    with pytest.raises(CmsFileError) as caught:
        read_ptp(path)
    assert str(caught.value).startswith(f"ptp.txt:{line}: ")
    assert message in str(caught.value)


# ------------------------------------------------------------------------------ zip and gz


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _halves() -> tuple[list[str], list[str]]:
    """The extract as two files of one release, each with the full header."""
    lines = _text_lines()
    head, body = lines[: FIRST_ROW - 1], lines[FIRST_ROW - 1 :]
    return [*head, *body[:10]], [*head, *body[10:]]


def _bytes(lines: Sequence[str]) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("latin-1")


def test_a_zip_with_one_member(tmp_path: Path) -> None:
    path = _zip(tmp_path / "ccipra.zip", {"ccipra-v322r0-f1.TXT": EXTRACT.read_bytes()})
    rows = read_ptp(path)
    assert _without_source(rows) == _without_source(read_ptp(EXTRACT))
    assert rows[0].source == f"ccipra.zip!ccipra-v322r0-f1.TXT:{FIRST_ROW}"


def test_a_zip_with_two_members_reads_both_in_name_order(tmp_path: Path) -> None:
    first, second = _halves()
    path = _zip(
        tmp_path / "ccipra.zip",
        {  # written out of order, with a document that is not edits
            "ccipra-f2.txt": _bytes(second),
            "Read Me.pdf": b"%PDF-1.4",
            "ccipra-f1.TXT": _bytes(first),
        },
    )
    rows = read_ptp(path)
    assert _without_source(rows) == _without_source(read_ptp(EXTRACT))
    assert rows[0].source == "ccipra.zip!ccipra-f1.TXT:7"
    assert rows[10].source == "ccipra.zip!ccipra-f2.txt:7"


def test_a_bad_row_in_a_zip_member_names_zip_member_and_line(tmp_path: Path) -> None:
    first, second = _halves()
    second[8] = second[8].replace("\t1\t", "\t5\t", 1)
    path = _zip(tmp_path / "ccipra.zip", {"f1.txt": _bytes(first), "f2.txt": _bytes(second)})
    with pytest.raises(CmsFileError) as caught:
        read_ptp(path)
    assert str(caught.value).startswith("ccipra.zip!f2.txt:9: modifier indicator: '5'")
    assert caught.value.line == 9


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"readme.pdf": b"%PDF"}, "no .txt member in the zip (members: 'readme.pdf')"),
        ({}, "no .txt member in the zip (members: none)"),
    ],
)
def test_a_zip_without_edits_is_an_error(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    with pytest.raises(CmsFileError, match=r"^ptp\.zip:1: ") as caught:
        read_ptp(_zip(tmp_path / "ptp.zip", members))
    assert message in str(caught.value)


def test_a_damaged_zip_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ptp.zip"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CmsFileError, match=r"^ptp\.zip:1: not a readable zip"):
        read_ptp(path)


def test_a_gzip_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ptp.txt.gz"
    path.write_bytes(gzip.compress(EXTRACT.read_bytes()))
    rows = read_ptp(path)
    assert _without_source(rows) == _without_source(read_ptp(EXTRACT))
    assert rows[-1].source == f"ptp.txt.gz:{len(_text_lines())}"


def test_a_truncated_gzip_is_an_error_not_a_short_result(tmp_path: Path) -> None:
    data = gzip.compress(EXTRACT.read_bytes())
    path = tmp_path / "ptp.txt.gz"
    path.write_bytes(data[: len(data) - 12])
    with pytest.raises(CmsFileError, match=r"^ptp\.txt\.gz:\d+: the file cannot be read"):
        read_ptp(path)


def test_a_bad_row_in_a_gzip_names_the_gzip_and_line(tmp_path: Path) -> None:
    lines = _text_lines()
    lines[9] = lines[9].replace("20220101", "20221301", 1)
    path = tmp_path / "ptp.txt.gz"
    path.write_bytes(gzip.compress(_bytes(lines)))
    with pytest.raises(CmsFileError, match=r"^ptp\.txt\.gz:10: effective date: '20221301'"):
        read_ptp(path)


# ---------------------------------------------------------------------------------- table


def test_the_table_is_the_same_whatever_the_row_order() -> None:
    rows = list(read_ptp(EXTRACT))
    table = PtpTable.from_rows(rows)
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert PtpTable.from_rows(shuffled) == table
    assert table.count == len(rows)
    assert table.codes == tuple(sorted({r.column1 for r in rows} | {r.column2 for r in rows}))
    assert table.rationales == tuple(sorted({r.rationale for r in rows}))


def test_the_table_survives_a_json_round_trip() -> None:
    table = PtpTable.from_rows(read_ptp(EXTRACT))
    again = PtpTable.model_validate_json(table.model_dump_json())
    assert again == table
    assert again.model_dump_json() == table.model_dump_json()


def test_the_empty_table_answers_nothing() -> None:
    table = PtpTable.empty()
    assert table.count == 0 and table.codes == () and table.rationales == ()
    index = PtpIndex.from_table(PtpTable.model_validate_json(table.model_dump_json()))
    assert len(index) == 0
    assert index.edits("13121", "13120") == ()
    assert not index.has_edits("13121")
    assert "13121" not in index.column1_codes("13120")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"codes": ("0001A", "0001A")}, "codes must be sorted and distinct"),
        ({"codes": ("13121", "13120")}, "codes must be sorted and distinct"),
        ({"codes": ("1312",)}, "'1312' is not a 5-character"),
        ({"rationales": ("b", "a")}, "rationales must be sorted and distinct"),
        ({"count": -1}, "greater than or equal to 0"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_a_table_that_from_rows_would_never_write_is_refused(
    change: dict[str, object], message: str
) -> None:
    body = PtpTable.from_rows(read_ptp(EXTRACT)).model_dump() | change
    with pytest.raises(ValidationError, match=message):
        PtpTable.model_validate(body)


def _tampered(table: PtpTable, **change: object) -> PtpTable:
    return PtpTable.model_validate(table.model_dump() | change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: {"count": t.count + 1}, "holds 25 rows, the table says 26"),
        (lambda t: {"data": "not base64!"}, "not base64 of zlib data"),
        (lambda t: {"data": "AAAA"}, "not base64 of zlib data"),
        (lambda t: {"codes": t.codes[:-1]}, ""),
        (lambda t: {"rationales": t.rationales[:1]}, "rationale or indicator is out of range"),
        (lambda t: {"data": PtpTable.empty().data}, "holds 0 rows, the table says 25"),
    ],
)
def test_the_index_refuses_data_that_does_not_fit_the_table(
    change: Callable[[PtpTable], dict[str, object]], message: str
) -> None:
    table = PtpTable.from_rows(read_ptp(EXTRACT))
    with pytest.raises(ValueError, match="PTP table data") as caught:
        PtpIndex.from_table(_tampered(table, **change(table)))
    assert message in str(caught.value)


# ---------------------------------------------------------------------------------- index


@pytest.fixture(scope="module")
def index() -> PtpIndex:
    return PtpIndex.from_table(PtpTable.from_rows(read_ptp(EXTRACT)))


def test_a_pair_with_two_rows_gives_both_in_date_order(index: PtpIndex) -> None:
    edits = index.edits("17000", "17281")
    assert edits == (
        PtpEdit("17000", "17281", date(1999, 7, 1), date(1999, 7, 1), "9",
                "HCPCS/CPT procedure code definition"),
        PtpEdit("17000", "17281", date(1999, 7, 1), date(2004, 12, 31), "1",
                "Mutually exclusive procedures"),
    )  # fmt: skip


def test_an_open_deletion_sorts_after_every_date(index: PtpIndex) -> None:
    edits = index.edits("13121", "13120")
    assert [(e.deletion, e.modifier_indicator, e.prior_1996) for e in edits] == [
        (date(1996, 1, 1), "9", False),
        (None, "0", True),
    ]


@pytest.mark.parametrize(
    ("column1", "column2"),
    [
        ("13120", "13121"),  # the pair reversed
        ("0001A", "0001M"),  # both codes known, never paired
        ("0001A", "99999"),  # column 2 unknown
        ("99999", "0591T"),  # column 1 unknown
        ("0591t", "0001a"),  # codes are upper case in the table
        ("", ""),
    ],
)
def test_a_pair_without_edits_gives_nothing(index: PtpIndex, column1: str, column2: str) -> None:
    assert index.edits(column1, column2) == ()


def test_every_row_of_the_extract_is_found(index: PtpIndex) -> None:
    rows = read_ptp(EXTRACT)
    assert len(index) == len(rows)
    for row in rows:
        assert _edit(row) in index.edits(row.column1, row.column2)


@pytest.mark.parametrize(
    ("pair", "day", "in_force"),
    [
        (("0001T", "0002T"), date(2002, 12, 31), False),  # the day before it took effect
        (("0001T", "0002T"), date(2003, 1, 1), True),  # its effective date
        (("0001T", "0002T"), date(2004, 3, 31), True),  # its deletion date
        (("0001T", "0002T"), date(2004, 4, 1), False),  # the day after it was deleted
        (("0001U", "0030U"), date(2018, 6, 30), False),
        (("0001U", "0030U"), date(2018, 7, 1), True),
        (("0001U", "0030U"), date(2099, 12, 31), True),  # no deletion date: open
        (("0001A", "90473"), date(2022, 1, 1), True),  # effective and deleted the same day
        (("0001A", "90473"), date(2022, 1, 2), False),
    ],
)
def test_in_force_includes_both_ends_of_the_window(
    index: PtpIndex, pair: tuple[str, str], day: date, in_force: bool
) -> None:
    (edit,) = index.edits(*pair)
    assert edit.in_force(day) is in_force


def test_column1_codes_are_the_codes_edited_against_a_column_2(index: PtpIndex) -> None:
    rows = read_ptp(EXTRACT)
    known = {r.column1 for r in rows} | {r.column2 for r in rows}
    for column2 in known:
        expected = {r.column1 for r in rows if r.column2 == column2}
        view = index.column1_codes(column2)
        assert set(view) == expected
        assert len(view) == len(expected)
        assert all(code in view for code in expected)
        assert not any(code in view for code in known - expected)
        assert "00000" not in view and 13121 not in view
    assert set(index.column1_codes("36591")) == {"0001A", "0001M"}
    assert index.column1_codes("36591") & {"0001M", "99213"} == {"0001M"}
    assert len(index.column1_codes("0001A")) == 0  # a column 1 code only
    assert not index.column1_codes("99999")


def test_has_edits_covers_both_columns(index: PtpIndex) -> None:
    assert index.has_edits("0001A")  # column 1 only
    assert index.has_edits("G0463")  # column 2 only
    assert not index.has_edits("99999")


# ------------------------------------------------------------------------------ properties


def _edit(row: PtpRow) -> PtpEdit:
    return PtpEdit(
        row.column1,
        row.column2,
        row.effective,
        row.deletion,
        row.modifier_indicator,
        row.rationale,
        row.prior_1996,
    )


def _naive_edits(rows: Sequence[PtpRow], column1: str, column2: str) -> tuple[PtpEdit, ...]:
    """The documented order: effective, deletion (none last), indicator, prior-1996, rationale."""
    found = [_edit(r) for r in rows if (r.column1, r.column2) == (column1, column2)]
    return tuple(
        sorted(
            found,
            key=lambda e: (
                e.effective,
                e.deletion or date.max,
                e.modifier_indicator,
                e.prior_1996,
                e.rationale,
            ),
        )
    )


_START = date(1996, 1, 1)
_CODES = ("0001A", "0001U", "13120", "13121", "17000", "99213", "G0463")
_codes = st.sampled_from(_CODES)


@st.composite
def _rows(draw: st.DrawFn) -> PtpRow:
    effective = _START + timedelta(days=draw(st.integers(0, 60)))
    length = draw(st.one_of(st.none(), st.integers(0, 30)))
    return PtpRow(
        column1=draw(_codes),
        column2=draw(_codes),
        prior_1996=draw(st.booleans()),
        effective=effective,
        deletion=None if length is None else effective + timedelta(days=length),
        modifier_indicator=draw(st.sampled_from("019")),
        rationale=draw(st.sampled_from(["Mutually exclusive procedures", "Misuse", "", "\u00e9"])),
        source="generated:1",
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(_rows(), max_size=40), _codes, _codes)
def test_the_index_answers_like_a_filter_of_the_rows(
    rows: list[PtpRow], column1: str, column2: str
) -> None:
    index = PtpIndex.from_table(PtpTable.from_rows(rows))
    assert len(index) == len(rows)
    assert index.edits(column1, column2) == _naive_edits(rows, column1, column2)
    for row in rows:
        assert index.edits(row.column1, row.column2) == _naive_edits(rows, row.column1, row.column2)
    expected = {r.column1 for r in rows if r.column2 == column2}
    view = index.column1_codes(column2)
    assert set(view) == expected and len(view) == len(expected)
    assert {code for code in _CODES if code in view} == expected


def test_wide_columns_are_encoded_and_decoded_exactly() -> None:
    """More than 256 codes, dates and (with the flags' shift) rationales: two-byte columns."""
    rng = random.Random(7)
    codes = [f"{n:05d}" for n in range(10000, 10000 + 700)]
    rows = []
    for n in range(3000):
        effective = _START + timedelta(days=rng.randrange(0, 9000))
        rows.append(
            PtpRow(
                column1=rng.choice(codes),
                column2=rng.choice(codes[:40]),
                prior_1996=rng.random() < 0.1,
                effective=effective,
                deletion=rng.choice([None, effective + timedelta(days=rng.randrange(0, 900))]),
                modifier_indicator=rng.choice("019"),
                rationale=f"rationale {rng.randrange(60)}",
                source=f"wide:{n}",
            )
        )
    table = PtpTable.from_rows(rows)
    index = PtpIndex.from_table(PtpTable.model_validate_json(table.model_dump_json()))
    assert len(index) == len(rows)
    for row in rows:
        assert index.edits(row.column1, row.column2) == _naive_edits(rows, row.column1, row.column2)


def test_the_fast_constructors_refuse_a_changed_field_list() -> None:
    with pytest.raises(RuntimeError, match="out of step with PtpEdit's fields"):
        ptp.slot_setters(PtpEdit, ("column1", "column2"))


def test_the_benchmark_runs_on_the_extract(capsys: pytest.CaptureFixture[str]) -> None:
    """Numbers are printed, not checked; this keeps the command from rotting between runs."""
    assert bench.main(["--file", str(EXTRACT), "--lookups", "200", "--json"]) == 0
    printed = capsys.readouterr().out
    numbers = json.loads(printed[printed.index("{") :])
    assert numbers["rows"] == len(read_ptp(EXTRACT))
    assert numbers["edits_hit_found"] == 200 and numbers["edits_miss_found"] == 0
    assert numbers["edits_unknown_found"] == 0
    assert "redated_index_build_s" in numbers
    assert "edits(), pair with edits" in printed


def test_a_column_1_view_answers_truth_without_counting_its_group(monkeypatch) -> None:
    """The rule asks ``if not column1_codes(code)`` for every line: it must not walk the group."""
    rows = [_naive(f"{c1}\t22222\t\t20200101\t*\t1\tMisuse", "t:1") for c1 in ("11111", "33333")]
    index = PtpIndex.from_table(PtpTable.from_rows(rows))
    view = index.column1_codes("22222")

    def walked(self: object) -> None:
        raise AssertionError("the group was walked")

    monkeypatch.setattr(type(view), "_distinct", walked)
    assert view
    assert not index.column1_codes("99999")
