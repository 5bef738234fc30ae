"""ICD-10-CM code sets: the order-file reader, the model, the per-date index, the shipped set.

The fixture ``data/icd10cm-order-2025.txt`` is a hand-made cut of a CMS order file (real codes and
titles, CMS's layout). Other releases are derived from it in ``tmp_path`` so each test shows what
it changes.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pydantic
import pytest

from scrubber.refdata import make_icd10cm_default as generator
from scrubber.refdata.cms import CmsFileError
from scrubber.refdata.cms_icd10cm import (
    default_code_set,
    default_icd10cm_file,
    effective_from_name,
    is_manifestation_title,
    read_icd10cm_order,
)
from scrubber.refdata.icd10cm import (
    Icd10CodeSet,
    Icd10Index,
    dotted,
    fiscal_year_of,
    normalize,
    sets_needed,
)
from scrubber.refdata.make_icd10cm_default import (
    Entry,
    Release,
    order_file_name,
    order_lines,
    write_order_file,
)

FIXTURE = Path(__file__).parent / "data" / "icd10cm-order-2025.txt"
LINES = FIXTURE.read_text(encoding="utf-8").splitlines()
LINE_OF = {line[6:13].strip(): number for number, line in enumerate(LINES, start=1)}

FIXTURE_BILLABLE = {
    *("A000", "A009", "B952", "E1100", "E1101", "E119", "F0280", "G63"),
    *("M14611", "M14612", "T148XXA", "T148XXD", "W19XXXA"),
}
FIXTURE_HEADERS = {
    *("A00", "B95", "E11", "E110", "F02", "F028", "M14", "M146", "M1461"),
    *("T14", "T148", "W19"),
}
#: Titles "in ... diseases classified elsewhere" (F02, G63, M14) and every code under them; not
#: B95 ("as the cause of diseases classified elsewhere": infectious agents, not manifestations).
FIXTURE_MANIFESTATION = {
    *("F02", "F028", "F0280", "G63"),
    *("M14", "M146", "M1461", "M14611", "M14612"),
}


def _line(number: int, code: str, flag: str, long: str, short: str | None = None) -> str:
    """One line in CMS's layout, built field by field (positions 1-5, 7-13, 15, 17-76, 78-)."""
    return f"{number:05d} {code:<7} {flag} {(short or long)[:60]:<60} {long}"


def _renumber(lines: list[str]) -> list[str]:
    return [f"{n:05d}{line[5:]}" for n, line in enumerate(lines, start=1)]


def _write(path: Path, lines: list[str], ending: str = "\n", encoding: str = "utf-8") -> Path:
    path.write_bytes((ending.join(lines) + ending).encode(encoding))
    return path


def _with(lines: list[str], line: int, text: str) -> list[str]:
    out = list(lines)
    out[line - 1] = text
    return out


def _error(path: Path, line: int, *fragments: str) -> CmsFileError:
    with pytest.raises(CmsFileError) as info:
        read_icd10cm_order(path)
    err = info.value
    assert err.line == line, str(err)
    assert str(err).startswith(f"{path.name}:{line}: "), str(err)
    for fragment in fragments:
        assert fragment in str(err), str(err)
    return err


def _codes(text: str) -> set[str]:
    return set(text.split())


