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

    async def create_topics(self, topics: list[Any]) -> None:
        self.created += [t.name for t in topics]

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
