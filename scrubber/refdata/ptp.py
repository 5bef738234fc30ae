"""The NCCI procedure-to-procedure (PTP) edit table as the worker holds it: rows, bundle, index.

Runs in the worker (and in the build, which encodes the table); the CMS file reader is
``scrubber.refdata.cms_ptp``, a build-time module the worker never imports.

A PTP edit says that when a column 1 code and a column 2 code are billed for the same patient,
date and provider, the column 2 code is not separately payable -- unless the edit's modifier
indicator allows a modifier to bypass it. CMS publishes well over a million practitioner edits,
so this module is built around size:

* ``PtpTable`` is what the reference-data bundle stores: the distinct codes and rationales as
  JSON lists and the rows as packed little-endian integer columns, zlib-compressed and base64'd.
  Rows are put in a canonical order first, so the same rows always give the same table (and the
  bundle version, a hash of its content, depends only on the rows).
* ``PtpIndex`` decodes those columns once into ``array`` objects -- a few bytes per row instead
  of a Python object per row -- and answers ``edits(column1, column2)`` with a dict lookup and a
  ``bisect``. ``PtpEdit`` objects are made only for the rows a lookup returns.

Every row is kept, including several rows for one pair: CMS adds a row rather than rewriting
history, e.g. a retroactive indicator-9 row (effective and deleted on the same day) beside the
row in force. Which of them applies to a date of service is the rule's decision, not the table's.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import operator
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CODE_RE",
    "PtpEdit",
    "PtpIndex",
    "PtpRow",
    "PtpTable",
    "slot_setters",
]

#: A procedure code as a PTP edit names it: CPT, Category II/III and level II HCPCS. The table
#: refuses any other, and the reader (``cms_ptp``) checks every cell against the same pattern.
CODE_RE = re.compile(r"[A-Z0-9]{5}")


@dataclass(frozen=True, slots=True)
class PtpRow:
    """One row of a PTP file, as read (codes upper-case, rationale with whitespace collapsed)."""

    column1: str
    column2: str
    prior_1996: bool  # the "*=in existence prior to 1996" cell
    effective: date
    deletion: date | None  # None: the file says "*" (no deletion date)
    modifier_indicator: str  # "0" not allowed, "1" allowed, "9" not applicable
    rationale: str
    source: str  # "<file>:<line>", or "<zip>!<member>:<line>"


@dataclass(frozen=True, slots=True)
class PtpEdit:
    """One edit as the engine sees it: a PTP row without its provenance."""

    column1: str
    column2: str
    effective: date
    deletion: date | None
    modifier_indicator: str
    rationale: str
    prior_1996: bool = False

    def in_force(self, day: date) -> bool:
        """Whether ``day`` falls in the edit's window, both ends inclusive (no deletion: open).

        Only about dates: an indicator-9 row is "in force" on its day like any other, and it is
        the rule that decides what indicator 9 means.
        """
        return self.effective <= day and (self.deletion is None or day <= self.deletion)


# Frozen dataclasses assign each field in ``__init__`` through ``object.__setattr__``: for
# ``PtpRow`` that is half the cost of reading a row, for ``PtpEdit`` more than the rest of a
# lookup. The constructors below write the slots through their descriptors instead, which gives
# identical objects in half the time. Each checks its field list, so a field added to the class
# cannot be silently left unset.
def slot_setters(cls: type, names: tuple[str, ...]) -> list[Callable[[object, object], None]]:
    """The slot setters of a frozen dataclass's fields, in order (checked against the class)."""
    if tuple(f.name for f in fields(cls)) != names:
        raise RuntimeError(f"the fast constructor is out of step with {cls.__name__}'s fields")
    return [getattr(cls, name).__set__ for name in names]


