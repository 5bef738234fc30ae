"""ICD-10-CM code sets by date of service: CMS order files in, a per-date index out.

A diagnosis code is valid on a claim only if it is a *billable* code (flag ``1`` in CMS's order
file, "valid for HIPAA transactions") of the code set in force on the date of service. Code sets
change every 1 October (the fiscal year) and sometimes mid-year (1 April in recent years), so one
set is not enough: a line from last September must be judged by last year's set. The scrubber
keeps several sets and picks, per line, the newest one that was already in force.

Three pieces, each doing one thing:

* ``read_icd10cm_order`` reads CMS's fixed-width order file (plain, ``.gz`` or inside CMS's zip)
  into an ``Icd10CodeSet``: a small, frozen, JSON-friendly record that the reference-data bundle
  stores. Every line is validated; a bad one is a ``CmsFileError`` naming file and line, never a
  partial set, because a missing code would turn into a false "invalid diagnosis" on real claims.
* ``Icd10Index`` is the in-memory view the engine asks, built once per reference-data version:
  one frozenset per set, so ``status`` is a dictionary lookup after a bisect on dates.
* ``default_code_set`` reads the set shipped with the package (``cms/icd10cm-order-*.txt.gz``),
  so the product judges diagnoses even when no CMS file is given. It is generated from the
  ``simple-icd-10-cm`` package by ``scrubber.refdata.make_icd10cm_default`` in the same order-file
  layout, so the same reader, with the same checks, reads it.

Manifestation codes (ICD-10-CM Official Guidelines I.A.13: "'in diseases classified elsewhere'
codes are never permitted to be used as first-listed or principal diagnosis codes") are derived
from the long descriptions, which every order file carries: a code is a manifestation code when
its own title or the title of a code above it (its category or subcategory, i.e. a prefix present
in the file) says "in ... diseases/conditions classified elsewhere". The rule works for every
year's file without notes; "code first" notes are not used, because they sit on thousands of codes
that may be listed first (fractures, poisonings, HIV disease), see ``make_icd10cm_default``.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from scrubber.refdata.cms import CmsFileError

__all__ = [
    "DEFAULT_ICD10CM_GLOB",
    "Icd10CodeSet",
    "Icd10Index",
    "Icd10Status",
    "default_code_set",
    "default_icd10cm_file",
    "dotted",
    "effective_from_name",
    "fiscal_year_of",
    "is_manifestation_title",
    "normalize",
    "read_icd10cm_order",
    "sets_needed",
]

CMS_DIR = Path(__file__).parent / "cms"

#: The shipped default set; exactly one file matches (see ``default_icd10cm_file``).
DEFAULT_ICD10CM_GLOB = "icd10cm-order-*.txt.gz"

Icd10Status = Literal["billable", "header", "invalid", "no_code_set"]

#: ICD-10-CM codes as the order file writes them: no dot, 3 to 7 upper-case letters or digits, a
#: letter first. The second character is not always a digit: the April 2026 update opened
#: category QA0 (neurodevelopmental disorders related to pathogenic gene variants).
_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{2,6}")

#: A list of such codes as the model stores them: sorted, separated by single spaces.
_CODE_LIST_RE = re.compile(r"(?:[A-Z][A-Z0-9]{2,6}(?: (?=.)|$))*")

#: "in [up to five qualifying words] diseases|disease|conditions|reactions classified elsewhere":
#: the manifestation wording of the tabular list ("Polyneuropathy in diseases classified
#: elsewhere", "Meningitis in other infectious and parasitic diseases classified elsewhere",
#: "Pleural effusion in conditions classified elsewhere"). Words that turn the phrase into
#: something else are excluded: "as the cause of diseases classified elsewhere" (B95-B97, agents),
#: "due to conditions classified elsewhere", "associated with ...", "presenting with ...".
_MANIFESTATION_RE = re.compile(
    r"\bin (?:(?!due\b|to\b|with\b|as\b|of\b|the\b|by\b|cause\b)[a-z-]+ ){0,5}"
    r"(?:diseases?|conditions|reactions) classified elsewhere\b",
    re.IGNORECASE,
)

#: A month in a file name means the release of the 1st of that month ("icd10cm-order-april-2024",
#: "icd10cm_order_2024_April"); matched as a whole word so "codes" is not "dec".
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_RE = re.compile(
    r"(?<![a-z])(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")(?![a-z])"
)
_YEAR_RE = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_FIRST_FISCAL_YEAR = 2016  # ICD-10-CM replaced ICD-9-CM on 1 October 2015

#: The zip member that is the order file: ``icd10cm_order_2025.txt``, ``icd10cm-order-April-2024
#: .txt``; CMS's zip also holds ``icd10cm_order_addenda_2025.txt`` (a change list, not a code set).
_ZIP_MEMBER_RE = re.compile(r"icd10cm[-_]order", re.IGNORECASE)

#: Positions of the order-file layout (CMS "ICD-10-CM order file" documentation), 0-based slices.
_ORDER = slice(0, 5)
_CODE = slice(6, 13)
_FLAG = 14
_SHORT = slice(16, 76)
_LONG_AT = 77

#: The whole layout in one expression, for the fast path; a line it refuses goes through
#: ``_check_line`` for a message that names the position. Group 3 (the flag) must start at
#: position 15, which pins the code field to 7 characters.
_LINE_RE = re.compile(r"([0-9]{5}) ([A-Z][A-Z0-9]{2,6}) *([01]) .{60} (.*\S.*)")


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


def is_manifestation_title(title: str) -> bool:
    """Whether a tabular title is worded as a manifestation code's.

    "... in diseases classified elsewhere" and its variants; ``_MANIFESTATION_RE`` says which.
    """
    return "classified elsewhere" in title.lower() and _MANIFESTATION_RE.search(title) is not None


def effective_from_name(name: str) -> tuple[int, date]:
    """``(fiscal year, first day in force)`` from a CMS file name; ``ValueError`` if it has none.

    CMS names the October release by its fiscal year (``icd10cm-order-2025.txt`` is in force from
    2024-10-01) and a mid-year release by its month and calendar year
    (``icd10cm-order-april-2024.txt``, ``icd10cm_order_2024_April.txt``: from 2024-04-01).
    """
    lowered = name.lower()
    years = {int(y) for y in _YEAR_RE.findall(lowered)}
    if not years:
        raise ValueError(
            f"{name}: no 4-digit year in the file name; name the fiscal year "
            "(icd10cm-order-2025.txt) or give the effective date explicitly"
        )
    if len(years) > 1:
        raise ValueError(f"{name}: several years in the file name ({sorted(years)}): ambiguous")
    year = years.pop()
    if not _FIRST_FISCAL_YEAR <= year <= 2100:
        raise ValueError(f"{name}: year {year} is not an ICD-10-CM fiscal year")
    months = {_MONTHS[m] for m in _MONTH_RE.findall(lowered)}
    if len(months) > 1:
        raise ValueError(f"{name}: several months in the file name: ambiguous")
    if months:
        start = date(year, months.pop(), 1)
        return fiscal_year_of(start), start
    return year, date(year - 1, 10, 1)


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


# ------------------------------------------------------------------------------- reading


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or, failing that, Latin-1 (CMS's older files)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _zip_member(path: Path, archive: zipfile.ZipFile) -> str:
    """The one order file in a CMS zip; the addenda (change lists) are not code sets."""
    found = [
        name
        for name in archive.namelist()
        if _ZIP_MEMBER_RE.search(PurePosixPath(name).name)
        and name.lower().endswith(".txt")
        and "addenda" not in name.lower()
        and not PurePosixPath(name).name.startswith(("._", "~$"))
    ]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(sorted(found))})"
        raise ValueError(
            f"{path.name}: {what} member named like icd10cm_order_*.txt (addenda excluded)"
        )
    return found[0]


def _source(path: Path) -> tuple[str, Path, bytes]:
    """``(name that dates the file, path to name in errors, bytes of the order file)``."""
    lowered = path.name.lower()
    if lowered.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                member = _zip_member(path, archive)
                data = archive.read(member)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path.name}: not a readable zip file ({exc})") from None
        base = PurePosixPath(member).name
        # The member's name dates the set; the zip's own name only if the member's has no year.
        dating = base if _YEAR_RE.search(base) else path.name
        return dating, path.with_name(f"{path.name}!{base}"), data
    if lowered.endswith(".gz"):
        try:
            data = gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path.name}: not a readable gzip file ({exc})") from None
        return path.name[:-3], path, data
    return path.name, path, path.read_bytes()


@dataclass(slots=True)
class _Parsed:
    billable: list[str]
    headers: list[str]
    manifestation: list[str]


def _check_line(where: Path, number: int, line: str) -> tuple[str, str, str, str]:
    """``(order number, code, flag, long description)`` of one line, or the error naming it."""
    if len(line) <= _LONG_AT:
        raise CmsFileError(
            where,
            number,
            f"line has {len(line)} characters; the order-file layout needs a long description "
            f"from position {_LONG_AT + 1}",
        )
    order = line[_ORDER]
    if not (order.isascii() and order.isdigit()):
        raise CmsFileError(where, number, f"order number {order!r} (positions 1-5) is not digits")
    for at in (5, 13, 15, 76):
        if line[at] != " ":
            raise CmsFileError(
                where, number, f"position {at + 1} must be a space, found {line[at]!r}"
            )
    field = line[_CODE]
    code = field.rstrip(" ")
    if not _CODE_RE.fullmatch(code):
        raise CmsFileError(
            where,
            number,
            f"code {field!r} (positions 7-13) is not an ICD-10-CM code: 3 to 7 upper-case "
            "letters or digits, a letter first, left-justified",
        )
    flag = line[_FLAG]
    if flag not in "01":
        raise CmsFileError(
            where, number, f"flag {flag!r} (position 15) must be 1 (billable) or 0 (header)"
        )
    long = line[_LONG_AT:].strip()
    if not long:
        raise CmsFileError(where, number, f"code {code} has no long description (position 78-)")
    return order, code, flag, long


def _parse(where: Path, text: str) -> _Parsed:
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()  # a final line break, or blank lines at the end
    if not lines:
        raise ValueError(f"{where.name}: empty file: no codes")
    first_line: dict[str, int] = {}
    flags: dict[str, str] = {}
    titled: set[str] = set()
    previous = -1
    fast = _LINE_RE.fullmatch
    for number, raw in enumerate(lines, start=1):
        line = raw.removesuffix("\r")
        match = fast(line)
        if match is None or match.start(3) != _FLAG:
            if not line.strip():
                raise CmsFileError(where, number, "blank line between codes")
            _check_line(where, number, line)  # raises, naming the position that is wrong
            raise CmsFileError(  # pragma: no cover - _check_line refuses what the pattern does
                where, number, "line does not fit the order-file layout"
            )
        order, code, flag, long = match.groups()
        if int(order) <= previous:
            raise CmsFileError(
                where, number, f"order number {order} does not follow {previous:05d}"
            )
        previous = int(order)
        if code in first_line:
            raise CmsFileError(
                where, number, f"duplicate code {code} (first at line {first_line[code]})"
            )
        first_line[code] = number
        flags[code] = flag
        if is_manifestation_title(long):
            titled.add(code)
    if "1" not in flags.values():
        raise ValueError(f"{where.name}: no billable code in the file")
    return _structure(where, first_line, flags, titled)


def _structure(
    where: Path, first_line: dict[str, int], flags: dict[str, str], titled: set[str]
) -> _Parsed:
    """Check the hierarchy the flags imply; a damaged or cut file breaks it somewhere.

    In code order a code's descendants follow it directly, so "a billable code has codes under
    it" and "a header has no billable code under it" are both questions about the next code.
    """
    ordered = sorted(flags)
    problems: list[tuple[int, str]] = []
    for i, code in enumerate(ordered):
        below = ordered[i + 1] if i + 1 < len(ordered) else ""
        if code[:3] not in flags:
            problems.append(
                (first_line[code], f"code {code} has no category {code[:3]} in the file")
            )
        if flags[code] == "1" and below.startswith(code):
            problems.append(
                (
                    first_line[below],
                    f"code {below} lies under {code} (line {first_line[code]}), which is "
                    "flagged billable; a billable code has no codes under it",
                )
            )
        elif flags[code] == "0" and not below.startswith(code):
            problems.append(
                (
                    first_line[code],
                    f"header {code} has no code under it (is the file cut short?)",
                )
            )
    if problems:
        number, message = min(problems)
        raise CmsFileError(where, number, message)
    # A header's descendants are all billable or headers with descendants, so every header
    # has a billable code under it once the checks above pass.
    categories = {c[:3] for c in titled}
    manifestation = [
        c
        for c in ordered
        if c[:3] in categories and any(c[:n] in titled for n in range(3, len(c) + 1))
    ]
    return _Parsed(
        billable=[c for c in ordered if flags[c] == "1"],
        headers=[c for c in ordered if flags[c] == "0"],
        manifestation=manifestation,
    )


def read_icd10cm_order(path: Path, effective_from: date | None = None) -> Icd10CodeSet:
    """Read a CMS ICD-10-CM order file (``.txt``, ``.txt.gz`` or CMS's ``.zip``) into a code set.

    The set is in force from ``effective_from`` or, by default, from the date the file name gives
    (see ``effective_from_name``). Raises ``CmsFileError`` ("file:line: ...", for a zip
    "archive.zip!member.txt:line: ...") for a line that does not fit the layout and ``ValueError``
    for a problem of the file as a whole (its name, an empty file, no order file in a zip).
    """
    dating, where, data = _source(path)
    if effective_from is None:
        fiscal_year, start = effective_from_name(dating)
    else:
        fiscal_year, start = fiscal_year_of(effective_from), effective_from
    parsed = _parse(where, _decode(data))
    return Icd10CodeSet(
        name=path.name,
        fiscal_year=fiscal_year,
        effective_from=start,
        billable=" ".join(parsed.billable),
        headers=" ".join(parsed.headers),
        manifestation=" ".join(parsed.manifestation),
    )


def default_icd10cm_file() -> Path:
    """The shipped default order file; exactly one ``cms/icd10cm-order-*.txt.gz`` is shipped."""
    found = sorted(CMS_DIR.glob(DEFAULT_ICD10CM_GLOB))
    if len(found) != 1:
        raise RuntimeError(
            f"expected one shipped ICD-10-CM set {CMS_DIR / DEFAULT_ICD10CM_GLOB}, "
            f"found {len(found)}"
        )
    return found[0]


@lru_cache(maxsize=1)
def default_code_set() -> Icd10CodeSet:
    """The code set shipped with the package (read once, then shared: the model is frozen).

    Generated from the ``simple-icd-10-cm`` package's tabular list by
    ``python -m scrubber.refdata.make_icd10cm_default``; its name says which release it is.
    """
    path = default_icd10cm_file()
    code_set = read_icd10cm_order(path)
    return code_set.model_copy(update={"name": f"{path.name} (shipped default)"})


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
