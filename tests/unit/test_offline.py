"""The offline scrub: every input line is a result or a reject, rejects carry no input text."""

from __future__ import annotations

import gc
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson

from scrubber import offline
from scrubber.contracts import ScrubResult
from scrubber.offline import scrub_lines
from scrubber.refdata.build import build_bundle
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import ReferenceSnapshot

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _scrub(lines: list[bytes], snapshot: ReferenceSnapshot):
    results, rejects = io.BytesIO(), io.BytesIO()
    summary = scrub_lines(lines, snapshot, results, rejects, "in.jsonl", clock=lambda: NOW)
    return (
        summary,
        [ScrubResult.model_validate_json(x) for x in results.getvalue().splitlines()],
        [orjson.loads(x) for x in rejects.getvalue().splitlines()],
    )


def test_counts_add_up_and_rejects_name_their_line(line_bytes, snapshot) -> None:
    canary = b"CANARY-PHI-0042"
    lines = [
        line_bytes(),
        b"",
        line_bytes(claim_id="C2", procedure_code="99999"),
        b'{"patient": {"member_id": "' + canary + b'"}}',
        b"not json " + canary,
    ]
    summary, results, rejects = _scrub(lines, snapshot)
    assert (summary.lines_in, summary.blank) == (4, 1)
    assert (summary.accepted, summary.flagged, summary.rejected) == (1, 1, 2)
    assert [r.line_id for r in results] == ["C1:1", "C2:1"]
    assert [r["input_line"] for r in rejects] == [4, 5]
    assert [r["error_code"] for r in rejects] == ["contract_violation", "not_json"]
    assert all(canary.decode() not in orjson.dumps(r).decode() for r in rejects)
    assert summary.findings_by_rule == {"code.unknown": 1}


def test_demo_input_exercises_every_route() -> None:
    """seeds/examples/claims.jsonl: valid, flag-worthy and malformed lines, all accounted for."""
    bundle = build_bundle(REPO / "seeds", mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)
    lines = (REPO / "seeds/examples/claims.jsonl").read_bytes().splitlines()
    summary, results, _rejects = _scrub(lines, ReferenceSnapshot(bundle))
    assert summary.lines_in == len(lines)
    assert summary.accepted + summary.flagged + summary.rejected == len(lines)
    assert summary.accepted > 0 and summary.flagged > 0 and summary.rejected > 0
    # One result per line id and revision; revisions only where a later line changed a verdict.
    assert len({(r.line_id, r.revision) for r in results}) == len(results)
    assert len({r.line_id for r in results}) == summary.accepted + summary.flagged
    assert len(results) == summary.accepted + summary.flagged + summary.revisions
    assert {"code.unknown", "modifier.malformed"} <= summary.findings_by_rule.keys()


def _raw_scrub(lines: list[bytes], snapshot: ReferenceSnapshot) -> tuple[bytes, bytes]:
    results, rejects = io.BytesIO(), io.BytesIO()
    scrub_lines(lines, snapshot, results, rejects, "in.jsonl", clock=lambda: NOW)
    return results.getvalue(), rejects.getvalue()


def test_freezing_what_the_scrub_holds_changes_no_byte(line_bytes, snapshot, monkeypatch) -> None:
    """Freezing every few lines keeps the histories out of the collector's full passes; the
    output is the same, and the collector gets every object back at the end."""
    lines = [
        line_bytes(claim_id=f"C{n}", service_date=f"2025-05-{1 + n % 9:02d}", procedure_code=code)
        for n, code in enumerate(["99213", "11960", "99213", "99999", "11960", "99213"] * 3)
    ] + [b"not json"]
    assert gc.get_freeze_count() == 0
    plain = _raw_scrub(lines, snapshot)
    monkeypatch.setattr(offline, "FREEZE_EVERY", 2)
    frozen: list[int] = []
    freeze = gc.freeze

    def counted() -> None:
        freeze()
        frozen.append(gc.get_freeze_count())

    monkeypatch.setattr(offline.gc, "freeze", counted)
    assert _raw_scrub(lines, snapshot) == plain
    assert len(frozen) == len(lines) // 2
    assert all(frozen)
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_objects_itself_is_left_as_it_is(
    line_bytes, snapshot, monkeypatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(offline, "FREEZE_EVERY", 1)
    monkeypatch.setattr(offline.gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(offline.gc, "unfreeze", lambda: calls.append("unfreeze"))
    monkeypatch.setattr(offline.gc, "get_freeze_count", lambda: 1)
    _raw_scrub([line_bytes()] * 3, snapshot)
    assert calls == []
