"""The gap guard: what the consumer skips is read back and handled, in order, once."""

from __future__ import annotations

from typing import Any

from scrubber.stream import gaps
from scrubber.stream.gaps import GapGuard, RawRecord


class FakeReader:
    """A partition log in memory (the reader is the guard's collaborator, not under test)."""

    def __init__(self, committed: dict[int, int | None], log: dict[int, list[int]]) -> None:
        self._committed = committed
        self.log = log
        self.reads: list[tuple[int, int, int]] = []
        #: How many offsets one read covers at most (a slow broker answers part of a range).
        self.per_read = 1_000_000

    async def committed(self, partition: int) -> int | None:
        return self._committed.get(partition)

    async def beginning(self, partition: int) -> int:
        return self.log[partition][0]

    async def read(self, partition: int, start: int, end: int) -> tuple[list[RawRecord], int]:
        self.reads.append((partition, start, end))
        stop = min(end, start + self.per_read)
        records = [
            RawRecord(partition, o, b"k", b"v", None, ())
            for o in self.log[partition]
            if start <= o < stop
        ]
        return records, stop


async def _handle_in_order(guard: GapGuard, partition: int, offsets: range) -> None:
    """Deliver and handle ``offsets`` one by one, none of them preceded by a gap."""
    for o in offsets:
        assert not await guard.missing(partition, o)
        guard.handled(partition, o)


async def test_records_skipped_after_the_committed_offset_are_read_back() -> None:
    reader = FakeReader({0: 100}, {0: list(range(90, 200))})
    guard = GapGuard(reader)
    missing = (await guard.missing(0, 117)).records
    assert [r.offset for r in missing] == list(range(100, 117))
    for r in missing:
        guard.handled(0, r.offset)
    guard.handled(0, 117)
    assert not await guard.missing(0, 118)
    assert guard.recovered == 17


async def test_no_gap_no_read() -> None:
    reader = FakeReader({1: 50}, {1: list(range(0, 80))})
    guard = GapGuard(reader)
    assert not await guard.missing(1, 50)
    guard.handled(1, 50)
    assert not await guard.missing(1, 51)
    assert reader.reads == []


async def test_a_gap_in_the_middle_of_a_run_is_read_back() -> None:
    reader = FakeReader({0: 0}, {0: list(range(0, 30))})
    guard = GapGuard(reader)
    await _handle_in_order(guard, 0, range(0, 10))
    assert [r.offset for r in (await guard.missing(0, 20)).records] == list(range(10, 20))


async def test_a_real_gap_costs_one_read_and_is_not_retried() -> None:
    # Offsets 5-9 do not exist (compaction or transaction markers).
    reader = FakeReader({0: 5}, {0: [0, 1, 2, 3, 4, 10, 11]})
    guard = GapGuard(reader)
    gap = await guard.missing(0, 10)
    assert (gap.start, gap.end, gap.records) == (5, 10, ())  # acknowledged as a range
    guard.handled(0, 10)
    assert not await guard.missing(0, 11)
    assert reader.reads == [(0, 5, 10)]


async def test_a_new_group_starts_at_the_log_start_and_reassignment_rereads_the_commit() -> None:
    reader = FakeReader({}, {2: list(range(40, 60))})
    guard = GapGuard(reader)
    assert [r.offset for r in (await guard.missing(2, 42)).records] == [40, 41]
    guard.handled(2, 42)
    guard.reset()
    reader._committed[2] = 50  # another worker had the partition meanwhile and went further
    assert not await guard.missing(2, 50)
    assert reader.reads == [(2, 40, 42)]
    assert guard.already_handled(2, 49) and not guard.already_handled(2, 50)


async def test_reassignment_never_hands_back_what_this_process_handled() -> None:
    # The commit of 20-29 did not land before the rebalance; the partition comes back.
    reader = FakeReader({0: 10}, {0: list(range(0, 40))})
    guard = GapGuard(reader)
    await _handle_in_order(guard, 0, range(10, 30))
    reader._committed[0] = 20
    guard.reset()
    assert all(guard.already_handled(0, o) for o in range(20, 30))
    assert not guard.already_handled(0, 30)
    assert not await guard.missing(0, 30)
    assert reader.reads == []


async def test_a_redelivered_older_record_is_not_a_gap() -> None:
    reader = FakeReader({0: 10}, {0: list(range(0, 20))})
    guard = GapGuard(reader)
    guard.handled(0, 15)
    assert not await guard.missing(0, 12)


async def test_a_record_read_back_and_delivered_again_is_handled_once() -> None:
    reader = FakeReader({0: 10}, {0: list(range(0, 20))})
    guard = GapGuard(reader)
    for r in (await guard.missing(0, 15)).records:
        guard.handled(0, r.offset)
    guard.handled(0, 15)
    assert guard.already_handled(0, 12)
    assert not guard.already_handled(0, 16)
    assert not guard.already_handled(1, 0)


