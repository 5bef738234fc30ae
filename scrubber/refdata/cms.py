"""Readers for the two CMS files the scrubber adjudicates with: the PPRRVU file and the MUE table.

Both files are published by CMS in layouts meant for people with spreadsheets, not for programs,
so the readers are deliberately strict about values and deliberately tolerant about layout:

* Columns are found by *name*, never by position. The PPRRVU header cells span several rows
  ("GLOB" over "DAYS"), so each column's full name is rebuilt from the header block first; a
  future release that inserts a column still reads, and one that drops a column we need fails
  loudly at the header line instead of shifting every value one cell to the left.
* Every value the scrubber uses is checked against the value set CMS documents for it (RVU25D
  record layout, Attachment A; ``scrubber.standards`` keeps them with their meanings). A wrong
  indicator silently read would turn into a wrong verdict on real claims, so a bad value or a
  short row is an error naming the file, the 1-based line and the column -- never a skipped row.
* What the real files do that is harmless is accepted: a byte-order mark, quoted cells (with
  commas or even line breaks in descriptions), padding spaces, trailing empty columns, blank lines
  at the end, and a preamble of copyright lines before the MUE header.

The readers use the ``csv`` module and nothing heavier: the full PPRRVU file has about 19,000 rows
and is read at every reference-data build, which must stay well under a second.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

from scrubber.standards import (
    ASSISTANT_VALUES,
    BILATERAL_VALUES,
    GLOBAL_DAYS_VALUES,
    HCPCS_CODE_SHAPE,
    MODIFIER_SHAPE,
    MPFS_COLUMNS,
    MUE_INDICATOR_LABELS,
    MUE_INDICATORS,
    MULT_PROC_VALUES,
    PCTC_VALUES,
    STATUS_CODES,
    SURGEONS_VALUES,
)

__all__ = [
    "CmsFileError",
    "MpfsFile",
    "MpfsHeader",
    "MpfsRow",
    "MueRow",
    "column_key",
    "read_mpfs",
    "read_mpfs_header",
    "read_mue",
]


class CmsFileError(ValueError):
    """A CMS file that cannot be trusted; the message is always ``"<file name>:<line>: ..."``.

    A ``ValueError`` so callers that validate input generically catch it too; the file name and
    line make the message actionable for whoever has to fix or replace the file.
    """

    def __init__(self, path: Path, line: int, message: str) -> None:
        self.path = path
        self.line = line
        self.reason = message
        super().__init__(f"{path.name}:{line}: {message}")


@dataclass(frozen=True, slots=True)
class MpfsRow:
    """One PPRRVU record (a code and modifier), values as written in the file, stripped.

    Indicators stay strings because they are codes, not quantities ("090" is not ninety). RVUs
    and percentages stay strings as written so nothing is lost to float rounding; ``None`` means
    the cell was blank.
    """

    code: str
    modifier: str  # "" for the global row, "26", "TC", "53", ...
    description: str
    status: str
    pctc: str
    global_days: str
    mult_proc: str
    bilateral: str
    assistant: str
    co_surgeons: str
    team_surgery: str
    endo_base: str
    work_rvu: str | None
    pre_op: str | None
    intra_op: str | None
    post_op: str | None
    conversion_factor: str | None
    source: str  # "<file name>:<line>"


@dataclass(frozen=True, slots=True)
class MpfsFile:
    """A whole PPRRVU file: its rows and what its header block says about the release."""

    rows: tuple[MpfsRow, ...]
    release: str | None  # the title line, e.g. "... Relative Value File October Release"
    released: str | None  # ISO date of the "RELEASED mm/dd/yyyy" line


@dataclass(frozen=True, slots=True)
class MueRow:
    """One NCCI MUE record: the most units of a code a practitioner may bill per line or day."""

    code: str
    value: int
    indicator: str  # "1" line edit, "2" date-of-service edit: policy, "3" ... clinical
    indicator_text: str  # the cell as written, e.g. "2 Date of Service Edit: Policy"
    rationale: str | None
    source: str  # "<file name>:<line>"


# The value sets every indicator is checked against are RVU25D's (the record layout and
# Attachment A), kept with their meanings in ``scrubber.standards``. Anything outside them means
# the file is not what we think it is, so it is refused rather than guessed at.

_DECIMAL_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_RELEASED_RE = re.compile(r"\bRELEASED\b\W*(\d{1,2})/(\d{1,2})/(\d{4})\b", re.IGNORECASE)
_TITLE_RE = re.compile(r"RELATIVE\s+VALUE\s+FILE", re.IGNORECASE)
_WORD_RE = re.compile(r"[A-Z0-9]+")
_MUE_INDICATOR_RE = re.compile(r"([0-9])(?![0-9])\W*(.*)", re.DOTALL)


def column_key(name: str) -> tuple[str, ...]:
    """A column name reduced to its words, so "CO-SURG", "CO- SURG" and "co surg" are equal."""
    return tuple(_WORD_RE.findall(name.upper()))


# ------------------------------------------------------------------------------- parsing


def _decode(path: Path) -> str:
    """The file's text: UTF-8 (with or without BOM) or, failing that, the Windows code page.

    CMS produces these files with Excel; descriptions occasionally carry Windows-1252 characters.
    A ``.gz`` file is read through gzip (the package ships the full tables compressed).
    """
    data = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise CmsFileError(path, 1, f"not a readable gzip file: {exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(first line, cells)`` for each CSV record; a quoted line break keeps later lines true."""
    reader = csv.reader(io.StringIO(_decode(path), newline=""))
    start = 1
    try:
        for cells in reader:
            yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CmsFileError(path, start, f"not readable as CSV: {exc}") from None


