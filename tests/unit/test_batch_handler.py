"""A batch's path through the runtime: in order, skipped records first, acknowledged when done.

Real processor, runtime and gap guard; stand-ins for Faust's events, its offset bookkeeping and
the Kafka range reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from scrubber.contracts import HEADER_ATTEMPT, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION
from scrubber.history import PatientHistory, StoreWriteError
from scrubber.metrics import Metrics
from scrubber.processor import Emission, LineProcessor
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.library import default_engine
from scrubber.stream.app import SWEEP_QUIET_SECONDS
from scrubber.stream.gaps import Gap, GapGuard, RawRecord
from scrubber.stream.runtime import BatchHandler, StreamRuntime, attempt_of

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TOPIC = "claims.lines.v1"


@pytest.mark.parametrize(
    ("headers", "attempt"),
    [
        (None, 1),
        ([], 1),
        ([(HEADER_ATTEMPT, b"3")], 3),
        ([("other", b"9"), (HEADER_ATTEMPT, b"2")], 2),
        ({HEADER_ATTEMPT: b"4"}, 4),
        ([(HEADER_ATTEMPT, b"0")], 1),
        ([(HEADER_ATTEMPT, b"-2")], 1),
        ([(HEADER_ATTEMPT, b"x")], 1),
        ([(HEADER_ATTEMPT, None)], 1),
    ],
)
def test_attempt_of(headers: Any, attempt: int) -> None:
    assert attempt_of(headers) == attempt


@dataclass
class Reader:
    """The input topic as the gap guard reads it: committed offsets and records by offset."""

    committed_at: dict[int, int] = field(default_factory=dict)
    records: dict[tuple[int, int], RawRecord] = field(default_factory=dict)

    async def committed(self, partition: int) -> int | None:
        return self.committed_at.get(partition)

    async def beginning(self, partition: int) -> int:
        return 0

    async def read(self, partition: int, start: int, end: int) -> tuple[list[RawRecord], int]:
        present = [self.records.get((partition, o)) for o in range(start, end)]
        return [r for r in present if r is not None], end


def _unread(
    line_bytes: Any, offsets: Iterable[int], prefix: str = "T", headers: Any = ()
) -> dict[tuple[int, int], RawRecord]:
    """Records of partition 0 the consumer did not deliver, as the gap guard reads them back:
    patient M1's line of claim ``<prefix><offset>`` at each offset."""
    return {
        (0, o): RawRecord(0, o, b"M1", line_bytes(claim_id=f"{prefix}{o}"), None, headers)
        for o in offsets
    }


@dataclass
class Acks:
    held: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    #: Offsets of read-back records tracked (in flight), and those let go of unhandled.
    tracked: list[int] = field(default_factory=list)
    untracked: list[int] = field(default_factory=list)

    def hold(self, events: Sequence[Any]) -> None:
        self.held += [e.message.offset for e in events]

    def release(self, events: Sequence[Any]) -> None:
        self.released += [e.message.offset for e in events]

    def track(self, topic: str, gap: Gap) -> list[Any]:
        self.tracked += range(gap.start, gap.end)
        return [SimpleNamespace(topic=topic, offset=o) for o in range(gap.start, gap.end)]

    def recovered(self, messages: Sequence[Any]) -> None:
        self.skipped += [(m.topic, m.offset) for m in messages]

    def untrack(self, messages: Sequence[Any]) -> None:
        self.untracked += [m.offset for m in messages]

    def event(self, topic: str, record: RawRecord) -> Any:
        return _event(record.partition, record.offset, record.value or b"")


class Store:
    """Histories in a dict, with the batch store's ``at`` and ``flush`` noted."""

    def __init__(self, log: list[str]) -> None:
        self.histories: dict[str, PatientHistory] = {}
        self.log = log
        self.durable = asyncio.Event()  # when the changelog has what flush wrote
        self.durable.set()

    def at(self, event: Any) -> None:
        self.log.append(f"at {event.message.offset}")

    def get(self, member_id: str) -> PatientHistory | None:
        return self.histories.get(member_id)

    def put(self, member_id: str, history: PatientHistory) -> None:
        self.histories[member_id] = history

    def flush(self) -> None:
        self.log.append("flush")

    async def written(self) -> None:
        await self.durable.wait()
        self.log.append("written")


def _event(partition: int, offset: int, value: bytes, headers: Any = ()) -> Any:
    message = SimpleNamespace(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=b"M1",
        value=value,
        timestamp=None,
        headers=list(headers),
    )
    return SimpleNamespace(message=message)


