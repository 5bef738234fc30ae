"""What the worker does with one Kafka record, independent of Faust.

The Faust agent hands each record here; this module times it, asks the shared ``LineProcessor``
for the emissions, counts them, and passes them to a ``send`` function. Keeping it free of Faust
means it can be tested with a fake ``send`` and real inputs, and the agent stays a few lines.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

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

    def _count(self, emission: Emission) -> None:
        if emission.dead_letter is not None:
            self.metrics.dead_letters.labels(emission.dead_letter.error_code.value).inc()
        if emission.result is not None:
            self.metrics.results.labels(emission.result.outcome.value).inc()
            if emission.result.revision > 1 and not emission.repeat:
                self.metrics.revisions.inc()
            for finding in emission.result.findings:
                self.metrics.findings.labels(finding.rule_id, finding.severity.value).inc()
