"""``ChangelogTable``: the worker's history table waits for its changelog records.

A real Faust table of a real (not started) Faust app; Faust's own ``send_changelog``, which
would need a running producer, hands back futures the test completes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import RecordMetadata, TopicPartition
from faust.tables.base import Collection

from scrubber.history import StoreWriteError
from scrubber.stream import table_store
from scrubber.stream.faust_internals import enter_event
from scrubber.stream.table_store import ChangelogTable, changelog_sent


class _Sent(asyncio.Future[Any]):
    """A changelog record's future, as Faust's ``FutureMessage`` is one."""

    message: Any


class _Event:
    """What a table reads of Faust's current event (Faust holds events by weak reference)."""

    message = SimpleNamespace(topic="claims.lines.v1", partition=2)


def _table(monkeypatch: pytest.MonkeyPatch) -> tuple[ChangelogTable, list[asyncio.Future[Any]]]:
    sent: list[asyncio.Future[Any]] = []

    def send_changelog(self: Any, partition: Any, key: Any, value: Any, *args: Any) -> Any:
        future = _Sent(loop=asyncio.get_running_loop())
        future.message = SimpleNamespace(partition=partition)  # as Faust's FutureMessage
        sent.append(future)
        return future

    monkeypatch.setattr(Collection, "send_changelog", send_changelog)
    app = faust.App("changelog-table-test", broker="kafka://127.0.0.1:1")
    table = ChangelogTable(app, name="histories", key_type=bytes, value_type=bytes)
    return table, sent


def test_sent_waits_for_every_record_sent_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    table, sent = _table(monkeypatch)

    async def run() -> None:
        first = table.send_changelog(0, b"M1", b"h1")
        table.send_changelog(1, b"M2", b"h2")
        assert first is sent[0]  # Faust's future, handed through
        waiting = asyncio.ensure_future(table.sent())
        sent[0].set_result("delivered")
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()  # one record is still on its way
        sent[1].set_result("delivered")
        await waiting
        # What was waited for is forgotten: the next wait is for new records only.
        table.send_changelog(0, b"M1", b"h1'")
        later = asyncio.ensure_future(changelog_sent(table))
        await asyncio.sleep(0)
        assert not later.done()
        sent[2].set_result("delivered")
        await later
        await table.sent()  # nothing left to wait for

    asyncio.run(run())


def test_a_record_not_delivered_is_a_refused_write(monkeypatch: pytest.MonkeyPatch) -> None:
    table, sent = _table(monkeypatch)

    async def run() -> None:
        table.send_changelog(0, b"M1", b"h1")
        table.send_changelog(0, b"M2", b"h2")
        sent[0].set_result("delivered")
        sent[1].set_exception(TimeoutError("the broker never answered for CANARY-PHI"))
        with pytest.raises(StoreWriteError, match="TimeoutError") as caught:
            await table.sent()
        assert "CANARY" not in str(caught.value)

    asyncio.run(run())


def test_a_write_and_a_delete_through_the_table_are_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The path that matters: ``table[key] = value`` (and ``del``) reach the kept futures."""
    table, sent = _table(monkeypatch)
    event = _Event()

    async def run() -> None:
        enter_event(event)
        table[b"M1"] = b"history"
        del table[b"M1"]
        assert len(sent) == 2
        waiting = asyncio.ensure_future(table.sent())
        sent[0].set_result("delivered")
        await asyncio.sleep(0)
        assert not waiting.done()
        sent[1].set_result("delivered")
        await waiting

    asyncio.run(run())


def test_a_wait_cancelled_leaves_faust_s_futures_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled, a record's future would still be sent, and Faust's callback for it fail."""
    table, sent = _table(monkeypatch)

    async def run() -> None:
        table.send_changelog(0, b"M1", b"h1")
        waiting = asyncio.ensure_future(table.sent())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not sent[0].cancelled()

    asyncio.run(run())


def test_a_record_never_acknowledged_is_a_refused_write(monkeypatch: pytest.MonkeyPatch) -> None:
    table, _sent = _table(monkeypatch)
    monkeypatch.setattr(table_store, "CHANGELOG_WAIT_SECONDS", 0.05)

    async def run() -> None:
        table.send_changelog(0, b"M1", b"h1")
        with pytest.raises(StoreWriteError, match=r"not acknowledged in 0\.05 s"):
            await table.sent()

    asyncio.run(run())