def _handler(
    snapshot: ReferenceSnapshot,
    reader: Reader,
    fail_at: int | None = None,
    clock: Any = lambda: 0.0,
) -> tuple[BatchHandler, list[str], list[Emission], Acks]:
    log: list[str] = []
    sent: list[Emission] = []

    async def send(emission: Emission) -> None:
        offset = int(dict(emission.headers)[HEADER_SOURCE_OFFSET])
        if offset == fail_at:
            raise ConnectionError("producer away")
        log.append(f"sent {offset}")
        sent.append(emission)

    store = Store(log)
    holder = SimpleNamespace(snapshot=snapshot, ready=asyncio.Event())
    runtime = StreamRuntime(
        LineProcessor(default_engine()), holder, Metrics(), send, store, clock=lambda: NOW
    )  # type: ignore[arg-type]
    acks = Acks()
    return BatchHandler(runtime, store, GapGuard(reader), acks, clock=clock), log, sent, acks


async def _handled(handler: BatchHandler, events: Sequence[Any]) -> None:
    """``handle``, then the batch's completion, which the agent leaves running (``settled``)."""
    await handler.handle(events)
    await handler.settled()


def _own(sent: list[Emission]) -> list[tuple[int, int]]:
    """(partition, offset) of the input each emission answers, in order."""
    return [
        (int(dict(e.headers)[HEADER_SOURCE_PARTITION]), int(dict(e.headers)[HEADER_SOURCE_OFFSET]))
        for e in sent
    ]


def test_a_batch_is_handled_in_order_and_acknowledged_after_its_histories(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, sent, acks = _handler(snapshot, Reader(committed_at={1: 5}))
    events = [_event(1, 5 + n, line_bytes(line_number=n + 1)) for n in range(3)]
    asyncio.run(_handled(handler, events))
    assert list(dict.fromkeys(_own(sent))) == [(1, 5), (1, 6), (1, 7)]
    assert [entry for entry in log if not entry.startswith("sent")] == [
        "at 5", "at 6", "at 7", "flush", "written",
    ]  # fmt: skip
    assert log.index("flush") == len(log) - 2  # every output went out before the histories
    assert acks.held == [5, 6, 7] and acks.released == [5, 6, 7]
    assert handler.runtime.last_offsets == {1: 7}
    assert handler.store.histories["M1"].entries  # type: ignore[attr-defined]


def test_records_the_consumer_skipped_are_handled_first(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    replay = ((HEADER_ATTEMPT, b"2"),)
    skipped = _unread(line_bytes, (3, 4), "S", replay)
    handler, _log, sent, acks = _handler(snapshot, Reader({0: 3}, skipped))
    asyncio.run(_handled(handler, [_event(0, 5, line_bytes())]))
    assert list(dict.fromkeys(_own(sent))) == [(0, 3), (0, 4), (0, 5)]
    assert acks.skipped == [(TOPIC, 3), (TOPIC, 4)]
    assert acks.released == [5]
    registry = handler.runtime.metrics.registry
    assert registry.get_sample_value("scrubber_skipped_records_recovered_total") == 2


def test_no_record_is_acknowledged_before_the_batch_histories_are_written(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """Faust commits acknowledged offsets on a timer of its own, at any moment of a batch.

    A record the guard read back, acknowledged at once, could be committed before its patient's
    history was written; a crash then lost it from the history for good (later lines of the
    patient were judged without it: an add-on without its primary, a surgery's visit unflagged).
    """
    skipped = _unread(line_bytes, (3, 4), "S")
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 3}, skipped))
    recovered, release = acks.recovered, acks.release

    def logged_recovered(messages: Sequence[Any]) -> None:
        log.append(f"recovered {messages[0].offset}-{messages[-1].offset}")
        recovered(messages)

    def logged_release(events: Sequence[Any]) -> None:
        log.append(f"release {[e.message.offset for e in events]}")
        release(events)

    setattr(acks, "recovered", logged_recovered)  # noqa: B010
    setattr(acks, "release", logged_release)  # noqa: B010
    asyncio.run(_handled(handler, [_event(0, 5, line_bytes())]))
    assert [e for e in log if not e.startswith(("sent", "at"))] == [
        "flush",
        "written",
        "recovered 3-4",
        "release [5]",
    ]


