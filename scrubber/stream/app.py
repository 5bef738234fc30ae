"""The Faust worker: raw bytes in, the shared processor, results and dead letters out.

Decisions (see README, "Processing guarantees"):
- At least once. Faust commits an offset only after the record was handled and, before every
  commit, flushes the producer, so a result is durable in Kafka before its input is marked done.
  A crash replays from the last commit; consumers keep the highest revision per line id, so a
  replayed result changes nothing. ``exactly_once`` is not used: faust-streaming has open
  duplicate and crash bugs in that mode.
- Agent concurrency 1 per partition: with more, offsets can be committed past a record still
  being handled, and a crash would lose it.
- Records are handled in batches (``take_events``), in order; a record is acknowledged only
  after its outputs were handed to the producer and its patient's history was written
  (``Worker.handle_batch``), so the commit rule above holds per record.
- Topics use the raw serializer: decoding happens in the processor, where a bad message becomes
  a dead letter instead of an exception that would silently stop the partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import faust
import faust.transport.consumer as faust_consumer
from faust.streams import _current_event
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scrubber.config import Settings
from scrubber.contracts import HEADER_ATTEMPT
from scrubber.history import PatientHistory
from scrubber.kafka import HISTORY_TABLE, client_kwargs
from scrubber.logs import logging_config
from scrubber.metrics import Metrics
from scrubber.processor import Emission, LineProcessor
from scrubber.refdata.holder import ReferenceHolder
from scrubber.refdata.store import RefdataStore, connect
from scrubber.rules.library import default_engine
from scrubber.stream.gaps import GapGuard, KafkaRangeReader, RawRecord
from scrubber.stream.recovery import RecoveryWatch, watch_recovery
from scrubber.stream.runtime import StreamRuntime

log = logging.getLogger(__name__)

#: How long the producer waits to fill a batch, and how big a batch may grow (per partition).
PRODUCER_LINGER_SECONDS = 0.005
PRODUCER_MAX_BATCH_BYTES = 256 * 1024

#: Garbage collector thresholds of the worker (the defaults are 700, 10, 10).
GC_THRESHOLDS = (10_000, 10, 10)

#: RocksDB tuning of the history table, per partition's database. Faust's defaults (a 2 GiB
#: block cache and three 64 MiB write buffers per database) size a store for a server of its
#: own; a history read is one key lookup, most often of a patient just written, so small caches
#: keep a worker with a million patients' histories near 300 MB.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 1024 * 1024,
}

#: The agent takes up to this many records at a time, waiting at most this long for them.
BATCH_MAX_RECORDS = 500
BATCH_WAIT_SECONDS = 0.01


def broker_credentials(settings: Settings) -> Any:
    """Faust's form of the Kafka TLS/SASL settings (None for PLAINTEXT)."""
    kw = client_kwargs(settings)
    protocol = settings.kafka_security_protocol
    if protocol == "SSL":
        return kw["ssl_context"]
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kw["sasl_plain_username"],
            password=kw["sasl_plain_password"],
            mechanism=kw["sasl_mechanism"],
            ssl_context=kw.get("ssl_context"),
        )
    return None


def attempt_of(headers: Any) -> int:
    """The replay attempt a record carries (``scrubber-attempt``), 1 for a first delivery."""
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for name, value in items:
        if name == HEADER_ATTEMPT:
            try:
                return max(1, int(value))
            except (TypeError, ValueError):
                return 1
    return 1


