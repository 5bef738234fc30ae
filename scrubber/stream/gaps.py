"""A guard against input records the stream framework skips.

faust-streaming 0.15.3 can drop fetched records while it recovers tables after a restart or a
rebalance (faust-streaming issues #596 and #606): records between the committed offset and the
first record it delivers are never handed to the agent, and its offset bookkeeping may even
commit past them. Measured here: after a graceful restart under a backlog, runs of 17 to 136
records per partition went missing in about half of the attempts.

The guard makes that harmless. It knows, per input partition, the next offset the worker must
handle: the group's committed offset when the partition is first seen, then one past every
record handled. When a record arrives beyond that offset, the guard reads the missing records
itself with a separate, group-less consumer, and the worker handles them first, in order. A
record delivered again below that offset is acknowledged without a second verdict
(``already_handled``). The guard never skips anything, so a gap that is really there
(compaction, transaction markers) costs one read and nothing else.

After a rebalance the guard takes the group's committed offset again, but never below what this
process has handled itself: a commit that did not land before the partitions moved (measured:
now and then at a rebalance 1 -> 2 -> 1, the same worker was handed back 300-400 records per
partition it had answered already) would otherwise make it handle them a second time. A record
below that offset is acknowledged without a second verdict; its outputs and its history's
changelog record were handed to the producer, which Faust flushes before every commit.

A skip at the end of a partition has no later record to reveal it: the records the consumer
moved past are simply never delivered, and the partition stays silent with its lag showing
(seen after restarts, one partition answering nothing for minutes). The worker therefore also
sweeps: a partition that has delivered nothing for a while although its log holds records the
guard has not seen handled is read by the guard up to the log's end (``missing`` with that end).

Every offset of a range the guard read is accounted for: a record it returned, or an offset with
no record (a transaction marker, a compacted record), which the worker acknowledges with the
range. The read goes on until it reaches the end it was asked for, so a slow broker cannot make
a record look absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from scrubber.config import Settings
from scrubber.kafka import client_kwargs

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record read from the input topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets ``start`` to ``end - 1`` of a partition, read back: ``records`` are those present.

    The offsets of the range without a record (transaction markers, compacted records) are part
    of it all the same: they are acknowledged with it.
    """

    partition: int
    start: int
    end: int
    records: tuple[RawRecord, ...]

    def __bool__(self) -> bool:
        return self.end > self.start


#: No gap (``missing`` when nothing was skipped).
NO_GAP = Gap(-1, 0, 0, ())


class RangeReader(Protocol):
    """Reads committed offsets and offset ranges of the input topic."""

    async def committed(self, partition: int) -> int | None:
        """The group's committed offset (the next record to handle), or None."""
        ...

    async def beginning(self, partition: int) -> int:
        """The first offset still in the partition."""
        ...

    async def read(self, partition: int, start: int, end: int) -> tuple[Sequence[RawRecord], int]:
        """The records with start <= offset < end, and the offset the read reached.

        Every offset from ``start`` to the one reached (excluded) was read: a record, or an
        offset without one. A read may stop short of ``end`` (nothing arrived in time).
        """
        ...


