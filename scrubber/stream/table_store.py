"""The worker's Faust tables as the processor sees them, kept decoded for the length of a batch.

Owns the patient-history table as the processor sees it (a ``HistoryStore``) and as the claim
assembly does (a ``ClaimStore``, under ``CLAIMS_PREFIX`` and the member id): which partition's
store and changelog a value is read from and written to, and when it is written. Faust picks
that partition from its current event, which ``faust_internals.enter_event`` sets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import faust

from scrubber.claims import ClaimAssembler
from scrubber.history import (
    STORED_VALUE_MAX_BYTES,
    WRITE_FORMATS,
    PatientHistory,
    StoreWriteError,
    read_stored,
)
from scrubber.logs import SIZE_LIMIT_WARNING_SECONDS, Throttle
from scrubber.stream.faust_internals import aiokafka_producer, enter_event
from scrubber.stream.outputs import RecordBatches

log = logging.getLogger(__name__)

#: Key prefix of the histories (and claim assemblies) set aside because they no longer decode.
SET_ASIDE_PREFIX = b"set-aside:"
#: Key prefix of the patients' claim assemblies in the history table (NUL bytes: a member id,
#: the key of a history, is printable text).
CLAIMS_PREFIX = b"\x00claims\x00"

V = TypeVar("V")


def _kept_aside(data: bytes) -> bytes:
    """What is set aside of a value that does not decode: all of it, or what the changelog takes.

    A value over ``STORED_VALUE_MAX_BYTES`` can be in a local RocksDB store only from before
    the limit (the store took it, the changelog refused it); its first bytes are what a person
    can look at, and the whole would be refused again, stopping the worker.
    """
    return data[:STORED_VALUE_MAX_BYTES]


def write_value(table: Any, key: bytes, value: bytes) -> None:
    """Write one value to the table; a refusal is ``StoreWriteError`` whatever the store.

    Every write of this module goes through here, the values already encoded, so the error
    means the store (RocksDB on a full disk; a write outside an event), never a bug in an
    encoder. The changelog's refusals come from ``ChangelogTable.sent``.
    """
    try:
        if isinstance(table, ChangelogTable):
            table.write(key, value)
        else:
            table[key] = value
    except Exception as exc:
        raise StoreWriteError(type(exc).__name__) from exc


#: How long a batch waits for the producer to take its changelog records and the broker to
#: acknowledge them before the worker gives up and stops (a broker restart takes seconds; a
#: partition without a leader for longer is an outage the worker is restarted out of, from its
#: last commit).
CHANGELOG_WAIT_SECONDS = 120.0


def _failure(done: asyncio.Future[Any]) -> str | None:
    """Why a finished future failed, for a ``StoreWriteError``; None when it succeeded.

    "cancelled", or the exception's type name: its text may hold a key (a member id).
    """
    if done.cancelled():
        return "cancelled"
    error = done.exception()
    return None if error is None else type(error).__name__


class ChangelogTable(faust.Table[bytes, bytes]):
    """The history table: Faust's table, keeping the changelog records it sends until sent.

    Faust hands a table's changelog records to its producer's buffer and flushes that buffer
    before it commits offsets, but the flush gives up as soon as no record went out for
    100 ms (``ProducerBuffer.flush_atmost``), and a record taken from the buffer but not yet
    in the Kafka client's batches is not waited for either. A commit could then cover inputs
    whose histories were not in the changelog yet, and a crash lose them: the patient's later
    lines judged without those lines. So a batch waits for its own changelog records
    (``sent``: the broker has them) before its inputs are acknowledged; the worker waits while
    it handles the next batch, whose writes may come in during the wait.

    The worker's writes (``write``) do what Faust's ``table[key] = value`` does: the value
    goes into the partition's store at once, and the same changelog record (the changelog
    topic, the current event's partition, the key and the value as they are, no headers) goes
    to the app's producer, the one Faust flushes before a commit; the store's persisted offset
    (where a restarted worker's recovery starts reading) is set, per partition, once the broker
    has all of a batch's records. What it leaves out is the way there: Faust's
    ``FutureMessage``, its producer buffer and the task that empties it, and a callback per
    record, which cost a worker about 12 µs of CPU per input line (``docs/performance.md``);
    and a send per record: the records go to the aiokafka producer inside Faust's
    (``faust_internals.aiokafka_producer``) as one record batch per partition
    (``outputs.RecordBatches``), as the results do.
    A write inside a Kafka transaction takes Faust's own path through ``send_changelog``,
    which is extended to keep its futures, as would a delete; the worker never deletes from
    the table, and a delete would not be ordered against the records ``write`` queued.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: list[asyncio.Future[Any]] = []
        # Records ``write`` put in the store whose changelog record is not with the producer
        # yet, and the tasks that hand them over (``_hand_over``).
        self._queued: deque[tuple[int, bytes, bytes]] = deque()
        self._handing_over: list[asyncio.Task[None]] = []
        # The record batches ``_hand_over`` sent, with their number of records: the store is
        # told of the offset of each one's last record.
        self._offsets_unset: list[tuple[asyncio.Future[Any], int]] = []
        self._batches = RecordBatches(lambda: aiokafka_producer(self.app), self._handed_over)
        # Why the changelog lost records, once it has (``sent``).
        self._refused: str | None = None

    def write(self, key: bytes, value: bytes) -> None:
        """``table[key] = value``: the store now, the changelog record on its way (``sent``).

        The record is handed to the producer by a task started here, as Faust's producer
        buffer would, one task at a time, in the order written: a batch cancelled while it
        waits (the worker stopping) leaves the task running, and the next wait waits for it.
        A record the producer no longer takes (it stopped first) belongs to inputs that were
        not acknowledged: handled again, they write their patients' histories again (every
        handled line writes its patient's history).
        """
        partition = None if self.app.in_transaction else self.partition_for_key(key)
        if partition is None:
            # Faust keeps a transaction's offsets itself, and a table that lets the producer
            # choose the partition (``use_partitioner``) has no partition here: its own path.
            self[key] = value
            return
        self.data[key] = value  # the current event's partition, as Faust's own path
        self._queued.append((partition, key, value))
        if not self._handing_over or self._handing_over[-1].done():
            task = asyncio.ensure_future(self._hand_over())
            # Reading the failure marks it seen: ``sent`` reports it, never asyncio's log.
            task.add_done_callback(_failure)
            self._handing_over.append(task)

    async def _hand_over(self) -> None:
        """Send the queued records, in order, to the producer: one record batch per partition.

        What Faust's ``Topic.publish_message`` would send record by record (the changelog
        topic, the partition, the key and the value as they are, no headers), gathered per
        partition in aiokafka's record batch builders (``outputs.RecordBatches``) and handed
        over closed, so they go without lingering. Records written meanwhile are sent too.
        """
        topic = self.changelog_topic.get_topic_name()
        queued, batches = self._queued, self._batches
        try:
            while queued:
                while queued:
                    partition, key, value = queued.popleft()
                    await batches.append(topic, partition, key, value, [])
                await batches.flush()
        except BaseException:
            batches.discard()
            raise

    def _handed_over(self, delivery: asyncio.Future[Any], records: int) -> None:
        self._unsent.append(delivery)
        self._offsets_unset.append((delivery, records))

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        """Faust's ``send_changelog``; the record's future is kept for ``sent``."""
        future = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self._unsent.append(future)
        return future

    async def sent(self) -> None:
        """Wait until the broker has every changelog record sent so far.

        Records written while it waits (the next batch's) may be waited for too, and their
        offsets persisted: more than the caller needs, never less. One wait at a time: the
        worker's next wait begins after this one ended (``BatchHandler.settled``).

        A record the producer could not take or deliver (it retried until its timeout), or
        that is not taken and acknowledged within ``CHANGELOG_WAIT_SECONDS``, is a refused write:
        ``StoreWriteError``, and the worker stops without acknowledging the batch. Nothing is
        cancelled here (``asyncio.wait``, not ``gather`` or ``wait_for``): a record cancelled
        would still be sent, and Faust's callback for it fail. A wait that is cancelled leaves
        what it waited for to the next one. Once a wait has failed, every later one fails the
        same way: records were lost (a refused batch takes all of its records with it), so no
        later batch may count as written.
        """
        if self._refused is not None:
            raise StoreWriteError(self._refused)
        try:
            await self._wait_sent()
        except StoreWriteError as exc:
            self._refused = str(exc)
            raise

    async def _wait_sent(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHANGELOG_WAIT_SECONDS
        handing_over = self._handing_over
        while handing_over:
            task = handing_over[0]
            # The caller's cancellation passes; the task is never cancelled. A send waits while
            # the partition's batch cannot drain (no leader, no broker) up to the producer's
            # request timeout, far longer than a batch may wait.
            done, _ = await asyncio.wait((task,), timeout=max(0.0, deadline - loop.time()))
            if not done:
                raise StoreWriteError(
                    f"changelog records not taken by the producer in {CHANGELOG_WAIT_SECONDS} s"
                )
            handing_over.remove(task)
            failure = _failure(task)
            if failure is not None:
                raise StoreWriteError(f"changelog record not taken by the producer: {failure}")
        unsent, self._unsent = self._unsent, []
        delivered, self._offsets_unset = self._offsets_unset, []
        if not unsent:
            return
        try:
            _done, pending = await asyncio.wait(unsent, timeout=max(0.0, deadline - loop.time()))
        except asyncio.CancelledError:
            self._unsent[:0] = unsent
            self._offsets_unset[:0] = delivered
            raise
        if pending:
            raise StoreWriteError(
                f"{len(pending)} changelog records not acknowledged in {CHANGELOG_WAIT_SECONDS} s"
            )
        for future in unsent:
            failure = _failure(future)
            if failure is not None:
                raise StoreWriteError(f"changelog record not delivered: {failure}")
        self._persist_offsets(delivered)

    def _persist_offsets(self, delivered: list[tuple[asyncio.Future[Any], int]]) -> None:
        """Tell the store the newest changelog offset it holds, per partition.

        Faust's ``_on_changelog_sent`` does it per record; once per batch, after the broker
        has them all, ends in the same state (and where a batch fails, with an older offset:
        a restarted worker's recovery reads a few records more). A record batch's future gives
        the offset of its first record; its last is ``records - 1`` after it. A store that
        refuses it is a refused write.
        """
        newest: dict[Any, int] = {}
        for future, records in delivered:
            metadata = future.result()
            tp = metadata.topic_partition
            newest[tp] = max(newest.get(tp, -1), metadata.offset + records - 1)
        try:
            for tp, offset in newest.items():
                self.data.set_persisted_offset(tp, offset)
        except Exception as exc:
            raise StoreWriteError(type(exc).__name__) from exc


async def changelog_sent(table: Any) -> None:
    """``ChangelogTable.sent`` for the worker's table; other tables have nothing to wait for.

    The benchmark's worker path and the unit tests use plain mappings in its place.
    """
    if isinstance(table, ChangelogTable):
        await table.sent()


class _BatchedTable(Generic[V]):
    """A Faust table whose values are kept decoded, and written once, per batch.

    The agent handles input records in batches. Within a batch the values it reads and writes
    are kept here, decoded, and each one that changed is written to the table once, by
    ``flush``, before the batch's records are acknowledged: the records of a claim arrive
    together, and encoding and writing a value (and its changelog record) for every one of
    them was a fifth of the worker's time. Reads see exactly what writing every value at once
    would have shown.

    Faust picks the table partition (its store and its changelog partition) from the current
    event. ``at`` names the event whose records follow; a value is written with an event of
    the partition it was read for, so it lands where writing it at once would have put it.
    """

    #: Prefix of this store's keys in the table (the member id follows).
    prefix = b""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._partition: int | None = None
        self._events: dict[int, Any] = {}
        self._pending: dict[str, tuple[int | None, V]] = {}

    def at(self, event: Any) -> None:
        """Handle the following records as records of ``event``'s partition."""
        partition = event.message.partition
        self._events[partition] = event
        self._partition = partition
        enter_event(event)

    def _kept(self, member_id: str) -> V | None:
        """The value this batch holds for the member on the current partition, if any."""
        pending = self._pending.get(member_id)
        if pending is None:
            return None
        if pending[0] == self._partition:
            return pending[1]
        # The same key on another partition: write it first, then read the table as usual.
        del self._pending[member_id]
        self._write(member_id, *pending)
        return None

    def _keep(self, member_id: str, value: V) -> None:
        self._pending[member_id] = (self._partition, value)

    def flush(self) -> None:
        """Write every value the batch changed (Faust also writes it to the changelog)."""
        pending, self._pending = self._pending, {}
        for member_id, (partition, value) in pending.items():
            self._write(member_id, partition, value)

    async def written(self) -> None:
        """Wait until what ``flush`` wrote is in the changelog (``ChangelogTable.sent``)."""
        await changelog_sent(self.table)

    def _encode(self, value: V, partition: int | None) -> bytes:
        """The value's bytes (``partition``: the input partition whose batch wrote it)."""
        raise NotImplementedError

    def _write(self, member_id: str, partition: int | None, value: V) -> None:
        if partition is not None:
            enter_event(self._events[partition])
        try:
            data = self._encode(value, self._partition if partition is None else partition)
            write_value(self.table, self.prefix + member_id.encode(), data)
        finally:
            if self._partition is not None:
                enter_event(self._events[self._partition])


class TableHistoryStore(_BatchedTable[PatientHistory]):
    """Patient histories in a Faust table (values are ``PatientHistory.to_bytes``), per batch.

    ``history_format`` is the stored format it writes (``SCRUBBER_HISTORY_FORMAT``); it reads
    every format.
    """

    def __init__(self, table: Any, history_format: int = 3) -> None:
        super().__init__(table)
        if history_format not in WRITE_FORMATS:
            raise ValueError(f"cannot write patient history format {history_format!r}")
        self.history_format = history_format

    def get(self, member_id: str) -> PatientHistory | None:
        """The patient's history, or None when the table has none."""
        kept = self._kept(member_id)
        if kept is not None:
            return kept
        raw = self.table.get(member_id.encode())
        return read_stored(raw) if raw else None

    def set_aside(self, member_id: str, data: bytes) -> None:
        """Keep a history that does not decode under ``set-aside:<member id>`` in the table.

        Written at once, with the current event's partition (the patient's), so the changelog
        keeps the bytes for a person to look at, while the patient's own key gets the history
        rebuilt from the lines that follow.
        """
        write_value(self.table, SET_ASIDE_PREFIX + member_id.encode(), _kept_aside(data))

    def put(self, member_id: str, history: PatientHistory) -> None:
        """Keep the new history; ``flush`` writes it."""
        self._keep(member_id, history)

    def _encode(self, value: PatientHistory, partition: int | None) -> bytes:
        return value.to_bytes(self.history_format)


class TableClaimStore(_BatchedTable[ClaimAssembler]):
    """Each patient's claims being assembled (``ClaimAssembler.to_bytes``), per batch.

    In the history table under ``CLAIMS_PREFIX`` and the member id, written with the
    patient's partition, so a patient's claims live, move and are recovered with the patient's
    history, from the same compacted changelog (a second table would be a second changelog to
    recover after every restart and rebalance); kept decoded per batch like the histories.
    An assembly that no longer reads is set aside like a history (``set-aside:`` and that key,
    written at once), ``on_set_aside`` is called, and the patient's claims start afresh: a
    claim whose earlier lines were only in it is answered again when those lines are sent
    again.
    """

    prefix = CLAIMS_PREFIX

    def __init__(
        self,
        table: Any,
        on_set_aside: Callable[[], None] | None = None,
        on_forgotten: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(table)
        self.on_set_aside = on_set_aside
        #: Called with how many claims a write forgot to stay within the table's value limit.
        self.on_forgotten = on_forgotten
        self._forgotten_warning = Throttle(SIZE_LIMIT_WARNING_SECONDS)

    def get(self, member_id: str) -> ClaimAssembler | None:
        """The patient's assembly, or None (none yet, or set aside)."""
        kept = self._kept(member_id)
        if kept is not None:
            return kept
        key = self.prefix + member_id.encode()
        raw = self.table.get(key)
        if not raw:
            return None
        try:
            return ClaimAssembler.from_bytes(bytes(raw))
        except ValueError as exc:
            write_value(self.table, SET_ASIDE_PREFIX + key, _kept_aside(bytes(raw)))
            log.warning(
                "a stored claim assembly did not read; set aside, the patient's claims start "
                "afresh",
                extra={"error_type": str(exc)},
            )
            if self.on_set_aside is not None:
                self.on_set_aside()
            return None

    def put(self, member_id: str, assembler: ClaimAssembler) -> None:
        """Keep the patient's new assembly; ``flush`` writes it."""
        self._keep(member_id, assembler)

    def _encode(self, value: ClaimAssembler, partition: int | None) -> bytes:
        data, forgotten = value.to_bytes_within(STORED_VALUE_MAX_BYTES)
        if forgotten:
            if self.on_forgotten is not None:
                self.on_forgotten(forgotten)
            if self._forgotten_warning.due():  # the counter has every one
                event = self._events.get(partition) if partition is not None else None
                log.warning(
                    "a patient's claims reached their size limit; the oldest were forgotten",
                    extra={
                        "topic": event.message.topic if event is not None else None,
                        "partition": partition,
                        "offset": event.message.offset if event is not None else None,
                        "claims_forgotten": forgotten,
                    },
                )
        return data
