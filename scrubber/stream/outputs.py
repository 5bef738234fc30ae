"""Records handed to Kafka a batch at a time, in one record batch per partition.

``RecordBatches`` is the one way the worker does it, for its results (``ResultBatches``, below)
and for the history changelog (``table_store.ChangelogTable``, whose records had the same
per-record cost: its own wait for them and the offsets it persists are unchanged).

The worker's results (the accepted and flagged topics) were each a call of the producer's
``send``: a coroutine, a metadata wait, the key's partition hashed in pure Python, a future per
record, a callback per record: about 12-14 µs of the worker's CPU a result (a tenth of the
worker's samples under py-spy at its peak, docs/performance.md). ``ResultBatches``
gathers a batch of input's results per (topic, partition) in aiokafka's record batch builder
(its C record builder appends one in about a microsecond) and hands each builder to the
producer once, at the batch's end (``flush``): one future and one callback per partition.

What does not change:
- A result goes to the partition Kafka's default partitioner picks for its key (murmur2 of the
  key, as aiokafka's ``DefaultPartitioner`` and the Java client compute it), over the topic's
  partitions as the producer's metadata has them at the batch's first result for the topic.
- The batches go to Faust's producer, the one Faust flushes before it commits offsets, and
  ``flush`` runs before any record of the batch is acknowledged (``BatchHandler``): a record is
  still acknowledged only once its results are with the producer.
- A result the broker does not take stops the worker without a commit (``on_delivery``,
  ``app._report_failed_delivery``), as a refused single record did.
- Results of one partition stay in the order they were made: one builder per partition at a
  time, handed over in order (aiokafka queues a partition's batches in order).

What changes: a result waits for the end of its batch's turn, where it waited up to the
producer's 5 ms linger: a few milliseconds to the turn's length at the peak, and as long as the
turn when the turn waits (a history store away, reference data not loaded yet); its record is
not acknowledged meanwhile either. Claim results and 277CAs still go one by one, so they
usually reach Kafka before the line results they summarise (Kafka keeps no order between
topics).

A builder is closed before it is handed over, and aiokafka sends a closed batch without waiting
for its linger; a builder that fills before the batch's end (``PRODUCER_MAX_BATCH_BYTES``) is
handed over then and a new one started. aiokafka's ``send_batch`` waits while the partition
already has a batch not yet taken by its sender, as its ``send`` waits for room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from aiokafka.partitioner import murmur2

#: Key hashes kept (``_key_hash``): the keys are member ids, and a patient's lines, and the
#: results of its revisions, come close together. About 100 bytes each: well under 2 MB.
KEY_HASHES = 16_384


@lru_cache(maxsize=KEY_HASHES)
def _key_hash(key: bytes) -> int:
    """murmur2 of a key as the default partitioner uses it (pure Python: 1.7 µs a key)."""
    hashed: int = murmur2(key)
    return hashed & 0x7FFFFFFF


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``.

    ``partitions`` as aiokafka passes them to its partitioner: the topic's partition set from
    the producer's metadata, as a list.
    """
    return partitions[_key_hash(key) % len(partitions)]


class RecordsLostError(Exception):
    """A batch's records were not all handed to the producer; none of its inputs may count."""