# ---------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    ("name", "fiscal_year", "start"),
    [
        ("icd10cm-order-2025.txt", 2025, date(2024, 10, 1)),
        ("icd10cm_order_2025.txt", 2025, date(2024, 10, 1)),
        ("2026-Code-Descriptions-in-Tabular-Order.zip", 2026, date(2025, 10, 1)),
        ("icd10cm-order-april-2024.txt", 2024, date(2024, 4, 1)),
        ("icd10cm_order_2024_April.txt", 2024, date(2024, 4, 1)),
        ("ICD10CM-ORDER-APRIL-2024.TXT", 2024, date(2024, 4, 1)),
        ("icd10cm-order-Jan-2021.txt", 2021, date(2021, 1, 1)),
        ("icd10cm-order-october-2024.txt", 2025, date(2024, 10, 1)),
        ("icd10cm-codes-2016.txt", 2016, date(2015, 10, 1)),
    ],
)
def test_the_file_name_dates_the_set(name: str, fiscal_year: int, start: date) -> None:
    assert effective_from_name(name) == (fiscal_year, start)
    assert fiscal_year_of(start) == fiscal_year


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("icd10cm-order.txt", "no 4-digit year"),
        ("icd10cm-order-20241001.txt", "no 4-digit year"),  # a date stamp is not a year
        ("icd10cm-order-2024-2025.txt", "several years"),
        ("icd10cm-order-2015.txt", "not an ICD-10-CM fiscal year"),
        ("icd10cm-order-april-may-2024.txt", "several months"),
    ],
)
def test_a_file_name_that_does_not_date_the_set_is_refused(name: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        effective_from_name(name)
    assert str(info.value).startswith(name)


def test_words_that_contain_a_month_abbreviation_are_not_months() -> None:
    # "codes", "order", "description" contain no whole-word month; "dec" inside "codes" no.
    assert effective_from_name("icd10cm-codes-descriptions-2025.txt") == (2025, date(2024, 10, 1))


@pytest.mark.parametrize(
    ("day", "fiscal_year"),
    [
        (date(2024, 9, 30), 2024),
        (date(2024, 10, 1), 2025),
        (date(2025, 1, 1), 2025),
        (date(2025, 9, 30), 2025),
    ],
)
def test_fiscal_year_of(day: date, fiscal_year: int) -> None:
    assert fiscal_year_of(day) == fiscal_year


# ---------------------------------------------------------------------------- reading


def test_the_fixture_reads_into_billable_codes_headers_and_manifestations() -> None:
    code_set = read_icd10cm_order(FIXTURE)
    assert code_set.name == "icd10cm-order-2025.txt"
    assert (code_set.fiscal_year, code_set.effective_from) == (2025, date(2024, 10, 1))
    assert _codes(code_set.billable) == FIXTURE_BILLABLE
    assert _codes(code_set.headers) == FIXTURE_HEADERS
    assert _codes(code_set.manifestation) == FIXTURE_MANIFESTATION
    assert code_set.counts() == {
        "billable": len(FIXTURE_BILLABLE),
        "headers": len(FIXTURE_HEADERS),
        "manifestation": len(FIXTURE_MANIFESTATION),
    }


def test_an_explicit_effective_date_wins_over_the_name_and_allows_a_name_without_year(
    tmp_path: Path,
) -> None:
    plain = _write(tmp_path / "codes.txt", LINES)
    with pytest.raises(ValueError, match="no 4-digit year"):
        read_icd10cm_order(plain)
    code_set = read_icd10cm_order(plain, effective_from=date(2025, 4, 1))
    assert (code_set.fiscal_year, code_set.effective_from) == (2025, date(2025, 4, 1))
    assert code_set.billable == read_icd10cm_order(FIXTURE).billable


def test_crlf_latin1_and_utf8_read_alike(tmp_path: Path) -> None:
    accented = [line.replace("Charcot's", "Charcôt's") for line in LINES]
    expected = read_icd10cm_order(FIXTURE)
    for ending, encoding in [("\r\n", "latin-1"), ("\r\n", "utf-8"), ("\n", "latin-1")]:
        path = _write(tmp_path / "icd10cm-order-2025.txt", accented, ending, encoding)
        assert read_icd10cm_order(path) == expected


def test_blank_lines_at_the_end_are_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path / "icd10cm-order-2025.txt", [*LINES, "", "   "])
    assert read_icd10cm_order(path) == read_icd10cm_order(FIXTURE)


def test_gz_reads_like_the_plain_file_and_is_dated_by_the_name_without_gz(
    tmp_path: Path,
) -> None:
    path = tmp_path / "icd10cm-order-april-2025.txt.gz"
    path.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    code_set = read_icd10cm_order(path)
    assert code_set.effective_from == date(2025, 4, 1)
    assert code_set.billable == read_icd10cm_order(FIXTURE).billable


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_cms_zip_is_read_through_its_order_file_not_the_addenda(tmp_path: Path) -> None:
    data = FIXTURE.read_bytes()
    path = _zip(
        tmp_path / "2025-Code-Descriptions-in-Tabular-Order.zip",
        {
            "icd10cm_codes_2025.txt": b"A000    Cholera due to Vibrio cholerae\n",
            "icd10cm_order_addenda_2025.txt": b"Add:   00001 ...\n",
            "Code Descriptions/icd10cm_order_2025.txt": data,
            "icd10OrderFiles.pdf": b"%PDF",
        },
    )
    code_set = read_icd10cm_order(path)
    assert code_set.name == path.name
    assert code_set.billable == read_icd10cm_order(FIXTURE).billable
    assert code_set.effective_from == date(2024, 10, 1)


def test_a_zip_member_without_a_year_is_dated_by_the_zip_name(tmp_path: Path) -> None:
    path = _zip(tmp_path / "April-1-2025-order.zip", {"icd10cm-order.txt": FIXTURE.read_bytes()})
    assert read_icd10cm_order(path).effective_from == date(2025, 4, 1)


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        ({"icd10cm_codes_2025.txt": b"x"}, "no member"),
        ({"a/icd10cm_order_2025.txt": b"x", "b/icd10cm-order-2025.txt": b"x"}, "2 ("),
    ],
)
def test_a_zip_without_exactly_one_order_file_is_refused(
    tmp_path: Path, members: dict[str, bytes], fragment: str
) -> None:
    path = _zip(tmp_path / "codes-2025.zip", members)
    with pytest.raises(ValueError, match="icd10cm_order") as info:
        read_icd10cm_order(path)
    assert str(info.value).startswith(path.name)
    assert fragment in str(info.value)


