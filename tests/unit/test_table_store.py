"""The worker's batched history store gives the outputs and table writing every history at once."""

from __future__ import annotations

import random
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import faust.streams
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrubber import history as history_module
from scrubber.accounting import key_of
from scrubber.examples import Mix, generate
from scrubber.history import PatientHistory, StoreWriteError
from scrubber.processor import LineProcessor, SourcePosition
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.library import default_engine
from scrubber.stream.table_store import TableHistoryStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PARTITIONS = 4


@dataclass
class FakeMessage:
    partition: int
    offset: int


@dataclass
class FakeEvent:
    message: FakeMessage


@dataclass
class FakeTable:
    """A Faust table as its stores behave: each partition its own store, picked by the event."""

    stores: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    changelog: list[tuple[int, bytes, bytes]] = field(default_factory=list)

    @staticmethod
    def _partition() -> int:
        event = faust.streams.current_event()
        assert event is not None, "table used outside of an event"
        return int(event.message.partition)

    def get(self, key: bytes) -> bytes | None:
        return self.stores.get(self._partition(), {}).get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        partition = self._partition()
        self.stores.setdefault(partition, {})[key] = value
        self.changelog.append((partition, key, value))


class ImmediateStore:
    """What the worker did before batches: read and write the table for every record."""

    def __init__(self, table: FakeTable) -> None:
        self.table = table

    def at(self, event: FakeEvent) -> None:
        self.event = event  # Faust holds its events while they are handled
        faust.streams._current_event.set(weakref.ref(event))

    def get(self, member_id: str) -> PatientHistory | None:
        raw = self.table.get(member_id.encode())
        return PatientHistory.from_bytes(raw) if raw else None

    def put(self, member_id: str, history: PatientHistory) -> None:
        self.table[member_id.encode()] = history.to_bytes()

    def flush(self) -> None:
        pass


@lru_cache(maxsize=1)
def _real_snapshot() -> ReferenceSnapshot:
    from scrubber.refdata.build import build_bundle
    from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE

    seeds = Path(__file__).resolve().parents[2] / "seeds"
    return ReferenceSnapshot(build_bundle(seeds, EXTRACT_MPFS, EXTRACT_MUE))


