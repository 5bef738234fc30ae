"""The rule engine: a pure function from a line, reference data and other lines to a verdict.

No I/O, no clock, no randomness: the same inputs always give the same findings in the same order,
which is what lets the worker and the offline scrub agree, and lets a redelivered line produce a
result identical to the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from scrubber.contracts import ClaimLine, Finding, Outcome, Severity
from scrubber.history import INFLUENCE_DAYS
from scrubber.refdata.model import CodeReference, ReferenceSnapshot
from scrubber.rules.base import CATALOGUE, Gate, LineContext, Rule
from scrubber.rules.codes import is_add_on, is_em

# The rule modules register themselves on import; naming them here makes the dependency explicit.
# Registration order is the catalogue's order and the order of findings, so these imports are in
# category order, not alphabetical (isort is off for them). scrubber/rules/__init__.py imports
# this module first, so no other import order can register a rule module earlier.
# isort: off
from scrubber.rules import code as _code
from scrubber.rules import modifiers as _modifiers
from scrubber.rules import units as _units
from scrubber.rules import diagnosis as _diagnosis
from scrubber.rules import provider as _provider
from scrubber.rules import dates as _dates
from scrubber.rules import add_on as _add_on
from scrubber.rules import global_period as _global_period
from scrubber.rules import duplicates as _duplicates
# isort: on

RULE_MODULES = (
    _code,
    _modifiers,
    _units,
    _diagnosis,
    _provider,
    _dates,
    _add_on,
    _global_period,
    _duplicates,
)

__all__ = [
    "CATALOGUE",
    "Evaluation",
    "Reach",
    "evaluate",
    "evaluate_every_rule",
    "influences",
    "outcome_of",
    "own_catalogue",
]

_FLAGGING = frozenset({Severity.ERROR, Severity.WARNING})

# Line facts as plain ints: IntFlag arithmetic is slow on the hot path.
_KNOWN = int(Gate.KNOWN)
_MODIFIERS = int(Gate.MODIFIERS)
_OTHERS = int(Gate.OTHERS)
_EM = int(Gate.EM)
_ADD_ON = int(Gate.ADD_ON)
_SURGICAL = int(Gate.SURGICAL)
_STATUS_NOTE = int(Gate.STATUS_NOTE)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The engine's verdict on one line."""

    outcome: Outcome
    findings: tuple[Finding, ...]
    reference: dict[str, Any] | None


def outcome_of(findings: tuple[Finding, ...]) -> Outcome:
    """Flagged exactly when a finding is an error or a warning; info alone is accepted."""
    if any(f.severity in _FLAGGING for f in findings):
        return Outcome.FLAGGED
    return Outcome.ACCEPTED


# What the engine knows about a procedure code under one snapshot: its reference record, the
# code's facts (known, E/M, add-on, surgical, noted status) and the ``reference`` a result
# carries. A snapshot is immutable and replaced as a whole, so this is computed once per code
# and version instead of once per evaluation (``engine_view`` is a pydantic dump, the costliest
# part). The snapshot is kept in the entry so that its id cannot be reused by another object
# while the entry lives. Codes are bounded (16 characters) but not a closed set: an input full
# of made-up codes empties the cache now and then instead of growing it without limit.
_CodeFacts = tuple[CodeReference | None, int, dict[str, Any] | None]
_CODE_FACTS: dict[int, tuple[ReferenceSnapshot, dict[str, _CodeFacts]]] = {}
_CODE_FACTS_LIMIT = 100_000


def _code_facts(snapshot: ReferenceSnapshot, code: str) -> _CodeFacts:
    cached = _CODE_FACTS.get(id(snapshot))
    if cached is None or cached[0] is not snapshot:
        if len(_CODE_FACTS) >= 4:
            _CODE_FACTS.clear()
        cached = (snapshot, {})
        _CODE_FACTS[id(snapshot)] = cached
    table = cached[1]
    found = table.get(code)
    if found is None:
        if len(table) >= _CODE_FACTS_LIMIT:
            table.clear()
        ref = snapshot.code(code)
        facts = _EM if is_em(code) else 0
        view = None
        if ref is not None:
            facts |= _KNOWN
            if is_add_on(ref):
                facts |= _ADD_ON
            if ref.global_days in _global_period.POSTOP_DAYS:
                facts |= _SURGICAL
            if ref.status is not None and ref.status in _code.NOTED_STATUSES:
                facts |= _STATUS_NOTE
            view = ref.engine_view()
        found = (ref, facts, view)
        table[code] = found
    return found


# The rules to call for each combination of line facts, in catalogue order; rebuilt when the
# catalogue changes (``RuleRegistry.version``).
_PLANS: dict[int, tuple[Rule, ...]] = {}
_PLANS_VERSION = [-1]


def _plan(facts: int) -> tuple[Rule, ...]:
    if _PLANS_VERSION[0] != CATALOGUE.version:
        _PLANS.clear()
        _PLANS_VERSION[0] = CATALOGUE.version
    plan = _PLANS.get(facts)
    if plan is None:
        plan = tuple(r for r in CATALOGUE.values() if not int(r.requires) & ~facts)
        _PLANS[facts] = plan
    return plan