def test_no_record_is_acknowledged_before_the_changelog_has_its_history(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """Written to the table is not enough: Faust's flush before a commit may leave changelog
    records queued, and a crash after the commit lost them (``ChangelogTable``)."""
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    store = cast(Store, handler.store)
    store.durable.clear()

    async def run() -> None:
        task = asyncio.ensure_future(
            handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in range(3)])
        )
        for _ in range(50):
            await asyncio.sleep(0)
        assert "flush" in log and "written" not in log
        assert acks.released == []  # handled and written, not yet in the changelog
        store.durable.set()
        await task
        await handler.settled()

    asyncio.run(run())
    assert log[-1] == "written"
    assert acks.released == [0, 1, 2]


class UndeliveredStore(Store):
    async def written(self) -> None:
        raise StoreWriteError("changelog record not delivered: KafkaTimeoutError")


def test_a_changelog_record_not_delivered_acknowledges_nothing(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    handler.store = UndeliveredStore(log)
    before = handler.guard.snapshot()
    with pytest.raises(StoreWriteError):
        asyncio.run(
            _handled(handler, [_event(0, n, line_bytes(line_number=n + 1)) for n in (0, 1)])
        )
    assert acks.released == []
    assert acks.untracked == [0, 1]
    assert handler.guard.snapshot() == before  # read back again, never taken as done


def test_a_record_delivered_again_is_acknowledged_without_a_second_verdict(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, _log, sent, acks = _handler(snapshot, Reader({2: 0}))
    asyncio.run(
        _handled(handler, [_event(2, 0, line_bytes()), _event(2, 1, line_bytes(line_number=2))])
    )
    answered = len(sent)
    asyncio.run(_handled(handler, [_event(2, 1, line_bytes(line_number=2))]))
    assert len(sent) == answered
    assert acks.released == [0, 1, 1]


def test_a_batch_failing_half_way_acknowledges_only_what_was_handled(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}), fail_at=2)
    events = [_event(0, n, line_bytes(line_number=n + 1)) for n in range(4)]
    with pytest.raises(ConnectionError):
        asyncio.run(_handled(handler, events))
    assert acks.held == [0, 1, 2, 3]
    assert acks.released == [0, 1]
    assert acks.untracked == [2, 3]  # never acknowledged, and a rebalance does not wait for them
    assert log[-2:] == ["flush", "written"]  # the histories of the records handled are written