def test_an_error_inside_a_zip_names_archive_member_and_line(tmp_path: Path) -> None:
    line = LINE_OF["E119"]
    bad = _with(LINES, line, _line(line, "E119", "2", "Type 2 diabetes mellitus"))
    path = _zip(tmp_path / "codes.zip", {"dir/icd10cm_order_2025.txt": "\n".join(bad).encode()})
    with pytest.raises(CmsFileError) as info:
        read_icd10cm_order(path)
    assert str(info.value).startswith(f"codes.zip!icd10cm_order_2025.txt:{line}: flag '2'")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"not a zip", "not a readable zip"), (b"", "not a readable zip")],
)
def test_a_damaged_zip_is_refused(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "icd10cm-order-2025.zip"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=fragment):
        read_icd10cm_order(path)


def test_a_damaged_gz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "icd10cm-order-2025.txt.gz"
    path.write_bytes(gzip.compress(FIXTURE.read_bytes())[:-20])
    with pytest.raises(ValueError, match="not a readable gzip"):
        read_icd10cm_order(path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "icd10cm-order-2025.txt", ["", ""])
    with pytest.raises(ValueError, match="empty file"):
        read_icd10cm_order(path)


E119 = LINE_OF["E119"]
E11 = LINE_OF["E11"]
W19 = LINE_OF["W19"]
G63 = LINE_OF["G63"]
LAST = len(LINES)


def _splice(line: int, at: int, text: str) -> Callable[[list[str]], list[str]]:
    """An edit writing ``text`` over the line's characters from 0-based position ``at``."""

    def edit(lines: list[str]) -> list[str]:
        old = lines[line - 1]
        return _with(lines, line, old[:at] + text + old[at + len(text) :])

    return edit


def _broken_cases() -> list[tuple[str, Callable[[list[str]], list[str]], int, str]]:
    """(what, edit of the fixture's lines, line of the error, fragment of the message)."""
    return [
        ("letters in the order number", lambda ls: _with(ls, E119, "0001A" + ls[E119 - 1][5:]),
         E119, "order number '0001A' (positions 1-5) is not digits"),
        ("order number going back", lambda ls: _with(ls, E119, "00001" + ls[E119 - 1][5:]),
         E119, "order number 00001 does not follow"),
        ("no space after the order number", _splice(E119, 5, "-"),
         E119, "position 6 must be a space"),
        ("lower-case code", lambda ls: _with(ls, E119, _line(E119, "e119", "1", "Type 2")),
         E119, "code 'e119   ' (positions 7-13) is not an ICD-10-CM code"),
        ("code starting with a digit", lambda ls: _with(ls, E119, _line(E119, "1E19", "1", "x")),
         E119, "is not an ICD-10-CM code"),
        ("code of two characters", lambda ls: _with(ls, E119, _line(E119, "E1", "1", "x")),
         E119, "is not an ICD-10-CM code"),
        ("code right-justified", lambda ls: _with(ls, E119, _line(E119, "   E119", "1", "x")),
         E119, "left-justified"),
        ("code of eight characters", _splice(E119, 6, "E119XXXA"),
         E119, "position 14 must be a space"),
        ("flag 2", lambda ls: _with(ls, E119, _line(E119, "E119", "2", "x")),
         E119, "flag '2' (position 15) must be 1 (billable) or 0 (header)"),
        ("no long description", lambda ls: _with(ls, E119, ls[E119 - 1][:77]),
         E119, "long description from position 78"),
        ("blank long description", lambda ls: _with(ls, E119, ls[E119 - 1][:77] + "   "),
         E119, "has no long description"),
        ("a tab instead of a space", _splice(E119, 15, "\t"),
         E119, "position 16 must be a space, found '\\t'"),
        ("blank line between codes", lambda ls: [*ls[:E119 - 1], "", *ls[E119 - 1:]],
         E119, "blank line between codes"),
        ("duplicate code", lambda ls: _renumber([*ls[:E119], ls[E119 - 1], *ls[E119:]]),
         E119 + 1, f"duplicate code E119 (first at line {E119})"),
        ("billable code with a code under it",
         lambda ls: _with(ls, E11, _line(E11, "E11", "1", "Type 2 diabetes mellitus")),
         E11 + 1, f"code E110 lies under E11 (line {E11}), which is flagged billable"),
        ("header with nothing under it (a file cut short)", lambda ls: ls[:-1],
         W19, "header W19 has no code under it"),
        ("code without its category", lambda ls: ls[1:],
         1, "code A000 has no category A00 in the file"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "line", "fragment"),
    [pytest.param(e, n, f, id=what) for what, e, n, f in _broken_cases()],
)
def test_a_bad_line_is_an_error_naming_file_and_line(
    tmp_path: Path, edit: Callable[[list[str]], list[str]], line: int, fragment: str
) -> None:
    path = _write(tmp_path / "icd10cm-order-2025.txt", edit(list(LINES)))
    _error(path, line, fragment)


