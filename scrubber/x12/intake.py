"""837P interchanges in; claim lines, acknowledgements and reject records out.

``read_interchanges`` is the one code path from X12 bytes to claim lines, shared by the offline
commands (``scrubber x12 lines``, ``scrubber scrub FILE.837``) and the stream (``X12Intake``):
frame each interchange, validate it with pyx12, map every transaction set that passed to claim
lines, then render the acknowledgement. A transaction set produces all of its lines or none:
one that fails validation, or whose mapping fails the claim-line contract, produces no line, is
named in the 999 and gets a reject record. Nothing is dropped: every framed piece is counted as
an interchange, accepted or rejected, and every ST as a transaction set.

The claim lines' bytes depend only on the input: processing the same interchange twice gives
the same lines (the stream is at-least-once). Acknowledgements carry the time they were made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from scrubber.contracts import (
    CONTRACT_VERSION,
    HEADER_CONTRACT,
    DeadLetterCode,
    DeadLetterStage,
)
from scrubber.processor import Emission, Headers, LineProcessor, Rejection, SourcePosition
from scrubber.x12.ack import (
    Ack,
    reject_records,
    render_ack,
    render_unframed_ack,
    unframed_record,
)
from scrubber.x12.envelope import Framed, Unframed, split_interchanges
from scrubber.x12.mapping import ClaimEcho, MappedLine, map_transaction_set
from scrubber.x12.validator import validate

#: Headers of every claim line read from an 837, naming the envelope it came in.
HEADER_X12_INTERCHANGE = "scrubber-x12-interchange"
HEADER_X12_GROUP = "scrubber-x12-group"
HEADER_X12_TRANSACTION_SET = "scrubber-x12-transaction-set"
#: Largest interchange record the stream takes: Kafka's default largest message (1 MiB).
MAX_INTERCHANGE_BYTES = 1024 * 1024


@dataclass(slots=True)
class InterchangeOutcome:
    """What one framed piece of the input gave."""

    index: int
    rejected: bool
    """The interchange as a whole was refused (its envelope, or it could not be read)."""
    transaction_sets: int = 0
    accepted_sets: int = 0
    lines: list[MappedLine] = field(default_factory=list)
    claims: list[ClaimEcho] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    ack: Ack | None = None

    @property
    def rejected_sets(self) -> int:
        """Transaction sets that produced no line."""
        return self.transaction_sets - self.accepted_sets


@dataclass(slots=True)
class X12Summary:
    """Counts of one run; they add up: sets = accepted + rejected, lines only from accepted."""

    interchanges: int = 0
    interchanges_rejected: int = 0
    transaction_sets: int = 0
    accepted: int = 0
    rejected: int = 0
    claims: int = 0
    lines: int = 0

    def add(self, outcome: InterchangeOutcome) -> None:
        """Count one interchange's outcome."""
        self.interchanges += 1
        self.interchanges_rejected += outcome.rejected
        self.transaction_sets += outcome.transaction_sets
        self.accepted += outcome.accepted_sets
        self.rejected += outcome.rejected_sets
        self.claims += len(outcome.claims)
        self.lines += len(outcome.lines)

    def text(self) -> str:
        """The one-line summary the commands print."""
        return (
            f"interchanges {self.interchanges} (rejected {self.interchanges_rejected}), "
            f"transaction sets {self.transaction_sets} (accepted {self.accepted}, "
            f"rejected {self.rejected}), claims {self.claims}, lines {self.lines}"
        )

    @property
    def anything_rejected(self) -> bool:
        """True when an interchange or a transaction set was refused."""
        return self.interchanges_rejected > 0 or self.rejected > 0


def read_interchanges(data: bytes, now: datetime) -> Iterator[InterchangeOutcome]:
    """Every interchange of ``data`` in order, with its claim lines, echoes, rejects and ack."""
    for piece in split_interchanges(data):
        if isinstance(piece, Unframed):
            yield InterchangeOutcome(
                index=piece.index,
                rejected=True,
                transaction_sets=piece.transaction_sets,
                rejects=[unframed_record(piece)],
                ack=render_unframed_ack(piece, now),
            )
            continue
        yield _interchange(piece, now)


def _interchange(framed: Framed, now: datetime) -> InterchangeOutcome:
    report = validate(framed)
    outcome = InterchangeOutcome(framed.index, rejected=report.own_errors > 0)
    outcome.transaction_sets = len(report.sets)
    if not outcome.rejected:
        for ts in report.sets:
            if not ts.accepted:
                continue
            mapped = map_transaction_set(ts, framed.control_number)
            if mapped.errors:
                ts.mapping_errors = mapped.errors
                continue
            outcome.accepted_sets += 1
            outcome.lines.extend(mapped.lines)
            outcome.claims.extend(mapped.claims)
    outcome.rejects = reject_records(report)
    outcome.ack = render_ack(report, now)
    return outcome


