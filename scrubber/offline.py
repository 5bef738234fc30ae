"""The offline scrub: a JSONL file of claim lines in, results and rejects out.

The same ``LineProcessor`` as the worker, with a file adapter: the input line number plays the
part of the Kafka offset, and a rejected line is written with its line number and error code but
no input text (the input holds PHI). The record key is not required offline: the member id in
each line is the key.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import queue
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from operator import itemgetter
from typing import BinaryIO

import orjson
from pydantic_core import from_json

from scrubber.contracts import Outcome, ScrubResult
from scrubber.processor import LineProcessor, MemoryHistoryStore, Processed, SourcePosition
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


#: One input's share of the output files and the summary, in plain values (a parallel scrub's
#: processes hand these to the parent): the input's line number, whether it was a redelivery,
#: its rejects as (error code, JSONL record), and its results as (line id, outcome, rule ids,
#: revised, JSON).
Written = tuple[
    int,
    bool,
    tuple[tuple[str, bytes], ...],
    tuple[tuple[str, Outcome, tuple[str, ...], bool, bytes], ...],
]


def _written(number: int, processed: Processed) -> Written:
    """What the output files and the summary take from one processed input."""
    rejected: list[tuple[str, bytes]] = []
    results: list[tuple[str, Outcome, tuple[str, ...], bool, bytes]] = []
    for index, emission in enumerate(processed.emissions):
        if emission.dead_letter is not None:
            letter = emission.dead_letter
            record = {
                "input_line": number,
                "error_code": letter.error_code.value,
                "stage": letter.stage.value,
                "detail": letter.detail,
            }
            rejected.append((letter.error_code.value, orjson.dumps(record) + b"\n"))
        elif (result := emission.result) is not None and not emission.repeat:
            results.append(
                (
                    result.line_id,
                    result.outcome,
                    tuple([f.rule_id for f in result.findings]),
                    index > 0 or result.revision > 1,
                    emission.value + b"\n",
                )
            )
    return number, processed.redelivery, tuple(rejected), tuple(results)


class _Tally:
    """Writes what each input gave, in input order, and counts it (``ScrubSummary``)."""

    def __init__(self, results: BinaryIO, rejects: BinaryIO) -> None:
        self.results = results
        self.rejects = rejects
        self.summary = ScrubSummary()
        # Per line id, the outcome and rule ids of its latest result: what the summary counts.
        # Not the results themselves: kept to the end of a large file, they were most of the
        # objects every full pass of the garbage collector had to walk.
        self.final: dict[str, tuple[Outcome, tuple[str, ...]]] = {}

    def add(self, written: Written) -> None:
        """Write and count one input's rejects and results."""
        _number, redelivery, rejected, results = written
        summary = self.summary
        summary.lines_in += 1
        summary.redelivered += redelivery
        for code, record in rejected:
            summary.rejected += 1
            summary.rejects_by_code[code] += 1
            self.rejects.write(record)
        for line_id, outcome, rule_ids, revised, value in results:
            summary.revisions += revised
            self.final[line_id] = (outcome, rule_ids)
            self.results.write(value)

    def close(self) -> ScrubSummary:
        """The summary, with every line id counted once by its final verdict."""
        summary = self.summary
        for outcome, rule_ids in self.final.values():
            if outcome is Outcome.FLAGGED:
                summary.flagged += 1
            else:
                summary.accepted += 1
            summary.findings_by_rule.update(rule_ids)
        return summary


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
    jobs: int = 1,
) -> ScrubSummary:
    """Scrub raw JSONL lines in arrival order, writing results and rejects as JSONL.

    ``on_result`` sees every result written, in order (the 837 scrub assembles claims from them).
    ``engine`` is the product's (``default_engine``) unless a test brings its own. ``jobs``
    above 1 scrubs in that many processes, each holding the patients of its share of member
    ids (``scrub_parallel``); the files written are the same, byte for byte.
    """
    if jobs > 1:
        if on_result is not None:
            raise ValueError("on_result needs the results in this process: scrub with jobs=1")
        return scrub_parallel(
            lines, snapshot, results, rejects, source_name, clock, progress, engine, jobs
        )
    processor = LineProcessor(engine or default_engine(), require_key=False)
    store = MemoryHistoryStore()
    tally = _Tally(results, rejects)
    with _kept_out_of_full_collections() as tick:
        for number, raw in enumerate(lines, start=1):
            tick(number)
            if progress is not None:
                progress(len(raw) + 1)
            if not raw.strip():
                tally.summary.blank += 1
                continue
            processed = processor.process(
                raw, None, SourcePosition(source_name, 0, number), snapshot, store, clock()
            )
            tally.add(_written(number, processed))
            if on_result is not None:
                for emission in processed.emissions:
                    if emission.result is not None and not emission.repeat:
                        on_result(emission.result)
    return tally.close()


