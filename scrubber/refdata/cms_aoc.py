"""The CMS add-on code (AOC) edit workbook reader: build time only (``scrubber refdata build``).

Turns CMS's NCCI AOC edit file into ``AocRow`` objects for ``scrubber.refdata.aoc.AocTable``; the
worker reads the table from the bundle and never imports this module (nor ``openpyxl``).

The reader follows the project's line for CMS files (see ``scrubber.refdata.cms``): tolerant of
layout (a notice row above the header, columns in any order and found by name, case, ``_``,
``-`` and spaces not mattering, the file inside CMS's zip, cells as numbers or text), strict about
values (codes, edit types and dates are checked; a bad cell is an error naming file, sheet when
there are several, spreadsheet row and column), never a partial table.

Dates are CMS's Julian ``YYYYDDD`` (``2024001`` is 2024-01-01) or ``*`` for none.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from scrubber.refdata.aoc import CODE_RE, CONTRACTOR_DEFINED, AocRow
from scrubber.refdata.cms import CmsFileError

__all__ = ["julian_date", "read_aoc"]

_JULIAN_RE = re.compile(r"([0-9]{4})([0-9]{3})")
_HEADER_SCAN_ROWS = 30  # the header row is found among the first rows of a sheet

# Column names as CMS writes them; matched on their letters and digits only.
_TYPE = "AOC_Edit_Type"
_ADD_ON = "Add-On_Code"
_ADD_ON_DEL = "AOC_DelDT"
_PRIMARY = "Primary_Code"
_PRIMARY_DEL = "Primary_Code_DelDT"
_EFFECTIVE = "AOC_Edit_EffDT"
_DELETION = "AOC_Edit_DelDT"
_NOTES = "Special_Instruction_Notes"
_COLUMNS = (_TYPE, _ADD_ON, _ADD_ON_DEL, _PRIMARY, _PRIMARY_DEL, _EFFECTIVE, _DELETION, _NOTES)


def _key(name: object) -> str:
    """A header cell reduced to upper-case letters and digits: "Add-On Code" == "ADD_ON_CODE"."""
    return re.sub(r"[^A-Z0-9]", "", str(name).upper()) if name is not None else ""


_KEYS = {_key(c): c for c in _COLUMNS}


# ------------------------------------------------------------------------------ reading


def julian_date(value: object) -> date | None:
    """CMS's Julian ``YYYYDDD`` (int or text) as a date; ``*`` is None; anything else raises.

    An Excel date cell is taken as the date it holds.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip() if value is not None else ""
    if text == "*":
        return None
    match = _JULIAN_RE.fullmatch(text)
    if match is None or isinstance(value, bool):
        raise ValueError(f"{text!r} is not a Julian date YYYYDDD or '*'")
    year, day = int(match.group(1)), int(match.group(2))
    if not 1900 <= year <= 2999:
        raise ValueError(f"{text!r} is not a Julian date: year {year}")
    length = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    if not 1 <= day <= length:
        raise ValueError(f"{text!r} is not a Julian date: {year} has no day {day}")
    return date(year, 1, 1) + timedelta(days=day - 1)


