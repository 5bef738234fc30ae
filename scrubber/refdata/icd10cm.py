"""ICD-10-CM code sets by date of service, as the worker holds them: the bundle model and index.

Runs in the worker (and in the build, which stores the sets); reading CMS's order files, and the
set shipped with the package, is ``scrubber.refdata.cms_icd10cm``, a build-time module the worker
never imports.

A diagnosis code is valid on a claim only if it is a *billable* code (flag ``1`` in CMS's order
file, "valid for HIPAA transactions") of the code set in force on the date of service. Code sets
change every 1 October (the fiscal year) and sometimes mid-year (1 April in recent years), so one
set is not enough: a line from last September must be judged by last year's set. The scrubber
keeps several sets and picks, per line, the newest one that was already in force.

* ``Icd10CodeSet`` is one set as the reference-data bundle stores it: a small, frozen,
  JSON-friendly record, validated again when a bundle is loaded.
* ``Icd10Index`` is the in-memory view the engine asks, built once per reference-data version:
  one frozenset per set, so ``status`` is a dictionary lookup after a bisect on dates.
* ``sets_needed`` says which sets a scrubber must keep for the lateness it accepts.

A set's manifestation codes (ICD-10-CM Official Guidelines I.A.13: never the first-listed
diagnosis) are derived by the reader from the order file's titles; here they are only looked up.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = [
    "Icd10CodeSet",
    "Icd10Index",
    "Icd10Status",
    "dotted",
    "fiscal_year_of",
    "normalize",
    "sets_needed",
]

Icd10Status = Literal["billable", "header", "invalid", "no_code_set"]

#: A list of ICD-10-CM codes as the model stores them: sorted, separated by single spaces, each
#: as the order file writes it (no dot, 3 to 7 upper-case letters or digits, a letter first).
_CODE_LIST_RE = re.compile(r"(?:[A-Z][A-Z0-9]{2,6}(?: (?=.)|$))*")


# ------------------------------------------------------------------------------- helpers


def normalize(code: str) -> str:
    """The code as the order file writes it: the dot after the third character dropped.

    Case is kept: a lower-case code is not an ICD-10-CM code on an X12 claim, so it must stay
    unequal to every code in the set. A dot anywhere else, or with nothing after it ("E11."), is
    kept too, for the same reason.
    """
    if len(code) > 4 and code[3] == ".":
        return code[:3] + code[4:]
    return code


def dotted(code: str) -> str:
    """The code as people write it: a dot after the third character when there are more."""
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 else code


def fiscal_year_of(day: date) -> int:
    """The federal fiscal year a day falls in: FY2025 runs from 2024-10-01 to 2025-09-30."""
    return day.year + 1 if day.month >= 10 else day.year


# ------------------------------------------------------------------------------- the model


def _split(text: str) -> list[str]:
    return text.split(" ") if text else []


class Icd10CodeSet(BaseModel):
    """One ICD-10-CM code set as the reference-data bundle stores it.

    Codes are kept without dots, sorted, joined by single spaces: about 600 kB of JSON for a full
    set instead of several MB as a list of objects, and still readable and diffable. The validator
    checks the form (sorted, unique, well-formed, billable and header codes disjoint, manifestation
    codes among them), so a damaged bundle is refused when it is loaded, not misread later.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    fiscal_year: int
    effective_from: date
    billable: str
    headers: str
    manifestation: str

    @model_validator(mode="after")
    def _check(self) -> Icd10CodeSet:
        lists: dict[str, list[str]] = {}
        for field in ("billable", "headers", "manifestation"):
            text: str = getattr(self, field)
            if not _CODE_LIST_RE.fullmatch(text):
                raise ValueError(f"{field}: not a space-separated list of ICD-10-CM codes")
            codes = _split(text)
            if any(a >= b for a, b in itertools.pairwise(codes)):
                raise ValueError(f"{field}: codes are not sorted and unique")
            lists[field] = codes
        if not lists["billable"]:
            raise ValueError("a code set without billable codes")
        billable, headers = set(lists["billable"]), set(lists["headers"])
        both = billable & headers
        if both:
            raise ValueError(f"codes both billable and header: {', '.join(sorted(both)[:5])}")
        stray = set(lists["manifestation"]) - billable - headers
        if stray:
            raise ValueError(f"manifestation codes not in the set: {', '.join(sorted(stray)[:5])}")
        if fiscal_year_of(self.effective_from) != self.fiscal_year:
            raise ValueError(
                f"effective {self.effective_from} is in FY{fiscal_year_of(self.effective_from)}, "
                f"not FY{self.fiscal_year}"
            )
        return self

    def counts(self) -> dict[str, int]:
        """How many codes of each kind the set holds (for status output and logs)."""
        return {
            "billable": len(_split(self.billable)),
            "headers": len(_split(self.headers)),
            "manifestation": len(_split(self.manifestation)),
        }


# ------------------------------------------------------------------------------- the index


def sets_needed(
    sets: Iterable[Icd10CodeSet], as_of: date, lateness_days: int
) -> tuple[Icd10CodeSet, ...]:
    """The sets a scrubber judging lines up to ``lateness_days`` old on ``as_of`` must keep.

    That is the newest set already in force on ``as_of - lateness_days`` (it judges the oldest
    lines still accepted) and every set that starts after that day, including sets that start in
    the future (loaded ahead of 1 October). Older sets can be dropped. Sorted by start date.
    """
    ordered = sorted(sets, key=lambda s: s.effective_from)
    cutoff = as_of - timedelta(days=lateness_days)
    starts = [s.effective_from for s in ordered]
    first = max(bisect.bisect_right(starts, cutoff) - 1, 0)
    return tuple(ordered[first:])


