"""The worker's X12 edge: one record of the X12 topic in, claim lines and acknowledgements out.

A clearinghouse publishes raw 837P interchanges to ``claims.x12.v1`` (any key). For each record
``X12Runtime.handle`` runs the same intake as ``scrubber x12 lines`` (``X12Intake.process``:
framing, pyx12 validation, mapping), then hands to the producer:

- each claim line of every accepted transaction set to the input topic, keyed by member id, with
  the source and envelope headers (the worker's own scrub agent judges them like any line);
- each 999 / TA1 to the acknowledgement topic, keyed by the submitter (ISA06), with the source
  headers of the X12 record it answers;
- or, for a record that is not X12 the scrubber can read (empty, oversize, no ISA), or that
  the intake failed on (``processing_error``, a bug), one dead letter with the original bytes.

Why the lines go through the input topic instead of straight to the engine: the input topic is
keyed and partitioned by member id, so a patient's lines from interchanges on any X12 partition
meet their history on one partition, and a line from an 837 is judged exactly as the same line
sent as JSON. Redelivery is harmless: an interchange handled twice publishes the same line bytes
again, and the scrubber treats a known line with the same content as a redelivery (no new
revision).

The intake is CPU-bound (pyx12's validation is about 1.5 ms a line), so it runs in a thread: a
1 MiB interchange takes seconds, and the event loop keeps heartbeats and the line agent going
meanwhile. The record is acknowledged (``BatchHandler``) only once everything it produced is
with the producer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from scrubber.contracts import DeadLetterCode, DeadLetterStage
from scrubber.metrics import Metrics
from scrubber.processor import Headers, LineProcessor, Rejection, SourcePosition
from scrubber.x12.intake import X12Intake, X12Processed

#: Hands one record to the producer: topic, key, value, headers.
SendRecord = Callable[[str, bytes | None, bytes, Headers], Awaitable[None]]


class X12Runtime:
    """Handles one record of the X12 topic (a ``RecordHandler`` for ``BatchHandler``)."""

    def __init__(
        self,
        intake: X12Intake,
        metrics: Metrics,
        send: SendRecord,
        line_topic: str,
        ack_topic: str,
        dlq_topic: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.intake = intake
        self.metrics = metrics
        self.send = send
        self.line_topic = line_topic
        self.ack_topic = ack_topic
        self.dlq_topic = dlq_topic
        self.clock = clock

    async def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: float | None = None,
        attempt: int = 1,
    ) -> X12Processed:
        """Read the record's interchanges and hand what they gave to the producer, in order.

        Lines first, then the acknowledgements: a submitter that sees a 999 accepting a
        transaction set can count on its lines being on the input topic.
        """
        started = time.perf_counter()
        source = SourcePosition(topic, partition, offset)
        now = self.clock()
        try:
            processed = await asyncio.to_thread(
                self.intake.process, value, source, now, key, attempt
            )
        except Exception as exc:  # a bug in the intake: the record is kept, not lost
            rejection = Rejection(
                DeadLetterCode.PROCESSING_ERROR, DeadLetterStage.ENGINE, type(exc).__name__
            )
            processed = X12Processed(
                dead_letter=LineProcessor.dead_letter(value, key, source, rejection, now, attempt)
            )
        self._count(processed)
        letter = processed.dead_letter
        if letter is not None:
            await self.send(self.dlq_topic, letter.key, letter.value, letter.headers)
        for line in processed.lines:
            await self.send(self.line_topic, line.key, line.value, line.headers)
        for ack in processed.acks:
            await self.send(self.ack_topic, ack.key or None, ack.data, source.headers())
        self.metrics.x12_seconds.observe(time.perf_counter() - started)
        return processed

    def _count(self, processed: X12Processed) -> None:
        metrics = self.metrics
        metrics.x12_records.inc()
        if processed.dead_letter is not None and processed.dead_letter.dead_letter is not None:
            metrics.dead_letters.labels(processed.dead_letter.dead_letter.error_code.value).inc()
            return
        summary = processed.summary
        accepted = summary.interchanges - summary.interchanges_rejected
        metrics.x12_interchanges.labels("accepted").inc(accepted)
        metrics.x12_interchanges.labels("rejected").inc(summary.interchanges_rejected)
        metrics.x12_transaction_sets.labels("accepted").inc(summary.accepted)
        metrics.x12_transaction_sets.labels("rejected").inc(summary.rejected)
        metrics.x12_lines.inc(summary.lines)
