"""The rule engine: a pure function from a line, reference data and other lines to a verdict.

An ``Engine`` is built from an explicit, ordered list of rules (the product's list is
``scrubber.rules.library.default_rules``; a test builds the engine it needs). The order of the
list is the order of findings. No I/O, no clock, no randomness: the same inputs always give the
same findings in the same order, which is what lets the worker and the offline scrub agree, and
lets a redelivered line produce a result identical to the first.

Rules whose required facts (``Rule.requires``) are false for a line are not called: they could
find nothing, so the findings are those of calling every rule, only cheaper. The engine also
answers, for a new line, which earlier lines of the patient it can change (``reach``), from what
each cross-line rule declares (``Rule.affects``).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from operator import attrgetter
from typing import Any, Protocol

from scrubber.contracts import ClaimLine, Finding, Outcome, Severity
from scrubber.refdata.model import CodeReference, ReferenceSnapshot
from scrubber.refdata.payers import ProfileMatcher, ResolvedProfile
from scrubber.rules.base import INFLUENCE_DAYS, Changes, Gate, LineContext, Rule
from scrubber.rules.code import NOTED_STATUSES
from scrubber.rules.codes import is_add_on, is_em
from scrubber.rules.global_period import POSTOP_DAYS, opens_period, surgical_codes
from scrubber.standards import MUE_DATE_INDICATORS, MUE_LINE_INDICATOR

__all__ = ["MEDICARE_POLICY", "Engine", "Evaluation", "Reach", "outcome_of"]

#: The group of rules that enforce Medicare payment policy (``Rule.medicare_policy``), which a
#: payer profile can disable as a whole.
MEDICARE_POLICY = "medicare_policy"

_Plan = tuple[Rule, ...]

_FLAGGING = frozenset({Severity.ERROR, Severity.WARNING})
_FIRST = attrgetter("first")
_LAST = attrgetter("last")

# Line facts as plain ints: IntFlag arithmetic is slow on the hot path.
_KNOWN = int(Gate.KNOWN)
_MODIFIERS = int(Gate.MODIFIERS)
_OTHERS = int(Gate.OTHERS)
_EM = int(Gate.EM)
_ADD_ON = int(Gate.ADD_ON)
_SURGICAL = int(Gate.SURGICAL)
_STATUS_NOTE = int(Gate.STATUS_NOTE)
_CODE_SETS = int(Gate.CODE_SETS)
_MUE_LINE = int(Gate.MUE_LINE)
_MUE_DATE = int(Gate.MUE_DATE)
_PTP_COLUMN2 = int(Gate.PTP_COLUMN2)
_HISTORY_LOST = int(Gate.HISTORY_LOST)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The engine's verdict on one line."""

    outcome: Outcome
    findings: tuple[Finding, ...]
    reference: dict[str, Any] | None
    profile: str | None = None
    """The payer profile the line was judged with (None: every rule as catalogued)."""


def outcome_of(findings: tuple[Finding, ...]) -> Outcome:
    """Flagged exactly when a finding is an error or a warning; info alone is accepted."""
    if any(f.severity in _FLAGGING for f in findings):
        return Outcome.FLAGGED
    return Outcome.ACCEPTED


#: What the engine knows about a procedure code under one snapshot: its reference record, the
#: code's facts (known, E/M, add-on, surgical, noted status, how its MUE counts, column 2 of
#: a PTP edit) and the ``reference`` a result carries (``engine_view`` is a pydantic dump, the
#: costliest part).
_CodeFacts = tuple[CodeReference | None, int, dict[str, Any] | None]

#: Codes are bounded (16 characters) but not a closed set: an input full of made-up codes
#: empties the per-snapshot cache now and then instead of growing it without limit.
_CODE_FACTS_LIMIT = 100_000


def _facts_of(snapshot: ReferenceSnapshot, code: str) -> _CodeFacts:
    ref = snapshot.code(code)
    facts = _EM if is_em(code) else 0
    view = None
    if ref is not None:
        facts |= _KNOWN
        if is_add_on(ref):
            facts |= _ADD_ON
        if ref.global_days in POSTOP_DAYS:
            facts |= _SURGICAL
        if ref.status is not None and ref.status in NOTED_STATUSES:
            facts |= _STATUS_NOTE
        if ref.mue_value is not None:
            if ref.mue_indicator == MUE_LINE_INDICATOR:
                facts |= _MUE_LINE
            elif ref.mue_indicator in MUE_DATE_INDICATORS:
                facts |= _MUE_DATE
        view = ref.engine_view()
    if code in snapshot.aoc_add_ons:  # an add-on by the AOC file, even if not ZZZ
        facts |= _ADD_ON
    if snapshot.ptp.column1_codes(code):
        facts |= _PTP_COLUMN2
    if snapshot.bundle.icd10cm:
        facts |= _CODE_SETS
    return ref, facts, view


