"""The worker's consumer asks the broker to hold a fetch at most SCRUBBER_KAFKA_FETCH_MAX_WAIT_MS.

Faust builds its aiokafka consumer with a 1,500 ms fetch wait and no setting to change it; the
worker sets it on the consumer (see ``shorten_fetch_wait``). This runs that on a real aiokafka
consumer connected to the local broker, so a library upgrade that renames the attribute fails
here instead of silently bringing back 1.5 s of latency.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer

from scrubber.config import Settings
from scrubber.stream.faust_internals import shorten_fetch_wait


def _app(consumer: AIOKafkaConsumer) -> SimpleNamespace:
    """An object shaped like a Faust app whose consumer thread holds ``consumer``."""
    thread = SimpleNamespace(_ensure_consumer=lambda: consumer)
    return SimpleNamespace(consumer=SimpleNamespace(_thread=thread))


@pytest.mark.asyncio
async def test_the_fetch_wait_reaches_a_running_consumer_and_its_fetcher(
    settings: Settings,
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, fetch_max_wait_ms=1500
    )
    assert shorten_fetch_wait(_app(consumer), 40)  # before start: the fetcher is built from it
    await consumer.start()
    try:
        assert await consumer.topics() is not None  # connected to the broker
        assert consumer._fetcher._fetch_max_wait_ms == 40
        assert shorten_fetch_wait(_app(consumer), settings.kafka_fetch_max_wait_ms)
        assert consumer._fetcher._fetch_max_wait_ms == settings.kafka_fetch_max_wait_ms == 50
    finally:
        await consumer.stop()


def test_a_consumer_not_started_is_left_alone_without_an_error(tmp_path) -> None:
    from scrubber.stream.app import Worker

    worker = Worker(Settings(data_dir=str(tmp_path)))
    assert shorten_fetch_wait(worker.app, 50) is False