async def test_a_committed_offset_lookup_that_never_ends_is_retried_with_a_new_consumer(
    monkeypatch,
) -> None:
    """aiokafka retries a coordinator lookup without a deadline; the guard must not hang on it."""
    import asyncio

    from scrubber.config import Settings
    from scrubber.stream import gaps

    class Hangs:
        stopped = False

        async def committed(self, tp: object) -> int:
            await asyncio.Event().wait()  # never answers
            raise AssertionError("unreachable")

        async def stop(self) -> None:
            self.stopped = True

    class Answers:
        async def committed(self, tp: object) -> int:
            return 42

    first, second = Hangs(), Answers()
    consumers = iter([first, second])
    reader = gaps.KafkaRangeReader(Settings())

    async def group() -> object:
        if reader._committed is None:
            reader._committed = next(consumers)  # type: ignore[assignment]
        return reader._committed

    monkeypatch.setattr(reader, "_group", group)
    monkeypatch.setattr(gaps, "COMMITTED_TIMEOUT_SECONDS", 0.05)
    assert await asyncio.wait_for(reader.committed(1), 5) == 42
    assert first.stopped


async def test_a_read_that_stops_short_is_continued_until_the_range_is_read() -> None:
    """A slow broker answers part of the range: the rest is read, not taken for absent."""
    reader = FakeReader({0: 0}, {0: list(range(0, 50))})
    reader.per_read = 7
    guard = GapGuard(reader)
    gap = await guard.missing(0, 20)
    assert [r.offset for r in gap.records] == list(range(0, 20))
    assert (gap.start, gap.end) == (0, 20)
    assert reader.reads == [(0, 0, 20), (0, 7, 20), (0, 14, 20)]


async def test_a_limit_bounds_the_range_and_the_next_call_goes_on() -> None:
    reader = FakeReader({0: 10}, {0: list(range(0, 50))})
    guard = GapGuard(reader)
    first = await guard.missing(0, 40, limit=12)
    assert (first.start, first.end) == (10, 22)
    guard.handled(0, first.end - 1)
    second = await guard.missing(0, 40, limit=100)
    assert (second.start, second.end) == (22, 40)
    assert [r.offset for r in second.records] == list(range(22, 40))


async def test_a_read_that_makes_no_progress_is_tried_again(monkeypatch: Any) -> None:
    reader = FakeReader({0: 0}, {0: list(range(0, 10))})
    answers = iter([([], 0), ([RawRecord(0, 0, b"k", b"v", None, ())], 1)])
    sleeps: list[float] = []

    async def read(partition: int, start: int, end: int) -> tuple[list[RawRecord], int]:
        return next(answers)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(reader, "read", read)
    monkeypatch.setattr(gaps.asyncio, "sleep", sleep)
    gap = await GapGuard(reader).missing(0, 1)
    assert [r.offset for r in gap.records] == [0]
    assert sleeps == [gaps.READ_RETRY_FIRST_SECONDS]


async def test_behind_compares_the_next_offset_with_an_end() -> None:
    reader = FakeReader({0: 10, 1: None}, {0: list(range(0, 20)), 1: list(range(5, 9))})
    guard = GapGuard(reader)
    assert await guard.behind(0, 11) and not await guard.behind(0, 10)  # from the commit
    assert await guard.behind(1, 9) and not await guard.behind(1, 5)  # from the log start
    assert guard.expected == {0: 10, 1: 5}  # kept: the sweep's read serves the agent too
    guard.handled(0, 14)
    assert not await guard.behind(0, 15) and await guard.behind(0, 16)
    reader._committed[0] = 18  # another worker went further meanwhile
    guard.reset()
    assert not await guard.behind(0, 18) and await guard.behind(0, 19)
    assert guard.settled() == []


async def test_a_commit_below_what_was_handled_here_is_settled_once() -> None:
    reader = FakeReader({0: 10}, {0: list(range(0, 40))})
    guard = GapGuard(reader)
    await _handle_in_order(guard, 0, range(10, 30))
    reader._committed[0] = 20  # the commit of 20-29 missed the rebalance
    guard.reset()
    assert not await guard.missing(0, 30)
    (settled,) = guard.settled()
    assert (settled.partition, settled.start, settled.end, settled.records) == (0, 20, 30, ())
    assert guard.settled() == []


def test_restore_forgets_what_a_failed_batch_handled() -> None:
    guard = GapGuard(FakeReader({}, {}))
    guard.handled(0, 9)
    before = guard.snapshot()
    guard.handled(0, 15)
    guard.handled(1, 3)
    guard.restore(before)
    assert guard.expected == {0: 10}
