"""The X12 edge: records of the X12 topic in, claim lines and acknowledgements out.

A clearinghouse publishes raw 837P interchanges to ``claims.x12.v1`` (any key). For each record
``X12Runtime.handle`` runs the same intake as ``scrubber x12 lines`` (``X12Intake.process``:
framing, pyx12 validation, mapping), then hands to the producer:

- each claim line of every accepted transaction set to the input topic, keyed by member id, with
  the source and envelope headers (the worker judges them like any line);
- each 999 / TA1 to the acknowledgement topic, keyed by the submitter (ISA06), with the source
  headers of the X12 record it answers;
- or, for a record that is not X12 the scrubber can read (empty, oversize, no ISA), or that
  the intake failed on (``processing_error``, a bug), one dead letter with the original bytes
  (their first bytes for a record too large for the dead-letter topic).

Why the lines go through the input topic instead of straight to the engine: the input topic is
keyed and partitioned by member id, so a patient's lines from interchanges on any X12 partition
meet their history on one partition, and a line from an 837 is judged exactly as the same line
sent as JSON. Redelivery is harmless: an interchange handled twice publishes the same line bytes
again, and the scrubber treats a known line with the same content as a redelivery (no new
revision).

Why a process of its own (``scrubber x12 serve``, ``run_x12_intake``) and not an agent of the
Faust worker: the intake keeps no state, and an X12 agent in the worker's consumer group made
the worker's recovery from SIGKILL stall (the chaos suite's three-kills scenario left one or
two partitions unanswered in two runs of six, against none in nine without it). A plain
aiokafka consumer and producer do what at-least-once needs: the X12 offsets are committed only
after the producer has acknowledged every record the batch produced. The intake is CPU-bound
(pyx12's validation is about 1.5 ms a line), so it runs in a thread: the consumer's heartbeats
go on meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError

from scrubber.config import Settings
from scrubber.contracts import DEAD_LETTER_MAX_BYTES, DeadLetterCode, DeadLetterStage
from scrubber.kafka import client_kwargs, producer_kwargs
from scrubber.metrics import IntakeMetrics
from scrubber.processor import Headers, LineProcessor, Rejection, SourcePosition
from scrubber.stream.runtime import attempt_of
from scrubber.x12.intake import X12Intake, X12Processed

log = logging.getLogger(__name__)

#: Hands one record to the producer: topic, key, value, headers.
SendRecord = Callable[[str, bytes | None, bytes, Headers], Awaitable[None]]


class X12Runtime:
    """Handles one record of the X12 topic: its outputs handed to ``send``, counted."""

    def __init__(
        self,
        intake: X12Intake,
        metrics: IntakeMetrics,
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


#: Records the intake takes from the X12 topic at a time (one can hold thousands of lines).
X12_BATCH_MAX_RECORDS = 10


async def run_x12_intake(
    settings: Settings, metrics: IntakeMetrics, stop: asyncio.Event, *, group_suffix: str = "-x12"
) -> None:
    """Read the X12 topic until ``stop`` is set; commit each batch once its outputs are durable.

    The consumer group is the worker's app id with ``-x12``. A batch's records are handled in
    order, every record they produce is sent, the producer's acknowledgements are awaited, and
    only then are the batch's offsets committed: a crash before the commit hands the records
    to the next consumer again, never loses one. A send that fails raises: the process exits
    without committing, and its supervisor starts it again.
    """
    common = client_kwargs(settings)
    sending = producer_kwargs(settings)  # a codec this install lacks fails here, before a client
    consumer = AIOKafkaConsumer(
        settings.x12_topic,
        **common,
        group_id=settings.app_id + group_suffix,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=DEAD_LETTER_MAX_BYTES,
        session_timeout_ms=int(settings.kafka_session_timeout_seconds * 1000),
    )
    producer = AIOKafkaProducer(
        **sending,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=DEAD_LETTER_MAX_BYTES,
    )
    await producer.start()
    await consumer.start()
    pending: list[asyncio.Future[Any]] = []

    async def send(topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        pending.append(await producer.send(topic, value, key=key, headers=list(headers)))

    runtime = X12Runtime(
        X12Intake(),
        metrics,
        send,
        line_topic=settings.input_topic,
        ack_topic=settings.x12_ack_topic,
        dlq_topic=settings.dlq_topic,
    )
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=X12_BATCH_MAX_RECORDS)
            if not batch:
                continue
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                for record in records:
                    await runtime.handle(
                        tp.topic,
                        tp.partition,
                        record.offset,
                        record.key,
                        record.value,
                        record.timestamp / 1000 if record.timestamp else None,
                        attempt_of(record.headers),
                    )
                    offsets[tp] = record.offset + 1
            await asyncio.gather(*pending)  # raises if Kafka refused one: nothing is committed
            pending.clear()
            try:
                await consumer.commit(offsets)
            except CommitFailedError:
                # The partitions moved to another consumer meanwhile: it reads these records
                # again and publishes the same lines (a redelivery), nothing is lost.
                log.warning("X12 offsets not committed: the partitions were reassigned")
    finally:
        await consumer.stop()
        await producer.stop()
