"""A patient's history never outgrows what the table's changelog takes.

Kafka refuses a changelog record over its topic's limit (1 MiB unless set), and a write it
refuses stops the worker on that line for good. ``PatientHistory.within`` drops the oldest lines,
as few as it takes; the reviser applies it after every line, with ``HISTORY_MAX_BYTES``.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrubber import history as history_module
from scrubber.contracts import ClaimLine
from scrubber.history import (
    STORED_VALUE_MAX_BYTES,
    HistoryEntry,
    PatientHistory,
    content_digest,
)
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.revisions import HISTORY_MAX_BYTES, Reviser
from scrubber.rules.library import default_engine
from tests.conftest import BASE_LINE

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _doc(n: int, day: date) -> dict[str, object]:
    return {
        **BASE_LINE,
        "claim_id": f"C{n:05d}",
        "service_date": day.isoformat(),
        "diagnosis_codes": ["S81.811A", "E11.9", "I10", "Z79.4"][: 1 + n % 4],
    }


def _line(n: int, day: date) -> ClaimLine:
    return ClaimLine.model_validate_json(orjson.dumps(_doc(n, day)))


def _history(lines: int, seed: int = 0) -> PatientHistory:
    rng = random.Random(seed)
    history = PatientHistory.empty("M1")
    for n in range(lines):
        day = date(2025, 1, 1) + timedelta(days=rng.randrange(300))
        line = _line(n, day)
        history = history.upsert(HistoryEntry(line, content_digest(line), 1 + n % 3, "v" * 24))
    return history


def _sizes(history: PatientHistory) -> int:
    return len(history.to_bytes())


@settings(max_examples=40, deadline=None)
@given(lines=st.integers(0, 60), seed=st.integers(0, 1000), limit=st.integers(0, 40_000))
def test_within_keeps_the_newest_lines_that_fit_and_no_fewer(lines, seed, limit) -> None:
    history = _history(lines, seed)
    kept = history.within(limit)
    dropped = len(history.line_ids) - len(kept.line_ids)
    # The newest lines, in order, with their stored bytes unchanged.
    assert kept.line_ids == history.line_ids[dropped:]
    assert [e.blob for e in kept.entries] == [e.blob for e in history.entries[dropped:]]
    if dropped == 0:
        assert kept is history
        return
    assert _sizes(kept) <= limit or kept.line_ids == []
    # As few as it takes: one line fewer dropped would not fit.
    one_more = PatientHistory("M1", history.entries[dropped - 1 :])
    assert _sizes(one_more) > limit
    # It reads back as it was written.
    assert PatientHistory.from_bytes(kept.to_bytes()) == kept


def test_a_history_that_fits_is_left_alone_and_the_measure_is_exact() -> None:
    history = _history(30)
    size = _sizes(history)
    assert history.within(size) is history
    assert len(history.within(size - 1).line_ids) == 29


def test_the_row_bound_holds_for_the_longest_ids_the_contract_allows() -> None:
    """The fast path trusts ``_ROW_BOUND``: no row (nor the rest of the head) takes more."""
    worst_id = "\x01" * 64 + ":999"  # control characters: six bytes each as JSON
    row = [worst_id, "2025-12-31", "\x01" * 16, "f" * 24, 2**31, "f" * 24, worst_id, 2**31]
    assert len(orjson.dumps(row)) + 1 <= history_module._ROW_BOUND
    head = b"H3" + orjson.dumps({"f": 3, "m": "\x01" * 64, "e": []}) + b"\n"
    assert len(head) <= history_module._ROW_BOUND


def test_the_history_limit_leaves_room_in_kafkas_default_record() -> None:
    assert HISTORY_MAX_BYTES == STORED_VALUE_MAX_BYTES
    assert STORED_VALUE_MAX_BYTES + 64 * 6 + 1024 < 1_048_588  # broker's message.max.bytes


def test_the_reviser_keeps_a_busy_patients_history_within_its_limit(snapshot) -> None:
    limit = 20_000
    reviser = Reviser(default_engine(), max_history_bytes=limit)
    history, capped = PatientHistory.empty("M1"), 0
    for n in range(120):
        line = _line(n, date(2025, 1, 1) + timedelta(days=n))
        judgement = reviser.judge(line, history, snapshot, NOW.date())
        assert len(judgement.history.to_bytes()) <= limit
        assert judgement.history.index(line.line_id) is not None  # the newest line is kept
        assert len(history.line_ids) + 1 - judgement.capped == len(judgement.history.line_ids)
        history, capped = judgement.history, capped + judgement.capped
    assert capped > 0
    assert len(history.line_ids) + capped == 120


def test_the_processor_says_how_many_lines_the_limit_dropped(snapshot) -> None:
    processor = LineProcessor(default_engine())
    processor.reviser.max_history_bytes = 6_000
    store = MemoryHistoryStore()
    dropped = []
    for n in range(40):
        raw = orjson.dumps(_doc(n, date(2025, 1, 1) + timedelta(days=n)))
        processed = processor.process(raw, b"M1", SourcePosition("t", 0, n), snapshot, store, NOW)
        assert processed.emissions[0].kind in ("accepted", "flagged")
        dropped.append(processed.history_capped)
        assert len(store.histories["M1"].to_bytes()) <= 6_000
    assert dropped[0] == 0 and sum(dropped) > 0
    assert sum(dropped) + len(store.histories["M1"].line_ids) == 40


@pytest.mark.parametrize("limit", [0, 1])
def test_a_limit_too_small_for_any_line_keeps_none(limit: int) -> None:
    history = _history(5)
    assert history.within(limit).line_ids == []


async def test_the_worker_counts_the_dropped_lines_and_warns_once_without_patient_data(
    snapshot, caplog
) -> None:
    import asyncio
    import logging
    from types import SimpleNamespace
    from typing import Any

    from scrubber.history import read_stored
    from scrubber.metrics import Metrics
    from scrubber.stream.runtime import StreamRuntime
    from tests.unit.test_history_set_aside import BytesStore

    async def send(emission: Any) -> None:
        assert emission.kind in ("accepted", "flagged")

    processor = LineProcessor(default_engine())
    processor.reviser.max_history_bytes = 6_000
    metrics, store = Metrics(), BytesStore()
    runtime = StreamRuntime(
        processor,
        SimpleNamespace(snapshot=snapshot, ready=asyncio.Event()),  # type: ignore[arg-type]
        metrics,
        send,
        store,
        clock=lambda: NOW,
    )
    canary = "CANARY-MEMBER-7731"
    with caplog.at_level(logging.WARNING, logger="scrubber.stream.runtime"):
        for n in range(40):
            doc = _doc(n, date(2025, 1, 1) + timedelta(days=n))
            doc["patient"] = {**BASE_LINE["patient"], "member_id": canary}
            await runtime.handle("in", 0, n, canary.encode(), orjson.dumps(doc))
    kept = read_stored(store.table[canary])
    assert len(store.table[canary]) <= 6_000 and not store.set_aside_histories
    dropped = metrics.history_lines_capped._value.get()
    assert dropped > 0 and dropped + len(kept.line_ids) == 40
    warnings = [r for r in caplog.records if "size limit" in r.getMessage()]
    assert len(warnings) == 1  # at most one a minute, however many lines
    assert canary not in caplog.text and canary not in str(warnings[0].__dict__)


@settings(max_examples=30, deadline=None)
@given(
    lines=st.integers(1, 40),
    seed=st.integers(0, 1000),
    limit=st.integers(0, 30_000),
    pick=st.integers(0, 39),
)
def test_the_line_kept_stays_and_the_rest_is_the_newest_that_fit(lines, seed, limit, pick) -> None:
    history = _history(lines, seed)
    keep = history.line_ids[pick % lines]
    kept = history.within(limit, keep=keep)
    assert kept.index(keep) is not None
    others = [i for i in kept.line_ids if i != keep]
    older = [i for i in history.line_ids if i != keep]
    assert others == older[len(older) - len(others) :]  # the newest of the others
    if kept is history:
        return
    assert _sizes(kept) <= limit or kept.line_ids == [keep]
    if others != older:  # one more of the others would not have fitted
        back = older[len(older) - len(others) - 1]
        wider = PatientHistory(
            "M1", [e for e in history.entries if e.line_id in {*kept.line_ids, back}]
        )
        assert _sizes(wider) > limit
    assert PatientHistory.from_bytes(kept.to_bytes()) == kept


def test_a_late_line_at_the_limit_is_kept_and_its_redelivery_known(snapshot) -> None:
    reviser = Reviser(default_engine(), max_history_bytes=12_000)
    history = PatientHistory.empty("M1")
    for n in range(60):
        line = _line(n, date(2025, 3, 1) + timedelta(days=n))
        history = reviser.judge(line, history, snapshot, NOW.date()).history
    late = _line(999, date(2025, 1, 15))  # older than every line held
    judged = reviser.judge(late, history, snapshot, NOW.date())
    assert judged.capped >= 1 and judged.history.index(late.line_id) is not None
    assert len(judged.history.to_bytes()) <= 12_000
    again = reviser.judge(late, judged.history, snapshot, NOW.date())
    assert again.redelivery and again.verdicts[0].revision == 1


def test_a_throttle_says_yes_at_most_once_per_period() -> None:
    from scrubber.logs import Throttle

    now = [100.0]
    throttle = Throttle(60.0, clock=lambda: now[0])
    answers = []
    for step in (0.0, 1.0, 59.0, 60.0, 61.0, 130.0):
        now[0] = 100.0 + step
        answers.append(throttle.due())
    assert answers == [True, False, False, True, False, True]
