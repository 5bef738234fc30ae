"""A history read from bytes validates lines on demand; the engine sees only lines it can use.

Both are shortcuts of the worker's hot path and must not change a verdict: a lazily read entry
is the entry eager decoding gives, and judging a line with the lines ``revisions.visible`` hands
it gives what judging it with every other line of the patient gives, for the product's rules.
"""

from __future__ import annotations

import random
from collections.abc import Container, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber import history as history_module
from scrubber import revisions as revisions_module
from scrubber.accounting import key_of
from scrubber.bench.generator import StreamGenerator
from scrubber.contracts import ClaimLine
from scrubber.history import HistoryEntry, PatientHistory, content_digest
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.revisions import visible
from scrubber.rules.base import INFLUENCE_DAYS, Changes
from scrubber.rules.engine import Engine
from scrubber.rules.library import default_engine, default_rules

from .test_rules_properties import SNAP, claim_lines

NOW = datetime(2026, 1, 1, tzinfo=UTC)
evaluate = default_engine().evaluate


def _every(history: PatientHistory, line_id: str) -> tuple[ClaimLine, ...]:
    """Every other line of the patient, however far away."""
    return tuple(e.line for e in history.entries if e.line_id != line_id)


def _codes(snapshot: ReferenceSnapshot) -> Container[str]:
    """The codes whose lines of another date the product's rules read."""
    return default_engine().other_day_codes(snapshot)


@lru_cache(maxsize=1)
def _real_snapshot() -> ReferenceSnapshot:
    from scrubber.refdata.build import build_bundle
    from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE

    seeds = Path(__file__).resolve().parents[2] / "seeds"
    return ReferenceSnapshot(build_bundle(seeds, EXTRACT_MPFS, EXTRACT_MUE))


@lru_cache(maxsize=4)
def _stream(seed: int, lines: int = 3000, patients: int = 40) -> tuple[bytes, ...]:
    """Dense patient histories over a year: surgeries, visits, add-ons, repeats, corrections."""
    generator = StreamGenerator(_real_snapshot().bundle, seed=seed, patients=patients)
    return tuple(generator.generate(lines))


def _histories(raws: tuple[bytes, ...]) -> Iterator[PatientHistory]:
    by_member: dict[str, PatientHistory] = {}
    for raw in raws:
        try:
            line = ClaimLine.model_validate_json(raw)
        except ValueError:
            continue
        member = line.patient.member_id
        history = by_member.get(member) or PatientHistory.empty(member)
        by_member[member] = history.upsert(HistoryEntry(line, content_digest(line), 1, "v"))
    yield from by_member.values()


def _eager(data: bytes) -> PatientHistory:
    """Decoding every line at once, read from the format by hand."""
    end = data.index(b"\n")
    head = orjson.loads(data[2:end])
    at, entries = end + 1, []
    for line_id, day, code, content, revision, verdict, cause, size in head["e"]:
        line = ClaimLine.model_validate_json(data[at : at + size])
        at += size
        assert (line.line_id, line.service_date.isoformat(), line.procedure_code) == (
            line_id,
            day,
            code,
        )
        entries.append(HistoryEntry(line, content, revision, verdict, cause=cause))
    assert at == len(data)
    return PatientHistory(member_id=head["m"], entries=tuple(entries))


@pytest.mark.parametrize("seed", [1, 2])
def test_a_lazily_read_history_is_the_eagerly_read_one(seed: int) -> None:
    for history in _histories(_stream(seed)):
        data = history.to_bytes()
        history_module._DECODED.clear()
        lazy = PatientHistory.from_bytes(data)
        eager = _eager(data)
        assert [(e.line_id, e.service_date, e.order) for e in lazy.entries] == [
            (e.line_id, e.service_date, e.order) for e in eager.entries
        ]
        assert lazy.to_bytes() == data  # before any line was validated
        assert lazy == eager == history
        assert [e.line for e in lazy.entries] == [e.line for e in eager.entries]
        assert lazy.to_bytes() == data


def test_an_entry_in_another_shape_is_validated_at_once(line: Any) -> None:
    doc = {"c": "c", "l": line().model_dump(mode="json"), "r": 2, "v": "v"}  # other key order
    entry = HistoryEntry.stored(doc)
    assert entry._line is not None
    assert entry == HistoryEntry(line(), "c", 2, "v")
    with pytest.raises(AttributeError):
        entry.revision = 3  # type: ignore[misc]


def _assert_near_judges_alike(history: PatientHistory, snapshot: ReferenceSnapshot) -> None:
    for entry in history.entries:
        every = _every(history, entry.line_id)
        near = visible(history, entry.line_id, entry.service_date, _codes(snapshot))
        for as_of in (date(2025, 6, 1), date(2026, 9, 1)):
            assert evaluate(entry.line, snapshot, as_of, others=near) == evaluate(
                entry.line, snapshot, as_of, others=every
            )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lines_out_of_reach_change_no_verdict(seed: int) -> None:
    snapshot = _real_snapshot()
    for history in _histories(_stream(seed)):
        _assert_near_judges_alike(history, snapshot)