def evaluate(
    line: ClaimLine,
    snapshot: ReferenceSnapshot,
    as_of: date,
    others: tuple[ClaimLine, ...] = (),
) -> Evaluation:
    """Apply every rule in the catalogue, in catalogue order, to one line.

    ``others`` are the patient's other known lines; cross-line rules judge from that set only.
    Rules whose required facts (``Rule.requires``) are false for the line are not called: they
    could find nothing, so the findings are those of calling every rule (``evaluate_every_rule``).
    """
    ref, facts, view = _code_facts(snapshot, line.procedure_code)
    if line.modifiers:
        facts |= _MODIFIERS
    if others:
        facts |= _OTHERS
    ctx = LineContext(line=line, ref=ref, snapshot=snapshot, as_of=as_of, others=others)
    found: list[Finding] = []
    for r in _plan(facts):
        for hit in r.check(ctx):
            found.append(r.finding(hit))
    findings = tuple(found)
    return Evaluation(
        outcome=outcome_of(findings),
        findings=findings,
        reference=dict(view) if view is not None else None,
    )


def evaluate_every_rule(
    line: ClaimLine,
    snapshot: ReferenceSnapshot,
    as_of: date,
    others: tuple[ClaimLine, ...] = (),
) -> Evaluation:
    """``evaluate`` without the plan: every rule is called. The reference for tests."""
    ref = snapshot.code(line.procedure_code)
    ctx = LineContext(line=line, ref=ref, snapshot=snapshot, as_of=as_of, others=others)
    findings = tuple(f for r in CATALOGUE.values() for f in r.findings(ctx))
    return Evaluation(
        outcome=outcome_of(findings),
        findings=findings,
        reference=ref.engine_view() if ref is not None else None,
    )


class Reach:
    """``influences`` for one line, with the line's own facts worked out once.

    The processor asks whether a new line influences each of the patient's lines near it;
    whether the new line opens a global period is the same answer every time.
    """

    __slots__ = ("code", "day", "first", "last", "line", "opens", "snapshot")

    def __init__(self, line: ClaimLine, snapshot: ReferenceSnapshot) -> None:
        self.line = line
        self.snapshot = snapshot
        self.code = line.procedure_code
        self.day = line.service_date
        surgery = _global_period.opens_period(line, snapshot)
        self.opens = surgery is not None
        # The days of the period the line opens (D-1 .. D+N); None near the ends of the
        # calendar, where the rules' own date arithmetic can fail and only judging tells.
        self.first: date | None = None
        self.last: date | None = None
        if surgery is not None:
            try:
                self.first = self.day - timedelta(days=1)
                self.last = surgery.last_postop_day
            except OverflowError:
                self.first = self.last = None

    def __call__(self, other: ClaimLine) -> bool:
        """Whether the line can change the verdict on ``other`` (see ``influences``)."""
        return self.touches(other.service_date)

    def touches(self, day: date) -> bool:
        """``influences`` for a line of date ``day`` (it reads nothing else of the line)."""
        if self.day == day:
            return True
        if abs((self.day - day).days) > INFLUENCE_DAYS:
            return False
        return self.opens

    def may_change(self, other: ClaimLine) -> bool:
        """Whether the line can change the verdict on ``other`` under the engine's own rules.

        Narrower than ``influences``, and exact for the rules of ``RULE_MODULES`` (see
        ``own_catalogue``): a line of the same date with the same code (units per date of
        service, duplicates); any line of the same date when ``other`` is an add-on (its
        primary); a surgery whose package binds ``other`` and whose period, from the day before
        to the last post-operative day, covers its date. Anything else is invisible to every
        rule that reads ``others``.
        """
        day = other.service_date
        if day == self.day:
            if other.procedure_code == self.code:
                return True
            if _code_facts(self.snapshot, other.procedure_code)[1] & _ADD_ON:
                return True
        if not self.opens:
            return False
        if self.first is None or self.last is None:
            return True
        return self.first <= day <= self.last and _global_period.same_package(other, self.line)


_OWN: list[int | bool] = [-1, False]


def own_catalogue() -> bool:
    """Whether the catalogue holds only the rules of the engine's modules (``RULE_MODULES``).

    ``Reach.may_change`` knows what those rules read; a rule registered from elsewhere (a test's
    cross-line rule, say) may read more, and then only ``influences`` is safe.
    """
    if _OWN[0] != CATALOGUE.version:
        modules = {module.__name__ for module in RULE_MODULES}
        _OWN[1] = all(getattr(r.check, "__module__", None) in modules for r in CATALOGUE.values())
        _OWN[0] = CATALOGUE.version
    return bool(_OWN[1])


def influences(line: ClaimLine, other: ClaimLine, snapshot: ReferenceSnapshot) -> bool:
    """Whether the presence of ``line`` can change the verdict on ``other`` (same patient).

    The cross-line rules look at lines of the same date of service (units per day, add-on
    primaries, duplicates) or at surgeries whose global period covers a line. A line that opens
    no period therefore only matters to lines of its own day; a surgery matters to every line
    within INFLUENCE_DAYS. A new cross-line rule must stay within this reach, or the processor
    would not revise the lines it affects (tests/unit/test_history.py checks final verdicts
    against every arrival order); with the engine's own rules the processor also judges a line
    with only the other lines within INFLUENCE_DAYS (``PatientHistory.others_near``,
    tests/unit/test_history_lazy.py).
    """
    return Reach(line, snapshot)(other)
