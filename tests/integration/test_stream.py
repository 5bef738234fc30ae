"""The worker over the real broker and cache: every input ends in exactly one output."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from scrubber.accounting import collect, end_offsets, key_of, publish
from scrubber.contracts import HEADER_ERROR_CODE, ScrubResult
from scrubber.examples import generate
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.library import default_engine

from .conftest import assert_complete, load_bundle

pytestmark = pytest.mark.integration


def _outputs(settings):
    return [settings.accepted_topic, settings.flagged_topic, settings.dlq_topic]


def test_every_line_ends_in_exactly_one_output(settings, worker, bundle) -> None:
    asyncio.run(load_bundle(settings, bundle))
    worker.start()
    worker.wait_ready()

    lines = generate(bundle, 1200, seed=11)
    records: list[tuple[bytes | None, bytes]] = [(key_of(raw), raw) for raw in lines]
    # Keys the scrubber must refuse: none at all, and one that is not the member id.
    valid = [r for r in records if r[0] is not None]
    records.append((None, valid[0][1]))
    records.append((b"not-the-member", valid[1][1]))

    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(publish(settings, records))
    ledger = asyncio.run(collect(settings, positions, start, wait_seconds=90))

    assert_complete(ledger, worker)
    assert ledger.duplicates() == 0

    # The offline path, on the same bytes and keys in the same order, is the oracle for each
    # input's fate and for every line's final verdict.
    snapshot = ReferenceSnapshot(bundle)
    offline = LineProcessor(default_engine())
    store = MemoryHistoryStore()
    offline_final: dict[str, ScrubResult] = {}
    kinds: Counter[str] = Counter()
    for (key, raw), pos in zip(records, positions, strict=True):
        (own,) = ledger.own(pos)
        kinds[own.kind] += 1
        emissions = offline.process(
            raw,
            key,
            SourcePosition(settings.input_topic, *pos),
            snapshot,
            store,
            datetime.now(UTC),
        ).emissions
        expected = emissions[0]
        for e in emissions:
            if e.result is not None:
                offline_final[e.result.line_id] = e.result
        assert own.kind == expected.kind, pos
        assert own.key == key
        if own.kind == "dlq":
            assert own.value == raw  # the original bytes, unchanged
            assert expected.dead_letter is not None
            assert own.headers[HEADER_ERROR_CODE] == expected.dead_letter.error_code.value.encode()
        else:
            result = ScrubResult.model_validate_json(own.value)
            assert expected.result is not None
            assert result.line_id == expected.result.line_id
            assert result.findings == expected.result.findings
            assert result.refdata_version == bundle.version

    assert sum(kinds.values()) == len(records)
    # Exactly one final verdict per valid line id, and it is the offline scrub's.
    final = ledger.final()
    assert final.keys() == offline_final.keys()
    for line_id, doc in final.items():
        assert doc["outcome"] == offline_final[line_id].outcome.value, line_id
        assert doc["revision"] == offline_final[line_id].revision, line_id
    # The data must exercise every route, or this test proves less than it claims.
    assert kinds["accepted"] > 500 and kinds["flagged"] > 50 and kinds["dlq"] > 50

    metrics = httpx.get(worker.base_url + "/metrics", timeout=5).text
    assert f"scrubber_lines_consumed_total {float(len(records))}" in metrics
    assert 'scrubber_results_total{outcome="flagged"}' in metrics
    assert 'scrubber_dead_letters_total{error_code="missing_key"} 1.0' in metrics
    assert 'scrubber_dead_letters_total{error_code="key_mismatch"} 1.0' in metrics
    assert worker.stop() == 0

    # No PHI in the worker's logs: member ids and birth dates of every line sent.
    log_text = worker.log_path.read_text()
    for _key, raw in records[:200]:
        try:
            patient = orjson.loads(raw)["patient"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        assert patient["member_id"] not in log_text
        assert patient.get("birth_date", "-") not in log_text


def test_no_verdict_without_reference_data(settings, worker, bundle) -> None:
    worker.start()
    # Alive, but not ready: Redis has no version under this prefix yet.
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        status = worker.readyz()
        if status is not None:
            break
        time.sleep(0.25)
    assert status is not None and status[0] == 503
    assert any("reference data" in str(r) for r in status[1]["reasons"])  # type: ignore[union-attr]
    assert httpx.get(worker.base_url + "/healthz", timeout=2).status_code == 200

    raw = generate(bundle, 1, seed=3)[0]
    start = asyncio.run(end_offsets(settings, _outputs(settings)))
    positions = asyncio.run(publish(settings, [(key_of(raw), raw)]))
    early = asyncio.run(collect(settings, positions, start, wait_seconds=4))
    assert not early.outputs, "a verdict was emitted without reference data"

    asyncio.run(load_bundle(settings, bundle))
    worker.wait_ready()
    late = asyncio.run(collect(settings, positions, start, wait_seconds=30))
    assert_complete(late, worker)
    (own,) = late.own(positions[0])
    assert own.kind in ("accepted", "flagged")
    assert orjson.loads(own.value)["refdata_version"] == bundle.version
