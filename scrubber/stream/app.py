"""The Faust worker's wiring: the app, its topics and table, the agent, timers and web views.

Owns how the pieces are put together and started; what happens to a record is in
stream/runtime.py, the history table in stream/table_store.py, readiness and lag in
stream/health.py, the recovery watch in stream/recovery.py, and every use of Faust's or
aiokafka's private API in stream/faust_internals.py (installed once by ``Worker.run``).

Decisions (see README, "Processing guarantees"):
- At least once. Faust commits an offset only after the record was handled and, before every
  commit, flushes the producer, so a result is durable in Kafka before its input is marked done.
  A crash replays from the last commit; consumers keep the highest revision per line id, so a
  replayed result changes nothing. ``exactly_once`` is not used: faust-streaming has open
  duplicate and crash bugs in that mode.
- Agent concurrency 1 per partition: with more, offsets can be committed past a record still
  being handled, and a crash would lose it.
- Records are handled in batches (``take_events``), in order; a record is acknowledged only
  after its outputs were handed to the producer and its patient's history is in the changelog
  (``BatchHandler.handle``; the changelog's acknowledgement of a batch is awaited while the
  next batch is handled), so the commit rule above holds per record.
- Topics use the raw serializer: decoding happens in the processor, where a bad message becomes
  a dead letter instead of an exception that would silently stop the partition.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, NoReturn, cast

import faust
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scrubber.config import Settings
from scrubber.contracts import DEAD_LETTER_MAX_BYTES
from scrubber.history import StoreWriteError
from scrubber.kafka import HISTORY_TABLE, client_kwargs, compression_type
from scrubber.logs import logging_config
from scrubber.metrics import Metrics
from scrubber.processor import Emission, LineProcessor
from scrubber.refdata.holder import ReferenceHolder
from scrubber.refdata.store import RefdataStore, connect
from scrubber.rules.library import default_engine
from scrubber.stream import faust_internals
from scrubber.stream.faust_internals import (
    FaustAcks,
    aiokafka_producer,
    resume_buffered,
    shorten_fetch_wait,
)
from scrubber.stream.gaps import GapGuard, KafkaRangeReader
from scrubber.stream.health import input_lag, readiness_reasons
from scrubber.stream.monitor import QuietMonitor
from scrubber.stream.outputs import ResultBatches
from scrubber.stream.recovery import RecoveryWatch, watch_recovery
from scrubber.stream.runtime import BatchHandler, BatchScopes, StreamRuntime
from scrubber.stream.table_store import ChangelogTable, TableClaimStore, TableHistoryStore

log = logging.getLogger(__name__)

#: How long the producer waits to fill a batch, and how big a batch may grow (per partition).
PRODUCER_LINGER_SECONDS = 0.005
PRODUCER_MAX_BATCH_BYTES = 256 * 1024

#: The emissions that go out in a batch's record batches (``ResultBatches``), not one by one.
_BATCHED = frozenset({"accepted", "flagged"})

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


#: How often the worker looks for quiet input partitions whose log goes on (``Worker.sweep``),
#: how long a partition must have delivered nothing to count as quiet, and how many offsets
#: one sweep of a partition reads at most. Quiet means far longer than a partition's records
#: wait behind others in the stream buffer: the buffer is one queue for every partition, taken
#: in order, so a partition with records in it delivers every few hundred records.
SWEEP_INTERVAL_SECONDS = 5.0
SWEEP_QUIET_SECONDS = 15.0
SWEEP_MAX_RECORDS = 1_000

#: How often the recovery watch reads the table recovery's progress (see stream/recovery.py).
RECOVERY_WATCH_SECONDS = 5.0

#: Exit status of a worker that stopped because Kafka refused an output.
EXIT_DELIVERY_FAILED = 75


def _report_failed_delivery(delivery: Any) -> None:
    """Stop the process at once when an output could not be written.

    The producer retried it until its timeout; the input's offset must not be committed now,
    and a graceful stop would commit it. Exiting without a commit hands the input back to
    whichever worker takes the partition: a result lost to a broker outage becomes a
    redelivery, never a gap. Outputs are bounded, so no message can fail this way every time:
    a dead letter carries its input's key and value whole up to ``DEAD_LETTER_PAYLOAD_BYTES``
    and their first bytes beyond (a compressing upstream can send more), within the producer's
    and the dead-letter topic's 2 MiB (``DEAD_LETTER_MAX_BYTES``, checked at start); results,
    acknowledgements and claim results are small, and the 277CA of one line's claims too.
    """
    if not delivery.cancelled() and delivery.exception() is not None:
        log.critical(
            "an output could not be written; exiting without committing",
            extra={"error_type": type(delivery.exception()).__name__},
        )
        logging.shutdown()
        os._exit(EXIT_DELIVERY_FAILED)


#: Exit status of a worker that stopped because its history store refused a write (EX_IOERR).
EXIT_STORE_FAILED = 74


def _exit_store_failed(exc: StoreWriteError) -> NoReturn:
    """Stop the process at once, without a commit, when the history store refused a write.

    A graceful stop would commit what was acknowledged, which is safe, but would then wait on
    a store that fails every write (RocksDB turns read-only after a failed write until it is
    opened again). A new process opens the store afresh: under a supervisor it resumes from
    the last commit as soon as the disk has space again, and until then fails the same way
    without judging a line.
    """
    log.critical(
        "the patient history store refused a write; exiting without committing",
        extra={"error_type": str(exc)},
    )
    logging.shutdown()
    os._exit(EXIT_STORE_FAILED)


class Worker:
    """The scrubber's Faust app and the objects it runs with."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
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
            # Mostly the history changelog: whole histories, JSON (see kafka.compression_type).
            producer_compression_type=compression_type(settings),
            # Records sent one by one (dead letters, claim results, 277CAs) wait up to 5 ms to
            # share a batch: with no linger each was its own produce request. Results and the
            # history changelog are handed over as whole batches (``outputs.RecordBatches``),
            # closed, and go at once; up to 256 KiB a batch either way.
            producer_linger=PRODUCER_LINGER_SECONDS,
            producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
            # A dead letter carries its input's bytes (up to DEAD_LETTER_PAYLOAD_BYTES) and headers;
            # Faust's default limit (1,000,000 bytes) would refuse it and stop the partition.
            producer_max_request_size=DEAD_LETTER_MAX_BYTES,
            # Room for a few seconds of input: with the fast handoff
            # (faust_internals.drain_messages, SCRUBBER_FAST_HANDOFF) Faust's default 4,096
            # fills, fetching stops and the consumer sleeps a second between fetches.
            stream_buffer_maxsize=settings.stream_buffer_maxsize,
            # The worker has its own metrics; Faust's Monitor counted every record for nothing.
            Monitor=QuietMonitor,
            # The app's tables (the history table is its only one) keep their changelog
            # records until the broker has them, so a batch can wait for its own.
            Table=ChangelogTable,
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
            "claim": self.app.topic(settings.claims_topic, **raw),
            "ack277": self.app.topic(settings.x12_277ca_topic, **raw),
        }
        self.output_names = {kind: topic.get_topic_name() for kind, topic in self.outputs.items()}
        # Patient histories, keyed like the input (member id) and partitioned like it, so a
        # patient's history lives with the partition that receives the patient's lines; Faust
        # recovers it from its compacted changelog after a restart or a rebalance.
        # A ``ChangelogTable`` (the app's ``Table`` class, above).
        self.table = self.app.Table(
            HISTORY_TABLE,
            default=None,
            partitions=settings.partitions,
            store=settings.table_store,
            key_type=bytes,  # bytes types make Faust use the raw serializer for the changelog
            value_type=bytes,
            options=dict(ROCKSDB_OPTIONS) if settings.table_store.startswith("rocksdb") else None,
        )
        self.histories = TableHistoryStore(self.table, settings.history_format)
        # The claims of 837s being assembled from their lines' verdicts, per patient: in the
        # history table under their own key prefix, so they live, move and recover with the
        # patient's history (one changelog, one recovery).
        self.claims = TableClaimStore(
            self.table,
            on_set_aside=self.metrics.claim_assemblies_set_aside.inc,
            on_forgotten=self.metrics.claims_forgotten.inc,
        )
        # Results are put in partitions by Kafka's default partitioner (``outputs``), as the
        # producer would: the app must not be given another one.
        # (Read through ``Any``: the setting is a callable attribute, which mypy would take
        # for a method bound to the settings.)
        conf: Any = self.app.conf
        if conf.producer_partitioner is not None:
            raise ValueError("the worker's results assume Kafka's default partitioner")
        self.results = ResultBatches(
            lambda: aiokafka_producer(self.app),
            _report_failed_delivery,
        )
        self.runtime = StreamRuntime(
            LineProcessor(default_engine(), lateness_days=settings.lateness_days),
            self.holder,
            self.metrics,
            self.send,
            self.histories,
            claims=self.claims,
            partitions=settings.partitions,
        )
        self.reader = KafkaRangeReader(settings)
        self.guard = GapGuard(self.reader)
        self.batches = BatchHandler(
            self.runtime,
            BatchScopes(self.histories, self.claims),
            self.guard,
            FaustAcks(
                self.app,
                frozenset({settings.input_topic}),
                on_refused=self.metrics.acks_refused.inc,
            ),
            on_failure=_exit_store_failed,
            outputs=self.results,
        )
        self._recovery_watch: asyncio.Task[None] | None = None
        self._wire()

    async def send(self, emission: Emission) -> None:
        """Hand one emission to the producer; Faust flushes it before the next offset commit.

        Results (accepted, flagged) go into the batch's record batches (``ResultBatches``),
        handed to the producer when the batch ends and before any of its records is
        acknowledged. The rest (dead letters, claims, 277CAs: fewer than results, and a dead
        letter may be large) go straight to Faust's producer (the one its commits flush), not
        through ``Topic.send``: the topic's message futures and sensors cost more than the send
        itself.
        """
        if emission.kind in _BATCHED and emission.key is not None:
            await self.results.add(
                self.output_names[emission.kind],
                emission.key,
                emission.value,
                list(emission.headers),
            )
            return
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
        """Reasons the worker is not ready (empty when it is); sets ``scrubber_ready``."""
        reasons = readiness_reasons(self.app, self.holder)
        self.metrics.ready.set(0 if reasons else 1)
        return reasons

    async def update_lag(self) -> None:
        """Set ``scrubber_consumer_lag`` per assigned input partition (see ``input_lag``)."""
        lags = await input_lag(self.app, self.settings.input_topic, self.runtime.last_offsets)
        self.metrics.consumer_lag.clear()
        for partition, value in lags.items():
            self.metrics.consumer_lag.labels(str(partition)).set(value)

    def _owns(self, partition: int) -> bool:
        """Whether an input partition is this worker's, with no rebalance under way."""
        app = self.app
        try:
            tp = TP(self.settings.input_topic, partition)
            return not app.rebalancing and tp in app.consumer.assignment()
        except Exception:  # no consumer
            return False

    async def sweep(self) -> int:
        """Handle the records of quiet input partitions that the consumer never delivered.

        A partition that delivered nothing for ``SWEEP_QUIET_SECONDS`` while its log holds
        records this worker has not handled is read by the gap guard and handled (see
        stream/gaps.py). Only a ready worker sweeps: during a table recovery or without
        reference data, records wait by design. Returns the number of records handled.
        """
        topic = self.settings.input_topic
        try:
            assigned = sorted(
                tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic
            )
        except Exception:  # no consumer yet
            return 0
        if self.readiness():
            # Quiet counts only while the worker could have handled records: a partition is
            # not silent for waiting on reference data or a table recovery.
            self.batches.assigned(assigned)
            return 0
        handled = 0
        quiet = self.batches.quiet(assigned, SWEEP_QUIET_SECONDS)
        ends = await self.reader.ends(quiet)
        for partition in quiet:
            if resume_buffered(self.app, TP(topic, partition)):
                self.metrics.partitions_resumed.inc()
                log.warning(
                    "an input partition was left unfetched after a full stream buffer; resumed",
                    extra={"partition": partition},
                )
                continue  # its records wait in the fetcher: delivered now, swept if not
            end = ends[partition]
            if not await self.guard.behind(partition, end):
                continue
            try:
                count = await self.batches.sweep(
                    topic, partition, end, SWEEP_MAX_RECORDS, owned=self._owns
                )
            except StoreWriteError as exc:
                _exit_store_failed(exc)
            if count:
                log.warning(
                    "a quiet input partition had records the consumer never delivered; "
                    "handled them",
                    extra={"partition": partition, "records": count, "log_end_offset": end},
                )
            handled += count
        return handled

    def _wire(self) -> None:
        app, holder, metrics = self.app, self.holder, self.metrics
        guard = self.guard
        worker = self
        input_topic = self.settings.input_topic

        @app.agent(self.input, concurrency=1, name="scrub")
        async def scrub(stream: Any) -> None:
            # ``take_events`` is on Faust's Stream, not on the StreamT interface it types with.
            async for events in stream.take_events(BATCH_MAX_RECORDS, within=BATCH_WAIT_SECONDS):
                try:
                    await worker.batches.handle(events)
                except StoreWriteError as exc:
                    _exit_store_failed(exc)

        async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
            # The consumer exists by now; every assignment sets the fetch wait again (cheap).
            metrics.assignments.inc()
            guard.reset()
            worker.batches.assigned(
                [tp.partition for tp in app.consumer.assignment() if tp.topic == input_topic]
            )
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

        @app.timer(interval=SWEEP_INTERVAL_SECONDS)
        async def sweep() -> None:
            try:
                await worker.sweep()
            except Exception as exc:  # a rebalance moved the partition, a read failed: next time
                log.warning(
                    "sweeping quiet partitions failed", extra={"error_type": type(exc).__name__}
                )

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
        """Run until SIGTERM or SIGINT; Faust stops the agents, flushes and commits on the way.

        Installs the worker's changes to Faust first (``faust_internals.install``), which raises
        ``UnsupportedVersionError`` before anything starts when faust-streaming or aiokafka is
        a release they were not tested with.
        """
        from faust.worker import Worker as FaustWorker

        installation = faust_internals.install(fast_handoff=self.settings.fast_handoff)
        try:
            FaustWorker(
                self.app,
                loglevel=self.settings.log_level,
                logging_config=logging_config(self.settings.log_level, self.settings.log_format),
                redirect_stdouts=False,
            ).execute_from_commandline()
        finally:
            installation.undo()
