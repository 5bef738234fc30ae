"""The offline scrub in several processes: the same bytes as one process, a patient per process.

Real forked processes; the stream is the benchmark's (late lines, corrections, redeliveries,
unreadable lines), so lines whose verdicts depend on their patient's other lines are many.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import orjson
import pytest

from scrubber import offline
from scrubber.bench.generator import StreamGenerator
from scrubber.contracts import ClaimLine
from scrubber.offline import ScrubSummary, scrub_lines, shard_of
from scrubber.refdata.build import build_bundle
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import Bundle, ReferenceSnapshot
from scrubber.rules.library import default_engine

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 5, tzinfo=UTC)


@cache
def _bundle() -> Bundle:
    return build_bundle(REPO / "seeds", mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)


@cache
def _stream() -> tuple[bytes, ...]:
    raws = StreamGenerator(_bundle(), seed=11, patients=120, start=date(2025, 6, 2)).generate(2_500)
    # Blank lines too: counted, never handed to a process, and numbered like any other line.
    return (*raws[:700], b"", b"   ", *raws[700:])


def _scrub(lines, jobs: int, **kwargs) -> tuple[bytes, bytes, ScrubSummary]:
    results, rejects = io.BytesIO(), io.BytesIO()
    summary = scrub_lines(
        lines,
        ReferenceSnapshot(_bundle()),
        results,
        rejects,
        "in.jsonl",
        clock=lambda: NOW,
        jobs=jobs,
        **kwargs,
    )
    return results.getvalue(), rejects.getvalue(), summary


@pytest.mark.parametrize("jobs", [2, 3])
def test_processes_write_what_one_process_writes(jobs: int, monkeypatch) -> None:
    lines = _stream()
    alone = _scrub(lines, 1)
    monkeypatch.setattr(offline, "BATCH_LINES", 97)  # many batches, one always in flight
    together = _scrub(lines, jobs)
    assert together[0] == alone[0]
    assert together[1] == alone[1]
    assert together[2] == alone[2]
    summary = alone[2]
    # The stream really holds what makes the order matter.
    assert summary.revisions > 0 and summary.redelivered > 0 and summary.rejected > 0
    assert summary.blank == 2
    # And the patients really were spread over the processes.
    shards = {shard_of(raw, jobs) for raw in lines if raw.strip()}
    assert shards == set(range(jobs))


def test_a_patient_goes_to_one_process_by_the_member_id_the_contract_reads(line_bytes) -> None:
    for jobs in (2, 3, 7):
        ids = [f"M{n}" for n in range(40)]
        for member in ids:
            first = line_bytes(patient={"member_id": member, "date_of_birth": "1960-01-01"})
            later = line_bytes(
                claim_id="C9",
                patient={"member_id": member, "date_of_birth": "1960-01-01"},
            )
            assert shard_of(first, jobs) == shard_of(later, jobs)
        assert len({shard_of(line_bytes(patient={"member_id": m}), jobs) for m in ids}) == jobs
    # A repeated key: the contract keeps the last one, and so does the routing.
    raw = line_bytes(patient={"member_id": "M-LAST", "date_of_birth": "1960-01-01"})
    doubled = raw.replace(b'"member_id":"M-LAST"', b'"member_id":"M-FIRST","member_id":"M-LAST"')
    assert doubled != raw
    assert ClaimLine.model_validate_json(doubled).patient.member_id == "M-LAST"
    for jobs in (2, 3, 5):
        assert shard_of(doubled, jobs) == shard_of(raw, jobs)


def test_a_line_the_contract_reads_goes_to_its_patient_even_where_orjson_would_not(
    line_bytes,
) -> None:
    """pydantic-core takes ``NaN`` in an ignored field, orjson refuses it: routing must not."""
    raw = line_bytes(patient={"member_id": "M1", "date_of_birth": "1960-01-01"})
    odd = raw[:-1] + b',"note":NaN}'
    assert ClaimLine.model_validate_json(odd).patient.member_id == "M1"
    for jobs in (2, 3, 5):
        assert shard_of(odd, jobs) == shard_of(raw, jobs)
    assert any(shard_of(raw, jobs) != 0 for jobs in (2, 3, 5))  # else the test proves nothing
    # And the scrub in processes writes what one process writes for such a patient.
    lines = [line_bytes(claim_id=f"C{n}", patient={"member_id": "M1"}) for n in range(3)]
    lines.insert(1, lines[0][:-1] + b',"note":NaN}')
    assert _scrub(lines, 3)[:2] == _scrub(lines, 1)[:2]


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[1, 2]", b'{"patient": 3}', b'{"patient": {"member_id": 7}}', b"\xff\xfe"],
)
def test_a_line_without_a_readable_member_id_goes_to_the_first_process(raw: bytes) -> None:
    assert shard_of(raw, 4) == 0


class _DiesOn:
    """The product's engine, except that the process ends on one claim (a crash, an OOM kill)."""

    def __init__(self, claim_id: str) -> None:
        self.inner = default_engine()
        self.claim_id = claim_id

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def evaluate(self, line, *args, **kwargs):
        if line.claim_id == self.claim_id:
            os._exit(7)
        return self.inner.evaluate(line, *args, **kwargs)