def _blank(cells: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def _data_records(
    path: Path, records: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, list[str]]]:
    """The non-blank records after the header; blank lines may follow the data, not split it."""
    blank_line: int | None = None
    for line, cells in records:
        if _blank(cells):
            blank_line = blank_line or line
            continue
        if blank_line is not None:
            raise CmsFileError(path, blank_line, "blank line between data rows")
        yield line, cells


def _first_cell(cells: Sequence[str]) -> str:
    return cells[0].replace("\ufeff", "").strip().upper() if cells else ""


def _column_names(block: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    """Each column's full name: its header-row cell under the stack of cells directly above it.

    Only the *contiguous* non-blank cells above the header row belong to a column's name; the
    title lines at the top of the file (release name, copyright, "RELEASED ...") sit above the
    DESCRIPTION column and are separated from it by blank cells, so they do not become part of it.
    A piece ending in "-" joins without a space ("CO-" over "SURG" is "CO-SURG").
    """
    rows = [*block, header]
    width = max(len(r) for r in rows)
    names: list[str] = []
    for col in range(width):
        parts: list[str] = []
        i = len(rows) - 1
        if col >= len(rows[i]) or not rows[i][col].strip():
            i -= 1  # a name written only above the header row still counts
        while i >= 0 and col < len(rows[i]) and rows[i][col].strip():
            parts.append(" ".join(rows[i][col].split()))
            i -= 1
        name = ""
        for part in reversed(parts):
            name = f"{name}{part}" if not name or name.endswith("-") else f"{name} {part}"
        names.append(name)
    return names


def _locate(
    path: Path, line: int, names: Sequence[str], wanted: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, int]:
    """Column index for each wanted name; a missing or doubled required column is an error.

    Exact name first; failing that, a unique column whose name *ends* with the wanted words (so
    stray text stacked above a header cell in some release does not hide the column).
    """
    keys = [column_key(n) for n in names]
    found: dict[str, int] = {}
    for name in (*wanted, *optional):
        want = column_key(name)
        hits = [i for i, k in enumerate(keys) if k == want]
        if not hits:
            hits = [i for i, k in enumerate(keys) if len(k) > len(want) and k[-len(want) :] == want]
        if len(hits) == 1:
            found[name] = hits[0]
        elif len(hits) > 1:
            cells = ", ".join(str(i + 1) for i in hits)
            raise CmsFileError(
                path, line, f"column {name!r} appears more than once (cells {cells})"
            )
        elif name in wanted:
            have = ", ".join(repr(n) for n in names if n)
            raise CmsFileError(path, line, f"required column {name!r} not found (columns: {have})")
    return found


# ---------------------------------------------------------------------------- validators
# Each takes the stripped cell and returns the value to keep or raises ValueError with the reason;
# the caller adds file, line and column.


def _one_of(values: frozenset[str], what: str) -> Callable[[str], str]:
    allowed = ", ".join(sorted(values))

    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"{value!r} is not a valid {what} (expected one of {allowed})")
        return value

    return check


