"""A patient history that no longer decodes never silences the patient's lines.

Before: the store read was inside the engine's ``except``, so every later line of the patient
became a ``processing_error`` dead letter, forever. Now the bytes are set aside, the line is
judged without them (with a warning saying so) and the patient's next lines go on normally; a
store that cannot be read at all holds the line instead of dead-lettering it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from scrubber.history import PatientHistory, read_stored
from scrubber.metrics import Metrics
from scrubber.processor import HistoryUnavailable, LineProcessor, SourcePosition
from scrubber.rules.library import default_engine
from scrubber.stream import runtime as runtime_module
from scrubber.stream.runtime import StreamRuntime

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SOURCE = SourcePosition("in", 0, 1)


class BytesStore:
    """Histories as the worker keeps them: bytes, read back with ``read_stored``."""

    def __init__(self) -> None:
        self.table: dict[str, bytes] = {}
        self.set_aside_histories: dict[str, bytes] = {}

    def get(self, member_id: str) -> PatientHistory | None:
        raw = self.table.get(member_id)
        return read_stored(raw) if raw else None

    def put(self, member_id: str, history: PatientHistory) -> None:
        self.table[member_id] = history.to_bytes()

    def set_aside(self, member_id: str, data: bytes) -> None:
        self.set_aside_histories[member_id] = data


@pytest.mark.parametrize(
    "damage",
    [b"H2{not json", b'{"f": 1, "m": "M1", "e": [["x"]]}', b"H2" + b"\xff" * 40, b"\x00"],
)
def test_a_history_that_does_not_decode_is_set_aside(line_bytes, snapshot, damage) -> None:
    store, processor = BytesStore(), LineProcessor(default_engine())
    store.table["M1"] = damage
    first = processor.process(line_bytes(claim_id="A"), b"M1", SOURCE, snapshot, store, NOW)
    (emission,) = first.emissions
    assert emission.kind == "flagged"  # a result, not a dead letter
    assert emission.result is not None
    assert [f.rule_id for f in emission.result.findings] == ["history.unreadable"]
    assert first.history_set_aside
    assert store.set_aside_histories == {"M1": damage}
    # The patient's next lines go on normally, with the history rebuilt from the first line.
    second = processor.process(
        line_bytes(claim_id="B", procedure_code="99213", service_date="2025-12-01"),
        b"M1",
        SOURCE,
        snapshot,
        store,
        NOW,
    )
    assert not second.history_set_aside
    assert [e.kind for e in second.emissions] == ["accepted"]
    assert read_stored(store.table["M1"]).get("A:1") is not None


def test_the_warning_names_no_patient_data(line_bytes, snapshot) -> None:
    store, processor = BytesStore(), LineProcessor(default_engine())
    store.table["M1"] = b"H2 damaged M1 1961-04-12"
    (emission,) = processor.process(line_bytes(), b"M1", SOURCE, snapshot, store, NOW).emissions
    assert emission.result is not None
    (finding,) = emission.result.findings
    assert "M1" not in finding.message and "1961" not in finding.message


class BrokenStore(BytesStore):
    """A store that cannot be read at all for ``failures`` calls (an outage)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def get(self, member_id: str) -> PatientHistory | None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("store away")
        return super().get(member_id)


def test_an_unreachable_store_is_not_the_message_s_fault(line_bytes, snapshot) -> None:
    processor = LineProcessor(default_engine())
    with pytest.raises(HistoryUnavailable):
        processor.process(line_bytes(), b"M1", SOURCE, snapshot, BrokenStore(1), NOW)


async def test_the_worker_holds_the_line_until_the_store_answers(
    line_bytes, snapshot, monkeypatch
) -> None:
    monkeypatch.setattr(runtime_module, "HISTORY_RETRY_FIRST_SECONDS", 0.01)
    sent: list[Any] = []

    async def send(emission: Any) -> None:
        sent.append(emission)

    holder = SimpleNamespace(snapshot=snapshot, ready=asyncio.Event())
    metrics = Metrics()
    store = BrokenStore(3)
    runtime = StreamRuntime(
        LineProcessor(default_engine()),
        holder,
        metrics,
        send,
        store,
        clock=lambda: NOW,  # type: ignore[arg-type]
    )
    emissions = await runtime.handle("in", 0, 7, b"M1", line_bytes())
    assert [e.kind for e in emissions] == ["accepted"]
    assert [e.kind for e in sent] == ["accepted"]  # never a dead letter
    assert metrics.history_store_errors._value.get() == 3
