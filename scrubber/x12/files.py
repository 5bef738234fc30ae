"""The offline X12 commands: an 837 file to claim lines, and an 837 file scrubbed end to end.

``convert`` is ``scrubber x12 lines``; ``scrub_837`` is ``scrubber scrub FILE.837``: the same
conversion, then the offline scrub of exactly those lines (so its results are byte for byte
those of ``x12 lines`` followed by ``scrub`` on the lines, given the same clock), then the claim
results and, when asked, the 277CA.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import orjson

from scrubber.claims import ClaimAssembler
from scrubber.contracts import ClaimResult, ScrubResult
from scrubber.offline import ScrubSummary, scrub_lines
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.x12.ack277 import ClaimAck, render_277ca
from scrubber.x12.intake import X12Summary, read_interchanges
from scrubber.x12.mapping import ClaimEcho


def convert(
    data: bytes,
    lines: BinaryIO,
    rejects: BinaryIO,
    acks: BinaryIO | None,
    now: datetime,
) -> tuple[X12Summary, list[ClaimEcho]]:
    """Write one claim line per service line of every accepted set, the rejects and the acks."""
    summary = X12Summary()
    echoes: list[ClaimEcho] = []
    for outcome in read_interchanges(data, now):
        summary.add(outcome)
        for line in outcome.lines:
            lines.write(line.value + b"\n")
        for record in outcome.rejects:
            rejects.write(orjson.dumps(record) + b"\n")
        if acks is not None and outcome.ack is not None:
            acks.write(outcome.ack.data)
        echoes.extend(outcome.claims)
    return summary, echoes


@dataclass
class Scrub837Summary:
    """Counts of ``scrub FILE.837``: the X12 reading, the scrub, the claims."""

    x12: X12Summary
    scrub: ScrubSummary
    claims: list[ClaimResult] = field(default_factory=list)


def scrub_837(
    data: bytes,
    snapshot: ReferenceSnapshot,
    results: BinaryIO,
    rejects: BinaryIO,
    source_name: str,
    *,
    acks: BinaryIO | None = None,
    claims: BinaryIO | None = None,
    ack277: BinaryIO | None = None,
    ack277_control: int = 1,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Scrub837Summary:
    """Scrub an 837 file: its claim lines' results, its rejects, and the claims' verdicts.

    Every ClaimResult a claim goes through is written to ``claims`` in order (consumers keep the
    highest revision per claim id); the 277CA reports each claim's final verdict.
    """
    buffer = io.BytesIO()
    x12_summary, _echoes = convert(data, buffer, rejects, acks, clock())
    assembler = ClaimAssembler()

    def on_result(result: ScrubResult) -> None:
        claim = assembler.add(result, clock())
        if claim is not None and claims is not None:
            claims.write(claim.model_dump_json().encode() + b"\n")

    summary = scrub_lines(
        buffer.getvalue().splitlines(),
        snapshot,
        results,
        rejects,
        source_name,
        clock=clock,
        on_result=on_result,
    )
    final = assembler.current()
    if ack277 is not None:
        # What each claim's 277CA echoes comes from its lines, as in the worker.
        pairs = [
            ClaimAck(result, echo)
            for result in final
            if (echo := assembler.echo(result.claim_id)) is not None
        ]
        if pairs:
            ack277.write(render_277ca(pairs, clock(), control_number=ack277_control))
    return Scrub837Summary(x12_summary, summary, final)
