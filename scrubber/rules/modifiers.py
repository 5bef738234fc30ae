"""Checks of the modifiers on a line.

Shape and count first (malformed, unknown, too many, order, conflicts), then the modifiers whose
use the MPFS indicators of the code govern. Indicator checks never speak about a code the
reference data does not know (``code.unknown`` does) nor about an indicator no source gave: a
finding is never built on missing data. A rule has one severity, so where the layout gives an
error and a documentation warning on one scale (assistant at surgery, co-surgeons, team surgery)
the warning is a rule of its own, with ``_documentation`` in its id.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Gate, Hit, LineContext, Rule, rule
from scrubber.rules.codes import is_add_on, is_em
from scrubber.standards import ASSISTANT_DOCUMENTATION as _DOCUMENTATION
from scrubber.standards import (
    ASSISTANT_MEANINGS,
    ASSISTANT_MODIFIERS,
    BILATERAL_MEANINGS,
    GLOBAL_DAYS_MEANINGS,
    GLOBAL_SPLIT_MODIFIERS,
    MODIFIER_SHAPE,
    PCTC_ALLOWED,
    PCTC_MEANINGS,
    SPLIT_GLOBAL_DAYS,
    SURGEONS_MEANINGS,
)
from scrubber.standards import ASSISTANT_NOT_PAID as _NOT_PERMITTED
from scrubber.standards import SURGEONS_DOCUMENTATION as _SURGEONS_DOCUMENTATION
from scrubber.standards import SURGEONS_NOT_PERMITTED as _SURGEONS_NOT_PERMITTED


@rule(
    "modifier.malformed",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="A modifier is not two upper-case letters or digits.",
    source="X12 837P SV101-3..6; CPT Appendix A",
    carc="182",
    requires=Gate.MODIFIERS,
)
def malformed_modifier(ctx: LineContext) -> Iterator[Hit]:
    """A modifier of the wrong shape cannot be read by a payer's adjudication system."""
    for index, modifier in enumerate(ctx.line.modifiers):
        if not MODIFIER_SHAPE.fullmatch(modifier):
            yield Hit(
                f"Modifier {modifier!r} at position {index + 1} is not two upper-case "
                "letters or digits.",
                f"modifiers[{index}]",
            )


#: 837P carries four procedure modifiers per line (SV101-3 .. SV101-6).
MAX_MODIFIERS = 4

#: Modifiers that change how a line is priced. Payers read the first modifier position for
#: pricing, so these go before every other modifier. The set: the modifiers with a payment rule
#: of their own (22 increased and 52/53 reduced or discontinued services; 26/TC components, PC/TC
#: indicator in RVU25D Attachment A; 50, CMS Claims Processing Manual ch. 12 §40.7; 54/55/56 split
#: global care and 78/79, §40.2; 62/66, §40.8; 80/81/82/AS assistants, §20.4.3; 73/74 discontinued
#: before/after anesthesia), 23 (unusual anesthesia) and the anesthesia payment modifiers
#: AA/AD/QK/QX/QY/QZ (ch. 12 §50, which MACs require in the first position). MAC guidance (CGS
#: Part B, "Pricing Modifiers Reminder") names the same family. Everything else (LT, RT, 59,
#: XE/XS/XP/XU, 76, 77, 51, 58, GA, GY, GZ, KX, ...) is informational or statistical and goes
#: after them.
PRICING_MODIFIERS = frozenset(
    {
        "22", "23", "26", "TC", "50", "52", "53", "54", "55", "56", "62", "66", "73", "74",
        "78", "79", "80", "81", "82", "AS", "AA", "AD", "QK", "QX", "QY", "QZ",
    }
)  # fmt: skip

#: Pairs that contradict each other on one line, and why (DOMAIN brief; CMS Claims Processing
#: Manual ch. 12 §40.7 for 50 with LT/RT, §40.2 for 58/78/79).
CONFLICTS: tuple[tuple[str, str, str], ...] = (
    ("50", "LT", "50 already reports both sides; LT or RT reports one side"),
    ("50", "RT", "50 already reports both sides; LT or RT reports one side"),
    ("52", "53", "a reduced service (52) and a discontinued procedure (53) exclude each other"),
    ("26", "TC", "both components together are the global service, billed without either"),
    ("58", "78", "staged (58) and unplanned return to the operating room (78) exclude each other"),
    ("58", "79", "staged (58) and unrelated (79) procedures exclude each other"),
    ("78", "79", "a related (78) and an unrelated (79) procedure exclude each other"),
)