# ------------------------------------------------------------------------- ChangelogTable.write
class _Producer:
    """Faust's producer as Faust's ``Topic.publish_message`` calls it (``send``), and the
    aiokafka producer inside it as ``write``'s record batches do (``create_batch`` with real
    builders, ``send_batch``). A send waits while ``held`` is not done (a full queue), then
    notes each record (``sends``) and hands back one future for the call (``futures``: a batch's
    gives the offset of its first record) that the test completes; ``refuse`` makes it raise."""

    def __init__(self) -> None:
        self.sends: list[dict[str, Any]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.soon: list[Any] = []
        self.refuse: Exception | None = None
        self.held: asyncio.Future[None] | None = None
        self.batch_bytes = 16384
        self.closed: list[bool] = []
        self.batches: list[tuple[int, int]] = []  # each batch's partition and records

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        await self._taken()
        self.sends.append(
            {"topic": topic, "key": key, "value": value, "partition": partition,
             "timestamp": timestamp, "headers": headers}
        )  # fmt: skip
        return self._future()

    async def _taken(self) -> None:
        """A send waits while ``held`` is not done (only the first that finds it), then may be
        refused."""
        held = self.held
        if held is not None:
            self.held = None  # only this send waits
            await held
        if self.refuse is not None:
            raise self.refuse

    def _future(self) -> asyncio.Future[Any]:
        """The send's future, which the test completes."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def _ensure_producer(self) -> Any:
        """The aiokafka producer inside Faust's (``faust_internals.aiokafka_producer``)."""
        return self

    def create_batch(self) -> Any:
        """What ``AIOKafkaProducer.create_batch`` makes (without compression)."""
        return BatchBuilder(self.batch_bytes, 0)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        await self._taken()
        self.closed.append(batch.closed())
        self.batches.append((partition, batch.record_count()))
        for record in DefaultRecordBatch(bytes(batch._build())):
            self.sends.append(
                {"topic": topic, "key": record.key, "value": record.value,
                 "partition": partition, "timestamp": record.timestamp,
                 "headers": list(record.headers)}
            )  # fmt: skip
        return self._future()

    async def maybe_start(self) -> None:
        """Faust starts its producer before its first send."""

    def send_soon(self, fut: Any) -> None:
        """Faust's producer buffer: what ``Topic.send_soon`` hands over to be sent later."""
        self.soon.append(fut)


class _PartitionEvent:
    """A current event of another partition of the input topic."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(topic="claims.lines.v1", partition=partition)


#: The current event of the tests below (Faust holds it weakly).
_CURRENT = _Event()


def _run(run: Callable[[], Awaitable[None]]) -> None:
    """``asyncio.run(run())`` with ``_CURRENT`` as Faust's current event, in the run's context."""

    async def in_event() -> None:
        enter_event(_CURRENT)
        await run()

    asyncio.run(in_event())


#: A record batch size that takes three of ``_write_large``'s records (the fourth finds it full).
_SMALL_BATCH = 1024


def _direct_table(
    batch_bytes: int = 16384,
) -> tuple[ChangelogTable, _Producer, list[tuple[Any, int]]]:
    """A real table of a real (not started) app whose producer is a ``_Producer``.

    The module's ``_run`` makes ``_CURRENT``, an event of input partition 2, the current one.
    """
    app = faust.App("changelog-write-test", broker="kafka://127.0.0.1:1")
    producer = _Producer()
    producer.batch_bytes = batch_bytes
    app.producer = cast(Any, producer)
    table = ChangelogTable(app, name="histories", key_type=bytes, value_type=bytes)
    persisted: list[tuple[Any, int]] = []
    table.data.set_persisted_offset = lambda tp, offset: persisted.append((tp, offset))  # type: ignore[method-assign]
    return table, producer, persisted


def _write_large(table: ChangelogTable, numbers: range) -> None:
    """Write a 300-byte history for each member ``M<n>`` of ``numbers``."""
    for n in numbers:
        table.write(f"M{n}".encode(), b"x" * 300)


def _acknowledge(future: asyncio.Future[Any], partition: int, offset: int) -> None:
    tp = TopicPartition("changelog-write-test-histories-changelog", partition)
    future.set_result(RecordMetadata(tp.topic, partition, tp, offset, -1, 0, 0))


def _acknowledge_batches(producer: _Producer, first: int = 0) -> None:
    """Acknowledge every batch handed over: each partition's records at offsets from ``first``."""
    offsets: dict[int, int] = {}
    for future, (partition, records) in zip(producer.futures, producer.batches, strict=True):
        offset = offsets.get(partition, first)
        _acknowledge(future, partition, offset)
        offsets[partition] = offset + records


async def _turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_write_is_in_the_store_at_once_and_its_record_is_what_faust_sends() -> None:
    """``write`` sends what Faust's own ``table[key] = value`` sends, record for record."""
    table, producer, _persisted = _direct_table()

    async def run() -> None:
        # Faust's own path: its real send_changelog and Topic.publish_message, as Faust's
        # producer buffer would call it.
        table[b"M1"] = b"faust's history"
        assert len(producer.soon) == 1 and producer.sends == []
        await producer.soon[0].message.channel.publish_message(producer.soon[0])
        faust_s = producer.sends.pop()
        # The direct path.
        table.write(b"M1", b"the history")
        assert table.data[b"M1"] == b"the history"  # in the store before anything is sent
        await asyncio.sleep(0)
        ours = producer.sends.pop()
        assert ours["topic"] == faust_s["topic"] == "changelog-write-test-histories-changelog"
        assert ours["partition"] == faust_s["partition"] == 2  # the current event's
        assert (ours["key"], faust_s["key"]) == (b"M1", b"M1")
        assert (ours["value"], faust_s["value"]) == (b"the history", b"faust's history")
        # Faust leaves the timestamp to aiokafka, which stamps the producer's clock; so does
        # the record batch.
        assert faust_s["timestamp"] is None and abs(ours["timestamp"] / 1000 - time.time()) < 60
        assert not ours["headers"] and not faust_s["headers"]
        assert producer.closed == [True]  # handed over closed: sent without lingering
        assert producer.soon[1:] == []  # nothing went through Faust's buffer

    _run(run)


def test_records_are_sent_in_the_order_written_and_the_newest_offsets_persisted() -> None:
    table, producer, persisted = _direct_table()

    async def run() -> None:
        producer.held = first = asyncio.get_running_loop().create_future()  # the first send waits
        events = [_PartitionEvent(1), _PartitionEvent(2)]  # Faust holds events weakly
        enter_event(events[0])
        table.write(b"M0", b"h0")
        enter_event(events[1])
        table.write(b"M1", b"h1")
        table.write(b"M2", b"h2")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        assert producer.sends == []  # nothing overtakes the record that waits
        first.set_result(None)
        await _turns()
        assert [(s["key"], s["partition"]) for s in producer.sends] == [
            (b"M0", 1),
            (b"M1", 2),
            (b"M2", 2),
        ]
        assert len(producer.futures) == 2  # one record batch per partition
        _acknowledge(producer.futures[1], 2, 11)  # M1 at 11, M2 at 12
        await _turns()
        assert not waiting.done()  # one batch is still on its way
        assert persisted == []  # and no offset is persisted before they all are in
        _acknowledge(producer.futures[0], 1, 7)
        await waiting
        assert sorted((tp.partition, offset) for tp, offset in persisted) == [(1, 7), (2, 12)]
        await table.sent()  # nothing left to wait for
        assert len(persisted) == 2

    _run(run)


def test_a_full_batch_is_handed_over_at_once_and_each_partition_keeps_its_order() -> None:
    """The newest offset persisted is the last batch's first offset plus its other records."""
    table, producer, persisted = _direct_table(_SMALL_BATCH)
    values = [bytes([65 + n % 26]) * 300 for n in range(16)]

    async def run() -> None:
        events = [_PartitionEvent(0), _PartitionEvent(3)]
        for n, value in enumerate(values):
            enter_event(events[n % 2])
            table.write(f"M{n}".encode(), value)
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        for partition in (0, 3):
            assert [s["value"] for s in producer.sends if s["partition"] == partition] == [
                value for n, value in enumerate(values) if n % 2 == (partition == 3)
            ]
        assert len(producer.futures) > 2 and all(producer.closed)  # full ones went at once
        _acknowledge_batches(producer, first=100)
        await waiting
        # Eight records on each, in batches of three, three and two: the last batch's first
        # offset is 106.
        assert [records for _partition, records in producer.batches] == [3, 3, 3, 3, 2, 2]
        assert sorted((tp.partition, offset) for tp, offset in persisted) == [(0, 107), (3, 107)]

    _run(run)


def test_a_record_the_producer_refuses_is_a_refused_write() -> None:
    table, producer, _persisted = _direct_table()

    async def run() -> None:
        producer.refuse = ValueError("too large for CANARY-PHI")
        table.write(b"M1", b"h1")
        with pytest.raises(
            StoreWriteError, match="not taken by the producer: ValueError"
        ) as caught:
            await table.sent()
        assert "CANARY" not in str(caught.value)
        assert producer.sends == []

    _run(run)


def test_a_written_record_not_delivered_is_a_refused_write() -> None:
    table, producer, persisted = _direct_table()

    async def run() -> None:
        table.write(b"M1", b"h1")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        producer.futures[0].set_exception(TimeoutError("no answer for CANARY-PHI"))
        with pytest.raises(StoreWriteError, match="not delivered: TimeoutError") as caught:
            await waiting
        assert "CANARY" not in str(caught.value)
        assert persisted == []

    _run(run)


def test_a_store_that_refuses_the_offset_is_a_refused_write() -> None:
    table, producer, _persisted = _direct_table()

    def refuse(tp: Any, offset: int) -> None:
        raise OSError("disk full under CANARY-PHI")

    table.data.set_persisted_offset = refuse  # type: ignore[method-assign]

    async def run() -> None:
        table.write(b"M1", b"h1")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        _acknowledge(producer.futures[0], 2, 0)
        with pytest.raises(StoreWriteError, match="OSError") as caught:
            await waiting
        assert "CANARY" not in str(caught.value)

    _run(run)


def test_a_wait_cancelled_while_records_are_handed_over_leaves_them_to_the_next() -> None:
    """The store holds the values already: their records must reach the changelog."""
    table, producer, persisted = _direct_table()

    async def run() -> None:
        producer.held = stuck = asyncio.get_running_loop().create_future()
        table.write(b"M1", b"h1")
        table.write(b"M2", b"h2")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        later = asyncio.ensure_future(table.sent())  # before the records are handed over
        await _turns()
        assert producer.sends == [] and not later.done()
        stuck.set_result(None)
        await _turns()
        assert [s["key"] for s in producer.sends] == [b"M1", b"M2"]
        assert not later.done()
        for offset, future in enumerate(producer.futures):
            _acknowledge(future, 2, offset)
        await later
        assert [(tp.partition, offset) for tp, offset in persisted] == [(2, 1)]

    _run(run)


def test_a_wait_cancelled_while_records_are_delivered_leaves_them_to_the_next() -> None:
    """The next wait waits for them, reports their failure, and persists their offsets."""
    table, producer, persisted = _direct_table()

    async def run() -> None:
        table.write(b"M1", b"h1")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        assert len(producer.futures) == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        table.write(b"M2", b"h2")
        later = asyncio.ensure_future(table.sent())
        await _turns()
        _acknowledge(producer.futures[1], 2, 6)
        await _turns()
        assert not later.done()  # the first record is still on its way
        _acknowledge(producer.futures[0], 2, 5)
        await later
        assert [(tp.partition, offset) for tp, offset in persisted] == [(2, 6)]
        # A record the cancelled wait left behind that fails is reported by the next wait.
        table.write(b"M3", b"h3")
        third = asyncio.ensure_future(table.sent())
        await _turns()
        third.cancel()
        with pytest.raises(asyncio.CancelledError):
            await third
        producer.futures[2].set_exception(TimeoutError("no answer"))
        with pytest.raises(StoreWriteError, match="not delivered: TimeoutError"):
            await table.sent()

    _run(run)


def test_a_wait_cancelled_as_the_records_are_handed_over_is_still_cancelled() -> None:
    """The caller's cancellation is never swallowed, even in the turn the hand-over ends."""
    table, producer, _persisted = _direct_table()

    async def run() -> None:
        producer.held = stuck = asyncio.get_running_loop().create_future()
        table.write(b"M1", b"h1")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        # Cancelled by the hand-over's own end, before the wait can resume.
        table._handing_over[0].add_done_callback(lambda _: waiting.cancel())
        stuck.set_result(None)
        with pytest.raises(asyncio.CancelledError):
            await waiting

    _run(run)


def test_records_the_producer_does_not_take_in_time_are_a_refused_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A send waits up to the producer's request timeout (20 minutes in Faust): a batch not."""
    table, producer, _persisted = _direct_table()
    monkeypatch.setattr(table_store, "CHANGELOG_WAIT_SECONDS", 0.05)

    async def run() -> None:
        producer.held = asyncio.get_running_loop().create_future()  # never released
        table.write(b"M1", b"h1")
        with pytest.raises(StoreWriteError, match=r"not taken by the producer in 0\.05 s"):
            await table.sent()
        assert producer.sends == [] and not table._handing_over[0].done()  # not cancelled

    _run(run)


def test_a_write_in_a_transaction_takes_faust_s_own_path(monkeypatch: pytest.MonkeyPatch) -> None:
    table, sent = _table(monkeypatch)
    monkeypatch.setattr(type(table.app), "in_transaction", property(lambda self: True))

    async def run() -> None:
        table.write(b"M1", b"h1")
        assert len(sent) == 1 and table.data[b"M1"] == b"h1"
        sent[0].set_result("delivered")
        await table.sent()

    _run(run)


def test_write_value_writes_the_worker_s_table_directly() -> None:
    """Every write of the stores goes through ``write_value``, hence ``write``."""
    table, producer, _persisted = _direct_table()

    async def run() -> None:
        table_store.write_value(table, b"M1", b"h1")
        await asyncio.sleep(0)
        assert [s["key"] for s in producer.sends] == [b"M1"] and producer.soon == []

    _run(run)


def test_records_written_while_a_wait_runs_are_waited_for_by_it_or_the_next() -> None:
    """The worker's next batch writes while the last batch's wait runs (``BatchHandler``)."""
    table, producer, persisted = _direct_table()

    async def run() -> None:
        # Written while the wait's records are being handed over: the same hand-over sends
        # it, and the wait takes it in (more than it needs, never less).
        producer.held = first = asyncio.get_running_loop().create_future()
        table.write(b"M0", b"h0")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        table.write(b"M1", b"h1")
        first.set_result(None)
        await _turns()
        assert [s["key"] for s in producer.sends] == [b"M0", b"M1"]
        _acknowledge(producer.futures[0], 2, 5)
        await _turns()
        assert not waiting.done()
        _acknowledge(producer.futures[1], 2, 6)
        await waiting
        assert [offset for _tp, offset in persisted] == [6]
        # Written while the wait waits for delivery: left to the next wait.
        table.write(b"M2", b"h2")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        table.write(b"M3", b"h3")
        await _turns()
        assert [s["key"] for s in producer.sends[2:]] == [b"M2", b"M3"]
        _acknowledge(producer.futures[2], 2, 7)
        await waiting  # M3's record is not this wait's
        assert [offset for _tp, offset in persisted] == [6, 7]
        later = asyncio.ensure_future(table.sent())
        await _turns()
        assert not later.done()
        _acknowledge(producer.futures[3], 2, 8)
        await later
        assert [offset for _tp, offset in persisted] == [6, 7, 8]

    _run(run)


def test_a_table_that_lets_the_producer_choose_the_partition_takes_faust_s_own_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a partition of its own a record cannot go into a partition's record batch."""
    asked: list[Any] = []

    def send_changelog(self: Any, partition: Any, key: Any, value: Any, *args: Any) -> Any:
        asked.append(partition)
        future = _Sent(loop=asyncio.get_running_loop())
        future.message = SimpleNamespace(partition=5)  # the producer's choice, as Faust's
        return future

    table, _sent = _table(monkeypatch)
    monkeypatch.setattr(Collection, "send_changelog", send_changelog)
    table.use_partitioner = True

    async def run() -> None:
        table.write(b"M1", b"h1")
        assert asked == [None] and table.data[b"M1"] == b"h1"
        assert table._queued == deque() and table._handing_over == []

    _run(run)


def test_a_full_batch_refused_mid_hand_over_is_a_refused_write_and_forgotten() -> None:
    """The worker stops on it; the table's next hand-over does not carry the loss."""
    table, producer, persisted = _direct_table(_SMALL_BATCH)

    async def run() -> None:
        producer.held = first = asyncio.get_running_loop().create_future()
        _write_large(table, range(8))
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        producer.refuse = ConnectionError("broker away")  # from the first full batch on
        first.set_result(None)
        with pytest.raises(StoreWriteError, match="not taken by the producer: ConnectionError"):
            await waiting
        assert producer.sends == []
        producer.refuse = None
        table.write(b"M9", b"h9")
        later = asyncio.ensure_future(table.sent())
        await _turns()
        # The refused batch's records (and the one that found it full) are gone; those still
        # queued go with the next hand-over, which starts without the loss.
        assert [s["key"] for s in producer.sends] == [b"M4", b"M5", b"M6", b"M7", b"M9"]
        _acknowledge_batches(producer)
        # Records were lost: no later wait may count a batch as written.
        with pytest.raises(StoreWriteError, match="not taken by the producer: ConnectionError"):
            await later
        assert persisted == []

    _run(run)


def test_a_hand_over_refused_at_its_end_loses_every_partition_s_batch_and_persists_nothing() -> (
    None
):
    table, producer, persisted = _direct_table()

    async def run() -> None:
        producer.held = first = asyncio.get_running_loop().create_future()
        events = [_PartitionEvent(0), _PartitionEvent(1), _PartitionEvent(2)]
        for n, event in enumerate(events):
            enter_event(event)
            table.write(f"M{n}".encode(), b"h")
        waiting = asyncio.ensure_future(table.sent())
        await _turns()
        producer.refuse = ConnectionError("broker away")
        first.set_result(None)
        with pytest.raises(StoreWriteError, match="not taken by the producer: ConnectionError"):
            await waiting
        assert producer.sends == [] and persisted == []
        assert table._batches.pending == 0  # forgotten, not carried to a later hand-over

    _run(run)


def test_a_hand_over_cancelled_is_a_refused_write_and_what_follows_starts_afresh() -> None:
    """The worker stopping cancels its tasks: a wait reports it, and so does every later one."""
    table, producer, _persisted = _direct_table(_SMALL_BATCH)

    async def run() -> None:
        producer.held = asyncio.get_running_loop().create_future()  # never released
        _write_large(table, range(5))
        await _turns()
        table._handing_over[0].cancel()  # waiting on a full batch's hand-over
        with pytest.raises(StoreWriteError, match="not taken by the producer: cancelled"):
            await table.sent()
        assert table._batches.pending == 0
        table.write(b"M9", b"h9")
        await _turns()
        # What was still queued goes with the next hand-over, without the cancelled one's loss.
        assert [s["key"] for s in producer.sends] == [b"M4", b"M9"]
        with pytest.raises(StoreWriteError, match="cancelled"):
            await table.sent()  # records were lost: no later wait may succeed

    _run(run)


def test_records_written_while_a_full_batch_is_handed_over_follow_it_in_order() -> None:
    table, producer, persisted = _direct_table(_SMALL_BATCH)

    async def run() -> None:
        producer.held = first = asyncio.get_running_loop().create_future()
        _write_large(table, range(4))  # the fourth finds the first batch full
        await _turns()
        assert producer.sends == []
        _write_large(table, range(4, 8))  # written while the full batch waits to be taken
        waiting = asyncio.ensure_future(table.sent())
        first.set_result(None)
        await _turns()
        assert [s["key"] for s in producer.sends] == [f"M{n}".encode() for n in range(8)]
        _acknowledge_batches(producer, first=40)
        await waiting
        assert [(tp.partition, offset) for tp, offset in persisted] == [(2, 47)]

    _run(run)