def _edit_factory() -> Callable[[str, str, date | None, date | None, str, str, bool], PtpEdit]:
    names = ("column1", "column2", "effective", "deletion", "modifier_indicator", "rationale",
             "prior_1996")  # fmt: skip
    set_c1, set_c2, set_eff, set_del, set_ind, set_why, set_prior = slot_setters(PtpEdit, names)
    new = object.__new__

    def make(
        column1: str,
        column2: str,
        effective: date | None,
        deletion: date | None,
        modifier_indicator: str,
        rationale: str,
        prior_1996: bool,
    ) -> PtpEdit:
        edit: PtpEdit = new(PtpEdit)
        set_c1(edit, column1)
        set_c2(edit, column2)
        set_eff(edit, effective)
        set_del(edit, deletion)
        set_ind(edit, modifier_indicator)
        set_why(edit, rationale)
        set_prior(edit, prior_1996)
        return edit

    return make


_new_edit = _edit_factory()


# ----------------------------------------------------------------------------- the bundle

#: Indicator digit <-> the 2-bit value stored in the flags column.
_INDICATOR_ORDER = ("0", "1", "9")
_INDICATOR_BITS = {digit: i for i, digit in enumerate(_INDICATOR_ORDER)}
_PRIOR_BIT = 1
_INDICATOR_SHIFT = 1
_RATIONALE_SHIFT = 3

#: ``data`` layout, before zlib and base64. All integers little-endian. Columns are stored one
#: after the other (not row by row) because equal neighbours compress far better.
#:   header     magic "PTP1", rows (u32), dates (u32), then the byte width (1, 2 or 4) of the
#:              column-1, date and flags columns (u8 each)
#:   dates      u32 x dates: the distinct dates (proleptic ordinals), ascending
#:   offsets    u32 x (codes + 1): rows with column 2 = codes[i] are rows offsets[i]:offsets[i+1]
#:   column1    index into codes, ascending within each column-2 group
#:   effective  1-based index into dates
#:   deletion   1-based index into dates, 0 for none
#:   flags      rationale index << 3 | indicator (0, 1, 2 for "0", "1", "9") << 1 | prior-1996
_MAGIC = b"PTP1"
_HEAD = struct.Struct("<4sIIBBB")
_TYPECODES = {1: "B", 2: "H", 4: "I"}
if array("I").itemsize != 4:  # pragma: no cover - every platform CPython supports today
    raise RuntimeError("array('I') is not 4 bytes on this platform")


def _width(largest: int) -> int:
    return 1 if largest < 1 << 8 else 2 if largest < 1 << 16 else 4


def _packed(typecode: str, values: Iterable[int]) -> bytes:
    column = array(typecode, values)
    if sys.byteorder == "big":  # pragma: no cover - the stored form is little-endian
        column.byteswap()
    return column.tobytes()


def _unpacked(typecode: str, data: memoryview, start: int, count: int) -> tuple[array[int], int]:
    column = array(typecode)
    end = start + count * column.itemsize
    if end > len(data):
        raise ValueError("PTP table data is truncated")
    column.frombytes(data[start:end])
    if sys.byteorder == "big":  # pragma: no cover
        column.byteswap()
    return column, end