#: Modifiers that only describe an E/M service (CPT Appendix A; HCPCS FT; ch. 12 §30.6.6).
EM_ONLY_MODIFIERS = ("24", "25", "57", "FT")


def _first_position_hits(
    ctx: LineContext, wanted: Iterable[str], message: Callable[[str], str]
) -> Iterator[Hit]:
    """A hit for each wanted modifier present on the line, once, at its first position.

    In line order; ``message`` says what is wrong with the modifier.
    """
    modifiers = ctx.line.modifiers
    targets = set(wanted)
    if targets.isdisjoint(modifiers):  # most lines: none of them, and nothing to sort out
        return
    seen: dict[str, int] = {}
    for index, modifier in enumerate(modifiers):
        if modifier in targets and modifier not in seen:
            seen[modifier] = index
    for modifier, index in seen.items():  # inserted in line order: already by position
        yield Hit(message(modifier), f"modifiers[{index}]")


@rule(
    "modifier.unknown",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="A well-formed modifier is not a real CPT or HCPCS level II modifier.",
    source="CPT Appendix A; CMS HCPCS level II modifiers (scrubber/refdata/master/modifiers.csv)",
    carc="182",
    requires=Gate.MODIFIERS,
)
def unknown_modifier(ctx: LineContext) -> Iterator[Hit]:
    """A modifier that does not exist cannot mean anything to a payer: CARC 182 (invalid modifier).

    Only well-formed modifiers are checked; a malformed one is ``modifier.malformed``'s finding.
    """
    for index, modifier in enumerate(ctx.line.modifiers):
        if MODIFIER_SHAPE.fullmatch(modifier) and not ctx.snapshot.is_modifier(modifier):
            yield Hit(
                f"Modifier {modifier} at position {index + 1} is not on the master list of CPT "
                f"and HCPCS modifiers (reference data version {ctx.snapshot.version}).",
                f"modifiers[{index}]",
            )


@rule(
    "modifier.too_many",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="The line carries more than the four modifiers an 837P service line can hold.",
    source="X12 837P SV101-3..6 (four procedure modifier slots)",
    carc="16",
    requires=Gate.MODIFIERS,
)
def too_many_modifiers(ctx: LineContext) -> Iterator[Hit]:
    """An 837P line has four modifier slots: a fifth cannot reach the payer (CARC 16).

    The contract reads up to twelve so that the engine, not the validator, can say so.
    """
    count = len(ctx.line.modifiers)
    if count > MAX_MODIFIERS:
        yield Hit(
            f"The line carries {count} modifiers; an 837P service line holds at most "
            f"{MAX_MODIFIERS}.",
            "modifiers",
        )


@rule(
    "modifier.pricing_not_first",
    category=Category.MODIFIER,
    severity=Severity.WARNING,
    description="A pricing modifier comes after an informational one.",
    source="CMS Claims Processing Manual ch. 12 §§20.4.3, 40.2, 40.7, 40.8, 50 (pricing "
    "modifiers); MAC guidance on pricing modifiers in the first position (CGS Part B)",
    requires=Gate.MODIFIERS,
)
def pricing_not_first(ctx: LineContext) -> Iterator[Hit]:
    """Payers price from the leading modifiers; a pricing modifier behind another may be missed.

    The set is ``PRICING_MODIFIERS``. Only real, well-formed modifiers count as informational:
    a malformed or unknown one already has its own finding.
    """
    first_informational: tuple[int, str] | None = None
    for index, modifier in enumerate(ctx.line.modifiers):
        if modifier in PRICING_MODIFIERS:
            if first_informational is not None:
                info_index, info = first_informational
                yield Hit(
                    f"Pricing modifier {modifier} at position {index + 1} comes after "
                    f"informational modifier {info} at position {info_index + 1}; pricing "
                    "modifiers go first.",
                    f"modifiers[{index}]",
                )
        elif (
            first_informational is None
            and MODIFIER_SHAPE.fullmatch(modifier)
            and ctx.snapshot.is_modifier(modifier)
        ):
            first_informational = (index, modifier)


