"""CMS add-on code (AOC) edits: the xlsx reader, the bundle table and the per-date index.

CMS's NCCI add-on code edit file says, per add-on code, which primary procedures it may be
billed with, by edit type:

* type 1: only with one of the primary codes listed (same patient, date and rendering NPI);
* type 2: CMS lists none; any primary procedure will do (the Medicare contractor may define
  them: the file writes the primary code as ``CCCCC``);
* type 3: the listed primaries, but the contractor may accept others (so a missing listed
  primary is a warning, not an error).

Every edit has an effective date and may have a deletion date, and each listed primary may have
its own deletion date, so the answer depends on the date of service: ``AocIndex.rule_for(add_on,
day)`` returns the rule in force that day.

The reader follows the project's line for CMS files (see ``scrubber.refdata.cms``): tolerant of
layout (a notice row above the header, columns in any order and found by name, case, ``_``,
``-`` and spaces not mattering, the file inside CMS's zip, cells as numbers or text), strict about
values (codes, edit types and dates are checked; a bad cell is an error naming file, sheet when
there are several, spreadsheet row and column), never a partial table.

Dates are CMS's Julian ``YYYYDDD`` (``2024001`` is 2024-01-01) or ``*`` for none. Deletion dates
are inclusive: an edit applies while ``AOC_Edit_EffDT <= day <= AOC_Edit_DelDT``, a listed
primary counts while ``day <= Primary_Code_DelDT``, and an add-on code is edited while
``day <= AOC_DelDT``.
"""

from __future__ import annotations

import bisect
import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from scrubber.refdata.cms import CmsFileError

__all__ = [
    "CONTRACTOR_DEFINED",
    "AocIndex",
    "AocRow",
    "AocRule",
    "AocTable",
    "julian_date",
    "read_aoc",
]

#: The primary code CMS writes when the Medicare contractor, not CMS, defines the primaries.
CONTRACTOR_DEFINED = "CCCCC"

#: Restrictiveness of the edit types, most restrictive first: if a file ever has two types in
#: force for one add-on on one day, the stricter one is applied (1 names the only acceptable
#: primaries, 3 names some, 2 names none).
_PRECEDENCE = {1: 0, 3: 1, 2: 2}

_CODE_RE = re.compile(r"[A-Z0-9]{5}")
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


@dataclass(frozen=True, slots=True)
class AocRow:
    """One row of the AOC edit file, values checked and converted."""

    edit_type: int  # 1, 2 or 3
    add_on: str
    add_on_deletion: date | None  # AOC_DelDT: the add-on code itself deleted
    primary: str | None  # None for CCCCC: the contractor defines the primaries
    primary_deletion: date | None
    effective: date
    deletion: date | None  # AOC_Edit_DelDT, inclusive
    notes: str
    source: str  # "<file>:<row>"


#: An ``AocRow`` as the bundle stores it, fields in the same order.
AocTuple = tuple[int, str, date | None, str | None, date | None, date, date | None, str, str]


def _as_tuple(row: AocRow) -> AocTuple:
    return (
        row.edit_type,
        row.add_on,
        row.add_on_deletion,
        row.primary,
        row.primary_deletion,
        row.effective,
        row.deletion,
        row.notes,
        row.source,
    )


def _sort_key(row: AocTuple) -> tuple[Any, ...]:
    """By add-on code, then every field; None before any value, so the order is total."""
    return (row[1], *((value is not None, value if value is not None else 0) for value in row))


