"""The benchmark counts the partitions the real broker holds (a crowded broker skews it)."""

from __future__ import annotations

import asyncio

import pytest

from scrubber.bench.__main__ import broker_partitions
from scrubber.config import Settings
from scrubber.kafka import ensure_topics, topic_specs

pytestmark = pytest.mark.integration


def test_the_count_grows_by_the_partitions_created(settings: Settings) -> None:
    tag = settings.app_id.removeprefix("claim-scrubber-test-")
    assert broker_partitions(settings.kafka_bootstrap, tag) == (0, 0)
    asyncio.run(ensure_topics(settings))
    specs = topic_specs(settings)
    after = broker_partitions(settings.kafka_bootstrap, tag)
    assert after == (len(specs), sum(s.partitions for s in specs))
    everything = broker_partitions(settings.kafka_bootstrap)
    assert everything[0] is not None and everything[0] >= len(specs)
    assert everything[1] is not None and everything[1] >= after[1]


def test_an_unreachable_broker_counts_nothing() -> None:
    assert broker_partitions("127.0.0.1:1") == (None, None)