def test_offsets_without_a_record_in_a_gap_are_acknowledged_with_it(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """A transaction marker at offset 4 has no record; the group offset must pass it too."""
    skipped = {(0, 3): RawRecord(0, 3, b"M1", line_bytes(claim_id="S3"), None, ())}
    handler, _log, sent, acks = _handler(snapshot, Reader({0: 3}, skipped))
    asyncio.run(_handled(handler, [_event(0, 5, line_bytes())]))
    assert list(dict.fromkeys(_own(sent))) == [(0, 3), (0, 5)]
    assert acks.skipped == [(TOPIC, 3), (TOPIC, 4)]
    assert acks.released == [5]


def test_a_gap_failing_half_way_acknowledges_only_the_records_handled(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    skipped = _unread(line_bytes, (3, 4, 5), "S")
    handler, _log, _sent, acks = _handler(snapshot, Reader({0: 3}, skipped), fail_at=5)
    with pytest.raises(ConnectionError):
        asyncio.run(_handled(handler, [_event(0, 6, line_bytes())]))
    assert acks.skipped == [(TOPIC, 3), (TOPIC, 4)]
    assert acks.untracked == [5, 6]  # let go of: the rest of the gap and the batch's record
    assert acks.released == []
    assert not handler.guard.already_handled(0, 5)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_is_quiet_once_it_delivered_nothing_for_the_given_time(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    clock = Clock()
    handler, *_ = _handler(snapshot, Reader({0: 0, 1: 0}), clock=clock)
    handler.assigned([0, 1])
    clock.now += 10
    asyncio.run(_handled(handler, [_event(1, 0, line_bytes())]))
    clock.now += 6
    assert handler.quiet([0, 1], 15) == [0]
    assert handler.quiet([2], 15) == []  # first seen now
    clock.now += 10
    assert handler.quiet([0, 1, 2], 15) == [0, 1]
    handler.assigned([0, 1])  # a new assignment starts every clock afresh
    assert handler.quiet([0, 1], 15) == []


def test_a_sweep_handles_the_records_never_delivered_once_and_in_order(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """The consumer moved past 6-9 of partition 0 without delivering them: no later record comes."""
    tail = _unread(line_bytes, range(6, 10))
    handler, log, sent, acks = _handler(snapshot, Reader({0: 5}, tail))
    asyncio.run(_handled(handler, [_event(0, 5, line_bytes())]))
    assert asyncio.run(handler.sweep(TOPIC, 0, 10, limit=3)) == 3
    assert asyncio.run(handler.sweep(TOPIC, 0, 10, limit=3)) == 1
    assert asyncio.run(handler.sweep(TOPIC, 0, 10, limit=3)) == 0
    assert list(dict.fromkeys(_own(sent))) == [(0, o) for o in range(5, 10)]
    assert acks.skipped == [(TOPIC, o) for o in range(6, 10)]
    assert log[log.index("at 6") :].count("flush") == 2  # histories written before each ack
    # Faust delivers them after all: acknowledged, no second verdict.
    answered = len(sent)
    asyncio.run(_handled(handler, [_event(0, o, tail[(0, o)].value or b"") for o in (8, 9)]))
    assert len(sent) == answered
    assert acks.released == [5, 8, 9]


# ------------------------------------------------------------------------------ the worker's sweep
class _SweepConsumer:
    def __init__(self, assigned: set[Any], buffered: set[Any]) -> None:
        self._assigned = assigned
        self._buffered_partitions = buffered
        self.resumed: list[Any] = []

    def assignment(self) -> set[Any]:
        return self._assigned

    def on_buffer_drop(self, tp: Any) -> None:
        self.resumed.append(tp)
        self._buffered_partitions.discard(tp)


class _Batches:
    def __init__(self, quiet: list[int]) -> None:
        self._quiet = quiet
        self.swept: list[tuple[str, int, int, int]] = []
        self.restarted: list[list[int]] = []

    def assigned(self, partitions: list[int]) -> None:
        self.restarted.append(partitions)

    def quiet(self, partitions: Sequence[int], seconds: float) -> list[int]:
        assert seconds == SWEEP_QUIET_SECONDS
        return [p for p in partitions if p in self._quiet]

    async def sweep(
        self, topic: str, partition: int, end: int, limit: int, owned: Any = None
    ) -> int:
        assert owned is not None and owned(partition)
        self.swept.append((topic, partition, end, limit))
        return 2


class _Ends:
    async def ends(self, partitions: Sequence[int]) -> dict[int, int]:
        return {partition: 100 + partition for partition in partitions}


def _sweeping_worker(reasons: list[str], quiet: list[int], handled: dict[int, int]) -> Any:
    from faust.types import TP

    guard = GapGuard(Reader())
    guard.expected.update(handled)
    assigned = {TP(TOPIC, p) for p in range(4)} | {TP("other", 0)}
    return SimpleNamespace(
        readiness=lambda: reasons,
        settings=SimpleNamespace(input_topic=TOPIC),
        app=SimpleNamespace(consumer=_SweepConsumer(assigned, {TP(TOPIC, 3)})),
        batches=_Batches(quiet),
        reader=_Ends(),
        guard=guard,
        metrics=Metrics(),
        _owns=lambda partition: True,
    )


def test_the_worker_sweeps_only_quiet_partitions_behind_their_log_end() -> None:
    from faust.types import TP

    from scrubber.stream.app import SWEEP_MAX_RECORDS, Worker

    # 0: quiet, behind; 1: quiet, caught up; 2: busy; 3: quiet, left unfetched by a full buffer.
    worker = _sweeping_worker([], quiet=[0, 1, 3], handled={0: 90, 1: 101, 2: 50, 3: 10})
    assert asyncio.run(Worker.sweep(worker)) == 2
    assert worker.batches.swept == [(TOPIC, 0, 100, SWEEP_MAX_RECORDS)]
    assert worker.app.consumer.resumed == [TP(TOPIC, 3)]
    resumed = worker.metrics.registry.get_sample_value("scrubber_input_partitions_resumed_total")
    assert resumed == 1


def test_a_worker_that_is_not_ready_does_not_sweep() -> None:
    worker = _sweeping_worker(["reference data not loaded yet"], quiet=[0], handled={0: 0})
    from scrubber.stream.app import Worker

    assert asyncio.run(Worker.sweep(worker)) == 0
    assert worker.batches.swept == []
    assert worker.batches.restarted == [[0, 1, 2, 3]]  # quiet counts only once it is ready


class FailingStore(Store):
    def flush(self) -> None:
        super().flush()
        raise OSError("table write failed")


def test_a_failed_write_acknowledges_nothing_and_the_guard_forgets_the_turn(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    skipped = {(0, 3): RawRecord(0, 3, b"M1", line_bytes(claim_id="S3"), None, ())}
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 3}, skipped))
    handler.guard.expected[0] = 3
    handler.store = FailingStore(log)
    with pytest.raises(OSError):
        asyncio.run(_handled(handler, [_event(0, 4, line_bytes()), _event(0, 5, line_bytes())]))
    assert acks.released == [] and acks.skipped == []
    assert acks.untracked == [3, 4, 5]
    assert handler.guard.expected == {0: 3}  # read back again with the next record


def test_offsets_handled_here_that_the_commit_lost_are_acknowledged_again(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """The commit of 10-19 missed a rebalance; the partition came back to this worker.

    Faust fetches from 10 again; if it skips some of those records, nothing else would
    acknowledge them and the group offset would stop at 10 for good.
    """
    reader = Reader({0: 10})
    handler, _log, sent, acks = _handler(snapshot, reader)
    handler.guard.expected[0] = 20
    handler.guard.reset()
    asyncio.run(_handled(handler, [_event(0, 20, line_bytes())]))
    assert list(dict.fromkeys(_own(sent))) == [(0, 20)]
    assert acks.skipped == [(TOPIC, o) for o in range(10, 20)]
    assert acks.released == [20]
    asyncio.run(_handled(handler, [_event(0, 21, line_bytes(line_number=2))]))
    assert len(acks.skipped) == 10  # once


def test_a_sweep_stops_when_the_partition_is_no_longer_this_workers(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    tail = _unread(line_bytes, (5, 6))
    handler, _log, sent, acks = _handler(snapshot, Reader({0: 5}, tail))
    answers = iter([True, False])
    assert asyncio.run(handler.sweep(TOPIC, 0, 7, 10, owned=lambda p: next(answers))) == 0
    assert asyncio.run(handler.sweep(TOPIC, 0, 7, 10, owned=lambda p: False)) == 0
    assert sent == [] and acks.tracked == [] and not handler.guard.already_handled(0, 5)


class _RefusingBatches(_Batches):
    async def sweep(
        self, topic: str, partition: int, end: int, limit: int, owned: Any = None
    ) -> int:
        raise StoreWriteError("Exception")


class ExitedError(Exception):
    """``os._exit`` in the app, as the ``exits`` fixture makes it: raised, with the status."""


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> type[ExitedError]:
    """The app's ``os._exit`` raises ``ExitedError`` instead of ending the test run."""
    from scrubber.stream import app

    def exit_now(status: int) -> None:
        raise ExitedError(status)

    monkeypatch.setattr(app.os, "_exit", exit_now)
    monkeypatch.setattr(app.logging, "shutdown", lambda: None)
    return ExitedError


def test_a_sweep_whose_histories_cannot_be_written_stops_the_worker_without_a_commit(
    exits: type[ExitedError], caplog: pytest.LogCaptureFixture
) -> None:
    from scrubber.stream.app import EXIT_STORE_FAILED, Worker

    worker = _sweeping_worker([], quiet=[0], handled={0: 90})
    worker.batches = _RefusingBatches([0])
    caplog.set_level("CRITICAL", logger="scrubber.stream.app")
    with pytest.raises(ExitedError) as out:
        asyncio.run(Worker.sweep(worker))
    assert out.value.args == (EXIT_STORE_FAILED,)
    assert "refused a write" in caplog.text


def test_the_next_batch_is_handled_while_the_changelog_acknowledges_the_last(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """The agent does not wait idle for the changelog: a batch's turn ends once its writes are
    with the producer. Its records are still acknowledged only after the changelog has their
    histories, and before the next batch's."""
    handler, log, sent, acks = _handler(snapshot, Reader({0: 0}))
    store = cast(Store, handler.store)
    store.durable.clear()
    _noting(acks, log, "release")

    async def run() -> None:
        first = [_event(0, n, line_bytes(line_number=n + 1)) for n in (0, 1)]
        await asyncio.wait_for(handler.handle(first), 5)  # the turn ends without the wait
        assert log[-1] == "flush" and acks.released == []
        second = asyncio.ensure_future(
            handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in (2, 3)])
        )
        for _ in range(50):
            await asyncio.sleep(0)
        assert list(dict.fromkeys(_own(sent))) == [(0, 0), (0, 1), (0, 2), (0, 3)]
        assert log.count("flush") == 2  # the second batch handled and handed over too,
        assert not second.done() and acks.released == []  # its turn waits for the first's
        store.durable.set()
        await second
        await handler.settled()

    asyncio.run(run())
    assert [e for e in log if not e.startswith(("sent", "at"))] == [
        "flush", "flush", "written", "release [0, 1]", "written", "release [2, 3]",
    ]  # fmt: skip


class RefusedOnceStore(Store):
    """A changelog that refuses the first batch's records."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(log)
        self.refusals = 1

    async def written(self) -> None:
        await asyncio.sleep(0)
        if self.refusals:
            self.refusals -= 1
            raise StoreWriteError("changelog record not delivered: KafkaTimeoutError")
        await super().written()


def test_a_batch_whose_changelog_fails_after_its_turn_stops_the_worker_and_every_later_batch(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    handler.store = RefusedOnceStore(log)
    failures: list[StoreWriteError] = []
    handler.on_failure = failures.append
    before = handler.guard.snapshot()

    async def run() -> None:
        await handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in (0, 1)])
        for _ in range(5):
            await asyncio.sleep(0)
        # Reported at once: a worker with no next batch must not go on without its changelog.
        assert [str(f) for f in failures] == ["changelog record not delivered: KafkaTimeoutError"]
        assert acks.released == [] and acks.untracked == [0, 1]
        with pytest.raises(StoreWriteError):  # and the next batch fails with it
            await handler.handle([_event(0, 2, line_bytes(line_number=3))])

    asyncio.run(run())
    assert acks.released == []
    assert acks.untracked == [0, 1, 2]
    assert handler.guard.snapshot() == before  # nothing since the failed batch counts as done
    assert len(failures) == 1


def test_a_completion_cancelled_acknowledges_nothing_and_later_batches_fail(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """The event loop closing cancels a completion still waiting: its records are let go of."""
    handler, _log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    store = cast(Store, handler.store)
    store.durable.clear()
    failures: list[StoreWriteError] = []
    handler.on_failure = failures.append

    async def run() -> None:
        await handler.handle([_event(0, 0, line_bytes())])
        completion = handler._completion
        assert completion is not None
        await asyncio.sleep(0)  # it began: it waits for the changelog
        completion.task.cancel()
        await asyncio.wait((completion.task,))
        assert completion.task.cancelled()
        with pytest.raises(StoreWriteError, match="cancelled"):
            await handler.settled()
        with pytest.raises(StoreWriteError, match="cancelled"):  # and every later batch
            await handler.handle([_event(0, 1, line_bytes(line_number=2))])

    asyncio.run(run())
    assert acks.released == [] and acks.untracked == [0, 1]
    assert failures == []  # a stop, not a refused write


def test_the_worker_stops_without_a_commit_when_a_batch_completion_fails(
    exits: type[ExitedError], tmp_path: Any
) -> None:
    from scrubber.config import Settings
    from scrubber.stream.app import EXIT_STORE_FAILED, Worker

    worker = Worker(Settings(data_dir=str(tmp_path)))
    assert worker.batches.on_failure is not None
    with pytest.raises(ExitedError) as out:
        worker.batches.on_failure(StoreWriteError("OSError"))
    assert out.value.args == (EXIT_STORE_FAILED,)


class EnteringStore(Store):
    """Notes when a wait for the changelog begins, not only when it ends."""

    async def written(self) -> None:
        self.log.append("wait")
        await super().written()


def _noting(acks: Acks, log: list[str], name: str) -> None:
    """Note every call of ``acks.<name>`` in ``log`` as ``<name> [offsets]``."""
    method = getattr(acks, name)

    def noted(items: Sequence[Any]) -> None:
        log.append(f"{name} {[getattr(i, 'message', i).offset for i in items]}")
        method(items)

    setattr(acks, name, noted)


def test_one_completion_at_a_time_each_after_the_changelog_and_in_order(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    store = EnteringStore(log)
    handler.store = store
    store.durable.clear()
    _noting(acks, log, "release")

    async def run() -> None:
        await handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in (0, 1)])
        second = asyncio.ensure_future(
            handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in (2, 3)])
        )
        await _turns()
        store.durable.set()
        await second
        await handler.settled()

    asyncio.run(run())
    assert [e for e in log if not e.startswith(("sent", "at"))] == [
        "flush", "wait", "flush", "written", "release [0, 1]", "wait", "written", "release [2, 3]",
    ]  # fmt: skip


async def _turns(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_completion_cancelled_before_it_began_acknowledges_nothing(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, _log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    failures: list[StoreWriteError] = []
    handler.on_failure = failures.append

    async def run() -> None:
        await handler.handle([_event(0, 0, line_bytes())])
        completion = handler._completion
        assert completion is not None
        completion.task.cancel()  # before its first step
        with pytest.raises(StoreWriteError, match="cancelled"):
            await handler.settled()

    asyncio.run(run())
    assert acks.released == [] and acks.untracked == [0]
    assert failures == []


def test_a_batch_cancelled_while_it_waits_for_the_last_lets_go_of_its_own_records_only(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """The agent stopped while the last batch's changelog was still on its way."""
    handler, _log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    store = cast(Store, handler.store)
    store.durable.clear()

    async def run() -> None:
        await handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in (0, 1)])
        after_first = handler.guard.snapshot()
        second = asyncio.ensure_future(
            handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in (2, 3)])
        )
        await _turns()
        second.cancel()
        await asyncio.wait((second,))
        assert second.cancelled()
        assert acks.untracked == [2, 3] and acks.released == []
        assert handler.guard.snapshot() == after_first  # handled again when delivered again
        store.durable.set()
        await handler.settled()  # the first batch is still acknowledged

    asyncio.run(run())
    assert acks.released == [0, 1]


