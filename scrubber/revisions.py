"""Judging a line with the patient's other lines, and re-judging the lines it changes.

This module owns every decision about verdicts over time: which of the patient's lines a line
is judged with, which earlier lines a new line can change (from what the engine's cross-line
rules declare), when a line gets a new revision, which input caused it, and what a redelivered
line re-sends. ``scrubber.history`` only stores and encodes the patient's lines; the engine only
judges one line; the processor only turns verdicts into messages.

Every verdict is a function of the set of the patient's lines, never of their order, so once all
lines have arrived each line's latest revision is the same whatever the order they arrived in
(tests/unit/test_history.py checks it over shuffled orders).
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from dataclasses import dataclass
from datetime import date
from typing import Literal

import orjson

from scrubber.contracts import ClaimLine, Finding, Outcome
from scrubber.history import (
    STORED_VALUE_MAX_BYTES,
    HistoryEntry,
    PatientHistory,
    content_digest,
    line_json,
)
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.base import INFLUENCE_DAYS
from scrubber.rules.engine import Engine, Evaluation, clamped

#: Default lateness allowance: how far behind the newest date of service a line may arrive and
#: still be judged with the lines around it (the history keeps this much plus INFLUENCE_DAYS).
DEFAULT_LATENESS_DAYS = 365

#: The most bytes a patient's stored history may take (``history.STORED_VALUE_MAX_BYTES``: a
#: history Kafka refuses to take stops the worker). A patient's year of lines is far below it
#: (it holds about 1,500 lines of 450 bytes); a member id shared by many patients, or a patient
#: billed every day, can reach it. Then the oldest lines are dropped, as lateness drops them
#: (``Judgement.capped`` counts them): the checks that compare lines across dates no longer see
#: those.
HISTORY_MAX_BYTES = STORED_VALUE_MAX_BYTES

Trigger = Literal["input", "revision"]


def verdict_digest(outcome: Outcome, findings: tuple[Finding, ...]) -> str:
    """A digest of a verdict: a line gets a new revision exactly when this changes."""
    if not findings:
        return _CLEAN_DIGESTS[outcome]
    return _digest(outcome, findings)


def _digest(outcome: Outcome, findings: tuple[Finding, ...]) -> str:
    body = orjson.dumps([outcome.value, [f.model_dump(mode="json") for f in findings]])
    return hashlib.blake2b(body, digest_size=12).hexdigest()


#: Most lines have no finding: their digest is one of two constants.
_CLEAN_DIGESTS = {outcome: _digest(outcome, ()) for outcome in Outcome}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verdict to emit: the input's own, or a new revision of an earlier line it changed."""

    line: ClaimLine
    revision: int
    evaluation: Evaluation
    trigger: Trigger
    repeat: bool = False
    """Re-sent with an unchanged revision (a redelivery); the offline scrub writes nothing."""
    stored: bytes | None = None
    """The line's JSON as the history stores it (``line_json``), when it was made for this
    input: the result's JSON reuses it instead of serialising the line again."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """What judging one input gave: its verdict first, then the revisions it caused."""

    verdicts: tuple[Verdict, ...]
    history: PatientHistory
    redelivery: bool
    """The input repeats a line already known with the same content."""
    capped: int = 0
    """How many of the patient's oldest lines were dropped to keep the history within
    ``HISTORY_MAX_BYTES``."""


def visible(
    history: PatientHistory, line_id: str, day: date, codes: Container[str]
) -> tuple[ClaimLine, ...]:
    """The patient's other lines a line of ``day`` is judged with (``LineContext.others``).

    Those of the same date; those within INFLUENCE_DAYS (no rule may look further:
    ``scrubber.rules.base``) whose code is one of ``codes`` (``Engine.other_day_codes``: the
    rules read no other line of another date); and any on the first day of the calendar (a
    surgery there makes a rule's date arithmetic fail, which is a verdict too). The date and
    code come from the history's head: only the lines handed over are validated.
    """
    first, last = clamped(day, -INFLUENCE_DAYS), clamped(day, INFLUENCE_DAYS)
    window = history.span(first, last)  # the history's dates are sorted
    calendar_start = history.span(date.min, date.min).stop
    ids, days, head_codes = history.line_ids, history.service_dates, history.procedure_codes
    picked = [
        # lines on the calendar's first day that come before the window
        *[i for i in range(min(calendar_start, window.start)) if ids[i] != line_id],
        *[
            i
            for i in window
            if ids[i] != line_id
            and (
                days[i] == day
                or head_codes[i] in codes
                or i < calendar_start
                or (head_codes[i] is None and history.code_at(i) in codes)
            )
        ],
    ]
    at = history.at
    return tuple([at(i).line for i in picked])


class Reviser:
    """Judges a line with the patient's history and re-judges the lines it changes."""

    def __init__(
        self,
        engine: Engine,
        lateness_days: int = DEFAULT_LATENESS_DAYS,
        max_history_bytes: int = HISTORY_MAX_BYTES,
    ) -> None:
        self.engine = engine
        self.lateness_days = lateness_days
        self.max_history_bytes = max_history_bytes

    def judge(
        self,
        line: ClaimLine,
        history: PatientHistory,
        snapshot: ReferenceSnapshot,
        as_of: date,
        *,
        history_lost: bool = False,
    ) -> Judgement:
        """Judge the line, then every earlier line whose verdict it can change.

        ``history_lost``: the patient's stored history could not be read, so ``history`` holds
        none of the earlier lines; the line's verdict says so.

        A redelivered line (same line id, same content) keeps its revision and re-sends the
        revisions it caused, so a result lost in a crash is healed; a line id delivered again with
        other content is a correction and gets a new revision when its verdict changes.
        """
        engine = self.engine
        codes = engine.other_day_codes(snapshot)
        blob = line_json(line)
        content = content_digest(line, blob)
        line_id = line.line_id
        previous = history.get(line_id)
        redelivery = previous is not None and previous.content == content
        touched_dates = {line.service_date}
        if previous is not None:
            touched_dates.add(previous.service_date)  # a correction may move the date

        evaluation = engine.evaluate(
            line,
            snapshot,
            as_of,
            visible(history, line_id, line.service_date, codes),
            history_lost=history_lost,
        )
        digest = verdict_digest(evaluation.outcome, evaluation.findings)
        if previous is None:
            revision = 1
        elif redelivery and previous.verdict == digest:
            revision = previous.revision
        else:
            revision = previous.revision + 1
        repeat = previous is not None and revision == previous.revision
        # An unchanged revision keeps its cause: the line that emitted it re-sends it.
        cause = previous.cause if previous is not None and repeat else line_id
        history = history.upsert(
            HistoryEntry(line, content, revision, digest, cause=cause, blob=blob)
        )
        verdicts = [Verdict(line, revision, evaluation, "input", repeat, stored=blob)]

        # Lines near this one may see their verdict change: an add-on's primary arrived, a
        # surgery's window now covers a visit, a second line made a duplicate. A correction
        # may also change what its old content had caused.
        causes = [line] if previous is None else [line, previous.line]
        reaches = [engine.reach(c, snapshot) for c in causes]
        spans = [reach.span for reach in reaches if reach.span is not None]
        neighbours: dict[str, HistoryEntry] = {}
        if spans:
            # No line outside every span can be changed: only the lines inside are asked.
            reach_first = min(first for first, _ in spans)
            reach_last = max(last for _, last in spans)
            for day in sorted(touched_dates):
                first = max(clamped(day, -INFLUENCE_DAYS), reach_first)
                last = min(clamped(day, INFLUENCE_DAYS), reach_last)
                for e in history.between(first, last):
                    if e.line_id != line_id and any(reach.may_change(e) for reach in reaches):
                        neighbours[e.line_id] = e
        for entry in sorted(neighbours.values(), key=lambda e: e.order):
            around = visible(history, entry.line_id, entry.service_date, codes)
            again = engine.evaluate(entry.line, snapshot, as_of, around)
            again_digest = verdict_digest(again.outcome, again.findings)
            if again_digest != entry.verdict:
                revised = HistoryEntry(
                    entry.line,
                    entry.content,
                    entry.revision + 1,
                    again_digest,
                    cause=line_id,
                    blob=entry.blob,
                )
                history = history.upsert(revised)
                verdicts.append(Verdict(entry.line, revised.revision, again, "revision"))
            elif redelivery and entry.cause in (line_id, None):
                # Re-send a revision this line caused: if a crash lost it, this heals it. A
                # revision another line caused is re-sent when that line is redelivered (it
                # comes later in the same partition, so it is uncommitted too).
                verdicts.append(Verdict(entry.line, entry.revision, again, "revision", repeat=True))
        kept = history.prune(self.lateness_days + INFLUENCE_DAYS)
        bounded = kept.within(self.max_history_bytes, keep=line_id)
        capped = len(kept.line_ids) - len(bounded.line_ids)
        return Judgement(tuple(verdicts), bounded, redelivery, capped)