def _code(value: str) -> str:
    code = value.upper()
    if not HCPCS_CODE_SHAPE.fullmatch(code):
        raise ValueError(
            f"{value!r} is not a HCPCS/CPT code (5 characters: a letter or digit, three digits, "
            "a letter or digit)"
        )
    return code


def _modifier(value: str) -> str:
    mod = value.upper()
    if mod and not MODIFIER_SHAPE.fullmatch(mod):
        raise ValueError(f"{value!r} is not a 2-character modifier")
    return mod


def _text(value: str) -> str:
    return value


def _endo_base(value: str) -> str:
    return _code(value) if value else ""


def _decimal(value: str) -> str | None:
    if not value:
        return None
    if not _DECIMAL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a non-negative decimal number")
    return value


def _fraction(value: str) -> str | None:
    number = _decimal(value)
    if number is not None and float(number) > 1:
        raise ValueError(f"{value!r} is not a fraction of the global package (0 to 1)")
    return number


def _indicator(
    field: str, values: frozenset[str], what: str
) -> tuple[str, str, Callable[[str], str | None]]:
    """An indicator's entry in ``_MPFS_COLUMNS``: its field, its PPRRVU column, its value check."""
    return field, MPFS_COLUMNS[field], _one_of(values, what)


#: PPRRVU columns read into MpfsRow, in the dataclass's field order (so a row is built
#: positionally, the cheapest way for 19,000 rows): (attribute, documented column name, validator).
_MPFS_COLUMNS: tuple[tuple[str, str, Callable[[str], str | None]], ...] = (
    ("code", "HCPCS", _code),
    ("modifier", "MOD", _modifier),
    ("description", "DESCRIPTION", _text),
    _indicator("status", STATUS_CODES, "status code"),
    _indicator("pctc", PCTC_VALUES, "PC/TC indicator"),
    _indicator("global_days", GLOBAL_DAYS_VALUES, "global surgery period"),
    _indicator("mult_proc", MULT_PROC_VALUES, "multiple procedure indicator"),
    _indicator("bilateral", BILATERAL_VALUES, "bilateral surgery indicator"),
    _indicator("assistant", ASSISTANT_VALUES, "assistant at surgery indicator"),
    _indicator("co_surgeons", SURGEONS_VALUES, "co-surgeons indicator"),
    _indicator("team_surgery", SURGEONS_VALUES, "team surgery indicator"),
    ("endo_base", "ENDO BASE", _endo_base),
    ("work_rvu", "WORK RVU", _decimal),
    ("pre_op", "PRE OP", _fraction),
    ("intra_op", "INTRA OP", _fraction),
    ("post_op", "POST OP", _fraction),
    ("conversion_factor", "CONV FACTOR", _decimal),
)
if (*(a for a, _, _ in _MPFS_COLUMNS), "source") != tuple(f.name for f in fields(MpfsRow)):
    raise RuntimeError("_MPFS_COLUMNS is out of step with MpfsRow's fields")


