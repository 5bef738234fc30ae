"""A batch's results gathered per output partition and handed to the producer at its end.

Real aiokafka record batch builders and aiokafka's own partitioner to compare with; the
producer's metadata and ``send_batch`` are stand-ins that note what they were given.
tests/integration/test_result_batches.py sends to the real broker.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from scrubber.stream.outputs import (
    KEY_HASHES,
    RecordBatches,
    ResultBatches,
    _key_hash,
    partition_for,
)


class Producer:
    """aiokafka's producer as ``ResultBatches`` uses it: real builders, noted hand-overs."""

    def __init__(self, partitions: dict[str, set[int]], batch_bytes: int = 16384) -> None:
        self.partitions = partitions
        self.batch_bytes = batch_bytes
        self.submitted: list[tuple[str, int, list[tuple[bytes, bytes, list[Any]]], bool]] = []
        self.deliveries: list[asyncio.Future[Any]] = []
        self.metadata_reads = 0
        self.refuse = False

    async def partitions_for(self, topic: str) -> set[int]:
        self.metadata_reads += 1
        return self.partitions[topic]

    def create_batch(self) -> Any:
        # What ``AIOKafkaProducer.create_batch`` makes (without compression).
        return BatchBuilder(self.batch_bytes, 0)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if self.refuse:
            raise ConnectionError("producer away")
        closed = batch.closed()
        records = DefaultRecordBatch(bytes(batch._build()))
        self.submitted.append(
            (
                topic,
                partition,
                [(r.key, r.value, list(r.headers)) for r in records],
                closed,
            )
        )
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


