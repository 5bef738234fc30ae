"""Case (f): the worker's own work per line, without Kafka and without Faust.

The worker's code from the agent's batch inward (``StreamRuntime`` over the history and claim
stores of ``stream/table_store.py``, in batches of 500 as the agent takes them) runs on the
benchmark stream, with a dict in place of the Faust table and a send that only counts. The
CPU time per line is what the scrubber itself adds to Faust's per-record cost in a worker:
decoding and validating the input, reading and writing the patient's history as bytes, the
engine and its re-judging, encoding the results, assembling claims and counting metrics. The
garbage collector is tuned as the worker tunes it.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import zlib
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

from scrubber.accounting import key_of
from scrubber.metrics import Metrics
from scrubber.processor import Emission, LineProcessor
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.library import default_engine
from scrubber.stream.faust_internals import tune_garbage_collector
from scrubber.stream.runtime import BatchScopes, StreamRuntime
from scrubber.stream.table_store import TableClaimStore, TableHistoryStore

from .local import BENCH_NOW

#: The agent's batch size (``stream/app.py``'s ``BATCH_MAX_RECORDS``).
BATCH = 500
PARTITIONS = 4


class _Event:
    """What the table stores read of a Faust event: its record's partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


async def _one_pass(raws: Sequence[bytes], snapshot: ReferenceSnapshot) -> tuple[float, int]:
    """CPU seconds of one pass over the stream, and the number of outputs it sent."""
    table: dict[bytes, bytes] = {}
    histories, claims = TableHistoryStore(table), TableClaimStore(table)
    scopes = BatchScopes(histories, claims)
    sent = 0

    async def send(emission: Emission) -> None:
        nonlocal sent
        sent += 1

    holder = SimpleNamespace(snapshot=snapshot, ready=asyncio.Event())
    runtime = StreamRuntime(
        LineProcessor(default_engine()),
        cast(Any, holder),
        Metrics(),
        send,
        histories,
        clock=lambda: BENCH_NOW,
        claims=claims,
        partitions=PARTITIONS,
    )
    events = [_Event(p) for p in range(PARTITIONS)]
    started = time.process_time()
    for first in range(0, len(raws), BATCH):
        for offset, raw in enumerate(raws[first : first + BATCH], start=first):
            key = key_of(raw)
            partition = zlib.crc32(key or b"") % PARTITIONS
            scopes.at(events[partition])
            await runtime.handle("bench.lines", partition, offset, key, raw, None)
        scopes.flush()
        await scopes.written()
    return time.process_time() - started, sent


def time_worker_path(
    raws: Sequence[bytes], snapshot: ReferenceSnapshot, repeats: int
) -> dict[str, Any]:
    """Microseconds of CPU per line of the worker's own work: the median of ``repeats`` passes."""
    thresholds = gc.get_threshold()
    tune_garbage_collector()
    try:
        runs = [asyncio.run(_one_pass(raws, snapshot)) for _ in range(max(1, repeats))]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    per_line = [seconds / max(1, len(raws)) * 1e6 for seconds, _ in runs]
    return {
        "lines": len(raws),
        "outputs": runs[-1][1],
        "us_per_line": statistics.median(per_line),
        "us_per_line_runs": per_line,
        "cpu_s_per_1k_lines": statistics.median(per_line) / 1000,
    }
