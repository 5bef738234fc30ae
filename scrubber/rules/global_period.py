"""Global surgery package checks: visits and procedures inside another surgery's global period.

Medicare pays one fee for a surgery and the routine care around it (CMS Claims Processing Manual
ch. 12 §40). For a surgery on day D the package covers, for a 090 code, D-1 .. D+90; for 010,
D .. D+10; for 000, D only. It binds the same physician, or another physician of the same group
(billing tax id) and the same specialty (rendering taxonomy) (§40.2 A.1; ch. 12 §30.6.7).

Which lines open a period, and which are judged against one, depends only on each line's own
data: 78 (unplanned return, related) does not open a new period, 55 and 56 (post- or pre-operative
care only) are care inside a period rather than a surgery. A line's verdict therefore depends on
the set of the patient's lines and on nothing else, and only on lines at most 91 days away,
which is what lets the processor revise exactly the lines a late surgery affects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from scrubber.contracts import Category, ClaimLine, Severity
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.base import Changes, Gate, Hit, LineContext, Rule, rule
from scrubber.rules.codes import is_em
from scrubber.standards import POSTOP_DAYS as POSTOP_DAYS  # the engine reads it here

SOURCE = "CMS Claims Processing Manual ch. 12 §40.1-40.4; MPFS relative value file, GLOB DAYS"

#: Modifiers that let a procedure in another surgery's post-operative days be paid (§40.4).
POSTOP_PROCEDURE_MODIFIERS = frozenset({"58", "78", "79"})
#: Modifiers that let an E/M in the post-operative days be paid: unrelated E/M (24, FT).
POSTOP_EM_MODIFIERS = frozenset({"24", "FT"})

#: Modifiers with which a line with a global period opens none (78: return to the OR; 55, 56:
#: post- or pre-operative care only).
NO_PERIOD_MODIFIERS = frozenset({"78", "55", "56"})

#: The surgeries any rule here can see from a line on day d lie between d-90 (the post-operative
#: days of a 090 surgery) and d+1 (the decision visit the day before a 090 surgery).
_EARLIEST_SURGERY = timedelta(days=max(POSTOP_DAYS.values()))
_LATEST_SURGERY = timedelta(days=1)
#: The decision visit's day: the day before a surgery (D-1).
_DAY_BEFORE = timedelta(days=1)
#: Each global period's post-operative days as a span, made once (a rule asks for every line).
_POSTOP_SPANS = {period: timedelta(days=n) for period, n in POSTOP_DAYS.items()}


@dataclass(frozen=True, slots=True)
class Surgery:
    """A line that opens a global period."""

    line: ClaimLine
    global_days: str

    @property
    def day(self) -> date:
        """The day of the surgery (D)."""
        return self.line.service_date

    @property
    def last_postop_day(self) -> date:
        """The last day of the post-operative period (D for 000 codes)."""
        return self.day + _POSTOP_SPANS[self.global_days]

    def in_postop(self, day: date) -> bool:
        """Whether a day is one of the post-operative days (D+1 .. D+10 or D+90)."""
        return self.day < day <= self.last_postop_day


#: Per snapshot (the latest one; it is kept, so its id cannot be reused meanwhile): the codes
#: with a global period, and their global days. Every line of the patient near a visit is asked
#: whether it opens a period; a dict of the few surgical codes answers without the code record.
_SURGICAL: tuple[ReferenceSnapshot | None, dict[str, str]] = (None, {})


def surgical_codes(snapshot: ReferenceSnapshot) -> dict[str, str]:
    """The snapshot's codes with global days 000, 010 or 090, and those days (once per snapshot).

    A snapshot is immutable and replaced as a whole, so the map follows the latest one.
    """
    global _SURGICAL
    owner, codes = _SURGICAL
    if owner is not snapshot:
        codes = {
            code: ref.global_days
            for code, ref in snapshot.codes.items()
            if ref.global_days is not None and ref.global_days in POSTOP_DAYS
        }
        _SURGICAL = (snapshot, codes)
    return codes


def opens_period(line: ClaimLine, snapshot: ReferenceSnapshot) -> Surgery | None:
    """The global period a line opens, or None.

    A known code with global days 000, 010 or 090 opens one, unless the line carries 78 (an
    unplanned return to the operating room continues the first period, §40.4 B) or is pre- or
    post-operative care only (55, 56), which is care inside a period, not a surgery.
    """
    global_days = surgical_codes(snapshot).get(line.procedure_code)
    if global_days is None:
        return None
    if line.modifiers and not NO_PERIOD_MODIFIERS.isdisjoint(line.modifiers):
        return None
    return Surgery(line, global_days)


def same_package(a: ClaimLine, b: ClaimLine) -> bool:
    """Same physician, or the same group (billing tax id) and the same specialty (taxonomy)."""
    if a.rendering_provider.npi == b.rendering_provider.npi:
        return True
    tax_a, tax_b = a.billing_provider.tax_id, b.billing_provider.tax_id
    spec_a, spec_b = a.rendering_provider.taxonomy, b.rendering_provider.taxonomy
    return bool(tax_a and tax_a == tax_b and spec_a and spec_a == spec_b)


def _window(day: date) -> tuple[date, date]:
    """The days a surgery must lie in to matter to a line of ``day``, inside the calendar."""
    try:
        earliest = day - _EARLIEST_SURGERY
    except OverflowError:
        earliest = date.min
    try:
        latest = day + _LATEST_SURGERY
    except OverflowError:
        latest = date.max
    return earliest, latest


def surgeries_for(ctx: LineContext) -> tuple[Surgery, ...]:
    """The surgeries among the patient's other lines whose package binds this line.

    Only surgeries from the day after the line to 90 days before it: no rule here looks
    further (a decision visit is the day before or the day of a 090 surgery; post-operative days
    run to D+90). Computed once per evaluation and shared by the rules (``ctx.memo``): five
    rules ask, and asking meant a pass over every other line of the patient each time.
    """
    found: tuple[Surgery, ...] | None = ctx.memo.get("surgeries")
    if found is None:
        line = ctx.line
        surgical = surgical_codes(ctx.snapshot)
        earliest, latest = _window(line.service_date)
        surgeries = []
        for other in ctx.others:
            # ``opens_period``, asked of the lines with a surgical code only.
            global_days = surgical.get(other.procedure_code)
            if global_days is None:
                continue
            when = other.service_date
            # A surgery on the first day of the calendar stays in: the decision-visit rule
            # computes the day before it, which overflows, and that failure is part of the
            # verdict (the line is dead-lettered) whatever the window.
            if (
                (earliest <= when <= latest or when == date.min)
                and (not other.modifiers or NO_PERIOD_MODIFIERS.isdisjoint(other.modifiers))
                and same_package(line, other)
            ):
                surgeries.append(Surgery(other, global_days))
        found = tuple(surgeries)
        ctx.memo["surgeries"] = found
    return found


def period_affects(line: ClaimLine, snapshot: ReferenceSnapshot) -> Changes | None:
    """``Affects`` of every rule here: a new surgery changes the lines its package binds.

    Those from the day before it to its last post-operative day. Near the ends of the calendar,
    where the rules' own date arithmetic can fail, every line is judged again (only judging
    tells).
    """
    surgery = opens_period(line, snapshot)
    if surgery is None:
        return None
    try:
        first = surgery.day - _DAY_BEFORE
        last = surgery.last_postop_day
    except OverflowError:
        return Changes(date.min, date.max)
    return Changes(first, last, lambda other: same_package(other, line))


def _is_procedure(ctx: LineContext) -> bool:
    """A surgical procedure that a package can include: a known code with its own period."""
    return ctx.ref is not None and ctx.ref.global_days in POSTOP_DAYS


def _earliest_surgery(
    ctx: LineContext, binds: Callable[[Surgery], bool], message: Callable[[Surgery], str]
) -> Iterator[Hit]:
    """One finding per rule and line: the earliest surgery, so the verdict is order-free.

    The earliest (by day, then line id) of the surgeries ``binds`` accepts. ``binds`` is asked
    of every surgery: an overflow it raises is part of the verdict (see ``surgeries_for``).
    """
    found = [(s.day, s.line.line_id, s) for s in surgeries_for(ctx) if binds(s)]
    if found:
        surgery = min(found, key=lambda f: (f[0], f[1]))[2]
        yield Hit(message(surgery), "modifiers")


def _postop_hits(ctx: LineContext, what: str, needs: str) -> Iterator[Hit]:
    """The line lies in the post-operative days of a surgery whose package binds it."""
    line = ctx.line

    def message(s: Surgery) -> str:
        day = (line.service_date - s.day).days
        return (
            f"{what} {line.procedure_code} on post-operative day {day} of "
            f"{s.global_days}-day surgery {s.line.procedure_code} ({s.line.line_id}) "
            f"needs {needs}."
        )

    yield from _earliest_surgery(ctx, lambda s: s.in_postop(line.service_date), message)


@rule(
    "global_period.em_decision_without_57",
    category=Category.GLOBAL_PERIOD,
    severity=Severity.ERROR,
    description="E/M on the day before or the day of a 090 surgery without modifier 57.",
    source=SOURCE + " (§40.2 A.4: decision for surgery)",
    carc="97",
    requires=Gate.EM | Gate.OTHERS,
    affects=period_affects,
    medicare_policy=True,
)
def em_before_major_surgery(ctx: LineContext) -> Iterator[Hit]:
    """The visit that decides on a major surgery is paid only with 57; otherwise it is bundled."""
    line = ctx.line
    if not is_em(line.procedure_code) or "57" in line.modifiers or not surgeries_for(ctx):
        return
    day = line.service_date

    def message(s: Surgery) -> str:
        when = "the day before" if day < s.day else "the day of"
        return (
            f"E/M {line.procedure_code} on {when} 090-day surgery {s.line.procedure_code} "
            f"({s.line.line_id}) needs modifier 57 (decision for surgery)."
        )

    yield from _earliest_surgery(
        ctx, lambda s: s.global_days == "090" and s.day - _DAY_BEFORE <= day <= s.day, message
    )


@rule(
    "global_period.em_same_day_without_25",
    category=Category.GLOBAL_PERIOD,
    severity=Severity.ERROR,
    description="E/M on the day of a 000 or 010 procedure without modifier 25.",
    source=SOURCE + " (§40.2 A.4, §30.6.6: significant, separately identifiable E/M)",
    carc="97",
    requires=Gate.EM | Gate.OTHERS,
    affects=period_affects,
    medicare_policy=True,
)
def em_same_day_minor(ctx: LineContext) -> Iterator[Hit]:
    """The E/M of a minor procedure's day is part of it unless separately identifiable (25)."""
    line = ctx.line
    if not is_em(line.procedure_code) or "25" in line.modifiers or not surgeries_for(ctx):
        return
    yield from _earliest_surgery(
        ctx,
        lambda s: s.global_days in ("000", "010") and line.service_date == s.day,
        lambda s: (
            f"E/M {line.procedure_code} on the day of {s.global_days}-day procedure "
            f"{s.line.procedure_code} ({s.line.line_id}) needs modifier 25."
        ),
    )