class TableHistoryStore:
    """Patient histories in a Faust table (values are ``PatientHistory.to_bytes``), per batch.

    The agent handles input records in batches. Within a batch the histories it reads and writes
    are kept here, decoded, and each one that changed is written to the table once, by
    ``flush``, before the batch's records are acknowledged: the records of a claim arrive
    together, and encoding and writing a history (and its changelog record) for every one of
    them was a fifth of the worker's time. Reads see exactly what writing every history at once
    would have shown, so the verdicts are the same.

    Faust picks the table partition (its store and its changelog partition) from the current
    event. ``at`` names the event whose records follow; a history is written with an event of
    the partition it was read for, so it lands where writing it at once would have put it.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self._partition: int | None = None
        self._events: dict[int, Any] = {}
        self._pending: dict[str, tuple[int | None, PatientHistory]] = {}

    def at(self, event: Any) -> None:
        """Handle the following records as records of ``event``'s partition."""
        partition = event.message.partition
        self._events[partition] = event
        self._partition = partition
        _enter(event)

    def get(self, member_id: str) -> PatientHistory | None:
        """The patient's history, or None when the table has none."""
        pending = self._pending.get(member_id)
        if pending is not None:
            if pending[0] == self._partition:
                return pending[1]
            # The same key on another partition: write it first, then read the table as usual.
            del self._pending[member_id]
            self._write(member_id, *pending)
        raw = self.table.get(member_id.encode())
        return PatientHistory.from_bytes(raw) if raw else None

    def put(self, member_id: str, history: PatientHistory) -> None:
        """Keep the new history; ``flush`` writes it."""
        self._pending[member_id] = (self._partition, history)

    def flush(self) -> None:
        """Write every history the batch changed (Faust also writes it to the changelog)."""
        pending, self._pending = self._pending, {}
        for member_id, (partition, history) in pending.items():
            self._write(member_id, partition, history)

    def _write(self, member_id: str, partition: int | None, history: PatientHistory) -> None:
        if partition is not None:
            _enter(self._events[partition])
        try:
            self.table[member_id.encode()] = history.to_bytes()
        finally:
            if self._partition is not None:
                _enter(self._events[self._partition])


def acked_runs(offsets: Iterable[int]) -> Iterator[list[int]]:
    """Runs of acknowledged offsets, as Faust's ``consecutive_numbers``, but a repeat continues one.

    Faust commits, per partition, the end of the first run of consecutive acknowledged offsets
    (``Consumer._new_offset``), and takes that run off its sorted list of acknowledged offsets.
    The list can hold an offset twice: Faust adds the offsets of a gap it saw in the fetched
    records (which it takes for compaction) to the list without its index, and the gap guard
    handles and acknowledges those same records. With ``[5, 6, 6, 7, 7, 8]`` Faust's runs are
    ``[5, 6]``, ``[6, 7]``, ...: one offset per commit, so after a restart under a backlog the
    group offset crept forward by about three records a second and a second crash replayed most
    of the run (robinhood/faust#625 reports the same stall). Here a repeated offset belongs to
    the run, so the same list gives ``[5, 6, 6, 7, 7, 8]`` and Faust commits 9 at once. Every
    offset in a run was acknowledged, so nothing is committed that was not handled.
    """
    run: list[int] = []
    for offset in offsets:
        if run and offset - run[-1] > 1:
            yield run
            run = []
        run.append(offset)
    if run:
        yield run


def tolerate_repeated_acks() -> None:
    """Make Faust's commit bookkeeping use ``acked_runs`` (once per process; idempotent)."""
    setattr(faust_consumer, "consecutive_numbers", acked_runs)  # noqa: B010 (not exported)


def shorten_fetch_wait(app: Any, wait_ms: int) -> bool:
    """Let the broker hold a fetch request at most ``wait_ms`` (Faust hardcodes 1,500 ms).

    aiokafka keeps one fetch request in flight per broker, and leaves out of it every partition
    whose records it still holds for the application. A worker that is still handling the last
    fetch's records therefore often asks only for partitions with nothing new (Faust's
    ``__assignor-__leader`` topic, say); the broker holds that request for the full wait, and
    the input partitions cannot be fetched again until it returns. Measured in the benchmark at
    half of the worker's peak rate: a steady 1.2-1.7 s of latency on every line with 1,500 ms,
    p99 about 100 ms with 50 ms. Idle, a worker sends a fetch every ``wait_ms`` instead.

    The consumer takes the value when it starts (``_fetch_max_wait_ms``, passed to its
    fetcher), so this sets it on the consumer before that and on a running fetcher too.
    Returns whether the consumer had the attribute: a Faust or aiokafka release without it
    leaves the default in place (and the worker logs it), never fails.
    """
    try:
        consumer = app.consumer._thread._ensure_consumer()
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise AttributeError("_fetch_max_wait_ms")
        consumer._fetch_max_wait_ms = wait_ms
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = wait_ms
    except Exception as exc:
        log.warning(
            "could not shorten the consumer's fetch wait",
            extra={"error_type": type(exc).__name__},
        )
        return False
    return True


