"""The CMS ICD-10-CM order file reader and the shipped default set: build time only.

Used by ``scrubber refdata build`` and ``scrubber.refdata.make_icd10cm_default``; the worker reads
the code sets from the bundle (``scrubber.refdata.icd10cm``) and never imports this module.

* ``read_icd10cm_order`` reads CMS's fixed-width order file (plain, ``.gz`` or inside CMS's zip)
  into an ``Icd10CodeSet``. Every line is validated; a bad one is a ``CmsFileError`` naming file
  and line, never a partial set, because a missing code would turn into a false "invalid
  diagnosis" on real claims.
* ``effective_from_name`` dates a set from CMS's file name.
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

import gzip
import re
import zipfile
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path, PurePosixPath

from scrubber.refdata.cms import CmsFileError
from scrubber.refdata.icd10cm import Icd10CodeSet, fiscal_year_of

__all__ = [
    "DEFAULT_ICD10CM_GLOB",
    "default_code_set",
    "default_icd10cm_file",
    "effective_from_name",
    "is_manifestation_title",
    "read_icd10cm_order",
]

CMS_DIR = Path(__file__).parent / "cms"

#: The shipped default set; exactly one file matches (see ``default_icd10cm_file``).
DEFAULT_ICD10CM_GLOB = "icd10cm-order-*.txt.gz"

#: ICD-10-CM codes as the order file writes them: no dot, 3 to 7 upper-case letters or digits, a
#: letter first. The second character is not always a digit: the April 2026 update opened
#: category QA0 (neurodevelopmental disorders related to pathogenic gene variants).
_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{2,6}")

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
