"""Patient history survives a SIGKILL and moves with its partitions between workers.

Each scenario publishes a multi-claim stream with lines arriving out of date-of-service order,
and checks that after keeping the highest revision per line id the final verdicts equal those of
the offline scrub on the same input, and that every input has its own output.
"""

from __future__ import annotations

import asyncio
import io
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rocksdict import AccessType, Rdict

from scrubber.accounting import collect, end_offsets, key_of, publish
from scrubber.contracts import ScrubResult
from scrubber.examples import generate
from scrubber.kafka import HISTORY_TABLE, TopicMismatchError, ensure_topics
from scrubber.offline import scrub_lines
from scrubber.refdata.model import ReferenceSnapshot

from .conftest import (
    WorkerProcess,
    assert_complete,
    free_port,
    load_bundle,
    progress,
    wait_progress,
)

pytestmark = pytest.mark.integration


def _offline_final(lines: list[bytes], bundle) -> dict[str, tuple[str, tuple[str, ...]]]:
    results = io.BytesIO()
    scrub_lines(
        lines,
        ReferenceSnapshot(bundle),
        results,
        io.BytesIO(),
        "in.jsonl",
        clock=lambda: datetime.now(UTC),
    )
    final: dict[str, ScrubResult] = {}
    for raw in results.getvalue().splitlines():
        r = ScrubResult.model_validate_json(raw)
        if r.line_id not in final or r.revision > final[r.line_id].revision:
            final[r.line_id] = r
    return {k: (v.outcome.value, tuple(f.rule_id for f in v.findings)) for k, v in final.items()}


def _stream_final(ledger) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {
        k: (d["outcome"], tuple(f["rule_id"] for f in d["findings"]))
        for k, d in ledger.final().items()
    }


def _outputs(settings):
    return [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]


def _lines(bundle, n=3000):
    # Few patients and dense dates, so that surgeries, visits, add-ons and duplicates meet.
    return generate(bundle, n, seed=23, patients=150)


def test_sigkill_mid_stream_recovers_history_from_the_changelog(settings, worker, bundle):
    asyncio.run(load_bundle(settings, bundle))
    lines = _lines(bundle)
    records = [(key_of(raw), raw) for raw in lines]
    worker.start()
    worker.wait_ready()
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    # Two thirds first. The worker is killed without warning once it has answered a third of
    # all the lines: mid-stream on a slow machine; on a fast one it may have answered the rest
    # of the two thirds too, its last inputs not yet committed. The last third is published
    # only after the kill, so those lines are judged against histories recovered from the
    # changelog whatever the machine's speed.
    first = len(records) * 2 // 3
    positions = asyncio.run(publish(settings, records[:first]))
    wait_progress(settings, positions, start, 0.5)
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait()
    killed_at = progress(settings, positions, start)
    assert killed_at < len(records), "the worker finished before it could be killed"

    worker.start()
    worker.wait_ready(90)
    positions += asyncio.run(publish(settings, records[first:]))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=120))
    assert_complete(ledger, worker)
    assert _stream_final(ledger) == _offline_final(lines, bundle)
    summary = ledger.summary()
    assert summary["revisions"] > 0, "the data should make later lines revise earlier ones"


def test_two_workers_share_the_partitions(settings, worker, bundle, tmp_path):
    asyncio.run(load_bundle(settings, bundle))
    second = WorkerProcess(
        settings.model_copy(update={"web_port": free_port(), "data_dir": str(tmp_path / "w2")}),
        tmp_path / "worker2.log",
    )
    lines = _lines(bundle, 2000)
    records = [(key_of(raw), raw) for raw in lines]
    worker.start()
    second.start()
    try:
        # One of the two may legitimately hold no partition; wait until both answer.
        worker.wait_alive()
        second.wait_alive()
        start = asyncio.run(end_offsets(settings, _outputs(settings)))
        positions = asyncio.run(publish(settings, records))
        ledger = asyncio.run(collect(settings, positions, start, wait_seconds=120))
    finally:
        second.stop()
    assert_complete(ledger, worker, second)
    assert _stream_final(ledger) == _offline_final(lines, bundle)


def test_partition_mismatch_is_refused(settings) -> None:
    asyncio.run(ensure_topics(settings))
    other = settings.model_copy(update={"partitions": settings.partitions + 2})
    with pytest.raises(TopicMismatchError, match="partitions"):
        asyncio.run(ensure_topics(other))


async def _create_topic(settings, name: str, configs: dict[str, str]) -> None:
    """A topic made by hand, before the scrubber creates its own (as an operator might)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from scrubber.kafka import client_kwargs

    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        topic = NewTopic(
            name=name,
            num_partitions=settings.partitions,
            replication_factor=1,
            topic_configs=configs,
        )
        await admin.create_topics([topic])
    finally:
        await admin.close()


def test_a_history_changelog_deleted_by_time_is_refused(settings) -> None:
    from scrubber.kafka import history_changelog

    asyncio.run(_create_topic(settings, history_changelog(settings), {"cleanup.policy": "delete"}))
    with pytest.raises(TopicMismatchError, match="compacted"):
        asyncio.run(ensure_topics(settings))


def test_a_dead_letter_topic_smaller_than_a_dead_letter_is_refused(settings) -> None:
    """A dead-letter topic made before its limit was set (or by hand) takes 1 MiB."""
    asyncio.run(
        _create_topic(settings, settings.dlq_topic, {"max.message.bytes": str(1024 * 1024)})
    )
    with pytest.raises(TopicMismatchError, match=r"max\.message\.bytes=1048576"):
        asyncio.run(ensure_topics(settings))


def test_rocksdb_table_store_survives_sigkill(settings, worker, bundle, tmp_path):
    """SCRUBBER_TABLE_STORE=rocksdb:// (rocksdict): the large-state store, same guarantees."""
    worker.settings = settings.model_copy(update={"table_store": "rocksdb://"})
    asyncio.run(load_bundle(settings, bundle))
    lines = _lines(bundle, 1200)
    records = [(key_of(raw), raw) for raw in lines]
    worker.start()
    worker.wait_ready()
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(publish(settings, records))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = asyncio.run(collect(settings, positions, start, wait_seconds=0.5))
        if len(seen.outputs) >= len(positions) // 3:
            break
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait()
    worker.start()
    worker.wait_ready(90)
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=120))
    assert_complete(ledger, worker)
    assert _stream_final(ledger) == _offline_final(lines, bundle)
    # RocksDB databases (a CURRENT file each), not just Faust's empty table directories.
    databases = [f for f in Path(settings.data_dir).rglob("CURRENT") if f.is_file()]
    assert databases, "the history table is not in RocksDB"
    assert any(
        f.suffix == ".sst" or f.name.endswith(".log") for d in databases for f in d.parent.iterdir()
    )
    # Each database keeps the offset of the last changelog record it holds, which is where a
    # restarted worker resumes reading the changelog: it must be the changelog's last record.
    assert worker.stop() == 0
    changelog = f"{settings.app_id}-{HISTORY_TABLE}-changelog"
    ends = asyncio.run(end_offsets(settings, [changelog]))
    persisted = {}
    for current in databases:
        db = Rdict(str(current.parent), access_type=AccessType.read_only())
        try:
            partition = int(current.parent.name.rsplit("-", 1)[1].split(".")[0])
            raw = db.get(b"__faust\0offset__")
            persisted[partition] = int(raw) if raw is not None else None
        finally:
            db.close()
    assert persisted == {tp.partition: end - 1 for tp, end in ends.items() if end > 0}
