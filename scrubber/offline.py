"""The offline scrub: a JSONL file of claim lines in, results and rejects out.

The same ``LineProcessor`` as the worker, with a file adapter: the input line number plays the
part of the Kafka offset, and a rejected line is written with its line number and error code but
no input text (the input holds PHI). The record key is not required offline: the member id in
each line is the key.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

import orjson

from scrubber.contracts import Outcome, ScrubResult
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.engine import Engine
from scrubber.rules.library import default_engine

#: How many input lines apart the offline scrub hands what it holds to the garbage collector's
#: permanent generation (see ``_kept_out_of_full_collections``).
FREEZE_EVERY = 5_000


@contextmanager
def _kept_out_of_full_collections() -> Iterator[Callable[[int], None]]:
    """Keep what a long scrub has built up out of the collector's full passes, while it runs.

    The patient histories of a file stay in memory to its end, and every full pass of the
    cyclic garbage collector walked all of them again: on a 50,000-line file those passes were
    a fifth of the scrub's time. Every ``FREEZE_EVERY`` lines everything tracked so far is
    frozen (``gc.freeze``); the histories hold no reference cycles, so what becomes garbage is
    still freed by reference counting. At the end the objects are handed back
    (``gc.unfreeze``). A process that froze objects of its own before is left as it is.
    """
    if gc.get_freeze_count():
        yield lambda number: None
        return

    def tick(number: int) -> None:
        if number % FREEZE_EVERY == 0:
            gc.freeze()

    try:
        yield tick
    finally:
        gc.unfreeze()


@dataclass
class ScrubSummary:
    """Counts of one offline run.

    ``lines_in`` counts every non-blank input line; each is either ``rejected`` or has a result.
    ``accepted`` and ``flagged`` count distinct line ids by their final verdict (the highest
    revision), ``revisions`` the results that revised an earlier line, ``redelivered`` the inputs
    that repeated a line already known with the same content (no new result is written).
    """

    lines_in: int = 0
    accepted: int = 0
    flagged: int = 0
    rejected: int = 0
    blank: int = 0
    redelivered: int = 0
    revisions: int = 0
    findings_by_rule: Counter[str] = field(default_factory=Counter)
    rejects_by_code: Counter[str] = field(default_factory=Counter)


def scrub_lines(
    lines: Iterable[bytes],
    snapshot: ReferenceSnapshot,
    results: BinaryIO,
    rejects: BinaryIO,
    source_name: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[int], None] | None = None,
    on_result: Callable[[ScrubResult], None] | None = None,
    engine: Engine | None = None,
) -> ScrubSummary:
    """Scrub raw JSONL lines in arrival order, writing results and rejects as JSONL.

    ``on_result`` sees every result written, in order (the 837 scrub assembles claims from them).
    ``engine`` is the product's (``default_engine``) unless a test brings its own.
    """
    processor = LineProcessor(engine or default_engine(), require_key=False)
    store = MemoryHistoryStore()
    summary = ScrubSummary()
    # Per line id, the outcome and rule ids of its latest result: what the summary counts. Not
    # the results themselves: kept to the end of a large file, they were most of the objects
    # every full pass of the garbage collector had to walk.
    final: dict[str, tuple[Outcome, tuple[str, ...]]] = {}
    with _kept_out_of_full_collections() as tick:
        for number, raw in enumerate(lines, start=1):
            tick(number)
            if progress is not None:
                progress(len(raw) + 1)
            if not raw.strip():
                summary.blank += 1
                continue
            summary.lines_in += 1
            processed = processor.process(
                raw, None, SourcePosition(source_name, 0, number), snapshot, store, clock()
            )
            summary.redelivered += processed.redelivery
            for index, emission in enumerate(processed.emissions):
                if emission.dead_letter is not None:
                    letter = emission.dead_letter
                    summary.rejected += 1
                    summary.rejects_by_code[letter.error_code.value] += 1
                    rejects.write(
                        orjson.dumps(
                            {
                                "input_line": number,
                                "error_code": letter.error_code.value,
                                "stage": letter.stage.value,
                                "detail": letter.detail,
                            }
                        )
                        + b"\n"
                    )
                elif (result := emission.result) is not None and not emission.repeat:
                    summary.revisions += index > 0 or result.revision > 1
                    final[result.line_id] = (
                        result.outcome,
                        tuple(f.rule_id for f in result.findings),
                    )
                    results.write(emission.value + b"\n")
                    if on_result is not None:
                        on_result(result)
    for outcome, rule_ids in final.values():
        if outcome is Outcome.FLAGGED:
            summary.flagged += 1
        else:
            summary.accepted += 1
        summary.findings_by_rule.update(rule_ids)
    return summary