_EDGE_DAYS = st.sampled_from(
    [date.min, date.min + timedelta(days=1), date.max, date.max - timedelta(days=1)]
) | st.builds(
    lambda days: date(2025, 6, 1) + timedelta(days=days),
    st.sampled_from([-92, -91, -90, -89, -11, -10, -9, -2, -1, 0, 1, 2, 9, 10, 11, 89, 90, 91, 92]),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=st.lists(claim_lines(), min_size=2, max_size=6), data=st.data())
def test_lines_out_of_reach_change_no_verdict_at_the_edges(
    lines: list[ClaimLine], data: st.DataObject
) -> None:
    """Dates at the window's edges and the calendar's ends, where date arithmetic fails."""
    history = PatientHistory.empty("M1")
    for index, line in enumerate(lines):
        day = data.draw(_EDGE_DAYS)
        moved = line.model_copy(update={"service_date": day, "line_number": index + 1})
        history = history.upsert(HistoryEntry(moved, content_digest(moved), 1, "v"))
    for entry in history.entries:
        near = visible(history, entry.line_id, entry.service_date, _codes(SNAP))
        every = _every(history, entry.line_id)
        assert set(map(id, near)) <= set(map(id, every))
        results = []
        for others in (near, every):
            try:
                results.append(evaluate(entry.line, SNAP, date(2025, 6, 1), others=others))
            except (OverflowError, ValueError) as exc:  # the processor dead-letters these
                results.append(type(exc))
        assert results[0] == results[1]


def test_the_window_covers_what_the_rules_read() -> None:
    from scrubber.rules import global_period

    assert global_period._EARLIEST_SURGERY.days <= INFLUENCE_DAYS
    assert global_period._LATEST_SURGERY.days <= INFLUENCE_DAYS


class _BytesStore:
    """The worker's way: histories kept as bytes, read back with ``from_bytes``."""

    def __init__(self) -> None:
        self.table: dict[str, bytes] = {}

    def get(self, member_id: str) -> PatientHistory | None:
        raw = self.table.get(member_id)
        return PatientHistory.from_bytes(raw) if raw else None

    def put(self, member_id: str, history: PatientHistory) -> None:
        self.table[member_id] = history.to_bytes()


@pytest.mark.parametrize("seed", [4, 5])
def test_the_processor_gives_the_outputs_of_judging_with_every_line(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = list(_stream(seed, lines=1500, patients=25))
    raws += random.Random(seed).sample(raws, 100)  # redeliveries and late repeats
    snapshot = _real_snapshot()

    def run(store: Any, engine: Engine) -> list[Any]:
        p = LineProcessor(engine)
        out = []
        for offset, raw in enumerate(raws):
            key = key_of(raw)
            processed = p.process(raw, key, SourcePosition("in", 0, offset), snapshot, store, NOW)
            out += [(e.kind, e.key, e.value, e.headers) for e in processed.emissions]
        return out

    history_module._DECODED.clear()
    narrowed = run(_BytesStore(), default_engine())
    # The reference: every cross-line rule re-judges every earlier line, with every other line.
    everything = Changes(date.min, date.max)
    broad = Engine(
        replace(r, affects=(lambda line, snap: everything)) if r.affects is not None else r
        for r in default_rules()
    )
    monkeypatch.setattr(
        revisions_module, "visible", lambda h, line_id, day, codes: _every(h, line_id)
    )
    every = run(MemoryHistoryStore(), broad)
    assert narrowed == every
    assert any(kind == "flagged" for kind, *_ in every)


def test_a_surgery_on_the_first_day_of_the_calendar_stays_in_reach(
    line: Any, snapshot: ReferenceSnapshot
) -> None:
    """Judging a visit with it fails (the day before it overflows): it must fail either way."""
    surgery = line(claim_id="S", procedure_code="11960", service_date=date.min.isoformat())
    visit = line(claim_id="V", procedure_code="99213", service_date="2025-06-01")
    history = PatientHistory.empty("M1")
    for item in (surgery, visit):
        history = history.upsert(HistoryEntry(item, content_digest(item), 1, "v"))
    near = visible(history, "V:1", visit.service_date, _codes(snapshot))
    assert near == (surgery,)
    outcomes = []
    for others in (near, _every(history, "V:1")):
        try:
            outcomes.append(evaluate(visit, snapshot, date(2025, 6, 1), others=others))
        except OverflowError as exc:
            outcomes.append(type(exc))
    assert outcomes == [OverflowError, OverflowError]
