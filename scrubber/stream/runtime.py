"""What the worker does with the records Faust delivers, independent of Faust.

Owns a record's path from the agent to the producer: a batch in the order Faust delivered it
(``BatchHandler``: records the consumer skipped first, a record handled already only
acknowledged, each record acknowledged once its outputs are with the producer and its history is
written), and one record (``StreamRuntime``: wait for reference data, ask the shared
``LineProcessor`` for the emissions, hand them to ``send``, count them). Faust is reached only
through the small interfaces below (``Acks``, ``BatchStore``), which stream/faust_internals.py
and stream/table_store.py implement, so all of this is tested with fakes and real inputs, and
the agent stays a few lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from scrubber.claims import ClaimStore, claim_emissions
from scrubber.contracts import HEADER_ATTEMPT
from scrubber.history import StoreWriteError
from scrubber.logs import SIZE_LIMIT_WARNING_SECONDS, Throttle
from scrubber.metrics import Metrics
from scrubber.processor import (
    Emission,
    HistoryStore,
    HistoryUnavailable,
    LineProcessor,
    Processed,
    SourcePosition,
)
from scrubber.refdata.holder import ReferenceHolder
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.base import INFLUENCE_DAYS
from scrubber.stream.gaps import Gap, GapGuard, RawRecord

log = logging.getLogger(__name__)

Send = Callable[[Emission], Awaitable[None]]

#: How long a line waits before the history store is read again after an outage, doubling up to
#: the maximum: quick recovery from a blip, no busy loop in a long outage.
HISTORY_RETRY_FIRST_SECONDS = 0.5
HISTORY_RETRY_MAX_SECONDS = 10.0


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
        claims: ClaimStore | None = None,
        partitions: int = 1,
    ) -> None:
        self.processor = processor
        self.holder = holder
        self.metrics = metrics
        self.send = send
        self.store = store
        self.clock = clock
        #: Where claims are assembled from their lines' verdicts (None: no claim results).
        self.claims = claims
        #: Claims are kept as long as the histories keep their lines (by date; a patient at the
        #: size limit forgets claims sooner: ``ClaimAssembler.to_bytes_within``).
        self.claim_keep_days = processor.reviser.lateness_days + INFLUENCE_DAYS
        #: The input topic's partition count (numbers the 277CAs, see ``ack277_control``).
        self.partitions = partitions
        self.in_flight = 0
        #: The last offset handled per input partition, for the consumer lag metric.
        self.last_offsets: dict[int, int] = {}
        # Labelled metric children by label values: ``labels()`` takes a lock and builds a key
        # on every call, and every result counts its outcome and each of its findings. The
        # label sets are closed (outcomes, rule ids and severities, error codes), so this stays
        # small; the children are the registry's own, so /metrics shows the same counts.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._capped_warning = Throttle(SIZE_LIMIT_WARNING_SECONDS)

    def _capped(self, lines: int, topic: str, partition: int, offset: int) -> None:
        """Count lines dropped by the history's size limit; warn at most once a minute."""
        self.metrics.history_lines_capped.inc(lines)
        if self._capped_warning.due():
            log.warning(
                "a patient history reached its size limit; its oldest lines were dropped",
                extra={
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "lines_dropped": lines,
                },
            )

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
        source = SourcePosition(topic, partition, offset)
        try:
            self.metrics.lines_consumed.inc()
            processed = await self._process(source, key, value, snapshot, now, attempt)
            if processed.history_set_aside:
                self.metrics.histories_set_aside.inc()
            if processed.history_capped:
                self._capped(processed.history_capped, topic, partition, offset)
            for emission in processed.emissions:
                await self.send(emission)
                self._count(emission)
            if self.claims is not None:
                for emission in claim_emissions(
                    processed, self.claims, source, now, self.claim_keep_days, self.partitions
                ):
                    await self.send(emission)
                    self._count(emission)
        finally:
            self.in_flight -= 1
            self.last_offsets[partition] = offset
        self.metrics.processing_seconds.observe(time.perf_counter() - started)
        return processed.emissions

    async def _process(
        self,
        source: SourcePosition,
        key: bytes | None,
        value: bytes | None,
        snapshot: ReferenceSnapshot,
        now: datetime,
        attempt: int,
    ) -> Processed:
        """The processor's answer; a history store that cannot be read holds the line.

        An outage of the store is not the message's fault: the line is tried again, with a
        back-off from 0.5 s to 10 s, until the store answers. Never a dead letter, never a
        verdict without the patient's history. The wait holds this partition only.
        """
        delay = HISTORY_RETRY_FIRST_SECONDS
        while True:
            try:
                return self.processor.process(
                    value,
                    key,
                    source,
                    snapshot,
                    self.store,
                    now,
                    attempt,
                )
            except HistoryUnavailable as exc:
                self.metrics.history_store_errors.inc()
                log.warning(
                    "patient history store unavailable; holding the line",
                    extra={
                        "topic": source.topic,
                        "partition": source.partition,
                        "offset": source.offset,
                        "error_type": str(exc),
                        "retry_seconds": delay,
                    },
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, HISTORY_RETRY_MAX_SECONDS)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _count(self, emission: Emission) -> None:
        metrics = self.metrics
        if emission.claim is not None:
            if not emission.repeat:
                self._child(metrics.claims, emission.claim.outcome.value).inc()
            return
        if emission.kind == "ack277":
            if not emission.repeat:
                metrics.x12_277ca.inc()
            return
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


