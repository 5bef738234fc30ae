"""Results handed over as record batches reach the real broker where single sends would.

The same keyed records go to one topic through ``ResultBatches`` and to another through the
producer's own ``send`` (aiokafka's default partitioner): read back, each key is in the same
partition of both, each partition holds its records in the order they were made, and values and
headers arrive as they were given. The worker's own path (Faust's producer) is covered by the
stream tests, which read every result back.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from scrubber.config import Settings
from scrubber.kafka import client_kwargs, ensure_topics, producer_kwargs
from scrubber.stream.outputs import ResultBatches

pytestmark = pytest.mark.integration


async def _read(settings: Settings, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, **client_kwargs(settings), auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


@pytest.mark.asyncio
async def test_batched_results_land_where_single_sends_do_in_order(settings: Settings) -> None:
    await ensure_topics(settings)  # accepted and flagged: 4 partitions each
    batched, single = settings.accepted_topic, settings.flagged_topic
    rng = random.Random(5)
    keys = [f"M{rng.randrange(10**9):09d}".encode() for _ in range(40)]
    sent = [
        (keys[rng.randrange(len(keys))], f"result {n} ".encode() * 20, [("n", str(n).encode())])
        for n in range(600)
    ]
    producer = AIOKafkaProducer(**producer_kwargs(settings), acks="all", max_batch_size=4096)
    await producer.start()
    deliveries: list[asyncio.Future[Any]] = []
    try:
        batches = ResultBatches(lambda: producer, deliveries.append)
        for at in range(0, len(sent), 200):  # three batches of input
            for key, value, headers in sent[at : at + 200]:
                await batches.add(batched, key, value, headers)
            await batches.flush()
        singles = [
            await producer.send(single, value, key=key, headers=headers)
            for key, value, headers in sent
        ]
        await producer.flush()
        await asyncio.gather(*deliveries, *singles)
    finally:
        await producer.stop()
    assert len(deliveries) > 12  # full batches were handed over before each flush too

    got = await _read(settings, batched, len(sent))
    reference = await _read(settings, single, len(sent))
    assert len(got) == len(sent)
    where = {r.key: r.partition for r in reference}
    assert {r.key: r.partition for r in got} == where
    assert len(set(where.values())) > 1
    for partition in set(where.values()):
        made = [(k, v, h) for k, v, h in sent if where[k] == partition]
        arrived = [
            (r.key, r.value, [(name, bytes(value)) for name, value in r.headers])
            for r in sorted(got, key=lambda r: r.offset)
            if r.partition == partition
        ]
        assert arrived == made


@pytest.mark.asyncio
async def test_batches_go_without_lingering_and_the_producers_flush_waits_for_them(
    settings: Settings,
) -> None:
    """What the worker relies on in aiokafka: a closed batch is sent at once, not after the
    producer's linger, and ``flush`` (which Faust calls before it commits) waits for batches
    handed over with ``send_batch`` as it does for single records."""
    await ensure_topics(settings)
    lingering = AIOKafkaProducer(**producer_kwargs(settings), acks="all", linger_ms=60_000)
    await lingering.start()
    deliveries: list[asyncio.Future[Any]] = []
    try:
        batches = ResultBatches(lambda: lingering, deliveries.append)
        for n in range(20):
            await batches.add(settings.accepted_topic, f"M{n}".encode(), b"result", [])
        await batches.flush()
        async with asyncio.timeout(30):  # far below the producer's 60 s linger
            await asyncio.gather(*deliveries)
    finally:
        await lingering.stop()

    producer = AIOKafkaProducer(**producer_kwargs(settings), acks="all", linger_ms=2_000)
    await producer.start()
    try:
        builder = producer.create_batch()  # left open: it lingers like any batch
        builder.append(timestamp=None, key=b"M1", value=b"result", headers=[])
        delivery = await producer.send_batch(builder, settings.flagged_topic, partition=0)
        assert not delivery.done()
        await producer.flush()
        assert delivery.done() and delivery.exception() is None
    finally:
        await producer.stop()


@pytest.mark.asyncio
async def test_the_aiokafka_producer_inside_fausts_is_reached_once_it_started(
    settings: Settings,
) -> None:
    """``faust_internals.aiokafka_producer`` against the installed Faust: before the start it
    refuses (the worker sends nothing before), after it the producer answers for a topic."""
    import faust
    from faust.exceptions import NotReady

    from scrubber.stream.faust_internals import aiokafka_producer

    await ensure_topics(settings)
    app = faust.App(settings.app_id, broker=f"kafka://{settings.kafka_bootstrap}")
    with pytest.raises(NotReady):
        aiokafka_producer(app)
    await app.producer.start()
    try:
        producer = aiokafka_producer(app)
        assert isinstance(producer, AIOKafkaProducer)
        assert await producer.partitions_for(settings.accepted_topic) == {0, 1, 2, 3}
    finally:
        await app.producer.stop()
