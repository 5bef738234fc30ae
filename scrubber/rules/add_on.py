"""Add-on codes and their primary procedures, by the CMS add-on code (AOC) edits when loaded.

An add-on code (MPFS global days ZZZ) describes work done in addition to a primary procedure and
is "always included in the global period of the other service" (RVU25D layout, GLOB DAYS col.
104); CPT reports it only with its primary, by the same patient on the same date of service.

CMS's NCCI add-on code edit file says, per add-on and date of service, which primaries count:
type 1, only the listed primary codes (by the same rendering NPI: "the same practitioner"); type
2, any primary procedure (no list, or ``CCCCC``: the contractor defines them); type 3, the listed
primaries, though the contractor may accept others (a warning). An add-on the file says nothing
about on that date keeps the rule without it: a primary the seed documents list for it, else any
known procedure. Whatever the type, a line with no primary at all is ``add_on.no_primary``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from scrubber.contracts import Category, ClaimLine, Severity
from scrubber.refdata.aoc import AocRule
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.base import Changes, Gate, Hit, LineContext, Rule, rule
from scrubber.rules.codes import is_add_on, is_em, primaries_of

_SOURCE = (
    "CPT add-on code convention; CMS Claims Processing Manual ch. 12 §40.6; RVU25D layout, GLOB "
    "DAYS ZZZ (col. 104); CMS NCCI add-on code edits (AOC_Edit_Type, Primary_Code, dates)"
)

#: At most this many primary codes are named in a message (type 1 lists can be long).
_NAMED = 8


def is_listed_add_on(ctx: LineContext) -> bool:
    """An add-on by the fee schedule (ZZZ), or by an AOC edit in force on the date of service."""
    if is_add_on(ctx.ref):
        return True
    line = ctx.line
    return line.procedure_code in ctx.snapshot.aoc_add_ons and _primaries(ctx).aoc is not None


def _qualifies_without_list(ctx: LineContext, other: ClaimLine) -> bool:
    """A plausible primary when the reference data names none: a known, non-add-on procedure.

    E/M codes are not primaries of procedure add-ons, except when the add-on is itself an E/M
    code (99292, additional critical care, whose primary is the E/M code 99291).
    """
    ref = ctx.snapshot.code(other.procedure_code)
    if ref is None or is_add_on(ref):
        return False
    return is_em(ctx.line.procedure_code) or not is_em(other.procedure_code)


def add_ons_same_day(line: ClaimLine, snapshot: ReferenceSnapshot) -> Changes | None:
    """``Affects``: a new line can be the primary of any add-on of its date of service."""
    day = line.service_date
    aoc = snapshot.aoc_add_ons
    return Changes(
        day,
        day,
        lambda other: is_add_on(snapshot.code(other.procedure_code)) or other.procedure_code in aoc,
    )


@dataclass(frozen=True, slots=True)
class _Primaries:
    """What the patient's lines of the date offer an add-on line (computed once per line)."""

    aoc: AocRule | None
    """The AOC edit in force for the add-on on the date, if the file has one."""
    listed: frozenset[str]
    """The codes that count as listed primaries (the AOC list, else the seeds' list)."""
    has_listed: bool
    """A line of the date (and, under an AOC list, of the same rendering NPI) has a listed code."""
    has_any: bool
    """A line of the date has a code that can be a primary at all."""


def _primaries(ctx: LineContext) -> _Primaries:
    found: _Primaries | None = ctx.memo.get("primaries")
    if found is not None:
        return found
    line = ctx.line
    aoc = ctx.snapshot.aoc.rule_for(line.procedure_code, line.service_date)
    same_day = ctx.same_day()
    if aoc is not None:
        listed = aoc.primaries  # empty for type 2, or when every listed primary is deleted
        npi = line.rendering_provider.npi
        has_listed = any(
            o.procedure_code in listed and o.rendering_provider.npi == npi for o in same_day
        )
    else:
        listed = primaries_of(ctx.snapshot, line.procedure_code)
        has_listed = any(o.procedure_code in listed for o in same_day)
    has_any = has_listed or any(_qualifies_without_list(ctx, o) for o in same_day)
    found = _Primaries(aoc, listed, has_listed, has_any)
    ctx.memo["primaries"] = found
    return found


def _named(codes: frozenset[str]) -> str:
    ordered = sorted(codes)
    more = len(ordered) - _NAMED
    shown = ", ".join(ordered[:_NAMED])
    return f"{shown} and {more} more" if more > 0 else shown


def _listed_only(aoc: AocRule | None, edit_type: int) -> bool:
    """Whether the AOC edit in force is of this type and names the primaries that count.

    Type 2, ``CCCCC`` (the contractor defines them) and a list whose every primary is deleted
    on the date leave any primary procedure acceptable.
    """
    return (
        aoc is not None
        and aoc.edit_type == edit_type
        and bool(aoc.primaries)
        and not aoc.contractor_defined
    )


