"""Reference data under a running worker: hot swap, and Redis going away."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from scrubber.accounting import collect, end_offsets, key_of, publish
from scrubber.examples import generate
from scrubber.refdata.model import Bundle

from .conftest import assert_complete, free_port, load_bundle, wait_progress

pytestmark = pytest.mark.integration


def _outputs(settings):
    return [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]


def _variant(bundle: Bundle) -> Bundle:
    """The same data with one description changed: another version, the same verdicts."""
    codes = dict(bundle.codes)
    codes["99213"] = codes["99213"].model_copy(update={"description": "hot-swapped"})
    return bundle.model_copy(update={"codes": codes}).with_version()


def test_hot_swap_under_a_running_worker(settings, worker, bundle) -> None:
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    newer = _variant(bundle)
    lines = generate(bundle, 4000, seed=5)
    records = [(key_of(raw), raw) for raw in lines]
    start = asyncio.run(end_offsets(settings, _outputs(settings)))

    positions = asyncio.run(publish(settings, records[:2000]))
    wait_progress(settings, positions, start, 0.05)  # the first version has judged some
    asyncio.run(load_bundle(settings, newer))  # while the worker is busy with the first half
    worker.wait_version(newer.version)  # not a sleep: a loaded machine swaps later
    positions += asyncio.run(publish(settings, records[2000:]))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=120))
    assert_complete(ledger, worker)

    versions: dict[str, int] = {}
    last_half = set(positions[2000:])
    for pos, outs in ledger.outputs.items():
        for out in outs:
            if out.kind == "dlq":
                continue
            doc = orjson.loads(out.value)
            versions[doc["refdata_version"]] = versions.get(doc["refdata_version"], 0) + 1
            if pos in last_half:
                assert doc["refdata_version"] == newer.version
    # Every result names exactly one of the two complete versions, and both were used.
    assert set(versions) == {bundle.version, newer.version}, versions
    metrics = httpx.get(worker.base_url + "/metrics", timeout=5).text
    assert "scrubber_refdata_swaps_total 2.0" in metrics
    assert f'scrubber_refdata_info{{version="{newer.version}"}} 1.0' in metrics


def test_worker_keeps_its_snapshot_when_redis_goes_away(settings, worker, bundle, tmp_path):
    """A private redis-server, so that stopping it disturbs no other test."""
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is installed by deploy/local/stack.sh"
    port = free_port()
    proc = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        private = settings.model_copy(
            update={"redis_url": settings.redis_url.__class__(f"redis://127.0.0.1:{port}/0")}
        )
        worker.settings = private
        deadline = time.monotonic() + 10
        while True:
            try:
                asyncio.run(load_bundle(private, bundle))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        worker.start()
        worker.wait_ready()
    finally:
        proc.terminate()
        proc.wait(10)

    # Redis is gone: the worker still scrubs with the version it holds, and says so.
    deadline = time.monotonic() + 15
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = worker.readyz()
        assert status is not None
        body = status[1]
        if body.get("redis_ok") is False:
            break
        time.sleep(0.25)
    assert body.get("redis_ok") is False
    assert body.get("refdata_version") == bundle.version

    lines = generate(bundle, 50, seed=9)
    start = asyncio.run(end_offsets(private, _outputs(private)))
    positions = asyncio.run(publish(private, [(key_of(r), r) for r in lines]))
    ledger = asyncio.run(collect(private, positions, start, wait_seconds=30))
    assert_complete(ledger, worker)
    assert all(
        orjson.loads(o.value)["refdata_version"] == bundle.version
        for outs in ledger.outputs.values()
        for o in outs
        if o.kind != "dlq"
    )
    metrics = httpx.get(worker.base_url + "/metrics", timeout=5).text
    assert "scrubber_redis_up 0.0" in metrics
    assert Path(worker.log_path).read_text().count("redis unreachable") >= 1