class _Built:
    """One set's lookups: frozensets for membership, a sorted tuple for prefix scans."""

    __slots__ = ("billable", "code_set", "headers", "manifestation", "sorted_billable")

    def __init__(self, code_set: Icd10CodeSet) -> None:
        self.code_set = code_set
        self.sorted_billable = tuple(_split(code_set.billable))
        self.billable = frozenset(self.sorted_billable)
        self.headers = frozenset(_split(code_set.headers))
        self.manifestation = frozenset(_split(code_set.manifestation))


class Icd10Index:
    """Which code set is in force on a date, and what it says about a code; built once.

    Days are mapped to sets by start date only: a set stays in force until a later one starts.
    The newest set therefore also answers for days after its fiscal year has ended; the answer
    may then be out of date (a code new in the later year is "invalid"), which ``is_outdated``
    tells the caller so it can soften its verdict or ask for the newer file.
    """

    __slots__ = ("_built", "_starts")

    def __init__(self, built: Sequence[_Built]) -> None:
        self._built = tuple(built)
        self._starts = [b.code_set.effective_from for b in self._built]

    @classmethod
    def from_sets(cls, sets: Sequence[Icd10CodeSet]) -> Icd10Index:
        """An index over the given sets; two sets starting on the same day are refused."""
        ordered = sorted(sets, key=lambda s: s.effective_from)
        for a, b in itertools.pairwise(ordered):
            if a.effective_from == b.effective_from:
                raise ValueError(
                    f"code sets {a.name!r} and {b.name!r} both start on {a.effective_from}"
                )
        return cls([_Built(s) for s in ordered])

    def _at(self, day: date) -> _Built | None:
        i = bisect.bisect_right(self._starts, day) - 1
        return self._built[i] if i >= 0 else None

    def set_for(self, day: date) -> Icd10CodeSet | None:
        """The newest set with ``effective_from <= day``; None before the first set starts."""
        built = self._at(day)
        return built.code_set if built is not None else None

    def status(self, code: str, day: date) -> Icd10Status:
        """What the set in force on ``day`` says about a code (with or without its dot).

        ``billable``; ``header`` (a category or subcategory: it has codes under it and cannot be
        on a claim); ``invalid`` (not in the set, lower case, a misplaced dot); ``no_code_set``
        (the day precedes every set). On the hot path: one bisect and two set lookups.
        """
        i = bisect.bisect_right(self._starts, day) - 1
        if i < 0:
            return "no_code_set"
        built = self._built[i]
        if len(code) > 4 and code[3] == ".":  # normalize(), inlined: this is the hot path
            code = code[:3] + code[4:]
        if code in built.billable:
            return "billable"
        if code in built.headers:
            return "header"
        return "invalid"

    def billable_under(self, header: str, day: date, limit: int = 2) -> tuple[str, ...]:
        """The first ``limit`` billable codes under a header on that day, in code order, dotted.

        What a message can suggest instead of a header ("E11 needs more characters, such as
        E11.00 or E11.01"); empty when the day has no set or nothing lies under the code.
        """
        built = self._at(day)
        if built is None or limit <= 0:
            return ()
        prefix = normalize(header)
        codes = built.sorted_billable
        found: list[str] = []
        for i in range(bisect.bisect_right(codes, prefix), len(codes)):
            if not codes[i].startswith(prefix) or len(found) == limit:
                break
            found.append(dotted(codes[i]))
        return tuple(found)

    def is_manifestation(self, code: str, day: date) -> bool:
        """Whether the code is a manifestation code in the set in force that day.

        Such a code ("... in diseases classified elsewhere") may never be the first-listed
        diagnosis (ICD-10-CM Official Guidelines I.A.13).
        """
        built = self._at(day)
        return built is not None and normalize(code) in built.manifestation

    def is_outdated(self, day: date) -> bool:
        """Whether the set in force on ``day`` is from an earlier fiscal year than the day.

        Its "invalid" may then be a code added since: the verdict needs the newer CMS file.
        """
        built = self._at(day)
        return built is not None and built.code_set.fiscal_year < fiscal_year_of(day)

    @staticmethod
    def is_external_cause(code: str) -> bool:
        """Whether a code is an external-cause code (V00-Y99, chapter 20).

        They say how an injury happened, not what the patient has, and may never be the
        first-listed diagnosis (ICD-10-CM Official Guidelines I.C.20).
        """
        return bool(code) and code[0] in "VWXY"

    def describe(self) -> list[dict[str, Any]]:
        """One entry per set, oldest first: what ``scrubber refdata status`` shows."""
        out: list[dict[str, Any]] = []
        for i, built in enumerate(self._built):
            s = built.code_set
            until = (
                (self._starts[i + 1] - timedelta(days=1)).isoformat()
                if i + 1 < len(self._built)
                else None
            )
            out.append(
                {
                    "name": s.name,
                    "fiscal_year": s.fiscal_year,
                    "effective_from": s.effective_from.isoformat(),
                    "in_force_until": until,
                    "billable": len(built.billable),
                    "headers": len(built.headers),
                    "manifestation": len(built.manifestation),
                }
            )
        return out
