"""The rule engine: a pure function from a line, reference data and other lines to a verdict.

No I/O, no clock, no randomness: the same inputs always give the same findings in the same order,
which is what lets the worker and the offline scrub agree, and lets a redelivered line produce a
result identical to the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from scrubber.contracts import ClaimLine, Finding, Outcome, Severity
from scrubber.history import INFLUENCE_DAYS
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.base import CATALOGUE, LineContext

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

__all__ = ["CATALOGUE", "Evaluation", "evaluate", "influences", "outcome_of"]

_FLAGGING = frozenset({Severity.ERROR, Severity.WARNING})


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


def evaluate(
    line: ClaimLine,
    snapshot: ReferenceSnapshot,
    as_of: date,
    others: tuple[ClaimLine, ...] = (),
) -> Evaluation:
    """Apply every rule in the catalogue, in catalogue order, to one line.

    ``others`` are the patient's other known lines; cross-line rules judge from that set only.
    """
    ref = snapshot.code(line.procedure_code)
    ctx = LineContext(line=line, ref=ref, snapshot=snapshot, as_of=as_of, others=others)
    findings = tuple(f for r in CATALOGUE.values() for f in r.findings(ctx))
    return Evaluation(
        outcome=outcome_of(findings),
        findings=findings,
        reference=ref.engine_view() if ref is not None else None,
    )


def influences(line: ClaimLine, other: ClaimLine, snapshot: ReferenceSnapshot) -> bool:
    """Whether the presence of ``line`` can change the verdict on ``other`` (same patient).

    The cross-line rules look at lines of the same date of service (units per day, add-on
    primaries, duplicates) or at surgeries whose global period covers a line. A line that opens
    no period therefore only matters to lines of its own day; a surgery matters to every line
    within INFLUENCE_DAYS. A new cross-line rule must stay within this reach, or the processor
    would not revise the lines it affects (tests/unit/test_history.py checks final verdicts
    against every arrival order).
    """
    if line.service_date == other.service_date:
        return True
    if abs((line.service_date - other.service_date).days) > INFLUENCE_DAYS:
        return False
    return _global_period.opens_period(line, snapshot) is not None