class RefusedLaterStore(Store):
    """A changelog that refuses the records it waits for once ``refuse`` is set."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(log)
        self.refuse = asyncio.Event()

    async def written(self) -> None:
        await self.refuse.wait()
        raise StoreWriteError("changelog records not acknowledged in 120 s")


def test_a_batch_waiting_for_the_last_fails_with_it_and_the_guard_forgets_both(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    store = RefusedLaterStore(log)
    handler.store = store
    before = handler.guard.snapshot()

    async def run() -> None:
        await handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in (0, 1)])
        second = asyncio.ensure_future(
            handler.handle([_event(0, n, line_bytes(line_number=n + 1)) for n in (2, 3)])
        )
        await _turns()
        assert not second.done()
        store.refuse.set()
        with pytest.raises(StoreWriteError):
            await second

    asyncio.run(run())
    assert acks.released == []
    assert sorted(acks.untracked) == [0, 1, 2, 3]
    assert handler.guard.snapshot() == before


def test_a_sweep_waits_for_the_last_batch_to_be_acknowledged_first(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    tail = _unread(line_bytes, (6, 7))
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 5}, tail))
    store = EnteringStore(log)
    handler.store = store
    store.durable.clear()
    _noting(acks, log, "release")
    _noting(acks, log, "recovered")

    async def run() -> None:
        await handler.handle([_event(0, 5, line_bytes())])
        sweep = asyncio.ensure_future(handler.sweep(TOPIC, 0, 8, limit=10))
        await _turns()
        assert not sweep.done() and acks.skipped == []
        assert log.count("wait") == 1  # the sweep's own wait begins after the batch's ended
        store.durable.set()
        assert await sweep == 2

    asyncio.run(run())
    assert [e for e in log if e.startswith(("release [5", "recovered"))] == [
        "release [5]",
        "recovered [6, 7]",
    ]


def test_a_sweep_after_a_failed_completion_stops(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    tail = _unread(line_bytes, (6, 7))
    handler, log, sent, acks = _handler(snapshot, Reader({0: 5}, tail))
    store = RefusedLaterStore(log)
    handler.store = store
    store.refuse.set()
    before = handler.guard.snapshot()
    failures: list[StoreWriteError] = []
    handler.on_failure = failures.append

    async def run() -> None:
        await handler.handle([_event(0, 5, line_bytes())])
        await _turns()
        assert len(failures) == 1
        answered = len(sent)
        with pytest.raises(StoreWriteError):
            await handler.sweep(TOPIC, 0, 8, limit=10)
        assert len(sent) == answered  # nothing handled after the failure

    asyncio.run(run())
    assert acks.tracked == [] and acks.released == []
    assert handler.guard.snapshot() == before


def test_a_completion_that_failed_counts_before_its_callback_ran(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """The batch's turn may look at the completion between its end and its done callback."""
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    handler.store = UndeliveredStore(log)

    async def run() -> None:
        await handler.handle([_event(0, 0, line_bytes())])
        await asyncio.sleep(0)  # the completion ran and failed; its callback is still to come
        completion = handler._completion
        assert completion is not None and completion.task.done() and not completion.ended
        with pytest.raises(StoreWriteError):
            await handler.settled()

    asyncio.run(run())
    assert acks.released == [] and acks.untracked == [0]