def line_headers(line: MappedLine, source: SourcePosition) -> Headers:
    """The headers of a claim line record: its source position and its 837 envelope."""
    trace = line.line.x12
    envelope: Headers = ()
    if trace is not None:
        envelope = (
            (HEADER_X12_INTERCHANGE, trace.interchange_control.encode()),
            (HEADER_X12_GROUP, trace.group_control.encode()),
            (HEADER_X12_TRANSACTION_SET, trace.transaction_set_control.encode()),
        )
    return (*source.headers(), *envelope, (HEADER_CONTRACT, CONTRACT_VERSION.encode()))


@dataclass(frozen=True, slots=True)
class LineRecord:
    """A claim line to publish to the line topic."""

    key: bytes
    value: bytes
    headers: Headers


@dataclass(frozen=True, slots=True)
class X12Processed:
    """What one raw interchange record produced, for the stream to publish.

    ``lines`` go to ``claims.lines.v1`` (key: member id), ``acks`` to ``claims.x12.ack.v1``
    (key: ``Ack.key``, value: ``Ack.data``),
    ``rejects`` are PHI-free JSON records of what was refused (for logs and counts),
    ``claims`` what a 277CA must echo of each accepted claim (holds PHI: keep it with the
    claim lines, never in a log), and ``dead_letter`` is set, alone, when the record could not
    be read as X12 at all.
    """

    lines: tuple[LineRecord, ...] = ()
    acks: tuple[Ack, ...] = ()
    rejects: tuple[bytes, ...] = ()
    claims: tuple[ClaimEcho, ...] = ()
    dead_letter: Emission | None = None
    summary: X12Summary = field(default_factory=X12Summary)


class X12Intake:
    """The pure step of the X12 intake (``scrubber x12 serve``): one X12 record in, records out.

    No I/O and no clock of its own (``now`` is passed in and only reaches the acknowledgements),
    like ``LineProcessor`` for JSON lines. Never raises for bad input: an oversize, empty or
    non-X12 value is a dead letter with the original bytes (see ``LineProcessor.dead_letter``
    for a record too large for the dead-letter topic); an interchange that is X12 but
    invalid is acknowledged (999 or TA1) and reported in ``rejects``.
    """

    def __init__(self, max_bytes: int = MAX_INTERCHANGE_BYTES) -> None:
        self.max_bytes = max_bytes

    def process(
        self,
        raw: bytes | None,
        source: SourcePosition,
        now: datetime,
        key: bytes | None = None,
        attempt: int = 1,
    ) -> X12Processed:
        """Read every interchange in ``raw``; return its line records, acks and rejects.

        ``attempt`` is the record's replay attempt (``scrubber-attempt``); a dead letter carries
        it on, so a record replayed from the dead-letter topic cannot circle forever.
        """
        rejection = self._refuse(raw)
        if rejection is not None:
            return X12Processed(
                dead_letter=LineProcessor.dead_letter(raw, key, source, rejection, now, attempt)
            )
        assert raw is not None
        outcomes = list(read_interchanges(raw, now))
        if all(o.ack is None and o.rejected and o.transaction_sets == 0 for o in outcomes):
            # No piece had an ISA that could even be answered: not X12 this scrubber can read.
            rejection = Rejection(
                DeadLetterCode.NOT_X12, DeadLetterStage.DECODE, "no readable ISA header"
            )
            return X12Processed(
                dead_letter=LineProcessor.dead_letter(raw, key, source, rejection, now, attempt)
            )
        summary = X12Summary()
        lines: list[LineRecord] = []
        acks: list[Ack] = []
        rejects: list[bytes] = []
        claims: list[ClaimEcho] = []
        for outcome in outcomes:
            summary.add(outcome)
            lines.extend(
                LineRecord(line.member_id.encode(), line.value, line_headers(line, source))
                for line in outcome.lines
            )
            if outcome.ack is not None:
                acks.append(outcome.ack)
            rejects.extend(orjson.dumps(r) for r in outcome.rejects)
            claims.extend(outcome.claims)
        return X12Processed(tuple(lines), tuple(acks), tuple(rejects), tuple(claims), None, summary)

    def _refuse(self, raw: bytes | None) -> Rejection | None:
        if not raw or not raw.strip():
            return Rejection(DeadLetterCode.EMPTY_VALUE, DeadLetterStage.DECODE, "value is empty")
        if len(raw) > self.max_bytes:
            return Rejection(
                DeadLetterCode.OVERSIZE,
                DeadLetterStage.DECODE,
                f"value is {len(raw)} bytes, limit {self.max_bytes}",
            )
        from scrubber.x12.envelope import looks_like_x12

        if not looks_like_x12(raw):
            return Rejection(
                DeadLetterCode.NOT_X12, DeadLetterStage.DECODE, "value does not start with ISA"
            )
        return None
