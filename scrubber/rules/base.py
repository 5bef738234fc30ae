"""The building blocks of the engine: rule specifications, the line context, the catalogue.

A rule is a specification (stable id, category, severity, claim adjustment reason code, the
public source it enforces) and a pure check function from a ``LineContext`` to the problems it
sees. Rules register themselves in ``CATALOGUE`` when their module is imported, so the engine,
``scrubber rules`` and docs/rules.md all read the same list and cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

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
    """The patient's other lines known to the scrubber (any claim, any date; never this line).

    Rules that look across lines (units per date of service, add-on without a primary,
    duplicates, global periods) must judge from this set alone, never from arrival order: a
    line's final verdict has to be the same whatever order the lines arrived in.
    """


@dataclass(frozen=True, slots=True)
class Hit:
    """A problem a check found: what is wrong, and which field of the line is at fault."""

    message: str
    field: str | None = None


CheckFn = Callable[[LineContext], Iterable[Hit]]


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered rule: its specification and its check."""

    rule_id: str
    category: Category
    severity: Severity
    description: str
    source: str
    carc: str | None
    check: CheckFn

    def findings(self, ctx: LineContext) -> Iterable[Finding]:
        """Run the check and turn each hit into a finding carrying this rule's specification."""
        for hit in self.check(ctx):
            yield Finding(
                rule_id=self.rule_id,
                category=self.category,
                severity=self.severity,
                message=hit.message,
                field=hit.field,
                carc=self.carc,
            )


CATALOGUE: dict[str, Rule] = {}


def rule(
    rule_id: str,
    *,
    category: Category,
    severity: Severity,
    description: str,
    source: str,
    carc: str | None = None,
) -> Callable[[CheckFn], CheckFn]:
    """Register a check under a stable rule id; ids are never reused for another meaning."""

    def register(check: CheckFn) -> CheckFn:
        if rule_id in CATALOGUE:
            raise ValueError(f"rule id {rule_id!r} is registered twice")
        CATALOGUE[rule_id] = Rule(
            rule_id=rule_id,
            category=category,
            severity=severity,
            description=description,
            source=source,
            carc=carc,
            check=check,
        )
        return check

    return register
