"""`scrubber dlq inspect` and `replay` against real dead letters."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from scrubber.accounting import collect, end_offsets, publish
from scrubber.contracts import DEAD_LETTER_PREVIEW_BYTES, HEADER_ATTEMPT
from scrubber.dlq import MAX_ATTEMPTS, Selection, inspect, read_dead_letters, replay

from .conftest import REPO, load_bundle, settings_env

pytestmark = pytest.mark.integration

CANARY = b"CANARY-PHI-5521"


def _outputs(settings):
    return [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]


def test_inspect_and_replay_with_an_attempt_limit(settings, worker, bundle) -> None:
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    pills = [(b"M1", b"not json " + CANARY), (b"M2", b'{"claim_id": "' + CANARY + b'"}')]
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(publish(settings, pills))
    assert asyncio.run(collect(settings, positions, start, wait_seconds=30)).complete()

    found = asyncio.run(inspect(settings, Selection()))
    assert found.total == 2
    assert found.by_code == {"not_json": 1, "contract_violation": 1}
    assert all(CANARY.decode() not in str(r) for r in found.records)

    cli = subprocess.run(
        [sys.executable, "-m", "scrubber", "dlq", "inspect"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert "2 dead letters" in cli.stdout and CANARY.decode() not in cli.stdout + cli.stderr

    only_json = Selection(error_codes=frozenset({"not_json"}))
    dry = asyncio.run(replay(settings, only_json, dry_run=True))
    assert (dry.selected, dry.replayed, dry.refused) == (1, 0, [])

    # Each replay fails again and comes back with the next attempt number, up to the limit.
    for attempt in range(2, MAX_ATTEMPTS + 1):
        before = asyncio.run(end_offsets(settings, [settings.dlq_topic]))
        report = asyncio.run(replay(settings, only_json, dry_run=False))
        assert report.replayed >= 1
        newest = _wait_for_new_dead_letter(settings, before)
        assert newest.headers[HEADER_ATTEMPT] == str(attempt).encode()
        assert newest.value == pills[0][1]  # the original bytes, unchanged

    last = asyncio.run(read_dead_letters(settings, only_json))
    final = max(last, key=lambda r: r.attempt)
    assert final.attempt == MAX_ATTEMPTS
    refused = asyncio.run(
        replay(
            settings,
            Selection(
                error_codes=frozenset({"not_json"}),
                partition=final.partition,
                from_offset=final.offset,
                to_offset=final.offset,
            ),
            dry_run=False,
        )
    )
    assert refused.replayed == 0 and refused.refused == [(final.partition, final.offset)]


def _wait_for_new_dead_letter(settings, before):
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = asyncio.run(read_dead_letters(settings, Selection()))
        fresh = [r for r in records if r.offset >= before.get(_tp(settings, r.partition), 0)]
        if fresh:
            return fresh[-1]
        time.sleep(0.5)
    raise AssertionError("the replayed message did not come back to the dead-letter topic")


def _tp(settings, partition):
    from aiokafka import TopicPartition

    return TopicPartition(settings.dlq_topic, partition)


def test_an_input_larger_than_the_dead_letter_topic_takes_is_cut_and_never_replayed(
    settings, worker, bundle, line_bytes
) -> None:
    """A compressing upstream can put 5 MiB on the input topic; its dead letter must still fit.

    Without the cut, Kafka refuses the dead letter, the worker exits without a commit, and every
    worker that takes the partition after it fails on the same offset.
    """
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    huge = b'{"claim_id": "' + CANARY + b'", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    good = line_bytes()  # member M1
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(_publish_compressed(settings, [(b"M1", huge), (b"M1", good)]))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=60))
    assert ledger.complete()  # the line after it was judged: the worker is still at work
    assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail()

    (letter,) = asyncio.run(read_dead_letters(settings, Selection()))
    assert letter.error_code == "oversize"
    assert (letter.original_bytes, letter.original_key_bytes) == (len(huge), None)
    assert letter.value == huge[:DEAD_LETTER_PREVIEW_BYTES] and letter.key == b"M1"

    report = asyncio.run(replay(settings, Selection(), dry_run=False))
    assert (report.selected, report.replayed) == (1, 0)
    assert report.cut == [(letter.partition, letter.offset)] and report.refused == []
    cli = subprocess.run(
        [sys.executable, "-m", "scrubber", "dlq", "replay", "--execute"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert "selected 1; replayed 0" in cli.stdout
    assert "refused 1 that hold only the first bytes" in cli.stdout
    assert CANARY.decode() not in cli.stdout + cli.stderr + worker.log_path.read_text()


async def _publish_compressed(settings, records):
    """What an upstream with gzip and a large request limit sends: a batch under 1 MiB."""
    from aiokafka import AIOKafkaProducer

    from scrubber.kafka import client_kwargs

    producer = AIOKafkaProducer(
        **client_kwargs(settings),
        acks="all",
        compression_type="gzip",
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        metas = [
            await producer.send_and_wait(settings.input_topic, value=v, key=k) for k, v in records
        ]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]
