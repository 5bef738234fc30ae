"""CMS add-on code (AOC) edits as the worker holds them: the bundle table and the per-date index.

Runs in the worker (and in the build, which stores the table); reading CMS's workbook is
``scrubber.refdata.cms_aoc``, a build-time module the worker never imports.

CMS's NCCI add-on code edit file says, per add-on code, which primary procedures it may be
billed with, by edit type:

* type 1: only with one of the primary codes listed (same patient, date and rendering NPI);
* type 2: CMS lists none; any primary procedure will do (the Medicare contractor may define
  them: the file writes the primary code as ``CCCCC``);
* type 3: the listed primaries, but the contractor may accept others (so a missing listed
  primary is a warning, not an error).

Every edit has an effective date and may have a deletion date, and each listed primary may have
its own deletion date, so the answer depends on the date of service: ``AocIndex.rule_for(add_on,
day)`` returns the rule in force that day. Deletion dates are inclusive: an edit applies while
``AOC_Edit_EffDT <= day <= AOC_Edit_DelDT``, a listed primary counts while
``day <= Primary_Code_DelDT``, and an add-on code is edited while ``day <= AOC_DelDT``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = [
    "CODE_RE",
    "CONTRACTOR_DEFINED",
    "AocIndex",
    "AocRow",
    "AocRule",
    "AocTable",
]

#: The primary code CMS writes when the Medicare contractor, not CMS, defines the primaries.
CONTRACTOR_DEFINED = "CCCCC"

#: Restrictiveness of the edit types, most restrictive first: if a file ever has two types in
#: force for one add-on on one day, the stricter one is applied (1 names the only acceptable
#: primaries, 3 names some, 2 names none).
_PRECEDENCE = {1: 0, 3: 1, 2: 2}

#: An add-on or primary code: 5-character HCPCS/CPT. The table refuses any other, and the reader
#: (``cms_aoc``) checks every code cell against the same pattern.
CODE_RE = re.compile(r"[A-Z0-9]{5}")


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
                if code is not None and not CODE_RE.fullmatch(code):
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
