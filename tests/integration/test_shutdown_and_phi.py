"""A graceful stop loses and repeats nothing; canary PHI never leaves the message values."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import orjson
import pytest

from scrubber.accounting import collect, end_offsets, key_of, publish
from scrubber.contracts import HEADER_DETAIL
from scrubber.examples import generate

from .conftest import assert_complete, load_bundle

pytestmark = pytest.mark.integration


def _outputs(settings):
    return [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]


def test_sigterm_finishes_flushes_commits_and_exits(settings, worker, bundle) -> None:
    asyncio.run(load_bundle(settings, bundle))
    # Large enough that the worker (about 2,000 lines/s here) is still busy when it is stopped.
    lines = generate(bundle, 12000, seed=31, patients=2400)
    worker.start()
    worker.wait_ready()
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(publish(settings, [(key_of(r), r) for r in lines]))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = asyncio.run(collect(settings, positions, start, wait_seconds=30, to_end=True))
        if len(seen.outputs) >= len(positions) // 4:
            break
    assert worker.proc is not None
    stopped_at = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    code = worker.proc.wait(35)  # within the 30 s grace period of deploy/k8s, and then some
    assert code == 0, worker.log_tail()
    assert time.monotonic() - stopped_at < 30
    partial = asyncio.run(collect(settings, positions, start, wait_seconds=1))
    assert not partial.complete(), "the worker finished before it could be stopped"

    worker.start()
    worker.wait_ready()
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=120))
    assert_complete(ledger, worker)
    # Nothing handled before the stop is handled again: the stop committed what it had done.
    assert ledger.duplicates() == 0


CANARIES = {
    "member": "CANARYMBR9911",
    "birth": "1911-11-11",
}


def test_canary_phi_stays_out_of_logs_metrics_and_dead_letter_headers(settings, worker, bundle):
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()
    good = orjson.loads(generate(bundle, 1, seed=2, mix=None)[0])
    good["patient"] = {"member_id": CANARIES["member"], "birth_date": CANARIES["birth"]}
    bad_type = dict(good, units=CANARIES["member"])  # the canary inside a wrong-typed field
    broken = orjson.dumps(good)[:-7] + CANARIES["member"].encode()  # truncated, canary at the end
    key = CANARIES["member"].encode()
    records = [
        (key, orjson.dumps(good)),
        (key, orjson.dumps(bad_type)),
        (key, broken),
        (b"other-key", orjson.dumps(good)),  # key mismatch: the key differs from the member id
        (key, orjson.dumps(dict(good, procedure_code="99999", line_number=2))),
    ]
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(publish(settings, records))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=30))
    assert_complete(ledger, worker)

    dead = [o for outs in ledger.outputs.values() for o in outs if o.kind == "dlq"]
    assert len(dead) == 3
    for out in dead:
        for name, value in out.headers.items():
            for canary in CANARIES.values():
                assert canary.encode() not in value, name
        assert out.headers[HEADER_DETAIL]
    metrics = httpx.get(worker.base_url + "/metrics", timeout=5).text
    readyz = httpx.get(worker.base_url + "/readyz", timeout=5).text
    assert worker.stop() == 0
    logs = worker.log_path.read_text()
    for canary in CANARIES.values():
        assert canary not in metrics
        assert canary not in readyz
        assert canary not in logs
