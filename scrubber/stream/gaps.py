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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

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


class RangeReader(Protocol):
    """Reads committed offsets and offset ranges of the input topic."""

    async def committed(self, partition: int) -> int | None:
        """The group's committed offset (the next record to handle), or None."""
        ...

    async def beginning(self, partition: int) -> int:
        """The first offset still in the partition."""
        ...

    async def read(self, partition: int, start: int, end: int) -> Sequence[RawRecord]:
        """Every record with start <= offset < end."""
        ...


class GapGuard:
    """Tracks the next offset per partition and fetches what the framework skipped."""

    def __init__(self, reader: RangeReader) -> None:
        self.reader = reader
        self.expected: dict[int, int] = {}
        self.recovered = 0
        self._stale: set[int] = set()

    def reset(self) -> None:
        """Partitions were (re)assigned: read each one's committed offset again when next used.

        What this process handled stays known (``already_handled``): another worker may have
        moved a partition further meanwhile (the committed offset is then higher and wins), but
        nothing below what was handled here needs handling again.
        """
        self._stale = set(self.expected)

    async def missing(self, partition: int, offset: int) -> Sequence[RawRecord]:
        """The records before ``offset`` that the worker has not been handed, in order."""
        if partition not in self.expected or partition in self._stale:
            committed = await self.reader.committed(partition)
            start = committed if committed is not None else await self.reader.beginning(partition)
            self.expected[partition] = max(start, self.expected.get(partition, start))
            self._stale.discard(partition)
        start = self.expected[partition]
        if offset <= start:
            return ()
        records = tuple(await self.reader.read(partition, start, offset))
        if records:
            self.recovered += len(records)
            log.warning(
                "input records were skipped by the consumer; handling them now",
                extra={
                    "partition": partition,
                    "from_offset": start,
                    "to_offset": offset - 1,
                    "records": len(records),
                },
            )
        return records

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

    async def _reader(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                **client_kwargs(self.settings),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await self._consumer.start()
        return self._consumer

    async def _group(self) -> AIOKafkaConsumer:
        # A consumer that names the group but never joins it: it can read the group's committed
        # offsets (OffsetFetch) without taking part in the group's assignment.
        if self._committed is None:
            self._committed = AIOKafkaConsumer(
                **client_kwargs(self.settings),
                group_id=self.settings.app_id,
                enable_auto_commit=False,
            )
            await self._committed.start()
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
            except TimeoutError:
                log.warning(
                    "reading the group's committed offset timed out; retrying with a new consumer",
                    extra={"partition": partition, "timeout_seconds": COMMITTED_TIMEOUT_SECONDS},
                )
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

    async def read(self, partition: int, start: int, end: int) -> Sequence[RawRecord]:
        """Read [start, end) of one partition; stops early if the log has less."""
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
                continue
            for r in records:
                if r.offset >= end:
                    return out
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
                return out
        return out

    async def close(self) -> None:
        """Stop the consumers."""
        for consumer in (self._consumer, self._committed):
            if consumer is not None:
                await consumer.stop()