def _keys(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [f"M{rng.randrange(10**9):09d}".encode() for _ in range(n)]


@pytest.mark.parametrize("partitions", [[0], [0, 1, 2, 3], list(range(95)), [3, 1, 2, 0]])
def test_a_key_goes_where_kafkas_default_partitioner_puts_it(partitions: list[int]) -> None:
    """The same murmur2 as aiokafka's partitioner (and the Java client's), over the same list."""
    default = DefaultPartitioner()
    for key in [*_keys(2000), b"", b"a", b"\xff\xfe\x00", "é".encode() * 13]:
        assert partition_for(key, partitions) == default(key, partitions, partitions)


def test_key_hashes_are_kept_within_their_bound() -> None:
    for key in _keys(KEY_HASHES + 500, seed=11):
        _key_hash(key)
    assert _key_hash.cache_info().currsize <= KEY_HASHES


def test_results_wait_in_one_batch_per_partition_until_the_flush() -> None:
    producer = Producer({"accepted": {0, 1, 2, 3}, "flagged": {0, 1, 2, 3}})
    batches = ResultBatches(lambda: producer, lambda delivery: None)
    sent = [
        ("accepted" if n % 3 else "flagged", key, f"v{n}".encode(), [("h", str(n).encode())])
        for n, key in enumerate(_keys(60))
    ]

    async def run() -> None:
        for topic, key, value, headers in sent:
            await batches.add(topic, key, value, headers)
        assert producer.submitted == []  # nothing handed over before the batch ends
        assert batches.pending == len({(t, partition_for(k, [0, 1, 2, 3])) for t, k, _, _ in sent})
        await batches.flush()

    asyncio.run(run())
    assert batches.pending == 0
    places = [(topic, partition) for topic, partition, _, _ in producer.submitted]
    assert len(places) == len(set(places))  # one batch per partition
    assert all(closed for *_, closed in producer.submitted)  # sent at once, no lingering
    for topic, partition, records, _ in producer.submitted:
        expected = [
            (key, value, headers)
            for t, key, value, headers in sent
            if t == topic and partition_for(key, [0, 1, 2, 3]) == partition
        ]
        assert records == expected  # every result, in the order it was made


def test_a_full_batch_is_handed_over_at_once_and_the_partition_goes_on_in_order() -> None:
    producer = Producer({"accepted": {0}}, batch_bytes=1024)
    batches = ResultBatches(lambda: producer, lambda delivery: None)
    values = [bytes([65 + n % 26]) * 300 for n in range(10)]

    async def run() -> None:
        for value in values:
            await batches.add("accepted", b"M1", value, [])
        assert len(producer.submitted) >= 2  # handed over while the batch goes on
        await batches.flush()

    asyncio.run(run())
    assert len(producer.submitted) >= 3
    assert [v for _, _, records, _ in producer.submitted for _, v, _ in records] == values


def test_a_result_larger_than_a_batch_goes_alone() -> None:
    producer = Producer({"accepted": {0}}, batch_bytes=1024)
    batches = ResultBatches(lambda: producer, lambda delivery: None)

    async def run() -> None:
        await batches.add("accepted", b"M1", b"a", [])
        await batches.add("accepted", b"M1", b"b" * 5000, [])
        await batches.flush()

    asyncio.run(run())
    assert [[v for _, v, _ in records] for _, _, records, _ in producer.submitted] == [
        [b"a"],
        [b"b" * 5000],
    ]


def test_each_batch_delivery_gets_the_callback() -> None:
    producer = Producer({"accepted": {0, 1}, "flagged": {0, 1}})
    seen: list[Any] = []
    batches = ResultBatches(lambda: producer, seen.append)

    async def run() -> None:
        for key in _keys(20):
            await batches.add("accepted", key, b"v", [])
            await batches.add("flagged", key, b"v", [])
        await batches.flush()
        producer.deliveries[0].set_exception(ConnectionError("not delivered"))
        for delivery in producer.deliveries[1:]:
            delivery.set_result(None)
        await asyncio.sleep(0)

    asyncio.run(run())
    assert len(seen) == len(producer.deliveries) == 4
    assert sum(1 for d in seen if d.exception() is not None) == 1


def test_partitions_are_read_once_a_batch_and_again_after_it() -> None:
    """A topic given more partitions is seen from the next batch on."""
    producer = Producer({"accepted": {0}})
    batches = ResultBatches(lambda: producer, lambda delivery: None)
    keys = _keys(50)

    async def run() -> None:
        for key in keys:
            await batches.add("accepted", key, b"v", [])
        await batches.flush()
        assert producer.metadata_reads == 1
        producer.partitions["accepted"] = {0, 1, 2, 3}
        for key in keys:
            await batches.add("accepted", key, b"v", [])
        await batches.flush()

    asyncio.run(run())
    assert producer.metadata_reads == 2
    assert {p for _, p, _, _ in producer.submitted[:1]} == {0}
    assert {p for _, p, _, _ in producer.submitted[1:]} == {
        partition_for(k, [0, 1, 2, 3]) for k in keys
    }


def test_a_hand_over_that_fails_raises_and_keeps_nothing() -> None:
    """The turn is rolled back (``BatchHandler``): its records are delivered again."""
    producer = Producer({"accepted": {0, 1, 2, 3}})
    batches = ResultBatches(lambda: producer, lambda delivery: None)

    async def run() -> None:
        for key in _keys(20):
            await batches.add("accepted", key, b"v", [])
        producer.refuse = True
        with pytest.raises(ConnectionError):
            await batches.flush()

    asyncio.run(run())
    assert batches.pending == 0


def test_the_worker_batches_results_and_sends_the_rest_one_by_one(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scrubber.config import Settings
    from scrubber.processor import Emission
    from scrubber.stream.app import Worker, _report_failed_delivery

    worker = Worker(Settings(data_dir=str(tmp_path)))
    assert worker.batches.outputs is worker.results  # handed over before any acknowledgement
    assert worker.results._on_delivery is _report_failed_delivery  # a refused batch: exit
    added: list[tuple[Any, ...]] = []
    single: list[tuple[Any, ...]] = []

    async def add(*args: Any) -> None:
        added.append(args)

    async def send(*args: Any) -> asyncio.Future[Any]:
        single.append(args)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery

    monkeypatch.setattr(worker.results, "add", add)
    monkeypatch.setattr(worker.app.producer, "send", send)
    headers = (("a", b"1"),)

    async def run() -> None:
        for kind in ("accepted", "flagged", "dlq", "claim", "ack277"):
            await worker.send(Emission(kind=kind, key=b"M1", value=kind.encode(), headers=headers))
        await worker.send(Emission(kind="accepted", key=None, value=b"keyless", headers=headers))

    asyncio.run(run())
    names = worker.output_names
    assert added == [
        (names["accepted"], b"M1", b"accepted", [("a", b"1")]),
        (names["flagged"], b"M1", b"flagged", [("a", b"1")]),
    ]
    assert [(topic, value) for topic, _key, value, *_ in single] == [
        (names["dlq"], b"dlq"),
        (names["claim"], b"claim"),
        (names["ack277"], b"ack277"),
        (names["accepted"], b"keyless"),
    ]


@pytest.mark.parametrize("how", ["refused", "cancelled"])
def test_a_full_batch_lost_during_the_batch_fails_its_flush(how: str) -> None:
    """Its results are gone: the records before them must not count as handled either."""
    from scrubber.stream.outputs import RecordsLostError

    producer = Producer({"accepted": {0}}, batch_bytes=1024)
    batches = ResultBatches(lambda: producer, lambda delivery: None)
    gate = asyncio.Event()

    async def stuck(batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        await gate.wait()
        raise AssertionError("never reached")

    async def run() -> None:
        await batches.add("accepted", b"M1", b"a" * 600, [])
        if how == "refused":
            producer.refuse = True
            with pytest.raises(ConnectionError):
                await batches.add("accepted", b"M1", b"b" * 600, [])
            producer.refuse = False
        else:
            setattr(producer, "send_batch", stuck)  # noqa: B010
            adding = asyncio.ensure_future(batches.add("accepted", b"M1", b"b" * 600, []))
            await asyncio.sleep(0.01)
            adding.cancel()
            with pytest.raises(asyncio.CancelledError):
                await adding
            del producer.send_batch  # the class's own again
        # A stop stays a stop (the turn is rolled back either way).
        lost = RecordsLostError if how == "refused" else asyncio.CancelledError
        with pytest.raises(lost):
            await batches.flush()
        assert producer.submitted == [] and batches.pending == 0
        await batches.add("accepted", b"M1", b"c", [])  # the next batch goes on
        await batches.flush()

    asyncio.run(run())
    assert [[v for _, v, _ in records] for _, _, records, _ in producer.submitted] == [[b"c"]]


def test_a_handler_with_real_result_batches_acknowledges_nothing_when_a_full_batch_is_refused(
    line_bytes: Any, snapshot: Any
) -> None:
    """The whole path: results gathered by the runtime's send, a full batch refused mid-turn."""
    from scrubber.processor import Emission
    from scrubber.stream.outputs import RecordsLostError

    from .test_batch_handler import Reader, _event, _handler

    handler, _log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    producer = Producer({"accepted": {0}, "flagged": {0}}, batch_bytes=1024)
    batches = ResultBatches(lambda: producer, lambda delivery: None)
    handler.outputs = batches

    async def send(emission: Emission) -> None:
        await batches.add(emission.kind, emission.key or b"", emission.value, [])

    handler.runtime.send = send
    events = [_event(0, n, line_bytes(line_number=n + 1)) for n in range(6)]
    producer.refuse = True  # the first batch to fill (about three results) is refused
    with pytest.raises(RecordsLostError):  # the turn's hand-over fails with it
        asyncio.run(handler.handle(events))
    assert acks.released == []  # not even the records before the refused batch
    assert acks.untracked == list(range(6))
    assert handler.guard.snapshot() == {}
    producer.refuse = False
    asyncio.run(handler.handle(events))  # delivered again: the next turn is not failed by it
    asyncio.run(handler.settled())
    assert acks.released == list(range(6))
    assert sum(len(records) for _, _, records, _ in producer.submitted) == 6


def test_discarded_results_are_neither_sent_nor_a_loss_for_the_next_batch() -> None:
    """A turn rolled back before its hand-over (``BatchHandler._roll_back``) discards them."""
    producer = Producer({"accepted": {0}}, batch_bytes=1024)
    batches = ResultBatches(lambda: producer, lambda delivery: None)

    async def run() -> None:
        await batches.add("accepted", b"M1", b"a" * 600, [])
        producer.refuse = True
        with pytest.raises(ConnectionError):  # a full batch lost: the turn cannot count
            await batches.add("accepted", b"M1", b"b" * 600, [])
        producer.refuse = False
        await batches.add("accepted", b"M1", b"c", [])
        batches.discard()
        assert batches.pending == 0
        await batches.add("accepted", b"M1", b"d", [])
        await batches.flush()  # the next turn: no loss carried over

    asyncio.run(run())
    assert [[v for _, v, _ in records] for _, _, records, _ in producer.submitted] == [[b"d"]]


def test_the_worker_refuses_a_partitioner_other_than_kafkas_default(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faust

    from scrubber.config import Settings
    from scrubber.stream import app as app_module

    real = faust.App

    def with_partitioner(*args: Any, **kwargs: Any) -> Any:
        return real(*args, producer_partitioner=lambda key, all, available: all[0], **kwargs)

    monkeypatch.setattr(app_module.faust, "App", with_partitioner)
    with pytest.raises(ValueError, match="default partitioner"):
        app_module.Worker(Settings(data_dir=str(tmp_path)))


def test_a_record_appended_while_its_partition_s_full_batch_is_handed_over_is_refused() -> None:
    """One caller at a time: a second one's record would be lost, so the first one says so."""

    class Slow(Producer):
        gate: asyncio.Future[None] | None = None

        async def send_batch(
            self, batch: Any, topic: str, *, partition: int
        ) -> asyncio.Future[Any]:
            if self.gate is not None:
                await self.gate
            return await super().send_batch(batch, topic, partition=partition)

    producer = Slow({"changelog": {0}}, batch_bytes=1024)
    batches = RecordBatches(lambda: producer, lambda delivery, records: None)

    async def run() -> None:
        producer.gate = asyncio.get_running_loop().create_future()
        for _ in range(3):
            await batches.append("changelog", 0, b"k", b"x" * 300, [])
        first = asyncio.ensure_future(batches.append("changelog", 0, b"k", b"y" * 300, []))
        await asyncio.sleep(0)  # the first caller waits while its full batch is taken
        await batches.append("changelog", 0, b"k", b"z", [])  # a second caller
        producer.gate.set_result(None)
        with pytest.raises(RuntimeError, match="while its batch was handed over"):
            await first

    asyncio.run(run())