# ----------------------------------------------------------------------------- in processes

#: Input lines per batch a parallel scrub hands to its processes.
BATCH_LINES = 1_000
#: How often a waiting scrub process checks that its parent is still there. Every process
#: holds the write end of its inbox (queues are made before the processes), so a parent
#: killed without cleaning up would otherwise leave them waiting for ever.
PARENT_CHECK_SECONDS = 1.0


class ScrubProcessError(RuntimeError):
    """A process of a parallel scrub ended early: the output files are incomplete."""


def shard_of(raw: bytes, jobs: int) -> int:
    """The process that scrubs a line: by its member id, as the stream partitions by it.

    A patient's lines must all be judged by the one process that holds the patient's history,
    in input order. The member id is read by the contract's own JSON parser (pydantic-core's:
    it takes ``NaN`` where orjson refuses it, and the last of repeated keys wins), and the id
    must be a string as the strict contract wants it, so every line that validates goes to its
    patient's process. A line with no readable member id is rejected without a history: any
    process will do, the first one takes it.
    """
    try:
        doc = from_json(raw)
    except ValueError:
        return 0
    patient = doc.get("patient") if type(doc) is dict else None
    member_id = patient.get("member_id") if type(patient) is dict else None
    if type(member_id) is not str:
        return 0
    return zlib.crc32(member_id.encode()) % jobs


def _guarded(work: Callable[..., None], *args: object) -> None:
    """A scrub process's body: an exception ends it with its type only, never its text.

    The processor never raises for bad input; an exception here is a bug, and its message
    may quote input (PHI), which the default traceback of a process would print.
    """
    try:
        work(*args)
    except Exception as exc:
        print(f"scrub process failed: {type(exc).__name__}", file=sys.stderr)
        os._exit(1)


def _scrub_shard(
    inbox: multiprocessing.Queue[list[tuple[int, bytes]] | None],
    conn: Connection,
    snapshot: ReferenceSnapshot,
    source_name: str,
    clock: Callable[[], datetime],
    engine: Engine | None,
) -> None:
    """A parallel scrub's process: batches of (line number, bytes) in, ``Written`` out.

    It runs until the parent sends None. It starts with the parent's objects frozen
    (``scrub_parallel``) and freezes what it builds every ``FREEZE_EVERY`` lines, as one
    process does (``_kept_out_of_full_collections``); it never unfreezes: it ends with the
    scrub.
    """
    processor = LineProcessor(engine or default_engine(), require_key=False)
    store = MemoryHistoryStore()
    seen = 0
    parent = os.getppid()
    while True:
        try:
            batch = inbox.get(timeout=PARENT_CHECK_SECONDS)
        except queue.Empty:
            if os.getppid() != parent:  # the parent is gone (killed): nobody reads the answers
                return
            continue
        if batch is None:
            break
        out = []
        for number, raw in batch:
            seen += 1
            if seen % FREEZE_EVERY == 0:
                gc.freeze()
            processed = processor.process(
                raw, None, SourcePosition(source_name, 0, number), snapshot, store, clock()
            )
            out.append(_written(number, processed))
        conn.send(out)
    conn.close()