@rule(
    "modifier.conflict",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="Two modifiers on one line contradict each other (50/LT, 50/RT, 52/53, 26/TC, "
    "58/78/79).",
    source="CMS Claims Processing Manual ch. 12 §40.2 (58, 78, 79), §40.7 (50); "
    "RVU25D layout, PCTC IND (26, TC)",
    carc="4",
    requires=Gate.MODIFIERS,
)
def conflicting_modifiers(ctx: LineContext) -> Iterator[Hit]:
    """A line that says two contradictory things cannot be priced (CARC 4)."""
    present = set(ctx.line.modifiers)
    for first, second, why in CONFLICTS:
        if first in present and second in present:
            yield Hit(f"Modifiers {first} and {second} conflict on one line: {why}.", "modifiers")


@rule(
    "modifier.em_only",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="Modifier 24, 25, 57 or FT on a code that is not an E/M code (99202-99499).",
    source="CPT Appendix A (24, 25, 57); HCPCS FT; CMS Claims Processing Manual ch. 12 §30.6.6",
    carc="4",
    requires=Gate.KNOWN | Gate.MODIFIERS,
)
def em_only_modifier(ctx: LineContext) -> Iterator[Hit]:
    """24, 25, 57 and FT describe an E/M visit; on a procedure they are a coding error.

    Lines whose code the reference data does not know are left to ``code.unknown``.
    """
    if ctx.ref is None or is_em(ctx.line.procedure_code):
        return
    yield from _first_position_hits(
        ctx,
        EM_ONLY_MODIFIERS,
        lambda modifier: (
            f"Modifier {modifier} applies to E/M codes (99202-99499) only; "
            f"{ctx.line.procedure_code} is not one."
        ),
    )


@rule(
    "modifier.global_split_not_applicable",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="Modifier 54, 55 or 56 on a code without a 010 or 090 global period.",
    source="CMS Claims Processing Manual ch. 12 §40.2; RVU25D layout, GLOB DAYS (col. 104)",
    carc="4",
    requires=Gate.KNOWN | Gate.MODIFIERS,
    medicare_policy=True,
)
def global_split_not_applicable(ctx: LineContext) -> Iterator[Hit]:
    """Surgical, post-operative and pre-operative care only split a 010 or 090 global package.

    A code with another global value (000, XXX, ZZZ, ...) has no package to split. No finding
    when the global days are not known.
    """
    ref = ctx.ref
    if ref is None or ref.global_days is None or ref.global_days in SPLIT_GLOBAL_DAYS:
        return
    meaning = GLOBAL_DAYS_MEANINGS.get(ref.global_days, "not a split global period")
    yield from _first_position_hits(
        ctx,
        GLOBAL_SPLIT_MODIFIERS,
        lambda modifier: (
            f"Modifier {modifier} splits a 010 or 090 global package; {ref.code} "
            f"has global days {ref.global_days} ({meaning})."
        ),
    )


@rule(
    "modifier.multiple_on_add_on",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="Modifier 51 on an add-on code (global days ZZZ).",
    source="CMS Claims Processing Manual ch. 12 §40.6; RVU25D layout, GLOB DAYS ZZZ (col. 104) "
    "and MULT PROC (col. 116)",
    carc="4",
    requires=Gate.ADD_ON | Gate.MODIFIERS,
)
def multiple_on_add_on(ctx: LineContext) -> Iterator[Hit]:
    """Add-on codes are exempt from the multiple procedure reduction, so 51 on one is an error.

    An add-on is a code with global days ZZZ. A multiple procedure indicator of 0 alone is not
    taken to mean add-on: E/M codes and some primary procedures carry 0 too.
    """
    if not is_add_on(ctx.ref):
        return
    yield from _first_position_hits(
        ctx,
        ("51",),
        lambda _modifier: (
            f"Modifier 51 on add-on code {ctx.line.procedure_code} (global days "
            "ZZZ): add-on codes are exempt from the multiple procedure reduction."
        ),
    )


