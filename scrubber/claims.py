"""Claim-level verdicts (``ClaimResult``) assembled from the verdicts on a claim's lines.

A claim has a verdict once every one of its lines has one: the lines of an 837 claim carry
``claim_line_count``, and the claim is complete when results for line numbers 1 to that count
have arrived. Results arrive one by one, in any order, possibly more than once (at-least-once
delivery) and revised (a later line can change an earlier one's verdict); the assembler keeps
the highest revision per line id, as every consumer of ScrubResults must.

A ClaimResult is emitted when the claim first becomes complete, and again, with its revision
+ 1, whenever a line's new revision changes that line's outcome or rule ids, or the claim is
sent again in another 837 (a new submission needs its own answer). An older result, or a new
revision that changes nothing, emits nothing new; a result that made the current ClaimResult,
delivered again, re-sends it unchanged (``resend``). Everything here is pure: no I/O, and the
time is passed in.

Lines without ``claim_line_count`` (JSONL input written before it existed) never complete a claim
and are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import orjson

from scrubber.contracts import (
    CONTRACT_VERSION,
    HEADER_CONTRACT,
    ClaimLine,
    ClaimLineStatus,
    ClaimResult,
    Outcome,
    ScrubResult,
    X12Claim,
    X12Trace,
)
from scrubber.processor import Emission, Processed, SourcePosition
from scrubber.x12.ack277 import ClaimAck, render_277ca
from scrubber.x12.mapping import ClaimEcho, echo_from_lines


@dataclass(frozen=True, slots=True)
class LineVerdict:
    """What a claim keeps of a line's verdict, enough for its ClaimResult and its 277CA.

    The line (without the claim's 277CA echo, which the claim keeps once), its revision,
    outcome, rule ids, reference data version and time: about a third of the result's bytes.
    """

    line: ClaimLine
    revision: int
    outcome: Outcome
    rule_ids: tuple[str, ...]
    refdata_version: str
    scrubbed_at: datetime

    @property
    def line_id(self) -> str:
        """``claim_id:line_number``."""
        return self.line.line_id

    @classmethod
    def of(cls, result: ScrubResult | LineVerdict) -> LineVerdict:
        """The verdict of a result (a verdict is returned as it is)."""
        if isinstance(result, LineVerdict):
            return result
        line = result.line
        if line.x12 is not None and line.x12.claim is not None:
            line = line.model_copy(update={"x12": line.x12.model_copy(update={"claim": None})})
        return cls(
            line=line,
            revision=result.revision,
            outcome=result.outcome,
            rule_ids=tuple(sorted({f.rule_id for f in result.findings})),
            refdata_version=result.refdata_version,
            scrubbed_at=result.scrubbed_at,
        )

    def to_json(self) -> dict[str, object]:
        """The stored form (the line in its contract's JSON form)."""
        return {
            "line": self.line.model_dump(mode="json", exclude_none=True),
            "revision": self.revision,
            "outcome": self.outcome.value,
            "rule_ids": list(self.rule_ids),
            "refdata_version": self.refdata_version,
            "scrubbed_at": self.scrubbed_at.isoformat(),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LineVerdict:
        """Read the stored form back."""
        return cls(
            line=ClaimLine.model_validate(doc["line"], strict=False),
            revision=int(doc["revision"]),
            outcome=Outcome(doc["outcome"]),
            rule_ids=tuple(str(r) for r in doc["rule_ids"]),
            refdata_version=str(doc["refdata_version"]),
            scrubbed_at=datetime.fromisoformat(doc["scrubbed_at"]),
        )


def line_status(result: ScrubResult | LineVerdict) -> ClaimLineStatus:
    """A line's verdict as a claim reports it: outcome and the sorted, unique rule ids."""
    verdict = LineVerdict.of(result)
    return ClaimLineStatus(
        line_id=verdict.line_id,
        revision=verdict.revision,
        outcome=verdict.outcome,
        rule_ids=list(verdict.rule_ids),
    )


def is_complete(results: Iterable[ScrubResult | LineVerdict], claim_line_count: int) -> bool:
    """True when there is a result for every line number from 1 to ``claim_line_count``."""
    numbers = {r.line.line_number for r in results}
    return numbers.issuperset(range(1, claim_line_count + 1))


def build_claim_result(
    results: Iterable[ScrubResult | LineVerdict],
    claim_line_count: int,
    revision: int,
    now: datetime,
) -> ClaimResult:
    """The ClaimResult of a complete claim from its lines' results (highest revision per line).

    Lines are listed by line number; the claim is accepted when every line is. The reference
    data version is that of the newest line verdict (latest ``scrubbed_at``, then highest line
    number), so a claim judged across a reference data swap names the version it ended on.
    """
    lines = sorted((LineVerdict.of(r) for r in results), key=lambda r: r.line.line_number)
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
        x12=latest.line.x12.controls() if latest.line.x12 is not None else None,
        refdata_version=latest.refdata_version,
        scrubbed_at=now,
    )


def _submission(line: ClaimLine) -> X12Trace | None:
    """The 837 a claim's line came in (its control numbers), None for a line sent as JSON."""
    return line.x12.controls() if line.x12 is not None else None


@dataclass(slots=True)
class _Claim:
    submission: X12Trace | None
    """The submission the claim's lines are from: a later one replaces them (a resubmission)."""
    lines: dict[str, LineVerdict] = field(default_factory=dict)
    emitted: ClaimResult | None = None
    cause: tuple[str, int] | None = None
    """The line verdict (line id, revision) whose arrival made ``emitted``."""
    echo: X12Claim | None = None
    """What a 277CA echoes of the claim, from the first of its lines that carried it."""
    base_revision: int = 0
    """The revision of the claim id's last ClaimResult before the assembly forgot the claim to
    stay within its size limit (``ClaimAssembler.to_bytes_within``): a ClaimResult made since
    continues from it, so consumers that keep the highest revision take it."""

    def newest_service_date(self) -> date | None:
        return max((r.line.service_date for r in self.lines.values()), default=None)

    def answered(self) -> bool:
        """Whether every line of the claim's current submission has its verdict.

        A claim sent again in another 837 waits for that 837's lines, whatever it answered before.
        """
        counts = {r.line.claim_line_count for r in self.lines.values()}
        return len(counts) == 1 and is_complete(self.lines.values(), counts.pop() or 0)


def _stored(c: _Claim) -> dict[str, Any]:
    """A claim as ``ClaimAssembler.to_bytes`` stores it."""
    return {
        "lines": [r.to_json() for r in c.lines.values()],
        "emitted": c.emitted.model_dump(mode="json") if c.emitted else None,
        "cause": list(c.cause) if c.cause else None,
        "echo": c.echo.model_dump(mode="json", exclude_none=True) if c.echo else None,
        "submission": c.submission.model_dump(mode="json", exclude_none=True)
        if c.submission
        else None,
        **({"base": c.base_revision} if c.base_revision else {}),
    }


def _forgotten_entry(revision: int, day: date) -> list[Any]:
    """A forgotten claim's revision and newest date of service as the assembly stores them."""
    return [revision, day.isoformat()]


def _member_bytes(key: str, value: Any) -> int:
    """What ``"key":value`` and its comma take in a JSON object ``orjson`` writes."""
    return len(orjson.dumps({key: value})) - 1


def _verdicts(result: ClaimResult) -> list[tuple[str, Outcome, list[str]]]:
    return [(s.line_id, s.outcome, s.rule_ids) for s in result.lines]


#: Version of the stored form of a patient's claims (``ClaimAssembler.to_bytes``).
_STORED_FORMAT = 1


class ClaimAssembler:
    """Feed it ScrubResults one by one; it says when a claim's verdict is new or has changed.

    The offline scrub keeps one for a whole file; the worker keeps one per patient in a table
    keyed by member id (``to_bytes`` / ``from_bytes``), since a claim's lines all carry its
    patient's member id and so meet on one partition, in the order they were judged.
    """

    def __init__(self) -> None:
        self._claims: dict[str, _Claim] = {}
        #: Claims forgotten to stay within the size limit after a ClaimResult was made: claim
        #: id -> (that result's revision, the claim's newest date of service).
        self._forgotten: dict[str, tuple[int, date]] = {}
        #: Whether ``add`` changed what is held since this flag was last cleared.
        self.changed = False

    def add(self, result: ScrubResult, now: datetime, *, own: bool = True) -> ClaimResult | None:
        """Take one result; return the claim's new ClaimResult, or None if there is none.

        ``own``: the result is the verdict on an input line itself, not a revision of an earlier
        line. Such a line from another submission (the claim sent again in a new 837, or
        corrected) starts the claim afresh: its lines are that submission's, its echo and its
        line count too, and once complete it gets a new ClaimResult revision (and 277CA) even
        when the verdicts are unchanged, since the new 837 needs its answer. A revision of a
        line of a submission the claim no longer is, is not part of the claim any more, and a
        revision of a line whose claim is not held (forgotten at the size limit, set aside)
        starts no claim.
        """
        count = result.line.claim_line_count
        if count is None:
            return None
        submission = _submission(result.line)
        claim = self._claims.get(result.line.claim_id)
        if claim is None:
            if not own:
                # A revision of a line whose claim is not held (forgotten at the size limit, or
                # set aside): the claim's other lines are gone, so it cannot be answered from it.
                return None
            forgotten = self._forgotten.pop(result.line.claim_id, None)
            if forgotten is not None:
                self.changed = True
            base = forgotten[0] if forgotten is not None else 0
            claim = self._claims[result.line.claim_id] = _Claim(submission, base_revision=base)
        elif claim.submission != submission:
            if not own:
                return None
            claim.submission, claim.lines, claim.echo = submission, {}, None
            self.changed = True
        x12 = result.line.x12
        if claim.echo is None and x12 is not None and x12.claim is not None:
            claim.echo = x12.claim
            self.changed = True
        known = claim.lines.get(result.line_id)
        if known is not None and known.revision >= result.revision:
            return None  # a redelivery, or older than what is held
        claim.lines[result.line_id] = LineVerdict.of(result)
        self.changed = True
        if not is_complete(claim.lines.values(), count):
            return None
        revision = (claim.base_revision if claim.emitted is None else claim.emitted.revision) + 1
        candidate = build_claim_result(claim.lines.values(), count, revision, now)
        emitted = claim.emitted
        if (
            emitted is not None
            and _verdicts(candidate) == _verdicts(emitted)
            and candidate.x12 == emitted.x12
        ):
            return None
        claim.emitted = candidate
        claim.cause = (result.line_id, result.revision)
        return candidate

    def resend(self, result: ScrubResult) -> ClaimResult | None:
        """The claim's current ClaimResult if ``result``, sent again, is what made it.

        A redelivered input re-sends its line verdicts unchanged; the ClaimResult its first
        delivery made may have been lost with the crash that caused the redelivery, so it goes
        out again, as it was (same revision: consumers keep one).
        """
        claim = self._claims.get(result.line.claim_id)
        if claim is None or claim.emitted is None:
            return None
        return claim.emitted if claim.cause == (result.line_id, result.revision) else None

    def prune(self, keep_days: int) -> int:
        """Forget claims whose newest date of service is ``keep_days`` behind the patient's.

        Measured in dates of service, like the histories, never by the clock: a line that late
        is outside the window in which it could still change a claim's lines. Returns how many.
        """
        dates = {cid: c.newest_service_date() for cid, c in self._claims.items()}
        known = [d for d in dates.values() if d is not None]
        if not known:
            return 0
        horizon = max(known) - timedelta(days=keep_days)
        old = [cid for cid, day in dates.items() if day is None or day < horizon]
        for cid in old:
            del self._claims[cid]
        gone = [cid for cid, (_, day) in self._forgotten.items() if day < horizon]
        for cid in gone:
            del self._forgotten[cid]
        self.changed = self.changed or bool(old) or bool(gone)
        return len(old)

    def echo(self, claim_id: str) -> ClaimEcho | None:
        """What a 277CA echoes of the claim, from its lines (None for lines not from an 837)."""
        claim = self._claims.get(claim_id)
        if claim is None:
            return None
        return echo_from_lines([r.line for r in claim.lines.values()], claim.echo)

    def current(self) -> list[ClaimResult]:
        """The latest ClaimResult of every complete claim, in the order claims were first seen."""
        return [c.emitted for c in self._claims.values() if c.emitted is not None]

    def to_bytes(self) -> bytes:
        """The stored form: JSON with every claim's line verdicts, emitted result, cause and echo.

        Lines, results and echoes are kept in their contracts' JSON form and validated on
        reading (without strictness: dates and amounts are JSON strings there). About 500
        bytes a line, 700 a claim's echo and 300 its emitted result.
        """
        claims = {cid: _stored(c) for cid, c in self._claims.items()}
        doc: dict[str, Any] = {"f": _STORED_FORMAT, "claims": claims}
        if self._forgotten:  # absent otherwise: the bytes of every other patient are unchanged
            doc["forgotten"] = self._stored_forgotten()
        return orjson.dumps(doc)

    def to_bytes_within(self, max_bytes: int) -> tuple[bytes, int]:
        """``to_bytes``, after forgetting as few claims as it takes to fit in ``max_bytes``.

        The worker keeps a patient's claims as one record of the history table's changelog,
        which Kafka refuses over its limit (``history.STORED_VALUE_MAX_BYTES``); a member id
        shared by many patients can gather that many claims. Answered claims go first (all
        their current lines have verdicts), those with the oldest dates of service first; a
        claim still waiting for lines only when no other is left. A forgotten claim that had a
        ClaimResult leaves its revision behind (``_forgotten``, pruned by date like the claims,
        and at most a quarter of ``max_bytes``, the oldest going first): a revision of one of
        its lines changes nothing any more, and the claim sent again in another 837 is answered
        with the next revision (with 1 again once its revision is gone too; a line of it
        redelivered after a crash answers it again the same way). The worker applies
        this when it writes a batch, so which claims go can depend on where a batch ended, for
        such a member id only. Returns the bytes and how many claims were forgotten.
        """
        data = self.to_bytes()
        if len(data) <= max_bytes:
            return data, 0
        budget = max_bytes // 4
        self._trim_forgotten(budget)
        data = self.to_bytes()
        forgotten = 0

        def order(cid: str) -> tuple[bool, date]:
            claim = self._claims[cid]
            return not claim.answered(), claim.newest_service_date() or date.min

        while len(data) > max_bytes and self._claims:
            total = len(data)
            for cid in sorted(self._claims, key=order):  # stable: first seen first among equals
                if total <= max_bytes:
                    break
                claim = self._claims.pop(cid)
                total -= _member_bytes(cid, _stored(claim))
                if claim.emitted is not None or claim.base_revision:
                    revision = claim.emitted.revision if claim.emitted else claim.base_revision
                    day = claim.newest_service_date() or date.min
                    total += _member_bytes(cid, _forgotten_entry(revision, day))
                    total += 0 if self._forgotten else len(b',"forgotten":{}') - 1
                    self._forgotten[cid] = (revision, day)
                forgotten += 1
            self.changed = True
            self._trim_forgotten(budget)
            data = self.to_bytes()
        if len(data) > max_bytes:  # no claim left: only revisions (a limit below the budget)
            self._trim_forgotten(max(0, max_bytes - (len(data) - self._forgotten_bytes())))
            data = self.to_bytes()
        return data, forgotten

    def _forgotten_bytes(self) -> int:
        """What ``_forgotten`` adds to ``to_bytes``: ``,"forgotten":{...}``."""
        if not self._forgotten:
            return 0
        return len(orjson.dumps({"forgotten": self._stored_forgotten()})) - 1

    def _stored_forgotten(self) -> dict[str, list[Any]]:
        return {cid: _forgotten_entry(*kept) for cid, kept in self._forgotten.items()}

    def _trim_forgotten(self, budget: int) -> None:
        """Drop the oldest revisions left behind until they take at most ``budget`` bytes."""
        size = self._forgotten_bytes()
        if size <= budget:
            return
        for cid in sorted(self._forgotten, key=lambda c: self._forgotten[c][1]):
            if size <= budget:
                break
            size -= _member_bytes(cid, _forgotten_entry(*self._forgotten.pop(cid)))
            if not self._forgotten:
                size = 0
        self.changed = True

    @classmethod
    def from_bytes(cls, data: bytes) -> ClaimAssembler:
        """Read the stored form back; ``ValueError`` for anything that is not one."""
        try:
            doc = orjson.loads(data)
            if not isinstance(doc, dict) or doc.get("f") != _STORED_FORMAT:
                raise ValueError("not a stored claim assembly")
            assembler = cls()
            for cid, stored in doc["claims"].items():
                submission = stored.get("submission")
                claim = _Claim(
                    X12Trace.model_validate(submission, strict=False) if submission else None
                )
                for raw in stored["lines"]:
                    verdict = LineVerdict.from_json(raw)
                    claim.lines[verdict.line_id] = verdict
                if stored["emitted"] is not None:
                    claim.emitted = ClaimResult.model_validate(stored["emitted"], strict=False)
                if stored.get("echo") is not None:
                    claim.echo = X12Claim.model_validate(stored["echo"], strict=False)
                if stored["cause"] is not None:
                    line_id, revision = stored["cause"]
                    claim.cause = (str(line_id), int(revision))
                claim.base_revision = int(stored.get("base", 0))
                assembler._claims[str(cid)] = claim
            for cid, (revision, day) in doc.get("forgotten", {}).items():
                assembler._forgotten[str(cid)] = (int(revision), date.fromisoformat(day))
        except Exception as exc:
            raise ValueError(f"not a stored claim assembly ({type(exc).__name__})") from None
        return assembler


class ClaimStore(Protocol):
    """Where the worker keeps each patient's claims being assembled (a Faust table)."""

    def get(self, member_id: str) -> ClaimAssembler | None:
        """The patient's assembly, or None (none yet, or it could not be read: set aside)."""
        ...

    def put(self, member_id: str, assembler: ClaimAssembler) -> None:
        """Keep the patient's assembly."""
        ...


#: A stream 277CA's ISA13 is made from the position of the line that made its claim results:
#: up to this many interchanges (one per submitter) per line.
ACK277_PER_INPUT = 16


def ack277_control(source: SourcePosition, partitions: int) -> int:
    """The ISA13 of the first 277CA a line's claim results make, from the line's position.

    The scrubber keeps no sequence of its own. A position is unique on the input topic, so
    numbers do not repeat until about 10^9 / (16 x partitions) lines per partition have passed
    (15 million with 4 partitions); and a redelivered line re-sends its 277CA with the same
    number, so a receiver can drop the repeat.
    """
    slot = (source.offset * max(partitions, 1) + source.partition) * ACK277_PER_INPUT
    return 1 + slot % (999_999_999 - ACK277_PER_INPUT)


def claim_emissions(
    processed: Processed,
    store: ClaimStore,
    source: SourcePosition,
    now: datetime,
    keep_days: int,
    partitions: int = 1,
) -> tuple[Emission, ...]:
    """The ClaimResults one input's line verdicts make, and their 277CAs, for the claim topics.

    Every result the input emitted (its own, and the revisions it caused) goes to the
    patient's assembly; a claim that became complete or changed is emitted (kind ``claim``,
    key: member id). A result the assembly holds already re-sends the ClaimResult it made, if
    any (``resend``): this does not depend on the result being a repeat, so whichever of the
    patient's history, the assembly and the outputs a crash kept, the redelivered input ends
    with the claim's result sent. The claims whose lines came from an 837 are then answered
    with a 277CA (kind ``ack277``, key: the 837's sender, ISA06), one interchange per
    submitter, dated with the claims' own time so that a re-sent one is byte-identical.
    Lines without ``claim_line_count`` make nothing and cost nothing.
    """
    results = [
        e for e in processed.emissions if e.result and e.result.line.claim_line_count is not None
    ]
    if not results or processed.member_id is None:
        return ()
    member = processed.member_id
    assembler = store.get(member) or ClaimAssembler()
    assembler.changed = False
    out: list[Emission] = []
    made: list[tuple[ClaimResult, bool]] = []
    headers = (*source.headers(), (HEADER_CONTRACT, CONTRACT_VERSION.encode()))
    for emission in results:
        assert emission.result is not None
        own = emission is processed.emissions[0]
        claim = assembler.add(emission.result, now, own=own)
        repeat = False
        if claim is None:
            claim = assembler.resend(emission.result)
            repeat = claim is not None
        if claim is not None:
            made.append((claim, repeat))
            out.append(
                Emission(
                    kind="claim",
                    key=member.encode(),
                    value=claim.model_dump_json().encode(),
                    headers=headers,
                    claim=claim,
                    repeat=repeat,
                )
            )
    by_submitter: dict[object, list[tuple[ClaimAck, bool]]] = {}
    for claim, repeat in made:
        echo = assembler.echo(claim.claim_id)
        if echo is not None:
            by_submitter.setdefault(echo.envelope, []).append((ClaimAck(claim, echo), repeat))
    control = ack277_control(source, partitions)
    for number, group in enumerate(by_submitter.values(), start=control):
        acks = [ack for ack, _ in group]
        data = render_277ca(acks, max(a.result.scrubbed_at for a in acks), control_number=number)
        out.append(
            Emission(
                kind="ack277",
                key=acks[0].echo.envelope.sender.encode() or None,
                value=data,
                headers=headers,
                repeat=all(repeat for _, repeat in group),
            )
        )
    if assembler.changed:
        assembler.prune(keep_days)
        store.put(member, assembler)
    return tuple(out)