def test_a_file_of_headers_only_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "icd10cm-order-2025.txt", [_line(1, "A00", "0", "Cholera")])
    with pytest.raises(ValueError, match="no billable code"):
        read_icd10cm_order(path)


def test_the_first_structural_problem_in_file_order_is_reported(tmp_path: Path) -> None:
    # Two problems: E11 billable with codes under it (reported at E110, the line after E11) and
    # W19 without codes under it; the earlier line wins, whatever order they are found in.
    lines = _with(LINES, E11, _line(E11, "E11", "1", "Type 2 diabetes mellitus"))[:-1]
    _error(_write(tmp_path / "icd10cm-order-2025.txt", lines), E11 + 1, "E110 lies under E11")


# ---------------------------------------------------------------------------- manifestations


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Polyneuropathy in diseases classified elsewhere", True),
        ("Dementia in other diseases classified elsewhere, unspecified severity", True),
        ("Meningitis in other infectious and parasitic diseases classified elsewhere", True),
        ("Pleural effusion in conditions classified elsewhere", True),
        ("Lambert-Eaton syndrome in disease classified elsewhere", True),
        ("Arthropathy in hypersensitivity reactions classified elsewhere", True),
        ("Spondylopathy In Diseases Classified Elsewhere, cervical region", True),
        ("Enterococcus as the cause of diseases classified elsewhere", False),
        ("Immunodeficiency due to conditions classified elsewhere", False),
        ("Erectile dysfunction due to diseases classified elsewhere", False),
        (
            "Psychological and behavioral factors associated with disorders or diseases "
            "classified elsewhere",
            False,
        ),
        ("Fever presenting with conditions classified elsewhere", False),
        ("Type 2 diabetes mellitus with diabetic polyneuropathy", False),
    ],
)
def test_the_manifestation_title_rule(title: str, expected: bool) -> None:
    assert is_manifestation_title(title) is expected


def test_codes_under_a_manifestation_category_are_manifestations_whatever_their_title() -> None:
    code_set = read_icd10cm_order(FIXTURE)
    manifestation = _codes(code_set.manifestation)
    assert "M14611" in manifestation  # "Charcot's joint, right shoulder", under M14
    assert "B952" not in manifestation  # an infectious agent, under B95
    assert "E119" not in manifestation


# ---------------------------------------------------------------------------- the model


def test_the_model_round_trips_through_json_and_is_deterministic(tmp_path: Path) -> None:
    code_set = read_icd10cm_order(FIXTURE)
    shuffled = [LINES[0], *reversed(LINES[1:])]  # same codes, another file order
    other = read_icd10cm_order(
        _write(tmp_path / "icd10cm-order-2025.txt", _renumber(shuffled)),
    )
    assert other.model_dump_json() == code_set.model_dump_json()
    again = Icd10CodeSet.model_validate_json(code_set.model_dump_json())
    assert again == code_set
    assert again.model_dump() == code_set.model_dump()


def test_the_model_is_frozen_and_refuses_unknown_fields() -> None:
    code_set = read_icd10cm_order(FIXTURE)
    with pytest.raises(pydantic.ValidationError):
        code_set.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Icd10CodeSet.model_validate({**code_set.model_dump(), "descriptions": {}})


_GOOD = {
    "name": "x",
    "fiscal_year": 2025,
    "effective_from": date(2024, 10, 1),
    "billable": "E1100 E119",
    "headers": "E11 E110",
    "manifestation": "",
}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"billable": "E119 E1100"}, "not sorted and unique"),
        ({"billable": "E119 E119"}, "not sorted and unique"),
        ({"billable": "E119  E1100"}, "not a space-separated list"),
        ({"billable": "E119 "}, "not a space-separated list"),
        ({"billable": "e119"}, "not a space-separated list"),
        ({"billable": "E11.9"}, "not a space-separated list"),
        ({"billable": ""}, "without billable codes"),
        ({"headers": "E11 E119"}, "both billable and header: E119"),
        ({"manifestation": "G63"}, "manifestation codes not in the set: G63"),
        ({"effective_from": date(2024, 9, 30)}, "is in FY2024, not FY2025"),
    ],
)
def test_the_model_refuses_a_damaged_set(change: dict[str, object], fragment: str) -> None:
    Icd10CodeSet.model_validate(_GOOD)  # the baseline is valid
    with pytest.raises(pydantic.ValidationError, match=fragment):
        Icd10CodeSet.model_validate({**_GOOD, **change})