def test_a_sweep_cancelled_while_it_waits_for_its_changelog_is_still_acknowledged(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """The worker stopping cuts the sweep's wait, not the wait itself: once the changelog has
    the records read back, they are acknowledged (and a stop waits for that)."""
    tail = _unread(line_bytes, (6, 7))
    handler, _log, _sent, acks = _handler(snapshot, Reader({0: 5}, tail))
    store = cast(Store, handler.store)
    handler.guard.expected[0] = 6

    async def run() -> None:
        store.durable.clear()
        sweep = asyncio.ensure_future(handler.sweep(TOPIC, 0, 8, limit=10))
        await _turns()
        sweep.cancel()
        await asyncio.wait((sweep,))
        assert sweep.cancelled() and acks.skipped == []
        store.durable.set()
        await handler.settled()

    asyncio.run(run())
    assert acks.skipped == [(TOPIC, 6), (TOPIC, 7)]
    assert acks.untracked == []


class _Outputs:
    """What a turn gathered for the producer (``ResultBatches``), its hand-over noted."""

    def __init__(self, log: list[str], fail: BaseException | None = None) -> None:
        self.log = log
        self.fail = fail
        self.discarded = 0

    async def flush(self) -> None:
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        self.log.append("outputs")

    def discard(self) -> None:
        self.discarded += 1


def _noting_outputs(
    handler: BatchHandler, log: list[str], fail: BaseException | None = None
) -> _Outputs:
    handler.outputs = outputs = _Outputs(log, fail)
    return outputs


def test_a_batchs_outputs_are_handed_over_before_any_of_its_records_is_acknowledged(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    _noting_outputs(handler, log)
    _noting(acks, log, "release")
    asyncio.run(_handled(handler, [_event(0, n, line_bytes(line_number=n + 1)) for n in range(3)]))
    assert [e for e in log if not e.startswith(("sent", "at"))] == [
        "flush",
        "outputs",
        "written",
        "release [0, 1, 2]",
    ]


def test_outputs_that_cannot_be_handed_over_acknowledge_nothing(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    skipped = {(0, 3): RawRecord(0, 3, b"M1", line_bytes(claim_id="S3"), None, ())}
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 3}, skipped))
    handler.guard.expected[0] = 3
    outputs = _noting_outputs(handler, log, fail=ConnectionError("producer away"))
    with pytest.raises(ConnectionError):
        asyncio.run(_handled(handler, [_event(0, 4, line_bytes()), _event(0, 5, line_bytes())]))
    assert acks.released == [] and acks.skipped == []
    assert acks.untracked == [3, 4, 5]  # delivered (or read back) again
    assert handler.guard.expected == {0: 3}
    assert outputs.discarded == 1