def _default_affects(line: ClaimLine, snapshot: ReferenceSnapshot) -> Changes:
    """``Affects`` of a rule that does not say what changes it (a conservative bound).

    Lines of the same date, and every line within ``INFLUENCE_DAYS`` when the new line opens a
    global period.
    """
    day = line.service_date
    if opens_period(line, snapshot) is None:
        return Changes(day, day)
    return Changes(clamped(day, -INFLUENCE_DAYS), clamped(day, INFLUENCE_DAYS))


#: The spans ``clamped`` is asked for, made once each: it runs several times for every line,
#: always with one of a handful of constants, and making the ``timedelta`` was half its cost.
#: Bounded: past the limit a span is made every time.
_SPANS: dict[int, timedelta] = {}
_SPANS_LIMIT = 1024


def clamped(day: date, days: int) -> date:
    """``day + days``, held inside the calendar instead of overflowing."""
    try:
        span = _SPANS.get(days)
        if span is None:
            span = timedelta(days=days)
            if len(_SPANS) < _SPANS_LIMIT:
                _SPANS[days] = span
        return day + span
    except OverflowError:
        return date.max if days > 0 else date.min


class Dated(Protocol):
    """An earlier line as the patient's history holds it: its date, and the line on demand."""

    @property
    def service_date(self) -> date:
        """The line's date of service (known without validating the line)."""
        ...

    @property
    def line(self) -> ClaimLine:
        """The validated line."""
        ...


class Reach:
    """Which earlier lines of the patient one new line can change, under one engine."""

    __slots__ = ("_changes", "span")

    def __init__(self, changes: Sequence[Changes]) -> None:
        self._changes = tuple(changes)
        #: The first and last date any change covers (None: the line changes nothing), so a
        #: caller reads only the lines of those dates.
        self.span: tuple[date, date] | None = (
            (min(map(_FIRST, changes)), max(map(_LAST, changes))) if changes else None
        )

    def may_change(self, other: Dated) -> bool:
        """Whether judging ``other`` again can give a different verdict now.

        The date ranges first: the line itself is read only when one of them holds its date.
        """
        day = other.service_date
        for change in self._changes:
            if change.first <= day <= change.last and change.test(other.line):
                return True
        return False