# ---------------------------------------------------------------------------- the index


def _releases(tmp_path: Path) -> tuple[Icd10CodeSet, Icd10CodeSet, Icd10CodeSet]:
    """FY2025; its April 2025 update adding U07.1; FY2026 dropping E11.9, subdividing G63."""
    fy2025 = read_icd10cm_order(FIXTURE)
    april = _renumber([*LINES, _line(0, "U07", "0", "Emergency use of U07"),
                       _line(0, "U071", "1", "COVID-19")])  # fmt: skip
    fy2026 = [line for line in april if line[6:13].strip() != "E119"]
    at = next(i for i, line in enumerate(fy2026) if line[6:13].strip() == "G63")
    fy2026[at : at + 1] = [
        _line(0, "G63", "0", "Polyneuropathy in diseases classified elsewhere"),
        _line(0, "G630", "1", "Polyneuropathy in diseases classified elsewhere, unspecified"),
    ]
    return (
        fy2025,
        read_icd10cm_order(_write(tmp_path / "icd10cm-order-april-2025.txt", april)),
        read_icd10cm_order(_write(tmp_path / "icd10cm_order_2026.txt", _renumber(fy2026))),
    )


@pytest.fixture
def index(tmp_path: Path) -> Icd10Index:
    fy2025, april, fy2026 = _releases(tmp_path)
    return Icd10Index.from_sets([fy2026, fy2025, april])  # any order


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2024, 9, 30), None),
        (date(2024, 10, 1), "icd10cm-order-2025.txt"),
        (date(2025, 3, 31), "icd10cm-order-2025.txt"),
        (date(2025, 4, 1), "icd10cm-order-april-2025.txt"),
        (date(2025, 9, 30), "icd10cm-order-april-2025.txt"),
        (date(2025, 10, 1), "icd10cm_order_2026.txt"),
        (date(2030, 1, 1), "icd10cm_order_2026.txt"),
    ],
)
def test_set_for_picks_the_newest_set_in_force(
    index: Icd10Index, day: date, name: str | None
) -> None:
    found = index.set_for(day)
    assert (found.name if found else None) == name


@pytest.mark.parametrize(
    ("code", "day", "status"),
    [
        ("E11.9", date(2024, 9, 30), "no_code_set"),
        ("E11.9", date(2024, 10, 1), "billable"),
        ("E119", date(2024, 10, 1), "billable"),
        ("E11.9", date(2025, 9, 30), "billable"),
        ("E11.9", date(2025, 10, 1), "invalid"),  # dropped by FY2026
        ("U07.1", date(2025, 3, 31), "invalid"),  # added by the April update
        ("U07.1", date(2025, 4, 1), "billable"),
        ("U07", date(2025, 4, 1), "header"),
        ("G63", date(2025, 9, 30), "billable"),
        ("G63", date(2025, 10, 1), "header"),  # subdivided by FY2026
        ("G63.0", date(2025, 10, 1), "billable"),
        ("E11", date(2024, 10, 1), "header"),
        ("E11.", date(2024, 10, 1), "invalid"),  # a dot with nothing after it
        ("e11.9", date(2024, 10, 1), "invalid"),
        ("E1.19", date(2024, 10, 1), "invalid"),
        ("E119.", date(2024, 10, 1), "invalid"),
        ("T14.8XXA", date(2024, 10, 1), "billable"),
        ("T14.8", date(2024, 10, 1), "header"),
        ("T14.8XX", date(2024, 10, 1), "invalid"),
        ("", date(2024, 10, 1), "invalid"),
        ("Z00.00", date(2024, 10, 1), "invalid"),
    ],
)
def test_status_by_date_of_service(index: Icd10Index, code: str, day: date, status: str) -> None:
    assert index.status(code, day) == status


@pytest.mark.parametrize(
    ("header", "day", "limit", "expected"),
    [
        ("E11", date(2024, 10, 1), 2, ("E11.00", "E11.01")),
        ("E11", date(2024, 10, 1), 1, ("E11.00",)),
        ("E11", date(2024, 10, 1), 9, ("E11.00", "E11.01", "E11.9")),
        ("E11", date(2025, 10, 1), 9, ("E11.00", "E11.01")),
        ("E11.0", date(2024, 10, 1), 2, ("E11.00", "E11.01")),
        ("T148", date(2024, 10, 1), 2, ("T14.8XXA", "T14.8XXD")),
        ("M14", date(2024, 10, 1), 2, ("M14.611", "M14.612")),
        ("G63", date(2025, 10, 1), 2, ("G63.0",)),
        ("G63", date(2024, 10, 1), 2, ()),  # billable then: nothing under it
        ("E11", date(2024, 10, 1), 0, ()),
        ("E11", date(2024, 9, 30), 2, ()),
    ],
)
def test_billable_under_suggests_real_codes_in_code_order(
    index: Icd10Index, header: str, day: date, limit: int, expected: tuple[str, ...]
) -> None:
    assert index.billable_under(header, day, limit) == expected


