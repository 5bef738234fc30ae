"""A member id with more lines than one changelog record holds keeps the worker going.

The patient's history, and the patient's claims being assembled, are each one record of the
table's changelog, and the broker refuses a record over the topic's limit (1 MiB by default).
Without a bound, the write of a history that large failed, the worker exited without a commit,
and every worker after it failed on the same line. Real worker, real broker (its default
limit), real changelog.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta

import httpx
import orjson
import pytest

from scrubber.accounting import collect, end_offsets, publish
from scrubber.history import STORED_VALUE_MAX_BYTES
from tests.conftest import BASE_LINE

from .conftest import load_bundle

pytestmark = pytest.mark.integration

LINES = 2_600  # about 1.3 MiB of history: over the broker's 1 MiB, over the 768 KiB bound


def _lines() -> list[tuple[bytes, bytes]]:
    records = []
    for n in range(LINES):
        doc = {
            **BASE_LINE,
            "claim_id": f"SHARED{n:06d}",
            "service_date": (date(2025, 1, 1) + timedelta(days=n % 300)).isoformat(),
            "procedure_code": "99213",
            "diagnosis_codes": ["J20.9", "E11.9", "I10"],
            "claim_line_count": 1,  # each line a whole claim: a ClaimResult for each
        }
        records.append((b"M1", orjson.dumps(doc)))
    return records


def test_a_member_id_with_a_history_over_the_changelogs_limit_is_bounded(
    settings, worker, bundle
) -> None:
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    outputs = [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]
    start = asyncio.run(end_offsets(settings, outputs))
    positions = asyncio.run(publish(settings, _lines()))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=180))
    assert ledger.complete(), worker.log_tail()
    assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()
    assert not any(o.kind == "dlq" for outs in ledger.outputs.values() for o in outs)

    metrics = httpx.get(worker.base_url + "/metrics", timeout=5).text
    for counter in ("scrubber_history_lines_capped_total", "scrubber_claims_forgotten_total"):
        (value,) = re.findall(rf"^{counter} ([0-9.e+]+)$", metrics, re.M)
        assert float(value) > 0, counter
    # Every one-line claim was answered, its revisions rising one by one (a later line of the
    # same date and code revises an earlier one): forgetting the oldest claims neither lost an
    # answer nor started a claim's revisions again.
    claims = asyncio.run(_claim_results(settings))
    assert sorted(claims) == sorted(f"SHARED{n:06d}" for n in range(LINES))
    assert all(revisions == tuple(range(1, len(revisions) + 1)) for revisions in claims.values())

    log = worker.log_path.read_text()
    assert "history reached its size limit" in log and "claims reached their size limit" in log
    assert STORED_VALUE_MAX_BYTES < 1024 * 1024


async def _claim_results(settings, seconds: float = 60) -> dict[str, tuple[int, ...]]:
    """The revisions of every ClaimResult on the claims topic, by claim id, up to its end."""
    import time

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from scrubber.kafka import client_kwargs, partition_counts

    counts = await partition_counts(settings, [settings.claims_topic])
    tps = [TopicPartition(settings.claims_topic, p) for p in range(counts[settings.claims_topic])]
    consumer = AIOKafkaConsumer(**client_kwargs(settings), auto_offset_reset="earliest")
    await consumer.start()
    found: dict[str, tuple[int, ...]] = {}
    try:
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + seconds
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "the claims topic was not read to its end"
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    doc = orjson.loads(record.value)
                    found[doc["claim_id"]] = (*found.get(doc["claim_id"], ()), doc["revision"])
    finally:
        await consumer.stop()
    return found