@rule(
    "global_period.em_postop_without_24",
    category=Category.GLOBAL_PERIOD,
    severity=Severity.ERROR,
    description="E/M in a surgery's post-operative days without modifier 24 or FT.",
    source=SOURCE + " (§40.1 B: post-operative visits are included; §40.2 A.3 and modifier FT)",
    carc="97",
    requires=Gate.EM | Gate.OTHERS,
    affects=period_affects,
    medicare_policy=True,
)
def em_postop(ctx: LineContext) -> Iterator[Hit]:
    """Post-operative visits are in the package; an unrelated one is billed with 24 or FT."""
    line = ctx.line
    if (
        not is_em(line.procedure_code)
        or POSTOP_EM_MODIFIERS & set(line.modifiers)
        or not surgeries_for(ctx)
    ):
        return
    yield from _postop_hits(ctx, "E/M", "modifier 24 (unrelated) or FT")


@rule(
    "global_period.procedure_postop_without_modifier",
    category=Category.GLOBAL_PERIOD,
    severity=Severity.ERROR,
    description="A procedure in another surgery's post-operative days without 58, 78 or 79.",
    source=SOURCE + " (§40.4: staged, return to the OR, unrelated procedure)",
    carc="97",
    requires=Gate.SURGICAL | Gate.OTHERS,
    affects=period_affects,
    medicare_policy=True,
)
def procedure_postop(ctx: LineContext) -> Iterator[Hit]:
    """A second procedure in the post-operative days is paid only as staged, return or unrelated."""
    line = ctx.line
    if (
        not _is_procedure(ctx)
        or POSTOP_PROCEDURE_MODIFIERS & set(line.modifiers)
        or not surgeries_for(ctx)
    ):
        return
    yield from _postop_hits(
        ctx, "Procedure", "58 (staged), 78 (related return to the OR) or 79 (unrelated)"
    )


@rule(
    "global_period.return_without_surgery",
    category=Category.GLOBAL_PERIOD,
    severity=Severity.INFO,
    description="Modifier 78 or 79 on a line with no surgery on record whose period covers it.",
    source=SOURCE + " (§40.4 B, C)",
    requires=Gate.MODIFIERS,
    affects=period_affects,
    medicare_policy=True,
)
def return_without_surgery(ctx: LineContext) -> Iterator[Hit]:
    """78/79 claim a global period the scrubber has not seen.

    The surgery may be on another claim not sent yet, or the modifier may be wrong: a note,
    not a flag.
    """
    used = [m for m in ("78", "79") if m in ctx.line.modifiers]
    if not used:
        return
    if any(s.in_postop(ctx.line.service_date) for s in surgeries_for(ctx)):
        return
    yield Hit(
        f"Modifier {used[0]} claims a post-operative period, but no surgery of the same "
        "physician or group is on record for this patient in the days before.",
        "modifiers",
    )


#: The rules of this module.
RULES: tuple[Rule, ...] = (
    em_before_major_surgery,
    em_same_day_minor,
    em_postop,
    procedure_postop,
    return_without_surgery,
)
