"""The building blocks of the engine: rule specifications and the line context.

A rule is a specification (stable id, category, severity, claim adjustment reason code, the
public source it enforces) and a pure check function from a ``LineContext`` to the problems it
sees. ``@rule(...)`` turns a check function into a ``Rule``; nothing registers itself anywhere.
Which rules run, and in which order, is decided in one place (``scrubber.rules.library``) and
handed to an ``Engine``: the engine, ``scrubber rules`` and docs/rules.md all read that list.

A rule that looks at the patient's other lines (``Gate.OTHERS``) also says which new lines can
change its verdict on an earlier one (``affects``): the processor re-judges exactly those
earlier lines when a line arrives. A rule that does not say is assumed to be changed by any
line of the same date, and by any line within ``INFLUENCE_DAYS`` that opens a global period.

A rule may also declare the cheap facts about a line without which its check cannot find
anything (``requires``: the code is known, the line has modifiers, the patient has other
lines, ...). The engine computes those facts once per line and does not call a check whose
facts are false: most lines are clean E/M visits without modifiers, and calling thirty-odd
checks that return nothing cost more than the checks that matter. It is an optimisation only:
a check must still return nothing when a fact it requires is false (tests/unit/test_engine_plan.py
compares the planned engine with one that calls every check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import IntFlag
from typing import Any

from scrubber.contracts import Category, ClaimLine, Finding, Severity
from scrubber.refdata.model import CodeReference, ReferenceSnapshot


@dataclass(frozen=True, slots=True)
class LineContext:
    """Everything a rule may look at for one line; nothing in it performs I/O.

    ``as_of`` is the date the adapter considers today (for the date-of-service-in-the-future
    check): the engine never reads the clock, so a replay of yesterday's input judges the same.
    """

    line: ClaimLine
    ref: CodeReference | None
    snapshot: ReferenceSnapshot
    as_of: date
    others: tuple[ClaimLine, ...] = ()
    """The patient's other lines known to the scrubber that a rule may read (never this line).

    Rules that look across lines (units per date of service, add-on without a primary,
    duplicates, global periods) must judge from this set alone, never from arrival order: a
    line's final verdict has to be the same whatever order the lines arrived in.

    What a rule may read: the lines of this line's date of service, and the lines within
    ``INFLUENCE_DAYS`` whose code opens a global period (``Engine.other_day_codes``). The
    engine's callers hand over no others (``scrubber.revisions.visible``): most of a patient's
    stored lines are neither, and validating them was the largest part of reading a history.
    A rule that needs other lines must widen ``Engine.other_day_codes`` first
    (tests/unit/test_history_lazy.py judges with every line and with these only, and
    compares).
    """
    history_lost: bool = False
    """The patient's stored history could not be read: ``others`` lacks the earlier lines."""
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Facts derived from the context once and shared by the rules of one evaluation (the other
    lines of the same date of service, the surgeries whose package binds the line): several
    rules ask the same question of ``others``, and one pass answers all of them."""

    def same_day(self) -> tuple[ClaimLine, ...]:
        """The other lines with this line's date of service (one pass, shared by the rules)."""
        found: tuple[ClaimLine, ...] | None = self.memo.get("same_day")
        if found is None:
            day = self.line.service_date
            found = tuple(o for o in self.others if o.service_date == day)
            self.memo["same_day"] = found
        return found


class Gate(IntFlag):
    """Cheap facts about a line that a rule can require (``rule(..., requires=...)``)."""

    NONE = 0
    KNOWN = 1
    """The reference data knows the procedure code."""
    MODIFIERS = 2
    """The line carries at least one modifier."""
    OTHERS = 4
    """The patient has other known lines."""
    EM = 8
    """The procedure code is an E/M code (99202-99499)."""
    ADD_ON = 16
    """The reference data marks the code as an add-on (global days ZZZ)."""
    SURGICAL = 32
    """The code is known and has a global surgery period (000, 010, 090)."""
    STATUS_NOTE = 64
    """The code is known and has an MPFS status some code rule speaks about (not A, R, T, J)."""
    CODE_SETS = 128
    """The reference data has ICD-10-CM code sets (a fact of the snapshot, not of the line)."""
    MUE_LINE = 256
    """The code is known and has an MUE value counted per claim line (adjudication indicator 1)."""
    MUE_DATE = 512
    """The code is known and has an MUE value counted per date of service (indicator 2 or 3)."""
    PTP_COLUMN2 = 1024
    """The code is in column 2 of at least one NCCI PTP edit (any date, any indicator)."""
    HISTORY_LOST = 2048
    """The patient's stored history could not be read (``LineContext.history_lost``)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """A problem a check found: what is wrong, and which field of the line is at fault."""

    message: str
    field: str | None = None
    reference: dict[str, Any] | None = None
    """Facts behind the finding beyond the line's own code (the other line of an NCCI pair)."""


