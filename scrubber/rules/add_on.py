"""Add-on codes and their primary procedures.

An add-on code (MPFS global days ZZZ) describes work done in addition to a primary procedure and
is "always included in the global period of the other service" (RVU25D layout, GLOB DAYS col.
104); CPT reports it only with its primary, by the same patient on the same date of service.
"""

from __future__ import annotations

from collections.abc import Iterator

from scrubber.contracts import Category, ClaimLine, Severity
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.base import Changes, Gate, Hit, LineContext, Rule, rule
from scrubber.rules.codes import is_add_on, is_em, primaries_of


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
    return Changes(day, day, lambda other: is_add_on(snapshot.code(other.procedure_code)))


@rule(
    "add_on.no_primary",
    category=Category.ADD_ON,
    severity=Severity.ERROR,
    description="An add-on code (global days ZZZ) has no primary procedure for the patient on "
    "the same date of service.",
    source="CPT add-on code convention; CMS Claims Processing Manual ch. 12 §40.6; "
    "RVU25D layout, GLOB DAYS ZZZ (col. 104)",
    carc="107",
    requires=Gate.ADD_ON,
    affects=add_ons_same_day,
)
def add_on_without_primary(ctx: LineContext) -> Iterator[Hit]:
    """An add-on without its primary is not paid (CARC 107, qualifying service not identified).

    The primary is sought among ``ctx.others`` on the same date of service: a code whose
    reference lists this add-on among its add-on codes, or, when the reference data names no
    primary for it at all, any known procedure that is neither an add-on nor an E/M code. The
    verdict depends on the set of lines only, never on the order they arrived in.
    """
    if not is_add_on(ctx.ref):
        return
    line = ctx.line
    primaries = primaries_of(ctx.snapshot, line.procedure_code)
    same_day = ctx.same_day()
    if primaries:
        if any(o.procedure_code in primaries for o in same_day):
            return
        expected = f"one of its primary codes ({', '.join(sorted(primaries))})"
    else:
        if any(_qualifies_without_list(ctx, o) for o in same_day):
            return
        expected = (
            "a known code that is not itself an add-on"
            if is_em(line.procedure_code)
            else "a known procedure code that is neither an add-on nor an E/M code"
        )
    yield Hit(
        f"Add-on code {line.procedure_code} (global days ZZZ) has no primary procedure for this "
        f"patient on {line.service_date.isoformat()}: expected {expected} on the same date.",
        "procedure_code",
    )


#: The rules of this module.
RULES: tuple[Rule, ...] = (add_on_without_primary,)