class RecordBatches:
    """Records gathered per (topic, partition) in aiokafka's record batch builders until ``flush``.

    The one way the worker hands records to Kafka a batch at a time: the results
    (``ResultBatches``) and the history changelog (``table_store.ChangelogTable``). Records of one
    partition keep the order they were added in: one builder per partition at a time, handed
    over in order (aiokafka queues a partition's batches in order).

    ``producer`` gives the started aiokafka producer (``faust_internals.aiokafka_producer``:
    Faust creates it only when the app starts). ``handed_over`` is called with each batch's
    delivery future (its result is the offset of the batch's first record) and its number of
    records.

    One caller at a time (the agent's turn for the results, the one hand-over task for the
    changelog): a partition's builder is out of its place while a full one is handed over, and
    a second caller's record there would be lost; ``append`` refuses it rather than lose it.
    aiokafka's ``send_batch`` does not check a record against the producer's request limit as
    ``send`` does: a record too large for the broker fails its batch's delivery.
    """

    def __init__(
        self,
        producer: Callable[[], Any],
        handed_over: Callable[[asyncio.Future[Any], int], None],
    ) -> None:
        self._producer = producer
        self._handed_over = handed_over
        self._builders: dict[tuple[str, int], Any] = {}
        # A full batch's hand-over failed (or was cancelled) before ``flush``: its records are
        # gone, so ``flush`` must fail too, or the records before them would count as handed
        # over.
        self._lost: BaseException | None = None

    @property
    def pending(self) -> int:
        """How many record batches wait for ``flush``."""
        return len(self._builders)

    async def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> None:
        """Put a record into its partition's batch (handed over now only if that one is full).

        ``headers`` a list: aiokafka's C record builder takes no other sequence.
        """
        place = (topic, partition)
        builder = self._builders.get(place)
        if builder is None:
            builder = self._builders[place] = self._producer().create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            # Full: hand it over, then start the partition's next batch with this record (an
            # empty builder takes a record of any size).
            del self._builders[place]
            try:
                await self._submit(place, builder)
            except BaseException as exc:
                self._lost = exc
                raise
            if place in self._builders:
                raise RuntimeError(
                    "records appended to a partition while its batch was handed over"
                )
            builder = self._builders[place] = self._producer().create_batch()
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                raise RuntimeError("a record does not fit an empty record batch")

    async def flush(self) -> None:
        """Hand every pending batch to the producer (each is sent without lingering).

        Raises when the records cannot all be handed over: one of the full batches failed
        earlier (``append``), or a hand-over here fails. What is left is dropped: the inputs
        they were for are not acknowledged (the caller rolls back or stops) and are delivered
        again.
        """
        builders, lost = self._builders, self._lost
        self.discard()  # the next batch starts afresh, whatever happens here
        if lost is not None:
            if isinstance(lost, asyncio.CancelledError):  # the worker stopping: still a stop
                raise asyncio.CancelledError("records of the batch were not handed over")
            raise RecordsLostError(type(lost).__name__) from lost
        for place, builder in builders.items():
            await self._submit(place, builder)

    def discard(self) -> None:
        """Forget the gathered records and any loss (a turn rolled back, or ``flush`` done)."""
        self._builders = {}
        self._lost = None

    async def _submit(self, place: tuple[str, int], builder: Any) -> None:
        builder.close()
        topic, partition = place
        delivery = await self._producer().send_batch(builder, topic, partition=partition)
        self._handed_over(delivery, builder.record_count())


class ResultBatches(RecordBatches):
    """A batch of input's results, one record batch per output partition until ``flush``.

    A result goes to the partition Kafka's default partitioner gives its key. ``on_delivery``
    is added to each batch's delivery future.
    """

    def __init__(
        self,
        producer: Callable[[], Any],
        on_delivery: Callable[[asyncio.Future[Any]], None],
    ) -> None:
        super().__init__(producer, self._delivering)
        self._on_delivery = on_delivery
        # Each topic's partitions, read once per batch: a topic given more partitions is seen
        # from the next batch on.
        self._partitions: dict[str, list[int]] = {}

    async def add(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        """Put a result into its partition's batch (handed over now only if that one is full)."""
        partitions = self._partitions.get(topic)
        if partitions is None:
            known = await self._producer().partitions_for(topic)
            partitions = self._partitions[topic] = list(known)
        await self.append(topic, partition_for(key, partitions), key, value, headers)

    def _delivering(self, delivery: asyncio.Future[Any], records: int) -> None:
        delivery.add_done_callback(self._on_delivery)

    def discard(self) -> None:
        """Forget the batch's results, any loss and the partitions read for it."""
        super().discard()
        self._partitions.clear()
