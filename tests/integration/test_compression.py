"""What the worker sends is compressed on the broker as ``SCRUBBER_KAFKA_COMPRESSION`` says.

The record batches are read back raw from the real broker (a Fetch request, not a consumer,
which would decompress them without a trace), for a result topic and for the history
changelog, which carries most of the bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords

from scrubber.accounting import collect, end_offsets, key_of, publish
from scrubber.config import Settings
from scrubber.examples import generate
from scrubber.kafka import client_kwargs, ensure_topics, history_changelog

from .conftest import WorkerProcess, assert_complete, load_bundle

pytestmark = pytest.mark.integration

CODECS = {"zstd": DefaultRecordBatch.CODEC_ZSTD, "none": DefaultRecordBatch.CODEC_NONE}


@dataclass
class Stored:
    """A topic's record batches as the broker holds them."""

    codecs: set[int]
    records: int
    stored_bytes: int
    record_bytes: int


async def _stored(settings: Settings, topic: str, seconds: float = 30) -> Stored:
    """Every batch of every partition of ``topic``, read raw from offset 0 to its end."""
    client = AIOKafkaClient(**client_kwargs(settings))
    await client.bootstrap()
    stored = Stored(set(), 0, 0, 0)
    try:
        async with asyncio.timeout(seconds):
            await client.force_metadata_update()
            for partition in sorted(client.cluster.partitions_for_topic(topic) or ()):
                await _read_partition(client, topic, partition, stored)
    finally:
        await client.close()
    return stored


async def _read_partition(client: AIOKafkaClient, topic: str, partition: int, into: Stored) -> None:
    node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
    offset = 0
    while True:
        request = FetchRequest(100, 1, 50_000_000, 0, [(topic, [(partition, offset, 50_000_000)])])
        response = await client.send(node, request)
        ((_topic, parts),) = response.topics
        ((_p, error_code, highwater, *rest),) = parts
        assert error_code == 0, (topic, partition, error_code)
        if offset >= highwater:
            return
        data = MemoryRecords(rest[-1] or b"")
        into.stored_bytes += data.size_in_bytes()
        while (batch := data.next_batch()) is not None:
            into.codecs.add(batch.compression_type)
            offset = max(offset, batch.base_offset + batch.last_offset_delta + 1)
            for record in batch:
                into.records += 1
                into.record_bytes += len(record.key or b"") + len(record.value or b"")


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_results_and_changelog_are_stored_as_the_setting_says(
    settings: Settings, bundle, tmp_path: Path, codec: str
) -> None:
    settings = settings.model_copy(update={"kafka_compression": codec})
    asyncio.run(ensure_topics(settings))
    asyncio.run(load_bundle(settings, bundle))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        worker.start()
        worker.wait_ready()
        records = [(key_of(raw), raw) for raw in generate(bundle, 600, seed=23)]
        outputs = [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]
        start = asyncio.run(end_offsets(settings, outputs))
        positions = asyncio.run(publish(settings, records))
        ledger = asyncio.run(collect(settings, positions, start, wait_seconds=90))
        assert_complete(ledger, worker)
        accepted = asyncio.run(_stored(settings, settings.accepted_topic))
        changelog = asyncio.run(_stored(settings, history_changelog(settings)))
    finally:
        worker.stop()

    for stored in (accepted, changelog):
        assert stored.records > 100
        assert stored.codecs == {CODECS[codec]}
    if codec == "zstd":
        # Whole histories of JSON lines: a fraction of their size on the broker.
        assert changelog.stored_bytes < changelog.record_bytes / 3