@dataclass(frozen=True, slots=True)
class MpfsHeader:
    """Where the PPRRVU column header row is and what the header block above it says.

    ``block`` holds the records above the header row as ``(line, cells)``; ``names`` each
    column's full name, rebuilt from the cells stacked above it ("CO-" over "SURG").
    """

    line: int
    block: tuple[tuple[int, tuple[str, ...]], ...]
    cells: tuple[str, ...]
    names: tuple[str, ...]


def _read_header(path: Path, records: Iterator[tuple[int, list[str]]]) -> MpfsHeader:
    """Consume records up to and including the row whose first cell is ``HCPCS``."""
    block: list[tuple[int, tuple[str, ...]]] = []
    last = 1
    for line, cells in records:
        last = line
        if _first_cell(cells) == "HCPCS":
            names = _column_names([c for _, c in block], cells)
            return MpfsHeader(line, tuple(block), tuple(cells), tuple(names))
        block.append((line, tuple(cells)))
    raise CmsFileError(
        path, last, "no column header row (a row whose first cell is 'HCPCS') in the file"
    )


def read_mpfs_header(path: Path) -> MpfsHeader:
    """The header of a PPRRVU file as the reader sees it, without reading the data rows.

    For whatever has to match the reader's view of the layout, such as a writer of synthetic
    files in the same layout.
    """
    return _read_header(path, _records(path))


def _release(path: Path, header: MpfsHeader) -> tuple[str | None, str | None]:
    """The release title and the ISO date of the ``RELEASED mm/dd/yyyy`` line, if present."""
    title: str | None = None
    released: str | None = None
    for line, cells in header.block:
        for cell in cells:
            text = " ".join(cell.split())
            if title is None and _TITLE_RE.search(text):
                title = text
            match = _RELEASED_RE.search(text) if released is None else None
            if match:
                month, day, year = (int(g) for g in match.groups())
                try:
                    released = date(year, month, day).isoformat()
                except ValueError:
                    raise CmsFileError(path, line, f"release date {text!r} is not a date") from None
    return title, released


def _bad_value(path: Path, line: int, cells: Sequence[str], where: dict[str, int]) -> CmsFileError:
    """The error for a row that failed validation, naming the first offending column."""
    for _, column, check in _MPFS_COLUMNS:
        try:
            check(cells[where[column]].strip())
        except ValueError as exc:
            return CmsFileError(path, line, f"column {column!r}: {exc}")
    return CmsFileError(path, line, "invalid row")  # pragma: no cover - a check failed above


def read_mpfs(path: Path) -> MpfsFile:
    """Read a PPRRVU CSV (full CMS file or an extract in the same layout), validating every value.

    Raises ``CmsFileError`` naming the file, the 1-based line and the column for anything that
    does not match the RVU25D documentation, so a damaged or unexpected file never becomes
    reference data.
    """
    records = _records(path)
    header = _read_header(path, records)
    wanted = [name for _, name, _ in _MPFS_COLUMNS]
    where = _locate(path, header.line, header.names, wanted)
    plan = [(where[name], check) for _, name, check in _MPFS_COLUMNS]
    needed = max(where.values()) + 1
    title, released = _release(path, header)

    rows: list[MpfsRow] = []
    seen: dict[tuple[str, str], int] = {}
    name = path.name
    for line, cells in _data_records(path, records):
        if len(cells) < needed:
            missing = next(n for n in wanted if where[n] >= len(cells))
            raise CmsFileError(
                path,
                line,
                f"short row: {len(cells)} cells, column {missing!r} "
                f"(cell {where[missing] + 1}) missing",
            )
        try:
            values: list[Any] = [check(cells[index].strip()) for index, check in plan]
        except ValueError:
            raise _bad_value(path, line, cells, where) from None
        key = (values[0], values[1])
        if key in seen:
            raise CmsFileError(
                path, line, f"duplicate record for {' '.join(key).strip()} (first at {seen[key]})"
            )
        seen[key] = line
        values.append(f"{name}:{line}")  # source
        rows.append(MpfsRow(*values))
    return MpfsFile(rows=tuple(rows), release=title, released=released)