def _code(value: object) -> str:
    """A 5-character HCPCS/CPT code; a number cell gets its leading zeros back (01953)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 99999:
        return f"{value:05d}"
    text = str(value).strip().upper() if value is not None else ""
    if not CODE_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a 5-character HCPCS/CPT code")
    return text


def _edit_type(value: object) -> int:
    text = str(value).strip() if value is not None else ""
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if text not in {"1", "2", "3"} or isinstance(value, bool):
        raise ValueError(f"{text!r} is not an AOC edit type (1, 2 or 3)")
    return int(text)


def _required_date(value: object) -> date:
    day = julian_date(value)
    if day is None:
        raise ValueError("'*' is not allowed: the edit needs an effective date")
    return day


def _text(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _blank(cells: Sequence[object]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _find_header(rows: Sequence[Sequence[object]]) -> int | None:
    """0-based index of the first row holding the add-on code and edit type columns."""
    for i, cells in enumerate(rows[:_HEADER_SCAN_ROWS]):
        keys = {_key(c) for c in cells}
        if _key(_ADD_ON) in keys and _key(_TYPE) in keys:
            return i
    return None


def _locate(where: Path, line: int, cells: Sequence[object]) -> dict[str, int]:
    """Column index of each CMS column in the header row; missing or doubled: an error."""
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        name = _KEYS.get(_key(cell))
        if name is None:
            continue
        if name in found:
            raise CmsFileError(
                where, line, f"column {name!r} appears twice (cells {found[name] + 1}, {index + 1})"
            )
        found[name] = index
    missing = [name for name in _COLUMNS if name not in found]
    if missing:
        have = ", ".join(repr(str(c)) for c in cells if c is not None and str(c).strip())
        raise CmsFileError(
            where,
            line,
            f"required column {missing[0]!r} not found (columns: {have})",
        )
    return found


def _rows_of(where: Path, rows: Sequence[Sequence[object]], header: int) -> Iterator[AocRow]:
    """The checked rows below the header; blank rows may end the sheet, not split it."""
    line = header + 1
    where_col = _locate(where, line, rows[header])
    plan: tuple[tuple[str, Any], ...] = (
        (_TYPE, _edit_type),
        (_ADD_ON, _code),
        (_ADD_ON_DEL, julian_date),
        (_PRIMARY, None),
        (_PRIMARY_DEL, julian_date),
        (_EFFECTIVE, _required_date),
        (_DELETION, julian_date),
        (_NOTES, _text),
    )
    blank_line: int | None = None
    for index in range(header + 1, len(rows)):
        line = index + 1
        cells = rows[index]
        if _blank(cells):
            blank_line = blank_line or line
            continue
        if blank_line is not None:
            raise CmsFileError(where, blank_line, "blank row between data rows")
        values: list[Any] = []
        for column, check in plan:
            at = where_col[column]
            cell = cells[at] if at < len(cells) else None
            try:
                if column == _PRIMARY:
                    code = _code(cell)
                    values.append(None if code == CONTRACTOR_DEFINED else code)
                else:
                    values.append(check(cell))
            except ValueError as exc:
                raise CmsFileError(where, line, f"column {column!r}: {exc}") from None
        values.append(f"{where.name}:{line}")
        yield AocRow(*values)


def _workbook_bytes(path: Path) -> tuple[Path, bytes]:
    """``(path to name in errors, xlsx bytes)``; from CMS's zip, its one xlsx member."""
    if not path.name.lower().endswith(".zip"):
        return path, path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                name
                for name in archive.namelist()
                if name.lower().endswith(".xlsx")
                and not PurePosixPath(name).name.startswith(("~$", "._"))
                and not name.startswith("__MACOSX/")
            ]
            if len(members) != 1:
                what = "no" if not members else f"{len(members)} ({', '.join(sorted(members))})"
                raise ValueError(f"{path.name}: {what} .xlsx member; expected exactly one")
            data = archive.read(members[0])
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path.name}: not a readable zip file ({exc})") from None
    return path.with_name(f"{path.name}!{PurePosixPath(members[0]).name}"), data


def read_aoc(path: Path) -> tuple[AocRow, ...]:
    """Read a CMS AOC edit file (``.xlsx``, or CMS's ``.zip`` holding one) into checked rows.

    Every sheet whose first rows hold the header (a row with the ``Add-On_Code`` and
    ``AOC_Edit_Type`` columns) is read; other sheets (notes, layouts) are skipped. Raises
    ``CmsFileError`` ("file:row: column ...: why"; "file[sheet]:row" when the workbook has
    several sheets) for a bad cell or a missing column, ``ValueError`` for a file that is not a
    workbook or has no such sheet.
    """
    import openpyxl  # a heavy import, needed only when a file is read

    where, data = _workbook_bytes(path)
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{where.name}: not a readable xlsx workbook ({exc})") from None
    try:
        sheets = list(workbook.worksheets)
        rows_out: list[AocRow] = []
        read_any = False
        for sheet in sheets:
            rows = [tuple(r) for r in sheet.iter_rows(min_row=1, values_only=True)]
            header = _find_header(rows)
            if header is None:
                continue
            read_any = True
            named = where.with_name(f"{where.name}[{sheet.title}]") if len(sheets) > 1 else where
            rows_out.extend(_rows_of(named, rows, header))
    finally:
        workbook.close()
    if not read_any:
        raise ValueError(
            f"{where.name}: no sheet has a header row with {_ADD_ON!r} and {_TYPE!r} "
            f"in its first {_HEADER_SCAN_ROWS} rows"
        )
    if not rows_out:
        raise ValueError(f"{where.name}: no AOC edit rows below the header")
    return tuple(rows_out)
