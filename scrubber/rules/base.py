"""The building blocks of the engine: rule specifications, the line context, the catalogue.

A rule is a specification (stable id, category, severity, claim adjustment reason code, the
public source it enforces) and a pure check function from a ``LineContext`` to the problems it
sees. Rules register themselves in ``CATALOGUE`` when their module is imported, so the engine,
``scrubber rules`` and docs/rules.md all read the same list and cannot disagree.

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
    """The patient's other lines known to the scrubber (any claim, any date; never this line).

    Rules that look across lines (units per date of service, add-on without a primary,
    duplicates, global periods) must judge from this set alone, never from arrival order: a
    line's final verdict has to be the same whatever order the lines arrived in.
    """
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
    requires: Gate = Gate.NONE
    """Facts without which the check finds nothing; the engine skips it when one is false."""

    def finding(self, hit: Hit) -> Finding:
        """A hit of this rule's check as a finding carrying the rule's specification."""
        return Finding(
            rule_id=self.rule_id,
            category=self.category,
            severity=self.severity,
            message=hit.message,
            field=hit.field,
            carc=self.carc,
        )

    def findings(self, ctx: LineContext) -> Iterable[Finding]:
        """Run the check and turn each hit into a finding carrying this rule's specification."""
        for hit in self.check(ctx):
            yield self.finding(hit)


class RuleRegistry(dict[str, Rule]):
    """The catalogue: a dict of rules by id that counts its changes.

    The engine keeps, per combination of line facts, the list of rules to call; ``version``
    tells it when that list is stale (a rule registered late, or one a test adds and removes).
    """

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def _changed(self) -> None:
        self.version += 1

    def __setitem__(self, key: str, value: Rule) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other: Any) -> RuleRegistry:  # type: ignore[override,misc]
        super().update(other)
        self._changed()
        return self

    def pop(self, key: str, *default: Any) -> Any:
        """Remove a rule (and mark the registry changed)."""
        self._changed()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Rule]:
        """Remove the last rule (and mark the registry changed)."""
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        """Remove every rule (and mark the registry changed)."""
        super().clear()
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Add rules (and mark the registry changed)."""
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: str, default: Rule | None = None) -> Any:
        """Add a rule if absent (and mark the registry changed)."""
        self._changed()
        return super().setdefault(key, default)  # type: ignore[arg-type]


CATALOGUE: RuleRegistry = RuleRegistry()


def rule(
    rule_id: str,
    *,
    category: Category,
    severity: Severity,
    description: str,
    source: str,
    carc: str | None = None,
    requires: Gate = Gate.NONE,
) -> Callable[[CheckFn], CheckFn]:
    """Register a check under a stable rule id; ids are never reused for another meaning.

    ``requires`` names the facts the check cannot do without (see ``Gate``); leave it empty when
    in doubt: a rule without requirements is always called.
    """

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
            requires=requires,
        )
        return check

    return register
