"""Claim-level verdicts (``ClaimResult``) assembled from the verdicts on a claim's lines.

A claim has a verdict once every one of its lines has one: the lines of an 837 claim carry
``claim_line_count``, and the claim is complete when results for line numbers 1 to that count
have arrived. Results arrive one by one, in any order, possibly more than once (at-least-once
delivery) and revised (a later line can change an earlier one's verdict); the assembler keeps
the highest revision per line id, as every consumer of ScrubResults must.

A ClaimResult is emitted when the claim first becomes complete, and again, with its revision
+ 1, whenever a line's new revision changes that line's outcome or rule ids. A redelivered or
older result, or a new revision that changes neither, emits nothing: the claim's verdict did not
change. Everything here is pure: no I/O, and the time is passed in.

Lines without ``claim_line_count`` (JSONL input written before it existed) never complete a claim
and are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from scrubber.contracts import ClaimLineStatus, ClaimResult, Outcome, ScrubResult


def line_status(result: ScrubResult) -> ClaimLineStatus:
    """A line's verdict as a claim reports it: outcome and the sorted, unique rule ids."""
    return ClaimLineStatus(
        line_id=result.line_id,
        revision=result.revision,
        outcome=result.outcome,
        rule_ids=sorted({f.rule_id for f in result.findings}),
    )


def is_complete(results: Iterable[ScrubResult], claim_line_count: int) -> bool:
    """True when there is a result for every line number from 1 to ``claim_line_count``."""
    numbers = {r.line.line_number for r in results}
    return numbers.issuperset(range(1, claim_line_count + 1))


def build_claim_result(
    results: Iterable[ScrubResult], claim_line_count: int, revision: int, now: datetime
) -> ClaimResult:
    """The ClaimResult of a complete claim from its lines' results (highest revision per line).

    Lines are listed by line number; the claim is accepted when every line is. The reference
    data version is that of the newest line verdict (latest ``scrubbed_at``, then highest line
    number), so a claim judged across a reference data swap names the version it ended on.
    """
    lines = sorted(results, key=lambda r: r.line.line_number)
    if not lines or not is_complete(lines, claim_line_count):
        raise ValueError("a claim result needs a result for every line of the claim")
    latest = max(lines, key=lambda r: (r.scrubbed_at, r.line.line_number))
    accepted = all(r.outcome is Outcome.ACCEPTED for r in lines)
    return ClaimResult(
        claim_id=lines[0].line.claim_id,
        payer_id=latest.line.payer_id,
        revision=revision,
        outcome=Outcome.ACCEPTED if accepted else Outcome.FLAGGED,
        lines=[line_status(r) for r in lines],
        x12=latest.line.x12,
        refdata_version=latest.refdata_version,
        scrubbed_at=now,
    )


@dataclass(slots=True)
class _Claim:
    lines: dict[str, ScrubResult] = field(default_factory=dict)
    emitted: ClaimResult | None = None


def _verdicts(result: ClaimResult) -> list[tuple[str, Outcome, list[str]]]:
    return [(s.line_id, s.outcome, s.rule_ids) for s in result.lines]


class ClaimAssembler:
    """Feed it ScrubResults one by one; it says when a claim's verdict is new or has changed.

    Holds every claim it has seen (the offline scrub runs one file; a stream would keep this
    state per member id, like the patient histories).
    """

    def __init__(self) -> None:
        self._claims: dict[str, _Claim] = {}

    def add(self, result: ScrubResult, now: datetime) -> ClaimResult | None:
        """Take one result; return the claim's new ClaimResult, or None if there is none."""
        count = result.line.claim_line_count
        if count is None:
            return None
        claim = self._claims.setdefault(result.line.claim_id, _Claim())
        known = claim.lines.get(result.line_id)
        if known is not None and known.revision >= result.revision:
            return None  # a redelivery, or older than what is held
        claim.lines[result.line_id] = result
        if not is_complete(claim.lines.values(), count):
            return None
        revision = 1 if claim.emitted is None else claim.emitted.revision + 1
        candidate = build_claim_result(claim.lines.values(), count, revision, now)
        if claim.emitted is not None and _verdicts(candidate) == _verdicts(claim.emitted):
            return None
        claim.emitted = candidate
        return candidate

    def current(self) -> list[ClaimResult]:
        """The latest ClaimResult of every complete claim, in the order claims were first seen."""
        return [c.emitted for c in self._claims.values() if c.emitted is not None]