@rule(
    "modifier.bilateral_not_allowed",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="Modifier 50 on a code whose bilateral surgery indicator is not 1.",
    source="CMS Claims Processing Manual ch. 12 §40.7; RVU25D layout, BILAT SURG (col. 117)",
    carc="4",
    requires=Gate.KNOWN | Gate.MODIFIERS,
    medicare_policy=True,
)
def bilateral_not_allowed(ctx: LineContext) -> Iterator[Hit]:
    """Only indicator 1 takes modifier 50 (the 150% bilateral adjustment).

    0: the bilateral adjustment does not apply; 2: the code is already bilateral; 3: each side is
    paid at 100% and reported per side; 9: the concept does not apply. No finding when the
    indicator is unknown.
    """
    ref = ctx.ref
    if ref is None or ref.bilateral is None or ref.bilateral == "1":
        return
    meaning = BILATERAL_MEANINGS.get(ref.bilateral)
    if meaning is None:
        return
    yield from _first_position_hits(
        ctx,
        ("50",),
        lambda _modifier: (
            f"Modifier 50 is not allowed on {ref.code}: bilateral surgery "
            f"indicator {ref.bilateral} ({meaning})."
        ),
    )


@rule(
    "modifier.pctc_not_allowed",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="Modifier 26 or TC on a code whose PC/TC indicator does not allow it.",
    source="RVU25D layout, PCTC IND (col. 103) and Attachment A",
    carc="4",
    requires=Gate.KNOWN | Gate.MODIFIERS,
    medicare_policy=True,
)
def pctc_not_allowed(ctx: LineContext) -> Iterator[Hit]:
    """26 and TC split a diagnostic test into its components; the PC/TC indicator says if it can.

    Per the layout's Attachment A: 1 allows both; 6 allows 26 (TC cannot be used); 0, 2, 3, 4, 5,
    7, 8 and 9 allow neither. Codes 2 (professional component only) and 3 (technical component
    only) already are a component: the layout says "Modifiers 26 and TC cannot be used", so a
    redundant 26 on a 2 code is an error too, not a note.
    """
    ref = ctx.ref
    if ref is None or ref.pctc is None or ref.pctc not in PCTC_ALLOWED:
        return
    code, pctc = ref.code, ref.pctc
    allowed = PCTC_ALLOWED[pctc]
    yield from _first_position_hits(
        ctx,
        [modifier for modifier in ("26", "TC") if modifier not in allowed],
        lambda modifier: (
            f"Modifier {modifier} is not allowed on {code}: PC/TC indicator "
            f"{pctc} ({PCTC_MEANINGS[pctc]})."
        ),
    )


@dataclass(frozen=True, slots=True)
class _Indicator:
    """An MPFS surgeons indicator of the code and the modifiers whose use it governs."""

    field: str
    """The ``CodeReference`` attribute that holds the indicator."""
    modifiers: tuple[str, ...]
    what: str
    """The indicator's name in messages."""
    meanings: dict[str, str]
    source: str


_ASSISTANT = _Indicator(
    "assistant",
    ASSISTANT_MODIFIERS,
    "assistant at surgery",
    ASSISTANT_MEANINGS,
    "CMS Claims Processing Manual ch. 12 §20.4.3; RVU25D layout, ASST SURG (col. 118)",
)
_CO_SURGEONS = _Indicator(
    "co_surgeons",
    ("62",),
    "co-surgeons",
    SURGEONS_MEANINGS,
    "CMS Claims Processing Manual ch. 12 §40.8; RVU25D layout, CO-SURG (col. 119)",
)
_TEAM_SURGERY = _Indicator(
    "team_surgery",
    ("66",),
    "team surgery",
    SURGEONS_MEANINGS,
    "CMS Claims Processing Manual ch. 12 §40.8; RVU25D layout, TEAM SURG (col. 120)",
)


@dataclass(frozen=True, slots=True)
class _IndicatorRule:
    """A rule over an indicator: a hit per listed modifier present when it is one of ``values``.

    The error and the documentation warning on one scale are two of these (one severity a rule).
    """

    rule_id: str
    indicator: _Indicator
    values: frozenset[str]
    severity: Severity
    carc: str
    description: str
    why: str
    """The check's docstring: why the rule has its severity and CARC."""


