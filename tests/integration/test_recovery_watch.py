"""The recovery watch on a real worker, Kafka and changelog.

- Records the consumer fetched but Faust never handed to the recovery (what a rebalance can do,
  see scrubber/stream/recovery.py) are fetched again, and the recovery completes with every
  patient's history.
- A recovery that can never finish ends the worker (status 76) instead of hanging it. There
  the changelog partition ends with a transaction marker: the records before it are read, but
  Faust's recovery waits for the marker's offset, which no consumer is ever given
  (faust-streaming handles this only in its exactly-once mode).

Without the watch the worker waits forever in both, holding its partitions and answering
nothing.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from scrubber.history import PatientHistory
from scrubber.kafka import history_changelog
from scrubber.stream.health import RECOVERING
from scrubber.stream.recovery import EXIT_RECOVERY_STALLED

from .conftest import REPO, WorkerProcess, load_bundle, settings_env

pytestmark = pytest.mark.integration


async def _end_with_a_transaction_marker(settings, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        transactional_id=f"{settings.app_id}-marker",
        enable_idempotence=True,
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"H2{}\n", key=b"M-1", partition=0)
    finally:
        await producer.stop()


def test_a_recovery_that_cannot_finish_ends_the_worker(
    settings, worker, bundle, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"recovery_stall_seconds": 5.0})
    proc = WorkerProcess(settings, tmp_path / "stalled.log")
    asyncio.run(load_bundle(settings, bundle))
    asyncio.run(_end_with_a_transaction_marker(settings, history_changelog(settings)))
    began = time.monotonic()
    proc.start()
    assert proc.proc is not None
    try:
        status = proc.proc.wait(timeout=180)
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
    log = proc.log_path.read_text(errors="replace")
    assert status == EXIT_RECOVERY_STALLED, proc.log_tail()
    assert "moving its partition back" in log  # it tried to repair the recovery first
    assert "exiting without committing" in log
    # Three tries of five seconds each (read every five): well inside a minute of the stall.
    assert time.monotonic() - began < 150


#: The worker, with Faust's fetch loop losing the first records it fetches of each changelog
#: partition after the consumer has moved past them: the effect of the rebalance race.
LOSING_WORKER = """
import faust.transport.consumer as faust_consumer
from scrubber.config import Settings
from scrubber.kafka import history_changelog
from scrubber.stream.app import Worker

settings = Settings()
changelog = history_changelog(settings)
fetch = faust_consumer.Consumer._wait_next_records
lost = set()

async def losing(self, timeout):
    records, active = await fetch(self, timeout)
    for tp in list(records or ()):
        if tp.topic == changelog and tp not in lost:
            lost.add(tp)
            print(f"lost {len(records.pop(tp))} records of changelog partition {tp.partition}",
                  flush=True)
    return records, active

faust_consumer.Consumer._wait_next_records = losing
Worker(settings).run()
"""


async def _histories(settings, patients: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(patients):
            member = f"M-{n}"
            value = PatientHistory.empty(member).to_bytes()
            await producer.send(
                history_changelog(settings),
                value,
                key=member.encode(),
                partition=n % settings.partitions,
            )
        await producer.flush()
    finally:
        await producer.stop()


def test_records_lost_to_the_recovery_are_fetched_again(settings, worker, bundle, tmp_path) -> None:
    settings = settings.model_copy(update={"recovery_stall_seconds": 5.0})
    asyncio.run(load_bundle(settings, bundle))
    asyncio.run(_histories(settings, 400))
    proc = WorkerProcess(settings, tmp_path / "losing.log")
    with proc.log_path.open("ab") as log:
        proc.proc = subprocess.Popen(
            [sys.executable, "-c", LOSING_WORKER],
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    reasons: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until ready, noting every reason it gave
            assert proc.proc.poll() is None, proc.log_tail()
            answer = proc.readyz()
            if answer is not None and answer[0] == 200:
                break
            if answer is not None:
                reasons.update(answer[1]["reasons"])  # type: ignore[arg-type]
            time.sleep(0.25)
        proc.wait_ready(seconds=1)
        metrics = httpx.get(proc.base_url + "/metrics", timeout=5).text
    finally:
        status = proc.stop()
    assert status == 0, proc.log_tail()
    assert RECOVERING in reasons, reasons  # not ready while the histories were incomplete
    log = proc.log_path.read_text(errors="replace")
    assert len(re.findall(r"lost \d+ records of changelog partition", log)) == settings.partitions
    assert "moving its partition back" in log
    assert re.search(r"^scrubber_history_patients 400(\.0)?$", metrics, re.M), metrics
    reseeks = re.search(r"^scrubber_table_recovery_reseeks_total (\d+)", metrics, re.M)
    assert reseeks is not None and int(reseeks.group(1)) >= 1