# ------------------------------------------------------------------------------------ MUE

_MUE_CODE = "HCPCS/CPT Code"
_MUE_VALUE = "Practitioner Services MUE Values"
_MUE_INDICATOR = "MUE Adjudication Indicator"
_MUE_RATIONALE = "MUE Rationale"


def _mue_indicator(value: str) -> tuple[str, str]:
    """``("2", "2 Date of Service Edit: Policy")`` from the cell; the words must fit the digit."""
    text = " ".join(value.split())
    match = _MUE_INDICATOR_RE.fullmatch(text)
    if not match or match.group(1) not in MUE_INDICATORS:
        allowed = "; ".join(f"{d} {t}" for d, t in MUE_INDICATOR_LABELS.items())
        raise ValueError(f"{value!r} is not an MUE adjudication indicator (expected {allowed})")
    digit, words = match.groups()
    if words and column_key(words) != column_key(MUE_INDICATOR_LABELS[digit]):
        raise ValueError(
            f"{value!r}: indicator {digit} means {MUE_INDICATOR_LABELS[digit]!r}, not {words!r}"
        )
    return digit, text


def read_mue(path: Path) -> tuple[MueRow, ...]:
    """Read an NCCI practitioner MUE CSV, skipping any preamble before the header row.

    The header row is the first row with a ``HCPCS/CPT Code`` cell; columns are then found by
    CMS's names. Every row must have a valid code, a whole non-negative MUE value and an
    adjudication indicator 1, 2 or 3; anything else raises ``CmsFileError`` with file and line.
    """
    records = _records(path)
    header_line = 0
    names: list[str] = []
    last = 1
    code_key = column_key(_MUE_CODE)
    for line, cells in records:
        last = line
        if any(column_key(cell) == code_key for cell in cells):
            header_line, names = line, [" ".join(c.replace("\ufeff", "").split()) for c in cells]
            break
    else:
        raise CmsFileError(path, last, f"no header row (a row with a {_MUE_CODE!r} cell)")
    wanted = (_MUE_CODE, _MUE_VALUE, _MUE_INDICATOR)
    where = _locate(path, header_line, names, wanted, optional=(_MUE_RATIONALE,))
    needed = max(where[n] for n in wanted) + 1
    rationale_at = where.get(_MUE_RATIONALE)

    rows: list[MueRow] = []
    seen: dict[str, int] = {}
    for line, cells in _data_records(path, records):
        if len(cells) < needed:
            missing = next(n for n in wanted if where[n] >= len(cells))
            raise CmsFileError(
                path, line, f"short row: {len(cells)} cells, column {missing!r} missing"
            )
        column = _MUE_CODE
        try:
            code = _code(cells[where[_MUE_CODE]].strip())
            column = _MUE_VALUE
            raw = cells[where[_MUE_VALUE]].strip()
            if not raw.isascii() or not raw.isdigit():
                raise ValueError(f"{raw!r} is not a whole number of units")
            column = _MUE_INDICATOR
            indicator, indicator_text = _mue_indicator(cells[where[_MUE_INDICATOR]])
        except ValueError as exc:
            raise CmsFileError(path, line, f"column {column!r}: {exc}") from None
        if code in seen:
            raise CmsFileError(path, line, f"duplicate record for {code} (first at {seen[code]})")
        seen[code] = line
        rationale = None
        if rationale_at is not None and rationale_at < len(cells):
            rationale = " ".join(cells[rationale_at].split()) or None
        rows.append(
            MueRow(
                code=code,
                value=int(raw),
                indicator=indicator,
                indicator_text=indicator_text,
                rationale=rationale,
                source=f"{path.name}:{line}",
            )
        )
    return tuple(rows)
