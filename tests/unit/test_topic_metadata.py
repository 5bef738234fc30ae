"""Topic creation against a broker whose metadata lags: retried, then a clear error.

A fake admin client stands in for the broker's answers (the real broker cannot be made to
lag on demand); the integration suite runs ``ensure_topics`` against the real one.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from scrubber import kafka
from scrubber.config import Settings
from scrubber.kafka import TopicError, TopicsNotReadyError, ensure_topics


class LaggingAdmin:
    """Reports topics with no partitions for the first ``empty_answers`` descriptions."""

    def __init__(self, partitions: int, empty_answers: int) -> None:
        self.partitions = partitions
        self.empty_answers = empty_answers
        self.descriptions = 0
        self.created: list[str] = []

    def __call__(self, **_: Any) -> LaggingAdmin:
        return self

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    refuse: int = 0  # an error code the broker answers every creation with

    async def create_topics(self, topics: list[Any]) -> Any:
        self.created += [t.name for t in topics]
        return SimpleNamespace(topic_errors=[(t.name, self.refuse, None) for t in topics])

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        self.descriptions += 1
        count = 0 if self.descriptions <= self.empty_answers else self.partitions
        return [{"topic": name, "error_code": 0, "partitions": [{}] * count} for name in names]

    async def describe_configs(self, _: Any) -> list[Any]:
        return [SimpleNamespace(resources=[(0, "", 2, "", [("cleanup.policy", "compact")])])]


@pytest.fixture
def fast_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    real = asyncio.sleep
    monkeypatch.setattr(kafka.asyncio, "sleep", lambda _s: real(0))


def test_new_topics_without_partitions_yet_are_waited_for(monkeypatch, fast_sleep) -> None:
    settings = Settings()
    admin = LaggingAdmin(settings.partitions, empty_answers=30)  # 15 s at 0.5 s a retry
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", admin)
    found = asyncio.run(ensure_topics(settings))
    assert admin.descriptions == 31
    assert set(found) == set(admin.created)
    assert set(found.values()) == {settings.partitions}


def test_metadata_that_never_comes_is_not_called_a_mismatch(monkeypatch) -> None:
    settings = Settings()
    admin = LaggingAdmin(settings.partitions, empty_answers=10**9)
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", admin)
    with pytest.raises(TopicsNotReadyError, match="did not report the partitions") as caught:
        asyncio.run(ensure_topics(settings, metadata_seconds=0.6))
    assert isinstance(caught.value, TopicError)  # the commands refuse to start on it
    assert "None partitions" not in str(caught.value)
    assert admin.descriptions >= 2  # retried, not given up at the first answer


def test_a_creation_the_broker_refuses_is_an_error_at_once(monkeypatch) -> None:
    settings = Settings()
    admin = LaggingAdmin(settings.partitions, empty_answers=10**9)
    admin.refuse = 38  # INVALID_REPLICATION_FACTOR: more replicas than brokers
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", admin)
    with pytest.raises(TopicError, match=r"refused to create topic .*InvalidReplicationFactor"):
        asyncio.run(ensure_topics(settings, metadata_seconds=60))
    assert admin.descriptions == 0  # not waited for


def test_a_topic_that_exists_already_is_no_error(monkeypatch) -> None:
    settings = Settings()
    admin = LaggingAdmin(settings.partitions, empty_answers=0)
    admin.refuse = 36  # TOPIC_ALREADY_EXISTS
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", admin)
    assert set(asyncio.run(ensure_topics(settings)).values()) == {settings.partitions}