class AocTable(BaseModel):
    """The AOC edit rows as the reference-data bundle stores them: tuples, in a fixed order.

    Tuples instead of objects keep the JSON about a third the size; the order (by add-on code,
    then every field) makes equal inputs give equal bundles, whatever the row order in the file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: tuple[AocTuple, ...]

    @model_validator(mode="after")
    def _check(self) -> AocTable:
        """Refuse rows a reader would have refused, and rows out of order (JSON not canonical)."""
        for number, row in enumerate(self.rows, start=1):
            edit_type, add_on, _, primary, *_ = row
            if edit_type not in _PRECEDENCE:
                raise ValueError(f"row {number}: edit type {edit_type} is not 1, 2 or 3")
            for code in (add_on, primary):
                if code is not None and not _CODE_RE.fullmatch(code):
                    raise ValueError(f"row {number}: {code!r} is not a 5-character code")
        keys = [_sort_key(row) for row in self.rows]
        if any(a > b for a, b in itertools.pairwise(keys)):
            raise ValueError("rows are not in the table's order (build it with from_rows)")
        return self

    @classmethod
    def from_rows(cls, rows: Iterable[AocRow]) -> AocTable:
        """The table of the given rows, sorted."""
        return cls(rows=tuple(sorted((_as_tuple(r) for r in rows), key=_sort_key)))

    def to_rows(self) -> tuple[AocRow, ...]:
        """The rows back as ``AocRow`` objects."""
        return tuple(AocRow(*row) for row in self.rows)

    def describe(self) -> dict[str, Any]:
        """What ``scrubber refdata status`` shows: files, counts, add-ons by edit type, dates."""
        by_type: dict[int, set[str]] = {1: set(), 2: set(), 3: set()}
        for row in self.rows:
            by_type[row[0]].add(row[1])
        return {
            "files": sorted({row[8].rsplit(":", 1)[0] for row in self.rows}),
            "rows": len(self.rows),
            "add_ons": len({row[1] for row in self.rows}),
            "add_ons_by_type": {str(t): len(codes) for t, codes in by_type.items()},
            "newest_effective": max((row[5] for row in self.rows), default=None),
        }


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
    if not _CODE_RE.fullmatch(text):
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


# ------------------------------------------------------------------------------ the index


@dataclass(frozen=True, slots=True)
class AocRule:
    """What the AOC file requires of an add-on code on one day.

    ``primaries`` are the listed primary codes still in force that day (empty for type 2);
    ``contractor_defined`` says the file (also) defers to the contractor (``CCCCC``).
    """

    edit_type: int
    primaries: frozenset[str]
    contractor_defined: bool
    notes: str


@dataclass(frozen=True, slots=True)
class _Edit:
    edit_type: int
    primary: str | None
    primary_deletion: date | None
    effective: date
    last_day: date | None  # the earlier of the edit's and the add-on code's deletion dates
    notes: str


def _last_day(*days: date | None) -> date | None:
    known = [d for d in days if d is not None]
    return min(known) if known else None


def _rule_at(edits: Sequence[_Edit], day: date) -> AocRule | None:
    """The rule the edits make on one day (see ``AocIndex.rule_for``)."""
    live = [e for e in edits if e.effective <= day and (e.last_day is None or day <= e.last_day)]
    if not live:
        return None
    edit_type = min((e.edit_type for e in live), key=_PRECEDENCE.__getitem__)
    chosen = [e for e in live if e.edit_type == edit_type]
    primaries = frozenset(
        e.primary
        for e in chosen
        if e.primary is not None and (e.primary_deletion is None or day <= e.primary_deletion)
    )
    return AocRule(
        edit_type=edit_type,
        primaries=primaries,
        contractor_defined=any(e.primary is None for e in chosen),
        notes="; ".join(sorted({e.notes for e in chosen if e.notes})),
    )


def _timeline(edits: Sequence[_Edit]) -> tuple[tuple[date, ...], tuple[AocRule | None, ...]]:
    """The days on which an add-on's rule can change, and the rule from each of them on.

    A rule changes only on an effective date or the day after a deletion date, so evaluating it
    on those days gives every rule the add-on ever has; consecutive equal rules are merged.
    """
    one_day = timedelta(days=1)
    days: set[date] = set()
    for e in edits:
        days.add(e.effective)
        days.update(d + one_day for d in (e.last_day, e.primary_deletion) if d is not None)
    starts: list[date] = []
    rules: list[AocRule | None] = []
    for day in sorted(days):
        rule = _rule_at(edits, day)
        if not rules or rule != rules[-1]:
            starts.append(day)
            rules.append(rule)
    return tuple(starts), tuple(rules)


class AocIndex:
    """The AOC edits by add-on code, built once per reference-data version.

    Each add-on's rules are computed ahead for every period in which they are constant (an add-on
    has a handful of distinct dates even when it lists hundreds of primaries), so ``rule_for`` is
    a dictionary lookup and a bisect, and every line asking about the same add-on and period gets
    the same ``AocRule`` with its frozenset already built.
    """

    __slots__ = ("_primaries", "_timelines")

    def __init__(
        self,
        timelines: dict[str, tuple[tuple[date, ...], tuple[AocRule | None, ...]]],
        primaries: dict[str, frozenset[str]],
    ) -> None:
        self._timelines = timelines
        self._primaries = primaries

    @classmethod
    def from_table(cls, table: AocTable) -> AocIndex:
        """Group the table's rows by add-on code and work out each add-on's rules over time."""
        grouped: dict[str, list[_Edit]] = {}
        for row in table.to_rows():
            grouped.setdefault(row.add_on, []).append(
                _Edit(
                    edit_type=row.edit_type,
                    primary=row.primary,
                    primary_deletion=row.primary_deletion,
                    effective=row.effective,
                    last_day=_last_day(row.deletion, row.add_on_deletion),
                    notes=row.notes,
                )
            )
        return cls(
            {add_on: _timeline(edits) for add_on, edits in grouped.items()},
            {
                add_on: frozenset(e.primary for e in edits if e.primary is not None)
                for add_on, edits in grouped.items()
            },
        )

    def rule_for(self, add_on: str, day: date) -> AocRule | None:
        """The rule in force for ``add_on`` on ``day``; None when the file says nothing then.

        Rows in force that day are ``effective <= day <= deletion`` (and the add-on not yet
        deleted). If rows of several edit types are in force (CMS should not publish that), the
        most restrictive type is applied: 1 over 3 over 2, with that type's rows only. A listed
        primary whose own deletion date has passed is not among ``primaries``.
        """
        timeline = self._timelines.get(add_on)
        if timeline is None:
            return None
        starts, rules = timeline
        i = bisect.bisect_right(starts, day) - 1
        return rules[i] if i >= 0 else None

    def add_ons(self) -> frozenset[str]:
        """Every add-on code the file names, on any date."""
        return frozenset(self._timelines)

    def primaries_anyday(self, add_on: str) -> frozenset[str]:
        """Every primary the file lists for ``add_on``, whatever the dates (for messages)."""
        return self._primaries.get(add_on, frozenset())