def _records(seed: int) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value): lines of few patients, repeats, and a patient on two partitions."""
    rng = random.Random(seed)
    raws = generate(
        _real_snapshot().bundle, 80, seed=seed, patients=4, mix=Mix(flag_worthy=0.2, malformed=0.1)
    )
    raws += rng.sample(raws, 10)  # redeliveries
    records = []
    for raw in raws:
        key = key_of(raw)
        partition = (sum(key or b"") % PARTITIONS) if rng.random() > 0.1 else rng.randrange(4)
        records.append((partition, key, raw))
    return records


def _run(store: Any, records: list[tuple[int, bytes | None, bytes]], cuts: set[int]) -> list[Any]:
    processor = LineProcessor(default_engine())
    snapshot = _real_snapshot()
    out = []
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    for index, (partition, key, raw) in enumerate(records):
        offset = offsets[partition]
        offsets[partition] += 1
        store.at(FakeEvent(FakeMessage(partition, offset)))
        processed = processor.process(
            raw, key, SourcePosition("in", partition, offset), snapshot, store, NOW
        )
        out += [(e.kind, e.key, e.value, e.headers) for e in processed.emissions]
        assert all(
            e.dead_letter is None or e.dead_letter.stage != "engine" for e in processed.emissions
        )
        if index in cuts:
            store.flush()
    store.flush()
    return out


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 40))
def test_batched_histories_give_the_same_outputs_and_table(seed: int, batch: int) -> None:
    records = _records(seed)
    cuts = {i for i in range(len(records)) if i % batch == batch - 1}
    before, after = FakeTable(), FakeTable()
    expected = _run(ImmediateStore(before), records, set())
    assert _run(TableHistoryStore(after), records, cuts) == expected
    assert after.stores == before.stores
    # The changelog's last value per partition and key (what compaction keeps) is the same.
    assert {(p, k): v for p, k, v in after.changelog} == {(p, k): v for p, k, v in before.changelog}
    assert len(after.changelog) <= len(before.changelog)


def test_a_history_is_written_once_per_batch(line_bytes: Any, snapshot: ReferenceSnapshot) -> None:
    table = FakeTable()
    store = TableHistoryStore(table)
    processor = LineProcessor(default_engine())
    for offset in range(3):
        store.at(FakeEvent(FakeMessage(2, offset)))
        raw = line_bytes(line_number=offset + 1)
        processor.process(raw, b"M1", SourcePosition("in", 2, offset), snapshot, store, NOW)
    assert table.changelog == []
    store.flush()
    assert [(p, k) for p, k, _ in table.changelog] == [(2, b"M1")]
    history = PatientHistory.from_bytes(table.stores[2][b"M1"])
    assert [e.line_id for e in history.entries] == ["C1:1", "C1:2", "C1:3"]
    assert history.member_id == "M1"


@pytest.mark.parametrize("history_format", [2, 3])
def test_the_history_format_written_is_the_one_configured(
    history_format: int, line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """Format 2 for a rolling upgrade from a release that reads no format 3; both read back."""
    table = FakeTable()
    store = TableHistoryStore(table, history_format)
    processor = LineProcessor(default_engine())
    for offset in range(2):
        store.at(FakeEvent(FakeMessage(0, offset)))
        raw = line_bytes(line_number=offset + 1)
        processor.process(raw, b"M1", SourcePosition("in", 0, offset), snapshot, store, NOW)
    store.flush()
    data = table.stores[0][b"M1"]
    assert data.startswith(f'H{history_format}{{"f":{history_format},'.encode())
    history_module._DECODED.clear()
    assert [e.line_id for e in PatientHistory.from_bytes(data).entries] == ["C1:1", "C1:2"]


def test_a_history_format_it_cannot_write_is_refused() -> None:
    with pytest.raises(ValueError, match="format 4"):
        TableHistoryStore(FakeTable(), 4)


def test_a_key_seen_on_another_partition_is_written_first(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    table = FakeTable()
    store = TableHistoryStore(table)
    processor = LineProcessor(default_engine())
    store.at(FakeEvent(FakeMessage(0, 0)))
    processor.process(line_bytes(), b"M1", SourcePosition("in", 0, 0), snapshot, store, NOW)
    store.at(FakeEvent(FakeMessage(1, 0)))
    processor.process(
        line_bytes(line_number=2), b"M1", SourcePosition("in", 1, 0), snapshot, store, NOW
    )
    assert [(p, k) for p, k, _ in table.changelog] == [(0, b"M1")]
    store.flush()
    assert [(p, k) for p, k, _ in table.changelog] == [(0, b"M1"), (1, b"M1")]
    assert faust.streams.current_event().message.partition == 1  # type: ignore[union-attr]


@pytest.fixture(autouse=True)
def _no_current_event() -> Any:
    token = faust.streams._current_event.set(None)
    yield
    faust.streams._current_event.reset(token)


def test_a_claim_assembly_that_does_not_read_is_set_aside_and_started_afresh() -> None:
    from scrubber.claims import ClaimAssembler
    from scrubber.stream.table_store import CLAIMS_PREFIX, SET_ASIDE_PREFIX, TableClaimStore

    key = CLAIMS_PREFIX + b"M1"  # beside the patient's history, in the same table
    table = FakeTable(stores={2: {key: b"\x00 not an assembly", b"M1": b"a history"}})
    set_aside: list[int] = []
    store = TableClaimStore(table, on_set_aside=lambda: set_aside.append(1))
    store.at(FakeEvent(FakeMessage(2, 10)))
    assert store.get("M1") is None
    assert table.stores[2][SET_ASIDE_PREFIX + key] == b"\x00 not an assembly"
    assert set_aside == [1]
    # The new assembly is kept for the batch (no second decode) and written once, by flush.
    fresh = ClaimAssembler()
    store.put("M1", fresh)
    assert store.get("M1") is fresh
    writes = len(table.changelog)
    store.flush()
    assert table.changelog[writes:] == [(2, key, fresh.to_bytes())]
    assert ClaimAssembler.from_bytes(table.stores[2][key]).current() == []
    assert table.stores[2][b"M1"] == b"a history"


class FullTable(FakeTable):
    """A table whose store refuses every write, as RocksDB on a full disk does."""

    def __setitem__(self, key: bytes, value: bytes) -> None:
        raise Exception("IO error: No space left on device: While appending to file: M1.sst")


def test_a_refused_write_is_a_store_write_error_naming_only_the_cause_type(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    store = TableHistoryStore(FullTable())
    store.at(FakeEvent(FakeMessage(0, 0)))
    LineProcessor(default_engine()).process(
        line_bytes(), b"M1", SourcePosition("in", 0, 0), snapshot, store, NOW
    )
    with pytest.raises(StoreWriteError) as refused:
        store.flush()
    assert str(refused.value) == "Exception"  # never the store's text (it may name a key)


def test_a_refused_write_for_another_partition_stops_the_line_not_holds_it(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """The write of a key kept for another partition happens inside a read of the store: it
    must reach the worker as a refused write, not as a store that is away (a held line)."""
    store = TableHistoryStore(FullTable())
    processor = LineProcessor(default_engine())
    store.at(FakeEvent(FakeMessage(0, 0)))
    processor.process(line_bytes(), b"M1", SourcePosition("in", 0, 0), snapshot, store, NOW)
    store.at(FakeEvent(FakeMessage(1, 0)))
    with pytest.raises(StoreWriteError):
        processor.process(
            line_bytes(line_number=2), b"M1", SourcePosition("in", 1, 0), snapshot, store, NOW
        )


def test_a_set_aside_the_store_refuses_is_a_store_write_error() -> None:
    store = TableHistoryStore(FullTable())
    store.at(FakeEvent(FakeMessage(0, 0)))
    with pytest.raises(StoreWriteError):
        store.set_aside("M1", b"not a history")


def test_the_setting_accepts_exactly_the_formats_a_store_writes() -> None:
    """``SCRUBBER_HISTORY_FORMAT``'s bounds and ``WRITE_FORMATS`` are kept in two places."""
    from pydantic import ValidationError

    from scrubber.config import Settings
    from scrubber.history import WRITE_FORMATS

    accepted = []
    for value in range(0, 6):
        try:
            accepted.append(Settings(history_format=value).history_format)
        except ValidationError:
            continue
    assert tuple(accepted) == WRITE_FORMATS
    for value in accepted:
        TableHistoryStore(FakeTable(), value)  # a worker starts with every accepted value