def test_a_batch_failing_half_way_hands_over_the_outputs_of_what_it_acknowledges(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}), fail_at=2)
    _noting_outputs(handler, log)
    _noting(acks, log, "release")
    with pytest.raises(ConnectionError):
        asyncio.run(
            _handled(handler, [_event(0, n, line_bytes(line_number=n + 1)) for n in range(4)])
        )
    assert [e for e in log if not e.startswith(("sent", "at"))] == [
        "flush",
        "outputs",
        "written",
        "release [0, 1]",
    ]


def test_a_sweep_hands_over_its_outputs_before_it_acknowledges_and_nothing_if_it_cannot(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    tail = _unread(line_bytes, range(6, 9))
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 6}, tail))
    outputs = _noting_outputs(handler, log)
    _noting(acks, log, "recovered")
    assert asyncio.run(handler.sweep(TOPIC, 0, 8, limit=10)) == 2
    assert [e for e in log if not e.startswith(("sent", "at"))] == [
        "flush",
        "outputs",
        "written",
        "recovered [6, 7]",
    ]
    outputs.fail = ConnectionError("producer away")
    with pytest.raises(ConnectionError):
        asyncio.run(handler.sweep(TOPIC, 0, 9, limit=10))
    assert acks.skipped == [(TOPIC, 6), (TOPIC, 7)]  # 8 was not acknowledged
    assert acks.untracked == [8]
    assert handler.guard.expected == {0: 8}  # read back again


def test_a_turn_cancelled_while_it_hands_over_its_outputs_acknowledges_nothing(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    outputs = _noting_outputs(handler, log, fail=asyncio.CancelledError())
    events = [_event(0, n, line_bytes(line_number=n + 1)) for n in (0, 1)]
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_handled(handler, events))
    assert acks.released == [] and acks.untracked == [0, 1]
    assert outputs.discarded == 1


def test_a_turn_rolled_back_before_its_hand_over_forgets_its_outputs(
    line_bytes: Any, snapshot: ReferenceSnapshot
) -> None:
    """Otherwise the next turn would send them, or fail with their loss."""
    handler, log, _sent, acks = _handler(snapshot, Reader({0: 0}))
    outputs = _noting_outputs(handler, log)
    handler.store = FailingStore(log)
    with pytest.raises(OSError):
        asyncio.run(_handled(handler, [_event(0, 0, line_bytes())]))
    assert "outputs" not in log and outputs.discarded == 1
    assert acks.released == [] and acks.untracked == [0]