class PtpTable(BaseModel):
    """The PTP edits as the reference-data bundle stores them: compact, JSON-safe, canonical.

    ``codes`` and ``rationales`` are sorted and distinct; ``data`` (see the layout above) refers
    to them by index. ``from_rows`` sorts the rows by (column 2, column 1, effective, deletion
    with "none" last, indicator, prior-1996, rationale), so the table -- and so the bundle's
    content hash -- depends on which rows there are, not on the order files were read in.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(ge=0, description="number of rows (edits)")
    codes: tuple[str, ...] = Field(description="distinct column 1 and column 2 codes, sorted")
    rationales: tuple[str, ...] = Field(description="distinct PTP edit rationales, sorted")
    data: str = Field(description="base64 of zlib of the packed row columns")

    @model_validator(mode="after")
    def _canonical(self) -> PtpTable:
        """Refuse lists that ``from_rows`` would never write: the index relies on code order."""
        if any(a >= b for a, b in itertools.pairwise(self.codes)):
            raise ValueError("codes must be sorted and distinct")
        bad = next((c for c in self.codes if not CODE_RE.fullmatch(c)), None)
        if bad is not None:
            raise ValueError(f"{bad!r} is not a 5-character HCPCS/CPT code")
        if any(a >= b for a, b in itertools.pairwise(self.rationales)):
            raise ValueError("rationales must be sorted and distinct")
        return self

    @classmethod
    def from_rows(cls, rows: Iterable[PtpRow]) -> PtpTable:
        """Encode rows (of any number of files); every row is kept, equal rows included."""
        rows = list(rows)
        codes = tuple(sorted({r.column1 for r in rows} | {r.column2 for r in rows}))
        code_ids = {code: i for i, code in enumerate(codes)}
        rationales = tuple(sorted({r.rationale for r in rows}))
        rationale_ids = {text: i for i, text in enumerate(rationales)}
        days = sorted({r.effective for r in rows} | {r.deletion for r in rows if r.deletion})
        day_ids: dict[date | None, int] = {day: i for i, day in enumerate(days, start=1)}
        open_end = len(days) + 1  # sorts an open deletion after every date
        day_ids[None] = open_end

        # One integer per row, its fields packed most significant first, so that sorting the
        # integers sorts the rows in the canonical order: far less memory than a tuple per row.
        rationale_bits = max(len(rationales) - 1, 0).bit_length()
        day_bits = open_end.bit_length()
        code_bits = max(len(codes) - 1, 0).bit_length()
        s_prior = rationale_bits
        s_indicator = s_prior + 1
        s_deletion = s_indicator + 2
        s_effective = s_deletion + day_bits
        s_column1 = s_effective + day_bits
        s_column2 = s_column1 + code_bits
        keys = sorted(
            code_ids[r.column2] << s_column2
            | code_ids[r.column1] << s_column1
            | day_ids[r.effective] << s_effective
            | day_ids[r.deletion] << s_deletion
            | _INDICATOR_BITS[r.modifier_indicator] << s_indicator
            | r.prior_1996 << s_prior
            | rationale_ids[r.rationale]
            for r in rows
        )
        del rows

        offsets = array("I", bytes(4 * (len(codes) + 1)))
        for group, members in itertools.groupby(k >> s_column2 for k in keys):
            offsets[group + 1] = sum(1 for _ in members)
        for i in range(len(codes)):
            offsets[i + 1] += offsets[i]
        code_mask = (1 << code_bits) - 1
        day_mask = (1 << day_bits) - 1
        rationale_mask = (1 << rationale_bits) - 1
        w_code = _width(len(codes))
        w_day = _width(open_end)
        w_flags = _width(len(rationales) << _RATIONALE_SHIFT)
        parts = [
            _HEAD.pack(_MAGIC, len(keys), len(days), w_code, w_day, w_flags),
            _packed("I", (day.toordinal() for day in days)),
            _packed("I", offsets),
            _packed(_TYPECODES[w_code], (k >> s_column1 & code_mask for k in keys)),
            _packed(_TYPECODES[w_day], (k >> s_effective & day_mask for k in keys)),
            _packed(
                _TYPECODES[w_day],
                (0 if (d := k >> s_deletion & day_mask) == open_end else d for k in keys),
            ),
            # indicator << 1 | prior sit in the key just as in the flags
            _packed(
                _TYPECODES[w_flags],
                ((k & rationale_mask) << _RATIONALE_SHIFT | k >> s_prior & 7 for k in keys),
            ),
        ]
        data = base64.b64encode(zlib.compress(b"".join(parts), 9)).decode("ascii")
        return cls(count=len(keys), codes=codes, rationales=rationales, data=data)

    @classmethod
    def empty(cls) -> PtpTable:
        """The table of a bundle built without a PTP file: every lookup misses."""
        return cls.from_rows(())


# ------------------------------------------------------------------------------- the index


class PtpIndex:
    """The PTP edits in memory, for the hot path: a few bytes per row and no object per row.

    Rows are grouped by column 2 code (``offsets``) and sorted by column 1 inside each group, so
    ``edits`` is two dict lookups and one ``bisect`` over a slice of a packed ``array``. The rest
    of a row (effective, deletion, flags) sits in one fixed-size record, so reading a hit touches
    one cache line rather than three columns. Built once per reference-data version by
    ``from_table``.
    """

    __slots__ = (
        "_codes",
        "_column1",
        "_days",
        "_ids",
        "_offsets",
        "_rationales",
        "_record",
        "_records",
        "_stride",
    )

    def __init__(
        self,
        table: PtpTable,
        days: list[date | None],
        offsets: array[int],
        column1: array[int],
        records: bytearray,  # private, never written after from_table; a copy would cost memory
        record: struct.Struct,
    ) -> None:
        self._codes = table.codes
        self._ids = {code: i for i, code in enumerate(table.codes)}
        self._rationales = table.rationales
        self._days = days
        self._offsets = offsets
        self._column1 = column1
        self._records = records
        self._record = record.unpack_from
        self._stride = record.size

    @classmethod
    def from_table(cls, table: PtpTable) -> PtpIndex:
        """Decode a table, checking that its columns fit together (a bundle is outside input).

        Raises ``ValueError`` for data that is not what ``PtpTable.from_rows`` writes. The checks
        are whole-column passes at C speed, and they mean a damaged bundle fails here, when a
        version is loaded, rather than misanswering lookups.
        """
        try:
            raw = zlib.decompress(base64.b64decode(table.data, validate=True))
        except (ValueError, zlib.error) as exc:
            raise ValueError(f"PTP table data is not base64 of zlib data: {exc}") from None
        view = memoryview(raw)
        if len(view) < _HEAD.size:
            raise ValueError("PTP table data is truncated")
        magic, rows, n_days, w_code, w_day, w_flags = _HEAD.unpack_from(view)
        if magic != _MAGIC:
            raise ValueError(f"PTP table data has format {magic!r}, expected {_MAGIC!r}")
        if rows != table.count:
            raise ValueError(f"PTP table data holds {rows} rows, the table says {table.count}")
        if not {w_code, w_day, w_flags} <= _TYPECODES.keys():
            raise ValueError("PTP table data has an unknown column width")
        at = _HEAD.size
        ordinals, at = _unpacked("I", view, at, n_days)
        offsets, at = _unpacked("I", view, at, len(table.codes) + 1)
        column1, at = _unpacked(_TYPECODES[w_code], view, at, rows)
        start = at
        effective, at = _unpacked(_TYPECODES[w_day], view, at, rows)
        deletion, at = _unpacked(_TYPECODES[w_day], view, at, rows)
        flags, at = _unpacked(_TYPECODES[w_flags], view, at, rows)
        if at != len(view):
            raise ValueError("PTP table data has bytes after its last column")
        try:
            days: list[date | None] = [None, *(date.fromordinal(o) for o in ordinals)]
        except (ValueError, OverflowError):
            raise ValueError("PTP table data holds an impossible date") from None
        _check(table, rows, days, offsets, column1, effective, deletion, flags)
        del effective, deletion, flags

        # Row-major records from the three stored columns, byte by byte with extended slices
        # (C speed, no loop over rows). The stored bytes are little-endian, as the struct reads.
        stride = 2 * w_day + w_flags
        records = bytearray(rows * stride)
        byte = 0
        for width in (w_day, w_day, w_flags):
            column = view[start : start + rows * width]
            for k in range(width):
                records[byte::stride] = column[k::width]
                byte += 1
            start += rows * width
        codes = "".join(_TYPECODES[w] for w in (w_day, w_day, w_flags))
        record = struct.Struct(f"<{codes}")
        del view, raw
        return cls(table, days, offsets, column1, records, record)

    def __len__(self) -> int:
        return len(self._column1)

    def edits(self, column1: str, column2: str) -> tuple[PtpEdit, ...]:
        """Every row of the pair, ordered by (effective, deletion with none last, indicator).

        Rows equal in all three follow by prior-1996 flag, then rationale. ``()`` for a pair
        without edits.
        """
        ids = self._ids
        i = ids.get(column1)
        j = ids.get(column2)
        if i is None or j is None:
            return ()
        offsets = self._offsets
        hi = offsets[j + 1]
        col1 = self._column1
        at = bisect.bisect_left(col1, i, offsets[j], hi)
        if at == hi or col1[at] != i:
            return ()
        if at + 1 == hi or col1[at + 1] != i:  # the usual case: one row for the pair
            return (self._edit(column1, column2, at),)
        end = at + 2
        while end < hi and col1[end] == i:
            end += 1
        return tuple(self._edit(column1, column2, k) for k in range(at, end))

    def _edit(self, column1: str, column2: str, k: int) -> PtpEdit:
        effective, deletion, flags = self._record(self._records, k * self._stride)
        days = self._days
        return _new_edit(
            column1,
            column2,
            days[effective],
            days[deletion],
            _INDICATOR_ORDER[flags >> _INDICATOR_SHIFT & 3],
            self._rationales[flags >> _RATIONALE_SHIFT],
            flags & _PRIOR_BIT == 1,
        )

    def column1_codes(self, column2: str) -> Set[str]:
        """The codes that have an edit with ``column2`` in column 2 (any date, any indicator).

        A view, not a copy: made in constant time and answering ``in`` with a bisect, so a rule
        can ask it for every line of a claim to skip the lines no edit can touch.
        """
        j = self._ids.get(column2)
        if j is None:
            return _EMPTY
        return _Column1Codes(self, self._offsets[j], self._offsets[j + 1])

    def has_edits(self, code: str) -> bool:
        """Whether the code is in column 1 or column 2 of any row (every code in the table is)."""
        return code in self._ids


_EMPTY: frozenset[str] = frozenset()


class _Column1Codes(Set[str]):
    """The distinct column 1 codes of one column 2 group, read from the index's arrays."""

    __slots__ = ("_hi", "_index", "_lo", "_size")

    def __init__(self, index: PtpIndex, lo: int, hi: int) -> None:
        self._index = index
        self._lo = lo
        self._hi = hi
        self._size = -1

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> frozenset[Any]:
        return frozenset(it)  # what &, | and - give: a plain set, not a view

    def __contains__(self, code: object) -> bool:
        i = self._index._ids.get(code) if isinstance(code, str) else None
        if i is None:
            return False
        col1 = self._index._column1
        at = bisect.bisect_left(col1, i, self._lo, self._hi)
        return at < self._hi and col1[at] == i

    def _distinct(self) -> Iterator[int]:
        previous = -1
        for i in self._index._column1[self._lo : self._hi]:
            if i != previous:
                yield i
                previous = i

    def __iter__(self) -> Iterator[str]:
        codes = self._index._codes
        return (codes[i] for i in self._distinct())

    def __bool__(self) -> bool:
        # Without this, truth testing would call ``__len__``, which counts the whole group.
        return self._hi > self._lo

    def __len__(self) -> int:
        if self._size < 0:
            self._size = sum(1 for _ in self._distinct())
        return self._size

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"