@pytest.mark.parametrize(
    ("code", "day", "expected"),
    [
        ("G63", date(2024, 10, 1), True),
        ("G63.0", date(2025, 10, 1), True),
        ("F02.80", date(2024, 10, 1), True),
        ("F0280", date(2024, 10, 1), True),
        ("M14.611", date(2024, 10, 1), True),
        ("B95.2", date(2024, 10, 1), False),
        ("E11.9", date(2024, 10, 1), False),
        ("G63", date(2024, 9, 30), False),  # no code set yet
    ],
)
def test_is_manifestation(index: Icd10Index, code: str, day: date, expected: bool) -> None:
    assert index.is_manifestation(code, day) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("W19.XXXA", True),
        ("W19XXXA", True),
        ("V00.01XA", True),
        ("X00.0XXA", True),
        ("Y99.8", True),
        ("U07.1", False),
        ("Z99.89", False),
        ("S01.81XA", False),
        ("", False),
    ],
)
def test_is_external_cause(code: str, expected: bool) -> None:
    assert Icd10Index.is_external_cause(code) is expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2024, 9, 30), False),  # no set at all: nothing to be outdated
        (date(2025, 9, 30), False),
        (date(2026, 9, 30), False),  # FY2026 set, FY2026 day
        (date(2026, 10, 1), True),  # FY2027 day, newest set is FY2026
    ],
)
def test_is_outdated(index: Icd10Index, day: date, expected: bool) -> None:
    assert index.is_outdated(day) is expected


def test_two_sets_starting_on_the_same_day_are_refused() -> None:
    one = read_icd10cm_order(FIXTURE)
    two = one.model_copy(update={"name": "copy"})
    with pytest.raises(ValueError, match="both start on 2024-10-01"):
        Icd10Index.from_sets([one, two])


def test_describe_lists_the_sets_oldest_first_with_their_windows(index: Icd10Index) -> None:
    described = index.describe()
    assert [d["name"] for d in described] == [
        "icd10cm-order-2025.txt",
        "icd10cm-order-april-2025.txt",
        "icd10cm_order_2026.txt",
    ]
    assert [(d["effective_from"], d["in_force_until"]) for d in described] == [
        ("2024-10-01", "2025-03-31"),
        ("2025-04-01", "2025-09-30"),
        ("2025-10-01", None),
    ]
    first = described[0]
    assert (first["fiscal_year"], first["billable"], first["headers"], first["manifestation"]) == (
        2025,
        len(FIXTURE_BILLABLE),
        len(FIXTURE_HEADERS),
        len(FIXTURE_MANIFESTATION),
    )
    fy2026 = (FIXTURE_BILLABLE - {"E119", "G63"}) | {"U071", "G630"}
    assert described[2]["billable"] == len(fy2026)


def test_an_empty_index_has_no_set() -> None:
    index = Icd10Index.from_sets([])
    assert index.status("E11.9", date(2025, 1, 1)) == "no_code_set"
    assert index.describe() == []


@pytest.mark.parametrize(
    ("as_of", "lateness", "kept"),
    [
        (date(2025, 12, 1), 365, ["2025", "april-2025", "2026"]),  # 2024-12-01: FY2025 in force
        (date(2026, 3, 31), 365, ["2025", "april-2025", "2026"]),  # 2025-03-31: FY2025 in force
        (date(2026, 4, 1), 365, ["april-2025", "2026"]),  # 2025-04-01: the April set starts
        (date(2026, 10, 1), 365, ["2026"]),
        (date(2025, 10, 1), 0, ["2026"]),
        (date(2025, 9, 30), 0, ["april-2025", "2026"]),  # FY2026 loaded ahead of 1 October
        (date(2024, 1, 1), 30, ["2025", "april-2025", "2026"]),  # before every set: keep all
    ],
)
def test_sets_needed_keeps_the_set_in_force_at_the_lateness_limit_and_later_ones(
    tmp_path: Path, as_of: date, lateness: int, kept: list[str]
) -> None:
    sets = _releases(tmp_path)
    names = [s.name for s in sets_needed(reversed(sets), as_of, lateness)]
    assert names == [
        {"2025": "icd10cm-order-2025.txt", "april-2025": "icd10cm-order-april-2025.txt",
         "2026": "icd10cm_order_2026.txt"}[k]
        for k in kept
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "normal", "dotted_form"),
    [
        ("E11.9", "E119", "E11.9"),
        ("E119", "E119", "E11.9"),
        ("E11", "E11", "E11"),
        ("T14.8XXA", "T148XXA", "T14.8XXA"),
        ("e11.9", "e119", "e11.9"),
        ("E1.19", "E1.19", "E1..19"),
        ("E11.", "E11.", "E11.."),
    ],
)
def test_normalize_and_dotted(code: str, normal: str, dotted_form: str) -> None:
    assert normalize(code) == normal
    assert dotted(normal) == dotted_form


