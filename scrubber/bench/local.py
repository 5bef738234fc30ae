"""The measurements that need no Kafka: the engine alone and the offline scrub.

Both run on the benchmark stream. The engine is timed on exactly the calls the processor makes
for each input: the line's ``evaluate`` against the patient's lines known when it arrives (the
re-evaluations of neighbours are left out, so the number is per-line engine cost, comparable
across versions). The offline scrub is ``scrub_lines`` end to end: decode, history, evaluate,
revisions, result JSON.
"""

from __future__ import annotations

import hashlib
import io
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from scrubber.contracts import ClaimLine
from scrubber.offline import scrub_lines
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.library import default_engine

#: The day the benchmark judges lines on, offline: after every generated date of service.
BENCH_NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EngineCase:
    """One call of the engine: a line and the patient's other lines when it arrived."""

    line: ClaimLine
    others: tuple[ClaimLine, ...]


def engine_cases(raws: Sequence[bytes], lateness_days: int = 365) -> list[EngineCase]:
    """The (line, others) pairs the processor evaluates first for each readable input line.

    A redelivered or corrected line replaces the earlier one of the same line id, as in the
    history; history pruning is ignored (the generated stream spans one year, within lateness).
    """
    del lateness_days
    known: dict[str, dict[str, ClaimLine]] = {}
    cases = []
    for raw in raws:
        try:
            line = ClaimLine.model_validate_json(raw)
        except ValidationError:
            continue
        lines = known.setdefault(line.patient.member_id, {})
        line_id = line.line_id
        others = tuple(o for lid, o in lines.items() if lid != line_id)
        cases.append(EngineCase(line, others))
        lines[line_id] = line
    return cases


def time_engine(
    cases: Sequence[EngineCase], snapshot: ReferenceSnapshot, as_of: date, repeats: int
) -> dict[str, Any]:
    """Microseconds per ``evaluate`` call: the median of ``repeats`` passes over every case."""
    engine = default_engine()
    passes = []
    flagged = 0
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        flagged = 0
        for case in cases:
            verdict = engine.evaluate(case.line, snapshot, as_of, others=case.others)
            flagged += verdict.outcome.value == "flagged"
        passes.append((time.perf_counter() - started) / max(1, len(cases)) * 1e6)
    mean_others = statistics.fmean(len(c.others) for c in cases) if cases else 0.0
    return {
        "lines": len(cases),
        "us_per_line": statistics.median(passes),
        "us_per_line_runs": passes,
        "lines_per_s": 1e6 / statistics.median(passes) if passes else 0.0,
        "mean_other_lines": mean_others,
        "max_other_lines": max((len(c.others) for c in cases), default=0),
        "flagged_share": flagged / max(1, len(cases)),
    }


def time_offline(
    raws: Sequence[bytes], snapshot: ReferenceSnapshot, repeats: int, jobs: int = 1
) -> dict[str, Any]:
    """Lines per second of ``scrub_lines`` over the whole stream (median of ``repeats``).

    ``digest`` is a hash of the files written, so scrubs in different numbers of processes
    can be shown to write the same bytes.
    """
    runs = []
    summary = None
    digest = hashlib.sha256()
    for _ in range(max(1, repeats)):
        results, rejects = io.BytesIO(), io.BytesIO()
        started = time.perf_counter()
        summary = scrub_lines(
            raws, snapshot, results, rejects, "bench.jsonl", clock=_now, jobs=jobs
        )
        runs.append(len(raws) / (time.perf_counter() - started))
        digest = hashlib.sha256(results.getvalue() + b"\0" + rejects.getvalue())
    assert summary is not None
    lines_in = max(1, summary.lines_in)
    return {
        "jobs": jobs,
        "digest": digest.hexdigest(),
        "lines": len(raws),
        "lines_per_s": statistics.median(runs),
        "lines_per_s_runs": runs,
        "accepted": summary.accepted,
        "flagged": summary.flagged,
        "rejected": summary.rejected,
        "redelivered": summary.redelivered,
        "revisions": summary.revisions,
        "flagged_share": summary.flagged / lines_in,
        "rejected_share": summary.rejected / lines_in,
        "findings_by_rule": dict(summary.findings_by_rule.most_common()),
    }


def _now() -> datetime:
    return BENCH_NOW