def scrub_parallel(
    lines: Iterable[bytes],
    snapshot: ReferenceSnapshot,
    results: BinaryIO,
    rejects: BinaryIO,
    source_name: str,
    clock: Callable[[], datetime],
    progress: Callable[[int], None] | None,
    engine: Engine | None,
    jobs: int,
) -> ScrubSummary:
    """``scrub_lines`` in ``jobs`` processes, sharded by member id (``shard_of``).

    Each process holds the histories of its patients and judges their lines in input order,
    so each line meets exactly the history it would meet in one process; the parent writes
    every input's output in input order, so the files are the same as one process writes.
    The processes are forked: they share the reference data the parent loaded, and the
    engine, the clock and the snapshot need no pickling. While the processes judge one batch,
    the parent reads and splits the next, then writes the one before.
    """
    context = multiprocessing.get_context("fork")
    # Batches go out through queues (a feeder thread writes them) and answers come back
    # through pipes: a process blocked handing back a large answer while the parent is
    # blocked handing it the next batch would otherwise wait for each other for ever.
    inboxes: list[multiprocessing.Queue[list[tuple[int, bytes]] | None]] = [
        context.Queue() for _ in range(jobs)
    ]
    conns: list[Connection] = []
    procs: list[multiprocessing.process.BaseProcess] = []
    tally = _Tally(results, rejects)
    try:
        _start(context, inboxes, conns, procs, snapshot, source_name, clock, engine)
        in_flight = False  # a batch the processes are judging, not yet written
        for batch in _batches(lines, tally, progress):
            shards: list[list[tuple[int, bytes]]] = [[] for _ in range(jobs)]
            for number, raw in batch:
                shards[shard_of(raw, jobs)].append((number, raw))
            for inbox, shard in zip(inboxes, shards, strict=True):
                inbox.put(shard)
            if in_flight:
                _collect(conns, tally)
            in_flight = True
        if in_flight:
            _collect(conns, tally)
        for inbox in inboxes:
            inbox.put(None)
        for proc in procs:
            proc.join(30)
            if proc.exitcode != 0:
                raise ScrubProcessError(f"scrub process {proc.name} exited with {proc.exitcode}")
    except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
        for proc in procs:
            proc.join(1)  # the one that died has its exit code by now
        dead = ", ".join(f"{p.name} exited with {p.exitcode}" for p in procs if not p.is_alive())
        raise ScrubProcessError(
            f"a scrub process ended early ({dead or type(exc).__name__})"
        ) from None
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
        for conn in conns:
            conn.close()
        for inbox in inboxes:
            inbox.close()
            inbox.cancel_join_thread()  # nothing is left to feed a process that is gone
    return tally.close()


def _start(
    context: multiprocessing.context.ForkContext,
    inboxes: list[multiprocessing.Queue[list[tuple[int, bytes]] | None]],
    conns: list[Connection],
    procs: list[multiprocessing.process.BaseProcess],
    snapshot: ReferenceSnapshot,
    source_name: str,
    clock: Callable[[], datetime],
    engine: Engine | None,
) -> None:
    """Fork one process per inbox, appending its answer pipe and itself as it starts.

    The parent's objects are frozen while it forks, so they stay out of the children's
    collections (and their pages unshared), then handed back; a process that froze objects
    of its own is left as it is (``_kept_out_of_full_collections``).
    """
    thaw = gc.get_freeze_count() == 0
    if thaw:
        gc.collect()
        gc.freeze()
    try:
        for index, inbox in enumerate(inboxes):
            # Each pipe is made just before its process and the parent's copy of the
            # process's end closed at once: a process forked later holds no copy of it, so
            # the parent sees the end of the pipe (EOFError) when its process dies.
            answers, child = context.Pipe(duplex=False)
            proc = context.Process(
                target=_guarded,
                args=(_scrub_shard, inbox, child, snapshot, source_name, clock, engine),
                name=f"scrub-{index}",
                daemon=True,
            )
            proc.start()
            child.close()
            conns.append(answers)
            procs.append(proc)
    finally:
        if thaw:
            gc.unfreeze()


def _batches(
    lines: Iterable[bytes], tally: _Tally, progress: Callable[[int], None] | None
) -> Iterator[list[tuple[int, bytes]]]:
    """Numbered non-blank lines in batches of ``BATCH_LINES`` (blank ones counted here)."""
    batch: list[tuple[int, bytes]] = []
    for number, raw in enumerate(lines, start=1):
        if progress is not None:
            progress(len(raw) + 1)
        if not raw.strip():
            tally.summary.blank += 1
            continue
        batch.append((number, raw))
        if len(batch) == BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


def _collect(conns: list[Connection], tally: _Tally) -> None:
    """Every process's answer to the batch in flight, written in input order."""
    answers: list[Written] = []
    for conn in conns:
        answers.extend(conn.recv())
    answers.sort(key=_NUMBER)
    for written in answers:
        tally.add(written)


_NUMBER = itemgetter(0)