def test_a_process_that_dies_is_an_error_not_a_short_output() -> None:
    lines = _stream()
    victim = ClaimLine.model_validate_json(lines[1500]).claim_id
    with pytest.raises(RuntimeError, match=r"scrub-\d exited with 7"):
        _scrub(lines, 2, engine=_DiesOn(victim))


def test_results_for_a_callback_need_one_process(line_bytes) -> None:
    with pytest.raises(ValueError, match="jobs=1"):
        _scrub([line_bytes()], 2, on_result=lambda result: None)


def test_the_command_scrubs_in_processes(tmp_path: Path) -> None:
    bundle_path = tmp_path / "refdata.json"
    bundle_path.write_bytes(_bundle().to_json())
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(_stream()) + b"\n")
    outputs = {}
    for jobs in ("1", "2", "0"):
        out, rej = tmp_path / f"out{jobs}.jsonl", tmp_path / f"rej{jobs}.jsonl"
        command = ["scrub", str(source), "--refdata", str(bundle_path), "-o", str(out)]
        done = subprocess.run(
            [sys.executable, "-m", "scrubber", *command, "--rejects", str(rej), "--jobs", jobs],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        # scrubbed_at comes from the clock: compare the results without it.
        results = [orjson.loads(x) for x in out.read_bytes().splitlines()]
        for doc in results:
            doc.pop("scrubbed_at")
        outputs[jobs] = (results, rej.read_bytes(), done.stdout)
    assert outputs["2"] == outputs["1"]
    assert outputs["0"] == outputs["1"]
    assert f"lines {len([x for x in _stream() if x.strip()])}:" in outputs["1"][2]


def test_a_failing_process_says_what_failed_but_never_its_text(line_bytes, capfd) -> None:
    def clock() -> datetime:
        raise LookupError("CANARY-PHI-0042 was in the message")

    results, rejects = io.BytesIO(), io.BytesIO()
    with pytest.raises(RuntimeError, match=r"scrub-\d exited with 1"):
        scrub_lines(
            [line_bytes()],
            ReferenceSnapshot(_bundle()),
            results,
            rejects,
            "in.jsonl",
            clock,
            jobs=2,
        )
    err = capfd.readouterr().err
    assert "scrub process failed: LookupError" in err
    assert "CANARY" not in err


def test_the_processes_of_a_killed_parent_do_not_wait_for_ever(tmp_path: Path) -> None:
    """A parent killed without cleaning up (SIGKILL, the OOM killer) leaves no process behind."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import io, os, sys, time\n"
        "from scrubber import offline\n"
        "from scrubber.refdata.model import Bundle, ReferenceSnapshot\n"
        "def lines():\n"
        "    yield b'not json'\n"
        "    yield b'not json either'\n"
        "    print(' '.join(str(c.pid) for c in __import__('multiprocessing').active_children()),"
        " flush=True)\n"
        "    time.sleep(60)\n"
        "    yield b''\n"
        "offline.BATCH_LINES = 1\n"
        "snapshot = ReferenceSnapshot(Bundle().with_version())\n"
        "offline.scrub_lines(lines(), snapshot, io.BytesIO(), io.BytesIO(), 'x', jobs=2)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    children = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(children) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10 * offline.PARENT_CHECK_SECONDS
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in children if _running(pid)]
    assert alive == []


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_jobs_zero_counts_the_cpus_this_process_may_use(monkeypatch) -> None:
    from scrubber import cli

    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert cli.usable_cpus() == 3
    monkeypatch.delattr(cli.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(cli.os, "cpu_count", lambda: 7)
    assert cli.usable_cpus() == 7
    monkeypatch.setattr(cli.os, "cpu_count", lambda: None)
    assert cli.usable_cpus() == 1