# ---------------------------------------------------------------------------- the shipped set


@pytest.fixture(scope="module")
def default_index() -> Icd10Index:
    return Icd10Index.from_sets([default_code_set()])


def test_the_shipped_default_is_a_full_current_set() -> None:
    code_set = default_code_set()
    counts = code_set.counts()
    assert counts["billable"] > 70_000
    assert counts["headers"] > 20_000
    assert 300 < counts["manifestation"] < 1_000
    assert (code_set.fiscal_year, code_set.effective_from) == (2026, date(2026, 4, 1))
    assert code_set.name == f"{default_icd10cm_file().name} (shipped default)"
    assert default_icd10cm_file().name == "icd10cm-order-april-2026.txt.gz"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("E11.9", "billable"),
        ("E11", "header"),
        ("W19.XXXA", "billable"),
        ("F02.80", "billable"),
        ("G63", "billable"),
        ("M14.611", "billable"),
        ("QA00.101", "invalid"),  # misplaced dot
        ("QA0.0101", "billable"),
        ("QA00101", "billable"),  # new in the 2026 tabular list; second character a letter
        ("T81.4XXA", "invalid"),  # subdivided in FY2019
        ("T81.40XA", "billable"),
    ],
)
def test_the_shipped_default_knows_real_codes(
    default_index: Icd10Index, code: str, status: str
) -> None:
    assert default_index.status(code, date(2026, 6, 1)) == status


def test_the_shipped_default_names_real_children_and_manifestations(
    default_index: Icd10Index,
) -> None:
    day = date(2026, 6, 1)
    assert default_index.billable_under("E11", day) == ("E11.00", "E11.01")
    assert default_index.billable_under("E11.6", day, limit=3) == ("E11.610", "E11.618", "E11.620")
    for code in ("G63", "F02.80", "M14.611", "D63.0", "I68.0"):
        assert default_index.is_manifestation(code, day), code
    for code in ("E11.9", "B95.2", "B20", "S32.001A", "W19.XXXA"):
        assert not default_index.is_manifestation(code, day), code
    assert default_index.is_external_cause("W19.XXXA")
    assert default_index.status("E11.9", date(2026, 3, 31)) == "no_code_set"


# ---------------------------------------------------------------------------- the generator


def test_generated_lines_are_read_back_exactly(tmp_path: Path) -> None:
    entries = [
        Entry("G63", True, "Polyneuropathy in  diseases classified elsewhere\n"),
        Entry("M14", False, "Arthropathies in other diseases classified elsewhere"),
        Entry("M146", False, "Charcôt's joint"),
        Entry("M1461", False, "Charcôt's joint, shoulder"),
        Entry("M14611", True, "Charcôt's joint, right shoulder"),
        Entry("QA0", False, "Neurodevelopmental disorders related to specific variants"),
        Entry("QA00101", True, "SCN2A-related neurodevelopmental disorder"),
    ]
    lines = list(order_lines(entries))
    assert (
        lines[0]
        == "00001 G63     1 " + " " * 60 + " Polyneuropathy in diseases classified elsewhere"
    )
    path = tmp_path / order_file_name(Release(2026, date(2026, 4, 1), "x.xml"))
    write_order_file(entries, path)
    first = path.read_bytes()
    write_order_file(entries, path)
    assert path.read_bytes() == first  # no time stamp in the gzip header
    code_set = read_icd10cm_order(path)
    assert (code_set.fiscal_year, code_set.effective_from) == (2026, date(2026, 4, 1))
    assert _codes(code_set.billable) == {"G63", "M14611", "QA00101"}
    assert _codes(code_set.headers) == {"M14", "M146", "M1461", "QA0"}
    assert _codes(code_set.manifestation) == {"G63", "M14", "M146", "M1461", "M14611"}


@pytest.mark.parametrize(
    ("release", "name"),
    [
        (Release(2027, date(2026, 10, 1), "x"), "icd10cm-order-2027.txt.gz"),
        (Release(2026, date(2026, 4, 1), "x"), "icd10cm-order-april-2026.txt.gz"),
        (Release(2021, date(2021, 1, 1), "x"), "icd10cm-order-january-2021.txt.gz"),
    ],
)
def test_generated_file_names_date_the_set_like_cms_names(release: Release, name: str) -> None:
    assert order_file_name(release) == name
    assert effective_from_name(name.removesuffix(".gz")) == (
        release.fiscal_year,
        release.effective_from,
    )