class Acks(Protocol):
    """Faust's offset bookkeeping (``faust_internals.FaustAcks``): when a record counts as done.

    Events are Faust's: ``event.message`` has the record's topic, partition, offset, key, value,
    timestamp and headers.
    """

    def hold(self, events: Sequence[Any]) -> None:
        """Keep the records from being acknowledged until ``release``."""
        ...

    def release(self, events: Sequence[Any]) -> None:
        """The records are handled: acknowledge each one no one else holds."""
        ...

    def track(self, topic: str, gap: Gap) -> list[Any]:
        """Messages for every offset of a range the gap guard read back, in flight from now on.

        A rebalance waits for them as it waits for the agent's records. ``recovered``
        acknowledges them (offsets without a record, transaction markers, too: the group offset
        must be able to move past both); ``untrack`` lets go of those not handled.
        """
        ...

    def recovered(self, messages: Sequence[Any]) -> None:
        """The messages' records are handled and their histories written: acknowledge them."""
        ...

    def untrack(self, messages: Sequence[Any]) -> None:
        """Let go of messages whose records were not handled: never acknowledged, not waited for."""
        ...

    def event(self, topic: str, record: RawRecord) -> Any:
        """A Faust event for a record read outside Faust (``BatchScope.at`` takes events)."""
        ...


class BatchScope(Protocol):
    """What a batch's records write besides their outputs, and when it is written."""

    def at(self, event: Any) -> None:
        """The following records are those of ``event``'s partition."""
        ...

    def flush(self) -> None:
        """Write everything the batch changed."""
        ...

    async def written(self) -> None:
        """Wait until what ``flush`` wrote is durable (a crash cannot lose it any more)."""
        ...


class Outputs(Protocol):
    """Outputs a turn gathers instead of sending each at once (``outputs.ResultBatches``)."""

    async def flush(self) -> None:
        """Hand what the turn gathered to the producer; raise if any of it was lost."""
        ...

    def discard(self) -> None:
        """Forget what the turn gathered: the turn is rolled back, its records handled again."""
        ...


class BatchStore(HistoryStore, BatchScope, Protocol):
    """The history store of a batch (``table_store.TableHistoryStore``)."""


class BatchScopes:
    """Several ``BatchScope`` as one (the histories and the claim assemblies), in order."""

    def __init__(self, *scopes: BatchScope) -> None:
        self.scopes = scopes

    def at(self, event: Any) -> None:
        """Each scope's ``at``."""
        for scope in self.scopes:
            scope.at(event)

    def flush(self) -> None:
        """Each scope's ``flush``, all of them even when one fails."""
        errors: list[BaseException] = []
        for scope in self.scopes:
            try:
                scope.flush()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    async def written(self) -> None:
        """Each scope's ``written``."""
        for scope in self.scopes:
            await scope.written()