class Engine:
    """An ordered list of rules, and the machinery to apply it to a line quickly."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        seen: set[str] = set()
        for r in self.rules:
            if r.rule_id in seen:
                raise ValueError(f"rule id {r.rule_id!r} is in the engine twice")
            seen.add(r.rule_id)
        #: Rules whose verdict depends on the patient's other lines.
        self.cross_line: tuple[Rule, ...] = tuple(
            r for r in self.rules if r.affects is not None or r.requires & Gate.OTHERS
        )
        self._affects = tuple({r.affects or _default_affects: None for r in self.cross_line})
        # Per snapshot (replaced as a whole, kept so its id cannot be reused meanwhile): the
        # facts of each code, and the rules to call per (line facts, payer profile name).
        self._code_facts: tuple[ReferenceSnapshot | None, dict[str, _CodeFacts]] = (None, {})
        self._plans: tuple[ReferenceSnapshot | None, dict[tuple[int, str | None], _Plan]] = (
            None,
            {},
        )
        self._matcher: tuple[ReferenceSnapshot | None, ProfileMatcher | None] = (None, None)

    def rule(self, rule_id: str) -> Rule:
        """The engine's rule of that id (KeyError when it has none)."""
        for r in self.rules:
            if r.rule_id == rule_id:
                return r
        raise KeyError(rule_id)

    def code_facts(self, snapshot: ReferenceSnapshot, code: str) -> _CodeFacts:
        """The facts of a code under a snapshot, computed once per code and version.

        A snapshot is immutable and replaced as a whole; the cache follows the latest one
        (the snapshot is kept, so its id cannot be taken by another object meanwhile).
        """
        owner, table = self._code_facts
        if owner is not snapshot:
            table = {}
            self._code_facts = (snapshot, table)
        found = table.get(code)
        if found is None:
            if len(table) >= _CODE_FACTS_LIMIT:
                table.clear()
            found = table[code] = _facts_of(snapshot, code)
        return found

    def profile_for(self, snapshot: ReferenceSnapshot, payer_id: str) -> ResolvedProfile | None:
        """The payer profile of a payer id under a snapshot's profiles, resolved for this engine.

        None when the snapshot has no profiles or none matches: every rule as catalogued.
        """
        owner, matcher = self._matcher
        if owner is not snapshot:
            profiles = snapshot.bundle.payers
            matcher = None
            if profiles is not None and profiles.profiles:
                matcher = ProfileMatcher(profiles, self.rule_specs(), self.groups())
            self._matcher = (snapshot, matcher)
        return matcher.for_payer(payer_id) if matcher is not None else None

    def rule_specs(self) -> tuple[tuple[str, str, Severity], ...]:
        """(rule id, category, severity) of every rule, as payer profiles resolve against."""
        return tuple((r.rule_id, r.category.value, r.severity) for r in self.rules)

    def groups(self) -> dict[str, frozenset[str]]:
        """Named groups of rule ids a payer profile can disable together."""
        return {MEDICARE_POLICY: frozenset(r.rule_id for r in self.rules if r.medicare_policy)}

    def plan(
        self, snapshot: ReferenceSnapshot, facts: int, profile: ResolvedProfile | None = None
    ) -> _Plan:
        """The rules to call for a line with these facts, in order, as the profile has them.

        A profile (``disabled`` rule ids, ``severity`` overrides) drops rules and changes
        severities here, once per combination and snapshot, not per finding.
        """
        owner, plans = self._plans
        if owner is not snapshot:
            plans = {}
            self._plans = (snapshot, plans)
        key = (facts, profile.name if profile is not None else None)
        plan = plans.get(key)
        if plan is None:
            chosen = [r for r in self.rules if not int(r.requires) & ~facts]
            if profile is not None:
                chosen = [
                    replace(r, severity=profile.severity[r.rule_id])
                    if r.rule_id in profile.severity
                    else r
                    for r in chosen
                    if r.rule_id not in profile.disabled
                ]
            plan = plans[key] = tuple(chosen)
        return plan

    def evaluate(
        self,
        line: ClaimLine,
        snapshot: ReferenceSnapshot,
        as_of: date,
        others: tuple[ClaimLine, ...] = (),
        *,
        history_lost: bool = False,
    ) -> Evaluation:
        """Apply the engine's rules, in order, to one line, as its payer's profile has them.

        ``others`` are the patient's other known lines a rule may read (``LineContext.others``:
        those of the line's date, and those within ``INFLUENCE_DAYS`` with a code of
        ``other_day_codes``); cross-line rules judge from that set only, never from the order
        lines arrived in. Lines beyond it change nothing. The payer profile
        comes from the snapshot (reference data), so a hot swap changes profiles and rules
        together.
        """
        profile = self.profile_for(snapshot, line.payer_id)
        ref, facts, view = self.code_facts(snapshot, line.procedure_code)
        if line.modifiers:
            facts |= _MODIFIERS
        if others:
            facts |= _OTHERS
        if history_lost:
            facts |= _HISTORY_LOST
        ctx = LineContext(
            line=line,
            ref=ref,
            snapshot=snapshot,
            as_of=as_of,
            others=others,
            history_lost=history_lost,
        )
        found: list[Finding] = []
        for r in self.plan(snapshot, facts, profile):
            for hit in r.check(ctx):
                found.append(r.finding(hit))
        findings = tuple(found)
        return Evaluation(
            outcome=outcome_of(findings),
            findings=findings,
            reference=dict(view) if view is not None else None,
            profile=profile.name if profile is not None else None,
        )

    def other_day_codes(self, snapshot: ReferenceSnapshot) -> Container[str]:
        """The codes of the lines on other dates of service that a rule may read.

        Rules read the other lines of a line's own date (``LineContext.same_day``) and the
        surgeries around it (``global_period.surgeries_for``: lines whose code opens a global
        period), nothing else; the lines handed to ``evaluate`` as ``others`` are exactly
        those (``LineContext.others``), so a stored line of another date with any other code
        is never validated. One map per snapshot.
        """
        return surgical_codes(snapshot)

    def reach(self, line: ClaimLine, snapshot: ReferenceSnapshot) -> Reach:
        """What a new line can change: the union of what each cross-line rule declares."""
        changes = []
        for affects in self._affects:
            change = affects(line, snapshot)
            if change is not None:
                changes.append(change)
        return Reach(changes)