CheckFn = Callable[[LineContext], Iterable[Hit]]


def _any_line(other: ClaimLine) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Changes:
    """The earlier lines of the patient whose verdict a new line can change, for one rule.

    Those dated ``first`` .. ``last`` for which ``test`` holds. The dates are checked first: an
    earlier line read from a stored history is validated only when its date is in range.
    """

    first: date
    last: date
    test: Callable[[ClaimLine], bool] = _any_line


#: Which earlier lines a new line can change, for one rule: given the new line and the snapshot,
#: the ``Changes`` it can make, or None when it can change nothing this rule says.
Affects = Callable[[ClaimLine, ReferenceSnapshot], Changes | None]

#: The furthest two lines can be apart and still affect each other's verdict: a 090 global
#: period runs from the day before the surgery to 90 days after it. Every rule that reads
#: ``LineContext.others`` is handed only the lines within this many days of the line it judges.
INFLUENCE_DAYS = 91


def same_day_same_code(line: ClaimLine, snapshot: ReferenceSnapshot) -> Changes | None:
    """``Affects`` of rules that compare a line with the lines of its date and code.

    Units per date of service and duplicates read only those lines.
    """
    day, code = line.service_date, line.procedure_code
    return Changes(day, day, lambda other: other.procedure_code == code)


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule: its specification and its check."""

    rule_id: str
    category: Category
    severity: Severity
    description: str
    source: str
    carc: str | None
    check: CheckFn
    requires: Gate = Gate.NONE
    """Facts without which the check finds nothing; the engine skips it when one is false."""
    affects: Affects | None = None
    """For a rule that reads other lines: which new lines can change its verdict on an earlier
    one. None: any line of the same date, and any line that opens a global period (the engine's
    conservative default)."""
    medicare_policy: bool = False
    """The rule enforces Medicare payment policy (MPFS indicators and statuses, the global
    surgery package, NCCI edits), not a code set or format standard: payer profiles can turn
    these off together (group ``medicare_policy``)."""

    def __call__(self, ctx: LineContext) -> Iterable[Hit]:
        """Run the check (a rule reads like the function it was made from)."""
        return self.check(ctx)

    def finding(self, hit: Hit) -> Finding:
        """A hit of this rule's check as a finding carrying the rule's specification."""
        return Finding(
            rule_id=self.rule_id,
            category=self.category,
            severity=self.severity,
            message=hit.message,
            field=hit.field,
            carc=self.carc,
            reference=hit.reference,
        )

    def findings(self, ctx: LineContext) -> Iterable[Finding]:
        """Run the check and turn each hit into a finding carrying this rule's specification."""
        for hit in self.check(ctx):
            yield self.finding(hit)


def rule(
    rule_id: str,
    *,
    category: Category,
    severity: Severity,
    description: str,
    source: str,
    carc: str | None = None,
    requires: Gate = Gate.NONE,
    affects: Affects | None = None,
    medicare_policy: bool = False,
) -> Callable[[CheckFn], Rule]:
    """Make a check function a rule with a stable id; ids are never reused for another meaning.

    ``requires`` names the facts the check cannot do without (see ``Gate``); leave it empty when
    in doubt: a rule without requirements is always called. The rule is not run anywhere until
    ``scrubber.rules.library`` puts it in the engine's list.
    """

    def make(check: CheckFn) -> Rule:
        return Rule(
            rule_id=rule_id,
            category=category,
            severity=severity,
            description=description,
            source=source,
            carc=carc,
            check=check,
            requires=requires,
            affects=affects,
            medicare_policy=medicare_policy,
        )

    return make