@dataclass(slots=True)
class _Completion:
    """A batch's completion while it runs (``BatchHandler._finish_later``), and its batch."""

    task: asyncio.Future[None]
    before: dict[int, int]
    """The gap guard's state before the batch, to go back to if the completion fails."""
    gaps: list[list[Any]]
    events: Sequence[Any]
    ended: bool = False
    """Whether its end was dealt with (``BatchHandler._ended``)."""


class BatchHandler:
    """Handles a batch of input records in order: one result or dead letter for each.

    ``runtime`` handles one record (``StreamRuntime``); ``store`` is what the batch's records
    write besides their outputs (the histories and the claim assemblies, ``BatchScopes``).
    """

    def __init__(
        self,
        runtime: StreamRuntime,
        store: BatchScope,
        guard: GapGuard,
        acks: Acks,
        clock: Callable[[], float] = time.monotonic,
        on_failure: Callable[[StoreWriteError], None] | None = None,
        outputs: Outputs | None = None,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.guard = guard
        self.acks = acks
        self.clock = clock
        #: Called at once with the failure of a batch's completion (``_complete``): the worker
        #: stops without a commit, as for a write refused while the agent waits.
        self.on_failure = on_failure
        #: The outputs the turn's records gathered (``ResultBatches``): handed to the producer
        #: when the turn ends, before any of its records can be acknowledged; forgotten when
        #: the turn is rolled back.
        self.outputs = outputs
        #: When each input partition last had a record delivered (or was assigned), by ``clock``.
        self.delivered_at: dict[int, float] = {}
        # The agent's batches and the sweeps take turns: one partition's records are handled
        # in order, by one task at a time.
        self._turn = asyncio.Lock()
        # The last batch's completion (the changelog's acknowledgement, then the batch's own),
        # which runs while the next batch is handled; at most one at a time.
        self._completion: _Completion | None = None
        # A completion that failed, and the guard's state before its batch: every later turn
        # fails with it, and the guard goes back to that state.
        self._failure: tuple[StoreWriteError, dict[int, int]] | None = None

    def assigned(self, partitions: Sequence[int]) -> None:
        """Partitions were (re)assigned: each one counts as just delivered."""
        now = self.clock()
        self.delivered_at = {partition: now for partition in partitions}

    def quiet(self, partitions: Sequence[int], seconds: float) -> list[int]:
        """Those of ``partitions`` that have delivered nothing for ``seconds`` or longer."""
        now = self.clock()
        return [p for p in partitions if now - self.delivered_at.setdefault(p, now) >= seconds]

    async def sweep(
        self,
        topic: str,
        partition: int,
        end: int,
        limit: int,
        owned: Callable[[int], bool] = lambda partition: True,
    ) -> int:
        """Handle the records of ``partition`` below ``end`` that were never delivered.

        For a partition that has been quiet although its log goes on (see stream/gaps.py): the
        guard reads what lies between the last record handled here and ``end`` (at most
        ``limit`` offsets), and they are handled as the records of a gap are. ``owned`` says
        whether the partition is still this worker's (no rebalance under way); it is asked once
        the sweep has its turn and again after the read. Faust may still deliver some of the
        records later; those are acknowledged without a second verdict. Returns the number of
        records handled.
        """
        async with self._turn:
            self._raise_failure()
            if not owned(partition):
                return 0
            gap = await self.guard.missing(partition, end, limit)
            if not gap or not owned(partition):
                return 0
            before = self.guard.snapshot()
            done: list[list[Any]] = []
            try:
                if gap.records:
                    self.store.at(self.acks.event(topic, gap.records[0]))
                await self._handle_records(topic, gap, done)
            finally:
                await self._finish(topic, before, done, (), 0)
            return len(gap.records)

    async def _handle_records(self, topic: str, gap: Gap, done: list[list[Any]]) -> None:
        """Handle the records of ``gap``; put the messages of what was handled in ``done``.

        All of it once every record was handled; on a failure, the offsets up to the last
        record handled (the rest is let go of, and read back again later).
        """
        runtime, guard, acks = self.runtime, self.guard, self.acks
        skipped_recovered = runtime.metrics.skipped_recovered
        messages = acks.track(topic, gap)
        handled = 0
        try:
            for r in gap.records:
                await runtime.handle(
                    topic, r.partition, r.offset, r.key, r.value, r.timestamp, attempt_of(r.headers)
                )
                guard.handled(r.partition, r.offset)
                skipped_recovered.inc()
                handled += 1
        except BaseException:
            cut = gap.records[handled - 1].offset + 1 if handled else gap.start
            done.append([m for m in messages if m.offset < cut])
            acks.untrack([m for m in messages if m.offset >= cut])
            raise
        guard.handled(gap.partition, gap.end - 1)
        done.append(messages)

    async def _finish(
        self,
        topic: str,
        before: dict[int, int],
        gaps: list[list[Any]],
        events: Sequence[Any],
        done: int,
    ) -> None:
        """``_finish_later``, then its completion waited for.

        How a sweep and a batch that failed half-way end; the agent's turn does not wait for a
        batch handled to its end.
        """
        await self._finish_later(topic, before, gaps, events, done)
        await self.settled()

    async def _finish_later(
        self,
        topic: str,
        before: dict[int, int],
        gaps: list[list[Any]],
        events: Sequence[Any],
        done: int,
    ) -> None:
        """Write what the turn changed; acknowledge exactly what it handled once that is durable.

        Only after the write, and after the changelog has it (``BatchScope.written``), may any
        offset of the turn be committed: Faust commits on a timer of its own, and a record
        acknowledged before its history was in the changelog could be committed past, then
        lost from the history by a crash (later lines judged without it). That holds for the
        records the guard read back too. A write that fails acknowledges nothing and the guard
        forgets what the turn handled, so it is read back again. Records not handled are let go
        of, never acknowledged.

        A batch handled to its end hands its writes to the producer and its turn ends; the
        changelog's acknowledgement and the batch's own (``_complete``) come while the agent
        handles the next batch, which otherwise waited idle for them (a sixth to a quarter of
        its time in the benchmark). Acknowledgements stay in order, as the next turn first
        waits for this completion (``settled``): at most one batch is in between. Faust's
        rebalance and stop wait for every record the worker holds to be acknowledged
        (``Consumer.wait_empty``), so they wait for the completion as they waited for the agent.
        """
        try:
            self.store.flush()
            if self.outputs is not None:
                await self.outputs.flush()
            await self.settled()
        except BaseException:
            self._roll_back(before, gaps, events)
            raise
        # The ranges the guard found handled here are acknowledged with this batch: after
        # its histories (which include theirs) are in the changelog. No wait comes between
        # taking them and starting the completion that acknowledges them.
        settled = self.guard.settled() if topic else []
        task = asyncio.ensure_future(self._complete(topic, gaps, settled, events, done))
        completion = _Completion(task, before, gaps, events)
        task.add_done_callback(lambda _task: self._ended(completion))
        self._completion = completion

    async def _complete(
        self,
        topic: str,
        gaps: list[list[Any]],
        settled: list[Gap],
        events: Sequence[Any],
        done: int,
    ) -> None:
        """Wait until the changelog has the batch's histories, then acknowledge the batch.

        The changelog's wait may take in records the next batch handed over meanwhile
        (``ChangelogTable.sent`` waits for every record sent so far): more than this batch
        needs, never less. How it ends is dealt with by ``_ended``.
        """
        await self.store.written()
        self._acknowledge(topic, gaps, settled, events, done)

    def _ended(self, completion: _Completion) -> None:
        """Deal with how a completion ended, once (its done callback, and ``settled``).

        A failure acknowledges nothing more and lets go of the batch's records; it is kept,
        and every later turn fails with it (``settled``), the guard set back to the state
        before the batch. A failure is also reported at once (``on_failure``: the worker stops
        without a commit), so a worker that has no next batch does not go on without its
        changelog; anything but a refused write is logged first, by type (the text could name
        a record). Cancelled, before or after it began (the event loop closing), it lets go
        of the records and is kept, but reported to no one: nothing was acknowledged.
        """
        task = completion.task
        if completion.ended or not task.done():
            return
        completion.ended = True
        if task.cancelled():
            failure = StoreWriteError("a batch's completion was cancelled")
        else:
            error = task.exception()
            if error is None:
                return
            if isinstance(error, StoreWriteError):
                failure = error
            else:
                log.error(
                    "a batch's completion failed; stopping without a commit",
                    extra={"error_type": type(error).__name__},
                )
                failure = StoreWriteError(f"a batch's completion failed: {type(error).__name__}")
                failure.__cause__ = error
        if self._failure is None:
            self._failure = (failure, completion.before)
        self._let_go(completion.gaps, completion.events)
        if not task.cancelled() and self.on_failure is not None:
            self.on_failure(failure)

    async def settled(self) -> None:
        """Wait for the last batch's completion (never cancelling it); raise if one failed.

        The agent's turn returns before its batch is acknowledged; this is how to wait for
        that. After a failed completion it raises every time, and each time sets the guard
        back to the state before the failed batch (later batches were not acknowledged either).
        """
        completion = self._completion
        if completion is not None:
            if not completion.task.done():
                await asyncio.wait((completion.task,))
            self._ended(completion)
        self._raise_failure()

    def _raise_failure(self) -> None:
        """Raise the failure of an earlier completion, the guard set back to before its batch."""
        if self._failure is not None:
            failure, before = self._failure
            self.guard.restore(before)
            raise failure

    def _roll_back(
        self, before: dict[int, int], gaps: list[list[Any]], events: Sequence[Any]
    ) -> None:
        """A turn that will not be acknowledged: the guard forgets it, its records let go of.

        What it gathered for the producer is forgotten too (its records are handled again), so
        that a turn rolled back before its hand-over neither sends it with the next turn nor
        fails the next turn with its own lost results.
        """
        if self.outputs is not None:
            self.outputs.discard()
        self.guard.restore(before if self._failure is None else self._failure[1])
        self._let_go(gaps, events)

    def _let_go(self, gaps: list[list[Any]], events: Sequence[Any]) -> None:
        """Let go of a turn's records, read back and delivered: never acknowledged."""
        for messages in gaps:
            self.acks.untrack(messages)
        self.acks.untrack([event.message for event in events])

    def _acknowledge(
        self,
        topic: str,
        gaps: list[list[Any]],
        settled: list[Gap],
        events: Sequence[Any],
        done: int,
    ) -> None:
        """Acknowledge what a turn handled, once its histories are in the changelog."""
        acks = self.acks
        for messages in gaps:
            acks.recovered(messages)
        for gap in settled:
            acks.recovered(acks.track(topic, gap))
        acks.release(events[:done])
        if done < len(events):
            acks.untrack([event.message for event in events[done:]])

    async def handle(self, events: Sequence[Any]) -> None:
        """Handle the batch; acknowledge exactly the records handled.

        Faust acknowledges the batch's records when the agent asks for the next batch, and
        commits acknowledged offsets only after flushing the producer. A record must count as
        done only once its outputs were handed to the producer and its patient's history is in
        the changelog, so each record is held here, and released after that: if the batch fails
        half-way, the records not handled are never acknowledged (the gap guard or a
        redelivery brings them back), the ones handled are. A batch handled to its end returns
        once its writes are with the producer and is acknowledged in the background
        (``_finish_later``; ``settled`` waits for it); the next turn waits for that first.
        """
        async with self._turn:
            await self._handle(events)

    async def _handle(self, events: Sequence[Any]) -> None:
        guard, runtime, store, acks = self.guard, self.runtime, self.store, self.acks
        acks.hold(events)
        topic = events[0].message.topic if events else ""
        before = guard.snapshot()
        if self._failure is not None:  # an earlier batch was never acknowledged: stop
            self._let_go([], events)
            self._raise_failure()
        now = self.clock()
        delivered_at = self.delivered_at
        done = 0
        gaps: list[list[Any]] = []
        try:
            for event in events:
                m = event.message
                delivered_at[m.partition] = now
                if guard.already_handled(m.partition, m.offset):
                    done += 1
                    continue  # delivered again after the guard read it back: one verdict only
                store.at(event)
                # Records the consumer skipped (see stream/gaps.py) are handled first, in order.
                gap = await guard.missing(m.partition, m.offset)
                if gap:
                    await self._handle_records(m.topic, gap, gaps)
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
        except BaseException:
            await self._finish(topic, before, gaps, events, done)
            raise
        await self._finish_later(topic, before, gaps, events, done)
