"""The one code path from raw input bytes to output messages, shared by the worker and ``scrub``.

``LineProcessor.process`` takes what a Kafka record (or a line of a JSONL file) carries, and
returns the messages to write: exactly one result (accepted or flagged) or exactly one dead
letter per input. It never raises for bad input: every failure is data, routed to the dead-letter
topic with a closed-set error code, so a malformed message can neither crash the worker nor
silently disappear. Adapters only move bytes: the Faust agent sends the emissions to topics, the
offline command writes them to files.

It owns decoding, validation, dead letters and the messages' bytes and headers; the verdicts
come from ``scrubber.revisions`` (which asks the engine), the patient's history from the
adapter's store. A stored history that does not decode is set aside and the line judged
without it; a store that cannot be read raises ``HistoryUnavailable`` for the adapter to hold
the line (never a dead letter: an outage is not the message's fault).

The clock is an argument (``now``): the processor, like the engine, never reads it.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import ValidationError
from pydantic_core import to_json

from scrubber.contracts import (
    CONTRACT_VERSION,
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_PAYLOAD_BYTES,
    DEAD_LETTER_PREVIEW_BYTES,
    HEADER_ATTEMPT,
    HEADER_CONTRACT,
    HEADER_DETAIL,
    HEADER_ERROR_CODE,
    HEADER_FAILED_AT,
    HEADER_ORIGINAL_BYTES,
    HEADER_ORIGINAL_KEY_BYTES,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    HEADER_STAGE,
    HEADER_TRIGGER,
    MAX_MESSAGE_BYTES,
    ClaimLine,
    ClaimResult,
    DeadLetter,
    DeadLetterCode,
    DeadLetterStage,
    Outcome,
    ScrubResult,
    describe_errors,
)
from scrubber.history import PatientHistory, StoreWriteError, UnreadableHistory
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.revisions import DEFAULT_LATENESS_DAYS, Reviser, Trigger
from scrubber.rules.engine import Engine, Evaluation

log = logging.getLogger(__name__)

EmissionKind = Literal["accepted", "flagged", "dlq", "claim", "ack277"]
Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where an input came from: a Kafka topic, partition and offset, or a file and line."""

    topic: str
    partition: int
    offset: int

    def headers(self) -> Headers:
        """The trace headers every output carries, so it can be matched to its input."""
        return (
            (HEADER_SOURCE_TOPIC, self.topic.encode()),
            (HEADER_SOURCE_PARTITION, str(self.partition).encode()),
            (HEADER_SOURCE_OFFSET, str(self.offset).encode()),
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input could not be read: a dead letter before it has a time and a position."""

    code: DeadLetterCode
    stage: DeadLetterStage
    detail: str


@dataclass(frozen=True, slots=True)
class Emission:
    """One message to write: to the accepted, flagged, dead-letter, claim or 277CA topic."""

    kind: EmissionKind
    key: bytes | None
    value: bytes
    headers: Headers
    result: ScrubResult | None = None
    dead_letter: DeadLetter | None = None
    repeat: bool = False
    """A re-sent result with an unchanged revision (on redelivery); the offline scrub skips it."""
    claim: ClaimResult | None = None
    """For kind ``claim``: the claim's verdict (``scrubber.claims.claim_emissions``)."""


@dataclass(frozen=True, slots=True)
class Processed:
    """What one input produced.

    ``emissions`` holds the input's own result (or its dead letter) first, then a new revision
    of every earlier line of the patient whose verdict this input changed. ``redelivery`` is true
    when the input repeats a line already known with the same content: the stream re-emits the
    current verdicts (harmless, same revisions; it heals a result lost in a crash), the offline
    scrub writes nothing for it.
    """

    emissions: tuple[Emission, ...]
    member_id: str | None = None
    redelivery: bool = False
    history_set_aside: bool = False
    """The patient's stored history did not decode: it was set aside and the line judged
    without it (``history.unreadable``)."""
    history_capped: int = 0
    """The patient's oldest lines dropped to keep the history within its size limit
    (``revisions.HISTORY_MAX_BYTES``)."""


class HistoryUnavailable(Exception):  # noqa: N818 - a condition of the store, not a bug
    """The history store cannot be read (an outage): not the message's fault.

    The line must be held and tried again, never dead-lettered; the adapter decides how long to
    wait (the worker retries with a back-off).
    """


class HistoryStore(Protocol):
    """Where an adapter keeps patient histories: a Faust table, or a dict offline."""

    def get(self, member_id: str) -> PatientHistory | None:
        """The stored history of a patient, or None for a patient not seen yet."""
        ...

    def put(self, member_id: str, history: PatientHistory) -> None:
        """Store a patient's new history."""
        ...

    def set_aside(self, member_id: str, data: bytes) -> None:
        """Keep the bytes of a stored history that does not decode, for a person to look at."""
        ...


class MemoryHistoryStore:
    """Histories in a dict: the offline scrub's store, and a test double of the table."""

    def __init__(self) -> None:
        self.histories: dict[str, PatientHistory] = {}
        self.set_aside_histories: dict[str, bytes] = {}

    def get(self, member_id: str) -> PatientHistory | None:
        """The stored history, if any."""
        return self.histories.get(member_id)

    def put(self, member_id: str, history: PatientHistory) -> None:
        """Keep the new history."""
        self.histories[member_id] = history

    def set_aside(self, member_id: str, data: bytes) -> None:
        """Keep the bytes (a dict never holds undecodable histories; a test double may)."""
        self.set_aside_histories[member_id] = data


def decode(raw: bytes | None, key: bytes | None, *, require_key: bool) -> ClaimLine | Rejection:
    """Turn raw bytes into a validated line, or say why not, without ever raising.

    The key is the patient's member id: the input topic is partitioned by it, so that all of a
    patient's lines, and the patient's history, live on one partition. A line whose key is missing
    or differs from its member id would be judged against the wrong history, so it is refused.
    """
    if not raw:
        return Rejection(DeadLetterCode.EMPTY_VALUE, DeadLetterStage.DECODE, "value is empty")
    if len(raw) > MAX_MESSAGE_BYTES:
        return Rejection(
            DeadLetterCode.OVERSIZE,
            DeadLetterStage.DECODE,
            f"value is {len(raw)} bytes, limit {MAX_MESSAGE_BYTES}",
        )
    try:
        line = ClaimLine.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if errors and errors[0]["type"] == "json_invalid":
            return Rejection(
                DeadLetterCode.NOT_JSON,
                DeadLetterStage.DECODE,
                "value is not valid UTF-8 JSON",
            )
        return Rejection(
            DeadLetterCode.CONTRACT_VIOLATION, DeadLetterStage.VALIDATE, describe_errors(exc)
        )
    if require_key:
        if not key:
            return Rejection(
                DeadLetterCode.MISSING_KEY, DeadLetterStage.VALIDATE, "record has no key"
            )
        if key != line.patient.member_id.encode():
            return Rejection(
                DeadLetterCode.KEY_MISMATCH,
                DeadLetterStage.VALIDATE,
                "record key is not the patient's member id",
            )
    return line


#: How ``line.model_dump_json()`` ends after what ``line_json`` keeps of a line without X12
#: trace: the optional fields it leaves out while absent, which come last in the contract.
_ABSENT_TAIL = b',"claim_line_count":null,"x12":null}'
_X12_ABSENT_TAIL = b',"x12":null}'


#: Each outcome as JSON: pydantic-core serialises an enum member ten times slower than a string.
_OUTCOME_JSON = {outcome: to_json(outcome) for outcome in Outcome}


def result_json(result: ScrubResult, stored: bytes | None = None) -> bytes:
    """``result.model_dump_json()``, byte for byte, put together from its parts.

    The line is most of a result's bytes and its JSON was already made for the history
    (``stored``, from ``line_json``): for a line without X12 trace that JSON differs from the
    line's own only by the absent optional fields at its end, which are added back instead of
    serialising the line a second time. Every other part is serialised by pydantic-core, as the
    model would (the outcome once per member: ``_OUTCOME_JSON``); tests/unit/test_processor.py
    compares the two on varied results.
    """
    line = result.line
    if stored is not None and line.x12 is None:
        tail = _ABSENT_TAIL if line.claim_line_count is None else _X12_ABSENT_TAIL
        line_bytes = stored[:-1] + tail
    else:
        line_bytes = line.model_dump_json().encode()
    return b"".join(
        (
            b'{"line_id":',
            to_json(result.line_id),
            b',"revision":',
            to_json(result.revision),
            b',"outcome":',
            _OUTCOME_JSON[result.outcome],
            b',"findings":[',
            b",".join([to_json(finding) for finding in result.findings]),
            b'],"line":',
            line_bytes,
            b',"reference":',
            to_json(result.reference),
            b',"refdata_version":',
            to_json(result.refdata_version),
            b',"scrubbed_at":',
            to_json(result.scrubbed_at),
            b',"profile":',
            to_json(result.profile),
            b"}",
        )
    )


class LineProcessor:
    """Decode, validate, judge and route one input; the heart both adapters share."""

    def __init__(
        self,
        engine: Engine,
        *,
        require_key: bool = True,
        lateness_days: int = DEFAULT_LATENESS_DAYS,
    ) -> None:
        self.require_key = require_key
        self.reviser = Reviser(engine, lateness_days)

    def process(
        self,
        raw: bytes | None,
        key: bytes | None,
        source: SourcePosition,
        snapshot: ReferenceSnapshot,
        store: HistoryStore,
        now: datetime,
        attempt: int = 1,
    ) -> Processed:
        """Produce one result (plus revisions of lines it changed) or one dead letter.

        ``attempt`` counts deliveries of a replayed dead letter (see ``scrubber dlq replay``);
        it is copied onto the dead letter if the message fails again.
        """
        decoded = decode(raw, key, require_key=self.require_key)
        if isinstance(decoded, Rejection):
            return Processed((self.dead_letter(raw, key, source, decoded, now, attempt),))
        line = decoded
        member_id = line.patient.member_id
        history_lost = False
        try:
            stored = store.get(member_id)
        except UnreadableHistory as exc:
            # One patient's damaged history must not stop that patient's lines: keep its bytes
            # aside, judge this line without it (a warning says so) and start a new one.
            store.set_aside(member_id, exc.data)
            log.warning(
                "patient history does not decode; set aside, the line judged without it",
                extra={
                    "topic": source.topic,
                    "partition": source.partition,
                    "offset": source.offset,
                    "line_id": line.line_id,
                    "error_type": exc.error_type,
                },
            )
            stored, history_lost = None, True
        except StoreWriteError:  # a refused write (a full disk): the worker must stop
            raise
        except Exception as exc:  # the store itself is away: hold the line, never dead-letter
            raise HistoryUnavailable(type(exc).__name__) from exc
        try:
            history = stored or PatientHistory.empty(member_id)
            judgement = self.reviser.judge(
                line, history, snapshot, now.date(), history_lost=history_lost
            )
            emissions = [
                self._result(
                    v.line,
                    v.revision,
                    v.evaluation,
                    snapshot,
                    source,
                    now,
                    v.repeat,
                    v.trigger,
                    v.stored,
                )
                for v in judgement.verdicts
            ]
        except Exception as exc:  # the engine must not raise; if it does, nothing is lost
            # The traceback's frames, not its message: an exception text may quote input (PHI).
            log.error(
                "engine failed on a line",
                extra={
                    "topic": source.topic,
                    "partition": source.partition,
                    "offset": source.offset,
                    "line_id": line.line_id,
                    "error_type": type(exc).__name__,
                    "trace": "".join(traceback.format_tb(exc.__traceback__)),
                },
            )
            rejection = Rejection(
                DeadLetterCode.PROCESSING_ERROR, DeadLetterStage.ENGINE, type(exc).__name__
            )
            return Processed((self.dead_letter(raw, key, source, rejection, now, attempt),))
        store.put(member_id, judgement.history)
        return Processed(
            tuple(emissions), member_id, judgement.redelivery, history_lost, judgement.capped
        )

    @staticmethod
    def _result(
        line: ClaimLine,
        revision: int,
        verdict: Evaluation,
        snapshot: ReferenceSnapshot,
        source: SourcePosition,
        now: datetime,
        repeat: bool = False,
        trigger: Trigger = "input",
        stored: bytes | None = None,
    ) -> Emission:
        # Every value is already valid (the line passed the contract, the findings are the
        # engine's own models, the reference is a dump of a validated record): validating the
        # result again cost as much as serialising it, so it is constructed directly.
        result = ScrubResult.model_construct(
            line_id=line.line_id,
            revision=revision,
            outcome=verdict.outcome,
            findings=list(verdict.findings),
            line=line,
            reference=verdict.reference,
            refdata_version=snapshot.version,
            scrubbed_at=now,
            profile=verdict.profile,
        )
        return Emission(
            kind="flagged" if result.outcome is Outcome.FLAGGED else "accepted",
            key=line.patient.member_id.encode(),
            value=result_json(result, stored),
            headers=(
                *source.headers(),
                (HEADER_CONTRACT, CONTRACT_VERSION.encode()),
                (HEADER_TRIGGER, trigger.encode()),
            ),
            result=result,
            repeat=repeat,
        )

    @staticmethod
    def dead_letter(
        raw: bytes | None,
        key: bytes | None,
        source: SourcePosition,
        rejection: Rejection,
        now: datetime,
        attempt: int = 1,
    ) -> Emission:
        """The original key and bytes, unchanged, with PHI-free headers saying why.

        Unless they would not fit the dead-letter topic: a compressing upstream can put a record
        on the input topic that is larger than any topic takes uncompressed, and a dead letter
        Kafka refuses would stop the worker on that offset for good. When key and value exceed
        ``DEAD_LETTER_PAYLOAD_BYTES``, the letter keeps the value's first
        ``DEAD_LETTER_PREVIEW_BYTES`` and the key's first ``DEAD_LETTER_KEY_BYTES``, and says how
        large each cut one was; ``scrubber dlq replay`` refuses it.
        """
        value = raw or b""
        original_bytes = original_key_bytes = None
        if (len(key) if key else 0) + len(value) > DEAD_LETTER_PAYLOAD_BYTES:
            if len(value) > DEAD_LETTER_PREVIEW_BYTES:
                original_bytes, value = len(value), value[:DEAD_LETTER_PREVIEW_BYTES]
            if key and len(key) > DEAD_LETTER_KEY_BYTES:
                original_key_bytes, key = len(key), key[:DEAD_LETTER_KEY_BYTES]
        letter = DeadLetter(
            error_code=rejection.code,
            stage=rejection.stage,
            detail=rejection.detail,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            failed_at=now,
            attempt=attempt,
            original_bytes=original_bytes,
            original_key_bytes=original_key_bytes,
        )
        headers: Headers = (
            (HEADER_ERROR_CODE, letter.error_code.value.encode()),
            (HEADER_STAGE, letter.stage.value.encode()),
            (HEADER_DETAIL, letter.detail.encode()),
            *source.headers(),
            (HEADER_FAILED_AT, letter.failed_at.isoformat().encode()),
            (HEADER_ATTEMPT, str(letter.attempt).encode()),
        )
        if original_bytes is not None:
            headers += ((HEADER_ORIGINAL_BYTES, str(original_bytes).encode()),)
        if original_key_bytes is not None:
            headers += ((HEADER_ORIGINAL_KEY_BYTES, str(original_key_bytes).encode()),)
        return Emission(kind="dlq", key=key, value=value, headers=headers, dead_letter=letter)