class GapGuard:
    """Tracks the next offset per partition and fetches what the framework skipped."""

    def __init__(self, reader: RangeReader) -> None:
        self.reader = reader
        self.expected: dict[int, int] = {}
        self.recovered = 0
        self._stale: set[int] = set()
        self._settled: list[Gap] = []

    def reset(self) -> None:
        """Partitions were (re)assigned: read each one's committed offset again when next used.

        What this process handled stays known (``already_handled``): another worker may have
        moved a partition further meanwhile (the committed offset is then higher and wins), but
        nothing below what was handled here needs handling again.
        """
        self._stale = set(self.expected)

    async def _refresh(self, partition: int) -> None:
        """Take the group's committed offset for a partition first seen or reassigned.

        Never below what this process handled. When the commit is below it (a commit that
        missed the rebalance), the offsets in between were handled here and are acknowledged
        again (``settled``): Faust fetches them anew, and a skip among them would otherwise
        leave nothing to acknowledge them, and the commit would stop there.
        """
        if partition in self.expected and partition not in self._stale:
            return
        committed = await self.reader.committed(partition)
        start = committed if committed is not None else await self.reader.beginning(partition)
        if partition in self.expected and partition not in self._stale:
            return  # refreshed by another task meanwhile
        known = self.expected.get(partition)
        if known is not None and start < known:
            self._settled.append(Gap(partition, start, known, ()))
        self.expected[partition] = start if known is None else max(start, known)
        self._stale.discard(partition)

    def settled(self) -> list[Gap]:
        """Ranges handled here that the group's commit lost, to acknowledge again (each once).

        The caller acknowledges them after its batch's histories are written.
        """
        found, self._settled = self._settled, []
        return found

    def snapshot(self) -> dict[int, int]:
        """The next offset per partition, to ``restore`` if a batch's writes fail."""
        return dict(self.expected)

    def restore(self, snapshot: dict[int, int]) -> None:
        """Forget what a batch handled: its histories could not be written."""
        for partition, offset in snapshot.items():
            if partition in self.expected:
                self.expected[partition] = offset
        for partition in set(self.expected) - set(snapshot):
            del self.expected[partition]

    async def missing(self, partition: int, offset: int, limit: int | None = None) -> Gap:
        """The offsets before ``offset`` the worker has not been handed, with their records.

        ``limit`` bounds the range (a sweep of a long backlog reads it in parts). Reads again
        from where a read stopped until the whole range was read: the records are in the log
        (the consumer delivered a later one, or the log's end is past them), so a read that
        stops short was slow, not proof that they are absent.
        """
        await self._refresh(partition)
        start = self.expected[partition]
        end = offset if limit is None else min(offset, start + limit)
        if end <= start:
            return NO_GAP
        records: list[RawRecord] = []
        reached = start
        delay = READ_RETRY_FIRST_SECONDS
        while reached < end:
            chunk, now_reached = await self.reader.read(partition, reached, end)
            records += chunk
            if now_reached <= reached:
                log.warning(
                    "reading skipped input records made no progress; trying again",
                    extra={"partition": partition, "from_offset": reached, "to_offset": end - 1},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, READ_RETRY_MAX_SECONDS)
            reached = max(reached, now_reached)
        if records:
            self.recovered += len(records)
            log.warning(
                "input records were skipped by the consumer; handling them now",
                extra={
                    "partition": partition,
                    "from_offset": start,
                    "to_offset": end - 1,
                    "records": len(records),
                },
            )
        return Gap(partition, start, end, tuple(records))

    async def behind(self, partition: int, end: int) -> bool:
        """Whether records before ``end`` remain that this worker has not handled.

        A sweep asks this before it waits for its turn with the agent, so a slow first read of
        the committed offset never holds the agent's batches (and is kept for ``missing``).
        """
        await self._refresh(partition)
        return self.expected[partition] < end

    def already_handled(self, partition: int, offset: int) -> bool:
        """Whether this process has handled the record already (read back, then re-delivered).

        Every offset below the expected one was handled here, read back by the guard or was never
        in the log, so a record below it is a second delivery and needs no second verdict.
        """
        expected = self.expected.get(partition)
        return expected is not None and offset < expected

    def handled(self, partition: int, offset: int) -> None:
        """Record that ``offset`` was handled."""
        if offset + 1 > self.expected.get(partition, -1):
            self.expected[partition] = offset + 1


#: How long the guard waits before reading a range again when a read made no progress.
READ_RETRY_FIRST_SECONDS = 0.5
READ_RETRY_MAX_SECONDS = 10.0

#: How long one read of a committed offset may take before the consumer is replaced: a lookup
#: answers in milliseconds on a healthy broker, and the worker's session timeout is 15 s.
COMMITTED_TIMEOUT_SECONDS = 10.0