def _aoc_says(aoc: AocRule) -> str:
    return f"CMS add-on code edit type {aoc.edit_type}" + (f"; {aoc.notes}" if aoc.notes else "")


@rule(
    "add_on.no_primary",
    category=Category.ADD_ON,
    severity=Severity.ERROR,
    description="An add-on code has no primary procedure for the patient on the same date of "
    "service.",
    source=_SOURCE,
    carc="107",
    requires=Gate.ADD_ON,
    affects=add_ons_same_day,
)
def add_on_without_primary(ctx: LineContext) -> Iterator[Hit]:
    """An add-on without its primary is not paid (CARC 107, qualifying service not identified).

    The primary is sought among ``ctx.others`` on the same date of service. Without an AOC edit:
    a code the seed documents list as its primary, or, when they list none, any known procedure
    that is neither an add-on nor an E/M code. Under an AOC edit of any type, a line with no such
    procedure at all has no primary; whether a primary present is one the edit lists (types 1
    and 3) is the business of the two rules below, so a payer profile that drops them (they are
    Medicare policy) still sees an add-on billed alone. The verdict depends on the set of lines
    only, never on the order they arrived in.
    """
    if not is_listed_add_on(ctx):
        return
    line = ctx.line
    found = _primaries(ctx)
    aoc = found.aoc
    if aoc is None:
        if found.has_listed or (not found.listed and found.has_any):
            return
    elif found.has_any:
        return
    if found.listed and (aoc is None or _listed_only(aoc, 1) or _listed_only(aoc, 3)):
        expected = f"one of its primary codes ({_named(found.listed)})"
    else:
        expected = (
            "a known code that is not itself an add-on"
            if is_em(line.procedure_code)
            else "a known procedure code that is neither an add-on nor an E/M code"
        )
    yield Hit(
        f"Add-on code {line.procedure_code} has no primary procedure for this patient on "
        f"{line.service_date.isoformat()}: expected {expected} on the same date.",
        "procedure_code",
    )


@rule(
    "add_on.primary_not_listed",
    category=Category.ADD_ON,
    severity=Severity.ERROR,
    description="An add-on code whose AOC edit is type 1 has a primary procedure, but none of "
    "its listed primary codes by the same rendering NPI, for the patient and date of service.",
    source=_SOURCE,
    carc="107",
    requires=Gate.ADD_ON,
    affects=add_ons_same_day,
    medicare_policy=True,
)
def primary_not_listed(ctx: LineContext) -> Iterator[Hit]:
    """Type 1: payable only with a listed primary by the same practitioner that day.

    Fires when there is a primary procedure, but not a listed one by the same rendering NPI; an
    add-on with no primary at all is ``add_on.no_primary``'s.
    """
    if not is_listed_add_on(ctx):
        return
    found = _primaries(ctx)
    aoc = found.aoc
    if aoc is None or not _listed_only(aoc, 1) or found.has_listed or not found.has_any:
        return
    line = ctx.line
    yield Hit(
        f"Add-on code {line.procedure_code} is paid only with one of its listed primary codes "
        f"({_named(found.listed)}) billed by the same rendering NPI for this patient on "
        f"{line.service_date.isoformat()}; none is ({_aoc_says(aoc)}).",
        "procedure_code",
    )


@rule(
    "add_on.primary_not_listed_warning",
    category=Category.ADD_ON,
    severity=Severity.WARNING,
    description="An add-on code whose AOC edit is type 3 has a primary procedure, but none of "
    "its listed primary codes, for the patient, date of service and rendering NPI.",
    source=_SOURCE,
    carc="107",
    requires=Gate.ADD_ON,
    affects=add_ons_same_day,
    medicare_policy=True,
)
def primary_not_listed_warning(ctx: LineContext) -> Iterator[Hit]:
    """Type 3: the listed primaries are expected; another may be accepted, so a warning."""
    if not is_listed_add_on(ctx):
        return
    found = _primaries(ctx)
    aoc = found.aoc
    if aoc is None or not _listed_only(aoc, 3) or found.has_listed or not found.has_any:
        return
    line = ctx.line
    yield Hit(
        f"Add-on code {line.procedure_code} has a primary procedure on "
        f"{line.service_date.isoformat()}, but none of its listed primary codes "
        f"({_named(found.listed)}) by the same rendering NPI; the contractor may still accept "
        f"it ({_aoc_says(aoc)}).",
        "procedure_code",
    )


#: The rules of this module.
RULES: tuple[Rule, ...] = (add_on_without_primary, primary_not_listed, primary_not_listed_warning)