_INDICATOR_RULES: tuple[_IndicatorRule, ...] = (
    _IndicatorRule(
        "modifier.assistant_not_allowed",
        _ASSISTANT,
        _NOT_PERMITTED,
        Severity.ERROR,
        "54",
        "An assistant-at-surgery modifier (80, 81, 82, AS) on a code that never pays one "
        "(indicator 1) or where the concept does not apply (9).",
        "Indicator 1 is a statutory restriction: the assistant is never paid (CARC 54).",
    ),
    _IndicatorRule(
        "modifier.assistant_documentation",
        _ASSISTANT,
        frozenset({_DOCUMENTATION}),
        Severity.WARNING,
        "252",
        "An assistant-at-surgery modifier on a code that pays one only with documentation "
        "(indicator 0).",
        """Indicator 0: paid only when documentation establishes medical necessity (CARC 252).

        A warning, not an error: the claim can be paid once the documentation is attached. The
        severity differs from ``modifier.assistant_not_allowed``, hence a rule of its own.
        """,
    ),
    _IndicatorRule(
        "modifier.co_surgeons",
        _CO_SURGEONS,
        _SURGEONS_NOT_PERMITTED,
        Severity.ERROR,
        "54",
        "Modifier 62 on a code where co-surgeons are not permitted (indicator 0 or 9).",
        "Indicator 0 (not permitted) or 9 (concept does not apply): 62 is not paid (CARC 54).",
    ),
    _IndicatorRule(
        "modifier.co_surgeons_documentation",
        _CO_SURGEONS,
        frozenset({_SURGEONS_DOCUMENTATION}),
        Severity.WARNING,
        "252",
        "Modifier 62 on a code that pays co-surgeons only with documentation (indicator 1).",
        "Indicator 1: co-surgeons are paid once documentation shows two surgeons were needed.",
    ),
    _IndicatorRule(
        "modifier.team_surgery",
        _TEAM_SURGERY,
        _SURGEONS_NOT_PERMITTED,
        Severity.ERROR,
        "54",
        "Modifier 66 on a code where team surgery is not permitted (indicator 0 or 9).",
        "Indicator 0 (not permitted) or 9 (concept does not apply): 66 is not paid (CARC 54).",
    ),
    _IndicatorRule(
        "modifier.team_surgery_documentation",
        _TEAM_SURGERY,
        frozenset({_SURGEONS_DOCUMENTATION}),
        Severity.WARNING,
        "252",
        "Modifier 66 on a code that pays a surgical team only with documentation (indicator 1).",
        "Indicator 1: a team is paid by report once documentation shows it was needed.",
    ),
)


def _indicator_rule(spec: _IndicatorRule) -> Rule:
    """The rule of one row of the indicator table."""
    indicator = spec.indicator

    def check(ctx: LineContext) -> Iterator[Hit]:
        ref = ctx.ref
        if ref is None:
            return
        value: str | None = getattr(ref, indicator.field)
        if value is None or value not in spec.values:
            return
        yield from _first_position_hits(
            ctx,
            indicator.modifiers,
            lambda modifier: (
                f"Modifier {modifier} on {ref.code}: {indicator.what} indicator "
                f"{value} ({indicator.meanings[value]})."
            ),
        )

    check.__name__ = check.__qualname__ = spec.rule_id.removeprefix("modifier.")
    check.__doc__ = inspect.cleandoc(spec.why)
    return rule(
        spec.rule_id,
        category=Category.MODIFIER,
        severity=spec.severity,
        description=spec.description,
        source=indicator.source,
        carc=spec.carc,
        requires=Gate.KNOWN | Gate.MODIFIERS,
        medicare_policy=True,
    )(check)


#: The rules of this module.
RULES: tuple[Rule, ...] = (
    malformed_modifier,
    unknown_modifier,
    too_many_modifiers,
    pricing_not_first,
    conflicting_modifiers,
    em_only_modifier,
    global_split_not_applicable,
    multiple_on_add_on,
    bilateral_not_allowed,
    pctc_not_allowed,
    *(_indicator_rule(spec) for spec in _INDICATOR_RULES),
)