class KafkaRangeReader:
    """``RangeReader`` over a group-less aiokafka consumer (started lazily, reused)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.input_topic
        self._consumer: AIOKafkaConsumer | None = None
        self._committed: AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()

    async def _reader(self) -> AIOKafkaConsumer:
        # The agent and the worker's sweep both read: one consumer, started once.
        async with self._starting:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    **client_kwargs(self.settings),
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                )
                await consumer.start()
                self._consumer = consumer
        return self._consumer

    async def _group(self) -> AIOKafkaConsumer:
        # A consumer that names the group but never joins it: it can read the group's committed
        # offsets (OffsetFetch) without taking part in the group's assignment.
        async with self._starting:
            if self._committed is None:
                consumer = AIOKafkaConsumer(
                    **client_kwargs(self.settings),
                    group_id=self.settings.app_id,
                    enable_auto_commit=False,
                )
                await consumer.start()
                self._committed = consumer
        return self._committed

    async def committed(self, partition: int) -> int | None:
        """The group's committed offset for a partition of the input topic.

        Each try is bounded: aiokafka looks the group coordinator up and retries without a
        deadline, and a lookup that never ends would hold the partition's records (and every
        record behind them in the agent) without a word. A try that takes longer than
        ``COMMITTED_TIMEOUT_SECONDS`` is logged, the consumer is replaced (a new one finds the
        coordinator afresh) and the read is tried again: the guard never guesses an offset.
        """
        tp = TopicPartition(self.topic, partition)
        delay = 1.0
        while True:
            consumer = await self._group()
            try:
                result: int | None = await asyncio.wait_for(
                    consumer.committed(tp), COMMITTED_TIMEOUT_SECONDS
                )
                return result
            except (TimeoutError, KafkaError, ConsumerStoppedError) as exc:
                log.warning(
                    "reading the group's committed offset failed; retrying with a new consumer",
                    extra={
                        "partition": partition,
                        "timeout_seconds": COMMITTED_TIMEOUT_SECONDS,
                        "error_type": type(exc).__name__,
                    },
                )
                # Another read may have replaced it already (the agent and the sweep share it).
                current = self._committed is consumer
                if current:
                    self._committed = None
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(consumer.stop(), 5.0)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def beginning(self, partition: int) -> int:
        """The log start offset of a partition."""
        consumer = await self._reader()
        tp = TopicPartition(self.topic, partition)
        return int((await consumer.beginning_offsets([tp]))[tp])

    async def read(self, partition: int, start: int, end: int) -> tuple[Sequence[RawRecord], int]:
        """Read [start, end) of one partition; stops early when nothing arrives for a second.

        The offset reached is the consumer's position, which moves past offsets that hold no
        record (transaction markers, compacted records) as well as past records.
        """
        consumer = await self._reader()
        tp = TopicPartition(self.topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        out: list[RawRecord] = []
        empty_polls = 0
        while empty_polls < 5:  # 5 x 200 ms without data: the rest of the range is not there
            batch = await consumer.getmany(tp, timeout_ms=200, max_records=1000)
            records = batch.get(tp, [])
            if not records:
                empty_polls += 1
                if await consumer.position(tp) >= end:
                    return out, end
                continue
            for r in records:
                if r.offset >= end:
                    return out, end
                if r.offset < start:
                    continue  # the position was reset to the log start: read before
                out.append(
                    RawRecord(
                        partition,
                        r.offset,
                        r.key,
                        r.value,
                        r.timestamp / 1000.0 if r.timestamp is not None else None,
                        tuple(r.headers or ()),
                    )
                )
            if records[-1].offset >= end - 1:
                return out, end
        return out, min(end, max(start, await consumer.position(tp)))

    async def ends(self, partitions: Sequence[int]) -> dict[int, int]:
        """The log end offsets of partitions (the offsets their next records will have).

        One request for all of them.
        """
        if not partitions:
            return {}
        consumer = await self._reader()
        tps = [TopicPartition(self.topic, partition) for partition in partitions]
        found = await consumer.end_offsets(tps)
        return {tp.partition: int(found[tp]) for tp in tps}

    async def close(self) -> None:
        """Stop the consumers."""
        for consumer in (self._consumer, self._committed):
            if consumer is not None:
                await consumer.stop()