def test_what_is_set_aside_fits_a_changelog_record() -> None:
    """A value over the limit can be in a local RocksDB store only from before the limit."""
    from scrubber.history import STORED_VALUE_MAX_BYTES
    from scrubber.stream.table_store import CLAIMS_PREFIX, SET_ASIDE_PREFIX, TableClaimStore

    huge = b"H3" + b"\xff" * (STORED_VALUE_MAX_BYTES + 5000)
    table = FakeTable(stores={1: {CLAIMS_PREFIX + b"M1": huge}})
    histories, claims = TableHistoryStore(table), TableClaimStore(table)
    histories.at(FakeEvent(FakeMessage(1, 0)))
    claims.at(FakeEvent(FakeMessage(1, 0)))
    histories.set_aside("M1", huge)
    assert claims.get("M1") is None
    kept = table.stores[1]
    assert kept[SET_ASIDE_PREFIX + b"M1"] == huge[:STORED_VALUE_MAX_BYTES]
    assert kept[SET_ASIDE_PREFIX + CLAIMS_PREFIX + b"M1"] == huge[:STORED_VALUE_MAX_BYTES]
    small = b"H2 not a history"
    histories.set_aside("M2", small)
    assert kept[SET_ASIDE_PREFIX + b"M2"] == small  # whole when it fits