def tune_garbage_collector() -> None:
    """Collect garbage less often, and never scan what was loaded at start again.

    Every line allocates thousands of short-lived objects (pydantic models, JSON documents,
    Kafka records), and with the default threshold (700) the collector ran every few records,
    now and then over the whole heap: about a fifth of the worker's CPU, and full collections of
    200-300 ms that made the tail of the latency. Objects that exist when the worker starts
    (modules, the Faust app) are frozen out of collections. Nothing changes but when memory
    that is garbage anyway is found.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


#: The readiness reason while patient histories are recovered from the changelog.
RECOVERING = "recovering patient histories from the changelog"

#: How often the recovery watch reads the table recovery's progress (see stream/recovery.py).
RECOVERY_WATCH_SECONDS = 5.0

#: Exit status of a worker that stopped because Kafka refused an output.
EXIT_DELIVERY_FAILED = 75


def _report_failed_delivery(delivery: Any) -> None:
    """Stop the process at once when an output could not be written.

    The producer retried it until its timeout; the input's offset must not be committed now,
    and a graceful stop would commit it. Exiting without a commit hands the input back to
    whichever worker takes the partition: a result lost to a broker outage becomes a
    redelivery, never a gap. Outputs are bounded (inputs are at most 64 KiB), so no message
    can fail this way every time.
    """
    if not delivery.cancelled() and delivery.exception() is not None:
        log.critical(
            "an output could not be written; exiting without committing",
            extra={"error_type": type(delivery.exception()).__name__},
        )
        logging.shutdown()
        os._exit(EXIT_DELIVERY_FAILED)


def _enter(event: Any) -> None:
    """Make ``event`` Faust's current event in this task (what table reads and writes go by).

    A batch's records are delivered by Faust's own stream task, so the agent's task sets it.
    """
    _current_event.set(weakref.ref(event))


class Worker:
    """The scrubber's Faust app and the objects it runs with."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        tolerate_repeated_acks()
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self.metrics = Metrics()
        # A poll must fail fast, not hang the refresh loop.
        redis = connect(settings, connect_timeout=2.0, socket_timeout=5.0)
        self.store = RefdataStore(redis, settings.redis_prefix)
        self.holder = ReferenceHolder(self.store, self.metrics, settings.refdata_poll_seconds)
        brokers = [f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(",")]
        self.app = faust.App(
            settings.app_id,
            broker=brokers,
            broker_credentials=broker_credentials(settings),
            # The app's store, not only the table's: Faust takes a table's own store URL only
            # when it is truthy, and yarl's URL("rocksdb://") is not (no host, no path), so the
            # table quietly fell back to the app's store.
            store=settings.table_store,
            datadir=settings.data_dir,
            topic_partitions=settings.partitions,
            consumer_auto_offset_reset="earliest",
            # A crashed worker's partitions wait this long before another takes them (Faust's
            # default is 60 s). Heartbeats are a task of their own on the event loop, and a
            # batch of records takes milliseconds, so a live worker is never taken for dead.
            broker_session_timeout=settings.kafka_session_timeout_seconds,
            broker_heartbeat_interval=settings.kafka_session_timeout_seconds / 5,
            # Committed every second (Faust: 2.8 s): a crash re-handles at most about a second
            # of input, so it re-sends that much, for the price of one commit request a second.
            broker_commit_interval=settings.kafka_commit_interval_seconds,
            producer_acks=-1,
            # Results go out in batches: with no linger every result was its own produce request
            # (a fifth of the worker's CPU went into encoding and writing requests). 5 ms is far
            # inside the latency budget, and a batch of up to 256 KiB holds ~100 results.
            producer_linger=PRODUCER_LINGER_SECONDS,
            producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
            web_enabled=True,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            web_port=settings.web_port,
            logging_config=logging_config(settings.log_level, settings.log_format),
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        self.input = self.app.topic(settings.input_topic, partitions=settings.partitions, **raw)
        self.outputs = {
            "accepted": self.app.topic(settings.accepted_topic, **raw),
            "flagged": self.app.topic(settings.flagged_topic, **raw),
            "dlq": self.app.topic(settings.dlq_topic, **raw),
        }
        self.output_names = {kind: topic.get_topic_name() for kind, topic in self.outputs.items()}
        # Patient histories, keyed like the input (member id) and partitioned like it, so a
        # patient's history lives with the partition that receives the patient's lines; Faust
        # recovers it from its compacted changelog after a restart or a rebalance.
        self.table = self.app.Table(
            HISTORY_TABLE,
            default=None,
            partitions=settings.partitions,
            store=settings.table_store,
            key_type=bytes,  # bytes types make Faust use the raw serializer for the changelog
            value_type=bytes,
            options=dict(ROCKSDB_OPTIONS) if settings.table_store.startswith("rocksdb") else None,
        )
        self.histories = TableHistoryStore(self.table)
        self.runtime = StreamRuntime(
            LineProcessor(default_engine(), lateness_days=settings.lateness_days),
            self.holder,
            self.metrics,
            self.send,
            self.histories,
        )
        self.guard = GapGuard(KafkaRangeReader(settings))
        self._recovery_watch: asyncio.Task[None] | None = None
        self._wire()

    async def send(self, emission: Emission) -> None:
        """Hand one emission to the producer; Faust flushes it before the next offset commit.

        Straight to Faust's producer (the one its commits flush), not through ``Topic.send``:
        the topic's message futures and sensors cost more than the send itself.
        """
        delivery = await self.app.producer.send(
            self.output_names[emission.kind],
            emission.key,
            emission.value,
            None,
            None,
            list(emission.headers),
        )
        # aiokafka hands back a future (typed as an awaitable by Faust).
        cast("asyncio.Future[Any]", delivery).add_done_callback(_report_failed_delivery)

    def readiness(self) -> list[str]:
        """Reasons the worker is not ready; empty when it is."""
        reasons = []
        if self.holder.snapshot is None:
            reasons.append(self.holder.last_error or "reference data not loaded yet")
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # the consumer does not exist before the worker starts
            assigned = set()
        if not assigned:
            reasons.append("no partitions assigned")
        producer = self.app.producer
        if not getattr(producer, "_producer", None) or not producer.started:
            reasons.append("producer not connected")
        # After a rebalance the worker answers nothing until its histories are read back.
        if getattr(self.app, "in_recovery", False):
            reasons.append(RECOVERING)
        self.metrics.ready.set(0 if reasons else 1)
        return reasons

    def ack_recovered(self, topic: str, record: RawRecord) -> None:
        """Tell Faust's offset bookkeeping that a record it skipped has been handled.

        Without this its acked offsets keep a gap and the group offset never moves past it, so
        every later rebalance or restart replays everything since (measured: 3,245 repeated
        outputs for 4,000 lines in a 1-2-1 rebalance). Uses the consumer's own track/ack.
        """
        try:
            message = ConsumerMessage(
                topic,
                record.partition,
                record.offset,
                record.timestamp or 0.0,
                0,
                list(record.headers),
                record.key,
                record.value,
                None,
                tp=TP(topic, record.partition),
                generation_id=self.app.consumer_generation_id,
            )
            self.app.consumer.track_message(message)
            self.app.consumer.ack(message)
        except Exception as exc:  # bookkeeping only: the record itself is handled already
            log.warning(
                "could not ack a recovered record",
                extra={
                    "partition": record.partition,
                    "offset": record.offset,
                    "error_type": type(exc).__name__,
                },
            )

    async def update_lag(self) -> None:
        """Lag per assigned input partition: the high watermark minus the next offset to handle.

        Before this worker has handled a record of a partition, the next offset is the consumer's
        position there. Partitions no longer assigned drop out of the metric.
        """
        try:
            assigned = [
                tp for tp in self.app.consumer.assignment() if tp.topic == self.settings.input_topic
            ]
        except Exception:  # no consumer before the worker has started
            return
        lags: dict[int, int] = {}
        for tp in assigned:
            with contextlib.suppress(Exception):  # no metadata for the partition yet: skip it
                high = self.app.consumer.highwater(tp)
                done = self.runtime.last_offsets.get(tp.partition)
                nxt = done + 1 if done is not None else await self.app.consumer.position(tp)
                if high is not None and nxt is not None:
                    lags[tp.partition] = max(0, high - nxt)
        self.metrics.consumer_lag.clear()
        for partition, value in lags.items():
            self.metrics.consumer_lag.labels(str(partition)).set(value)

    async def handle_batch(self, events: Sequence[Any]) -> None:
        """Handle a batch of input records in order: one result or dead letter for each.

        Faust acknowledges the batch's records when the agent asks for the next batch, and
        commits acknowledged offsets only after flushing the producer. A record must count as
        done only once its outputs were handed to the producer and its patient's history was
        written, so each record holds one more reference here, released after that: if the
        batch fails half-way, the records not handled are never acknowledged (the gap guard or
        a redelivery brings them back), the ones handled are.
        """
        guard, runtime, store = self.guard, self.runtime, self.histories
        for event in events:
            event.message.incref()
        done = 0
        try:
            for event in events:
                m = event.message
                if guard.already_handled(m.partition, m.offset):
                    done += 1
                    continue  # delivered again after the guard read it back: one verdict only
                store.at(event)
                # Records the consumer skipped (see stream/gaps.py) are handled first, in order.
                for r in await guard.missing(m.partition, m.offset):
                    await runtime.handle(
                        m.topic,
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        r.timestamp,
                        attempt_of(r.headers),
                    )
                    guard.handled(r.partition, r.offset)
                    self.ack_recovered(m.topic, r)
                    self.metrics.skipped_recovered.inc()
                await runtime.handle(
                    m.topic,
                    m.partition,
                    m.offset,
                    m.key,
                    m.value,
                    m.timestamp,
                    attempt_of(m.headers),
                )
                guard.handled(m.partition, m.offset)
                done += 1
        finally:
            store.flush()
            # ``ack`` releases the reference and, if it was the last one, marks the offset safe
            # to commit; a bare ``decref`` would leave a record whose stream ack came first
            # unacknowledged forever, and the group offset stuck behind it.
            consumer = self.app.consumer
            for event in events[:done]:
                event.message.ack(consumer)

    def _wire(self) -> None:
        app, holder, metrics = self.app, self.holder, self.metrics
        guard = self.guard
        worker = self

        @app.agent(self.input, concurrency=1, name="scrub")
        async def scrub(stream: Any) -> None:
            # ``take_events`` is on Faust's Stream, not on the StreamT interface it types with.
            async for events in stream.take_events(BATCH_MAX_RECORDS, within=BATCH_WAIT_SECONDS):
                await worker.handle_batch(events)

        async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
            # The consumer exists by now; every assignment sets the fetch wait again (cheap).
            guard.reset()
            shorten_fetch_wait(app, worker.settings.kafka_fetch_max_wait_ms)
            # Started here, not as an app task: Faust starts those only once the first
            # recovery has completed, and that recovery may be the one that stalls.
            if worker._recovery_watch is None:
                worker._recovery_watch = asyncio.ensure_future(
                    watch_recovery(
                        app,
                        RecoveryWatch(worker.settings.recovery_stall_seconds),
                        RECOVERY_WATCH_SECONDS,
                        on_reseek=metrics.recovery_reseeks.inc,
                    )
                )

        app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

        @app.task
        async def refdata_loop() -> None:
            await holder.run()

        @app.timer(interval=10.0)
        async def heartbeat() -> None:
            snap = holder.snapshot
            try:
                await worker.store.heartbeat(
                    worker.worker_id,
                    {
                        "version": snap.version if snap else None,
                        "redis_ok": holder.redis_ok,
                        "ready": not worker.readiness(),
                    },
                    ttl_seconds=30,
                )
            except Exception as exc:  # a missed heartbeat is reported by the refresh loop
                log.debug("heartbeat failed", extra={"error_type": type(exc).__name__})

        @app.timer(interval=5.0)
        async def lag() -> None:
            await worker.update_lag()

        @app.page("/metrics")
        async def metrics_page(view: View, request: Request) -> Response:
            worker.readiness()
            metrics.history_patients.set(len(worker.table))
            # aiohttp wants the charset apart from the content type.
            return view.text(
                generate_latest(metrics.registry).decode(),
                content_type=CONTENT_TYPE_LATEST.split(";")[0],
            )

        @app.page("/healthz")
        async def healthz(view: View, request: Request) -> Response:
            return view.json({"status": "alive", "worker": worker.worker_id})

        @app.page("/readyz")
        async def readyz(view: View, request: Request) -> Response:
            reasons = worker.readiness()
            snap = holder.snapshot
            body = {
                "ready": not reasons,
                "reasons": reasons,
                "refdata_version": snap.version if snap else None,
                "redis_ok": holder.redis_ok,
            }
            return view.json(body, status=200 if not reasons else 503)

    def run(self) -> None:
        """Run until SIGTERM or SIGINT; Faust stops the agents, flushes and commits on the way."""
        from faust.worker import Worker as FaustWorker

        tune_garbage_collector()
        FaustWorker(
            self.app,
            loglevel=self.settings.log_level,
            logging_config=logging_config(self.settings.log_level, self.settings.log_format),
            redirect_stdouts=False,
        ).execute_from_commandline()
