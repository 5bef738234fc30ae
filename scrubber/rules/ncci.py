"""NCCI procedure-to-procedure (PTP) edits: code pairs one provider may not bill together.

CMS's National Correct Coding Initiative publishes pairs of codes that one provider may not
report for one patient on one date of service: the column 2 code is a component of, or mutually
exclusive with, the column 1 code, and only the column 1 code is paid (NCCI Policy Manual for
Medicare Services, ch. I; the practitioner PTP edit table). An edit is in force on a date of
service from its effective date to its deletion date; its modifier indicator says whether an
NCCI-associated modifier can bypass it: 0 never, 1 when the modifier shows the services were
distinct, 9 the edit does not apply (deleted retroactively), so it never fires.

Where the modifier goes (see docs/rules.md, "NCCI PTP: which line carries the modifier"): the
NCCI Policy Manual, ch. I §E, and CMS's modifier 59 article say the NCCI-associated modifier is
appended to the column 2 code, and Medicare's claims processing bypasses the edit when it is
reported on either code of the pair, so either line's modifier bypasses here; the note names
the line that carries it. Anatomic modifiers bypass only when they show different sites on the
two lines (LT on one, RT on the other; different digits, eyelids or coronary arteries): the
same site on both is the situation the edit describes.

The verdict depends only on the set of the patient's lines: the column 2 line of every pair in
force is flagged, whichever line arrived first, and a later column 1 line revises an earlier
column 2 line's verdict (``Rule.affects``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from scrubber.contracts import Category, ClaimLine, Severity
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.refdata.ptp import PtpEdit
from scrubber.rules.base import Changes, Gate, Hit, LineContext, Rule, rule

SOURCE = (
    "CMS NCCI procedure-to-procedure edits, practitioner table (column 1/column 2, effective "
    "and deletion dates, modifier indicator); NCCI Policy Manual for Medicare Services ch. I §E"
)

#: Anatomic modifiers (HCPCS level II), each with the side of the body it names: eyelids, fingers
#: and toes (FA and F1-F4 are the left hand, F5-F9 the right; TA and T1-T4 the left foot, T5-T9
#: the right; E1-E2 the left eyelids, E3-E4 the right), then the sides themselves.
DIGIT_AND_EYELID_SIDES: dict[str, str] = {
    **{m: "LT" for m in ("FA", "F1", "F2", "F3", "F4", "TA", "T1", "T2", "T3", "T4", "E1", "E2")},
    **{m: "RT" for m in ("F5", "F6", "F7", "F8", "F9", "T5", "T6", "T7", "T8", "T9", "E3", "E4")},
}
#: Coronary artery modifiers: a family of their own, not comparable with body sides.
CORONARY_MODIFIERS = frozenset({"LC", "LD", "LM", "RC", "RI"})
SIDE_MODIFIERS = frozenset({"LT", "RT"})
ANATOMIC_MODIFIERS = frozenset(DIGIT_AND_EYELID_SIDES) | CORONARY_MODIFIERS | SIDE_MODIFIERS
#: Global surgery modifiers that are NCCI-associated.
GLOBAL_SURGERY_MODIFIERS = frozenset({"24", "25", "57", "58", "78", "79"})
#: Other NCCI-associated modifiers: repeat clinical lab test (91), distinct procedural service
#: (59) and its subsets XE, XS, XP, XU, and 27 (multiple outpatient hospital E/M encounters).
DISTINCT_SERVICE_MODIFIERS = frozenset({"27", "59", "91", "XE", "XS", "XP", "XU"})

#: Modifier indicator values (PTP file, column "Modifier").
NOT_ALLOWED, ALLOWED, NOT_APPLICABLE = "0", "1", "9"


def different_sites(line: ClaimLine, other: ClaimLine) -> bool:
    """Whether the anatomic modifiers of two lines show different sites.

    Compared at the finest level both lines name: coronary arteries with coronary arteries;
    digits and eyelids with digits and eyelids (F1 and F2 differ, though both are the left
    hand); otherwise sides, a digit or eyelid counting as its side (F6, a right finger, is the
    same side as RT). Lines that name no comparable site show no different sites.
    """
    mine, theirs = set(line.modifiers), set(other.modifiers)
    coronary = mine & CORONARY_MODIFIERS, theirs & CORONARY_MODIFIERS
    if coronary[0] and coronary[1]:
        return coronary[0].isdisjoint(coronary[1])
    digits = mine & DIGIT_AND_EYELID_SIDES.keys(), theirs & DIGIT_AND_EYELID_SIDES.keys()
    if digits[0] and digits[1]:
        return digits[0].isdisjoint(digits[1])
    sides = [
        (mods & SIDE_MODIFIERS) | {DIGIT_AND_EYELID_SIDES[m] for m in specific}
        for mods, specific in ((mine, digits[0]), (theirs, digits[1]))
    ]
    return bool(sides[0] and sides[1]) and sides[0].isdisjoint(sides[1])


def bypass_modifier(line: ClaimLine, other: ClaimLine) -> tuple[str, ClaimLine] | None:
    """The NCCI-associated modifier that bypasses an indicator-1 edit between two lines.

    Returns the modifier and the line that carries it (this line first, then the other one,
    each in modifier order), or None. Anatomic modifiers count only when the two lines show
    different sites (``different_sites``).
    """
    for carrier in (line, other):
        for modifier in carrier.modifiers:
            if modifier in GLOBAL_SURGERY_MODIFIERS or modifier in DISTINCT_SERVICE_MODIFIERS:
                return modifier, carrier
    if different_sites(line, other):
        for carrier in (line, other):
            for modifier in carrier.modifiers:
                if modifier in ANATOMIC_MODIFIERS:
                    return modifier, carrier
    return None


def _pairs(ctx: LineContext) -> tuple[tuple[ClaimLine, PtpEdit], ...]:
    """(column 1 line, edit) for every edit in force with this line in column 2, in order.

    One edit per other line: of several rows in force for the pair, indicator 0 (no bypass)
    before 1, then the earliest effective date. Other lines are taken in line id order. Both
    rules of this module ask; the answer is worked out once per line (``ctx.memo``).
    """
    found: tuple[tuple[ClaimLine, PtpEdit], ...] | None = ctx.memo.get("ptp_pairs")
    if found is None:
        found = ctx.memo["ptp_pairs"] = tuple(_find_pairs(ctx))
    return found


def _find_pairs(ctx: LineContext) -> Iterator[tuple[ClaimLine, PtpEdit]]:
    line = ctx.line
    index = ctx.snapshot.ptp
    code = line.procedure_code
    column1 = index.column1_codes(code)
    if not column1:
        return
    day, npi = line.service_date, line.rendering_provider.npi
    found = []
    for other in ctx.same_day():
        if other.rendering_provider.npi != npi or other.procedure_code not in column1:
            continue
        edits = [
            e
            for e in index.edits(other.procedure_code, code)
            if e.modifier_indicator != NOT_APPLICABLE and e.in_force(day)
        ]
        if edits:
            edit = min(
                edits, key=lambda e: (e.modifier_indicator, e.effective, e.deletion or date.max)
            )
            found.append((other.line_id, other, edit))
    for _, other, edit in sorted(found, key=lambda f: f[0]):
        yield other, edit


def _reference(line: ClaimLine, other: ClaimLine, edit: PtpEdit) -> dict[str, Any]:
    return {
        "column1": edit.column1,
        "column2": edit.column2,
        "column1_line_id": other.line_id,
        "effective": edit.effective.isoformat(),
        "deletion": edit.deletion.isoformat() if edit.deletion else None,
        "modifier_indicator": edit.modifier_indicator,
        "rationale": edit.rationale,
    }


def _describe(edit: PtpEdit, other: ClaimLine) -> str:
    return (
        f"{edit.column2} is column 2 of NCCI PTP edit {edit.column1}/{edit.column2} with "
        f"{edit.column1} on line {other.line_id} (same patient, date of service and rendering "
        f"NPI): modifier indicator {edit.modifier_indicator}, rationale "
        f"\u201c{edit.rationale}\u201d, in force since {edit.effective.isoformat()}"
    )


def ptp_affects(line: ClaimLine, snapshot: ReferenceSnapshot) -> Changes | None:
    """``Affects``: a new line changes the lines of its date it is the column 1 code for."""
    index = snapshot.ptp
    code = line.procedure_code
    if not index.has_edits(code):
        return None
    day, npi = line.service_date, line.rendering_provider.npi
    return Changes(
        day,
        day,
        lambda other: (
            other.rendering_provider.npi == npi
            and code in index.column1_codes(other.procedure_code)
        ),
    )


@rule(
    "ncci_ptp.edit",
    category=Category.NCCI_PTP,
    severity=Severity.ERROR,
    description="The code is column 2 of an NCCI procedure-to-procedure edit in force with "
    "another line of the same patient, date of service and rendering NPI, and no "
    "NCCI-associated modifier bypasses it (indicator 0, or 1 without a qualifying modifier).",
    source=SOURCE,
    carc="236",
    requires=Gate.OTHERS | Gate.PTP_COLUMN2,
    affects=ptp_affects,
    medicare_policy=True,
)
def ptp_edit(ctx: LineContext) -> Iterator[Hit]:
    """The column 2 service is included in (or excludes) the column 1 service: CARC 236."""
    line = ctx.line
    for other, edit in _pairs(ctx):
        if edit.modifier_indicator == ALLOWED and bypass_modifier(line, other) is not None:
            continue
        why = (
            "no modifier can bypass it"
            if edit.modifier_indicator == NOT_ALLOWED
            else "an NCCI-associated modifier (59, XE/XS/XP/XU, anatomic, global surgery) on "
            "either line would bypass it if the services were distinct"
        )
        yield Hit(
            f"{_describe(edit, other)}; {why}.",
            "procedure_code",
            _reference(line, other, edit),
        )


@rule(
    "ncci_ptp.bypassed",
    category=Category.NCCI_PTP,
    severity=Severity.INFO,
    description="An NCCI procedure-to-procedure edit in force (indicator 1) is bypassed by an "
    "NCCI-associated modifier: a note for audit, the documentation must support it.",
    source=SOURCE,
    requires=Gate.OTHERS | Gate.PTP_COLUMN2,
    affects=ptp_affects,
    medicare_policy=True,
)
def ptp_bypassed(ctx: LineContext) -> Iterator[Hit]:
    """A bypass is legitimate only when the record shows distinct services: say which modifier."""
    line = ctx.line
    for other, edit in _pairs(ctx):
        if edit.modifier_indicator != ALLOWED:
            continue
        bypass = bypass_modifier(line, other)
        if bypass is None:
            continue
        modifier, carrier = bypass
        where = "this line" if carrier is line else f"line {other.line_id}"
        reference = _reference(line, other, edit) | {"bypass_modifier": modifier}
        yield Hit(
            f"{_describe(edit, other)}; bypassed by modifier {modifier} on {where}.",
            "modifiers",
            reference,
        )


#: The rules of this module.
RULES: tuple[Rule, ...] = (ptp_edit, ptp_bypassed)
