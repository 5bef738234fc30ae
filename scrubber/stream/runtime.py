"""What the worker does with one Kafka record, independent of Faust.

The Faust agent hands each record here; this module times it, asks the shared ``LineProcessor``
for the emissions, counts them, and passes them to a ``send`` function. Keeping it free of Faust
means it can be tested with a fake ``send`` and real inputs, and the agent stays a few lines.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from scrubber.metrics import Metrics
from scrubber.processor import Emission, HistoryStore, LineProcessor, SourcePosition
from scrubber.refdata.holder import ReferenceHolder

Send = Callable[[Emission], Awaitable[None]]


class StreamRuntime:
    """Handles one input record at a time: decode, evaluate, route, count."""

    def __init__(
        self,
        processor: LineProcessor,
        holder: ReferenceHolder,
        metrics: Metrics,
        send: Send,
        store: HistoryStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.processor = processor
        self.holder = holder
        self.metrics = metrics
        self.send = send
        self.store = store
        self.clock = clock
        self.in_flight = 0
        #: The last offset handled per input partition, for the consumer lag metric.
        self.last_offsets: dict[int, int] = {}
        # Labelled metric children by label values: ``labels()`` takes a lock and builds a key
        # on every call, and every result counts its outcome and each of its findings. The
        # label sets are closed (outcomes, rule ids and severities, error codes), so this stays
        # small; the children are the registry's own, so /metrics shows the same counts.
        self._children: dict[tuple[Any, ...], Any] = {}

    async def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: float | None = None,
        attempt: int = 1,
    ) -> tuple[Emission, ...]:
        """Scrub one record and hand its outputs to the producer.

        Waits for reference data first: without it there is no verdict to give, and a guess
        (every code "unknown") would be worse than a delay. The wait holds this partition only.
        """
        snapshot = self.holder.snapshot
        while snapshot is None:
            await self.holder.ready.wait()
            snapshot = self.holder.snapshot
        started = time.perf_counter()
        now = self.clock()
        if timestamp:
            self.metrics.line_age_seconds.observe(max(0.0, now.timestamp() - timestamp))
        self.in_flight += 1
        try:
            self.metrics.lines_consumed.inc()
            processed = self.processor.process(
                value,
                key,
                SourcePosition(topic, partition, offset),
                snapshot,
                self.store,
                now,
                attempt,
            )
            for emission in processed.emissions:
                await self.send(emission)
                self._count(emission)
        finally:
            self.in_flight -= 1
            self.last_offsets[partition] = offset
        self.metrics.processing_seconds.observe(time.perf_counter() - started)
        return processed.emissions

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _count(self, emission: Emission) -> None:
        metrics = self.metrics
        if emission.dead_letter is not None:
            self._child(metrics.dead_letters, emission.dead_letter.error_code.value).inc()
        result = emission.result
        if result is not None:
            self._child(metrics.results, result.outcome.value).inc()
            if result.revision > 1 and not emission.repeat:
                metrics.revisions.inc()
            profile = result.profile or "none"
            for finding in result.findings:
                self._child(
                    metrics.findings, finding.rule_id, finding.severity.value, profile
                ).inc()