def _check(
    table: PtpTable,
    rows: int,
    days: list[date | None],
    offsets: array[int],
    column1: array[int],
    effective: array[int],
    deletion: array[int],
    flags: array[int],
) -> None:
    """The invariants ``edits`` relies on: indexes in range, groups contiguous and sorted."""
    if offsets[0] != 0 or offsets[-1] != rows:
        raise ValueError("PTP table data: the group offsets do not cover the rows")
    if any(a > b for a, b in itertools.pairwise(offsets)):
        raise ValueError("PTP table data: the group offsets go backwards")
    if rows:
        if max(column1) >= len(table.codes):
            raise ValueError("PTP table data: a column 1 code index is out of range")
        if min(effective) == 0 or max(effective) >= len(days):
            raise ValueError("PTP table data: an effective date index is out of range")
        if max(deletion) >= len(days):
            raise ValueError("PTP table data: a deletion date index is out of range")
        indicators = {f >> _INDICATOR_SHIFT & 3 for f in flags}
        if max(flags) >> _RATIONALE_SHIFT >= len(table.rationales) or 3 in indicators:
            raise ValueError("PTP table data: a rationale or indicator is out of range")
    for lo, hi in itertools.pairwise(offsets):
        if hi - lo > 1 and not all(map(operator.le, column1[lo : hi - 1], column1[lo + 1 : hi])):
            raise ValueError("PTP table data: column 1 codes are not sorted within a group")