def test_a_release_not_starting_on_the_first_cannot_be_named() -> None:
    with pytest.raises(ValueError, match="cannot be named"):
        order_file_name(Release(2026, date(2026, 4, 2), "x"))


def test_the_order_number_field_has_five_digits() -> None:
    entries = (Entry(f"A{n:06d}", True, "x") for n in range(100_000))
    with pytest.raises(ValueError, match="99,999"):
        for _ in order_lines(entries):
            pass


def test_the_shipped_file_is_in_the_generated_layout() -> None:
    with gzip.open(default_icd10cm_file(), "rt", encoding="utf-8") as text:
        head = [next(text) for _ in range(3)]
    assert head[0] == "00001 A00     0 " + " " * 60 + " Cholera\n"
    assert head[1].startswith("00002 A000    1 ")


class _FakeLibrary:
    """The few calls of ``simple_icd_10_cm`` the generator makes, over a tiny tabular list."""

    def __init__(self, data_dir: Path) -> None:
        self.__file__ = str(data_dir.parent / "simple_icd_10_cm.py")
        self.codes = {  # code: (leaf, title, "code first" note)
            "G63": (True, "Polyneuropathy in diseases classified elsewhere", "underlying disease"),
            "M14": (False, "Arthropathies in other diseases classified elsewhere", ""),
            "M146": (False, "Charcôt's joint", ""),
            "M1461": (True, "Charcôt's joint, shoulder", ""),
            "B20": (True, "Human immunodeficiency virus [HIV] disease", "HIV in pregnancy"),
        }
        self.versions: list[tuple[str, str]] = []

    def get_all_codes(self, with_dots: bool) -> list[str]:
        assert not with_dots
        return ["1", "A00-B99", "B20", "B20", "G63", "M14", "M146", "M1461"]  # B20: block too

    def is_category_or_subcategory(self, code: str) -> bool:
        return code in self.codes

    def is_leaf(self, code: str) -> bool:
        return self.codes[code][0]

    def get_description(self, code: str) -> str:
        return self.codes[code][1]

    def get_code_first(self, code: str, search_in_ancestors: bool = False) -> str:
        return self.codes[code][2]

    def change_version(self, codes: str, tabular: str) -> None:
        self.versions.append((codes, tabular))


def _tabular(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0"?>\n<ICD10CM.tabular>\n  <version>{version}</version>\n')
    return path


def test_the_generator_writes_reads_back_and_measures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = _FakeLibrary(tmp_path / "lib" / "data")
    tabular = _tabular(tmp_path / "lib" / "data" / "icd10c-tabular-April-1-2026.xml", "2026")
    monkeypatch.setattr(generator, "_library", lambda: fake)
    out = tmp_path / "out"
    out.mkdir()
    (out / "icd10cm-order-2025.txt.gz").write_bytes(b"the previous default")
    assert generator.main(["--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["icd10cm-order-april-2026.txt.gz"]
    code_set = read_icd10cm_order(out / "icd10cm-order-april-2026.txt.gz")
    assert _codes(code_set.billable) == {"B20", "G63", "M1461"}
    assert _codes(code_set.manifestation) == {"G63", "M14", "M146", "M1461"}
    printed = capsys.readouterr().out
    assert "title on the code or a code above it            4 /      2" in printed
    assert "'code first' note on the code                   2 /      2" in printed  # G63, B20
    assert generator.main(["--out-dir", str(out), "--check"]) == 0
    (out / "icd10cm-order-april-2026.txt.gz").write_bytes(gzip.compress(b"other\n"))
    assert generator.main(["--out-dir", str(out), "--check"]) == 1
    codes = tmp_path / "codes.txt"
    other = _tabular(tmp_path / "icd10cm_tabular_2027.xml", "2027")
    assert (
        generator.main(["--out-dir", str(out), "--codes", str(codes), "--tabular", str(other)]) == 0
    )
    assert fake.versions == [(str(codes), str(other))]
    assert (out / "icd10cm-order-2027.txt.gz").exists()
    assert tabular.exists()


def test_the_generator_refuses_a_tabular_list_of_another_year(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _FakeLibrary(tmp_path / "lib" / "data")
    _tabular(tmp_path / "lib" / "data" / "icd10c-tabular-April-1-2026.xml", "2025")
    monkeypatch.setattr(generator, "_library", lambda: fake)
    with pytest.raises(SystemExit, match="<version> 2025 is not fiscal year 2026"):
        generator.main(["--out-dir", str(tmp_path)])
