"""The recovery watch: a stalled table recovery is moved back, then the worker exits.

The decision is pure; the runner is exercised over a stand-in for Faust's app (the app is the
watch's input here, not what is tested).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from scrubber.stream.recovery import (
    EXIT_RECOVERY_STALLED,
    Decision,
    RecoveryState,
    RecoveryWatch,
    recovery_state,
    watch_recovery,
)

TP0, TP1 = TP("h-changelog", 0), TP("h-changelog", 1)


def _state(
    offsets: dict[Any, int],
    *,
    generation: int = 3,
    recovering: bool = True,
    positions: dict[Any, int] | None = None,
) -> Any:
    """A reading; by default each partition's consumer is at the target's end (it fetched)."""
    targets = {TP0: 100, TP1: 50}
    at = {tp: t + 1 for tp, t in targets.items()} if positions is None else positions
    return RecoveryState(recovering, generation, offsets, targets, at)


def test_behind_names_the_next_offset_of_each_partition_short_of_its_target() -> None:
    assert _state({TP0: 40, TP1: 50}).behind() == {TP0: 41}
    assert _state({TP0: -1, TP1: 10}).behind() == {TP0: 0, TP1: 11}
    assert _state({TP0: 100, TP1: 50}).behind() == {}
    # Faust leaves a partition's offset or target None until it knows them: not behind yet.
    assert RecoveryState(True, 1, {TP0: None}, {TP0: 5, TP1: None}).behind() == {}


def test_passed_names_the_partitions_whose_consumer_fetched_what_the_recovery_lacks() -> None:
    assert _state({TP0: 40, TP1: 10}, positions={TP0: 101, TP1: 11}).passed() == {TP0: 41}
    assert _state({TP0: 40, TP1: 10}, positions={TP0: 41}).passed() == {}
    assert _state({TP0: 40, TP1: 10}, positions={}).passed() == {}


def test_a_moving_recovery_is_left_alone_however_long_it_takes() -> None:
    watch = RecoveryWatch(stall_seconds=30)
    for second in range(0, 600, 5):
        decision = watch.observe(_state({TP0: second // 10, TP1: 10}), float(second))
        assert not decision.reseek and not decision.exit


def test_a_stalled_recovery_is_moved_back_then_the_worker_exits() -> None:
    watch = RecoveryWatch(stall_seconds=30, reseeks_before_exit=2)
    stuck = _state({TP0: 40, TP1: 50})
    assert watch.observe(stuck, 0.0).reseek == {}
    assert watch.observe(stuck, 29.0).reseek == {}
    assert watch.observe(stuck, 30.0).reseek == {TP0: 41}
    assert watch.observe(stuck, 45.0).reseek == {}  # a full wait before the next try
    assert watch.observe(stuck, 60.0).reseek == {TP0: 41}
    assert not watch.observe(stuck, 89.0).exit
    assert watch.observe(stuck, 90.0).exit


def test_a_recovery_waiting_for_kafka_is_never_moved_nor_ended() -> None:
    """Nothing fetched past what the recovery has: the broker is away or slow, nothing is lost."""
    watch = RecoveryWatch(stall_seconds=30, reseeks_before_exit=0)
    waiting = _state({TP0: 40, TP1: 10}, positions={TP0: 41, TP1: 11})
    for second in range(0, 900, 5):
        assert watch.observe(waiting, float(second)) == Decision()


def test_a_move_back_that_is_fetched_again_and_lost_again_still_counts() -> None:
    """Right after a move the consumer is at the needed offset; the tries add up regardless."""
    watch = RecoveryWatch(stall_seconds=30, reseeks_before_exit=1)
    lost = _state({TP0: 40, TP1: 50})
    moved = _state({TP0: 40, TP1: 50}, positions={TP0: 41})
    assert watch.observe(lost, 0.0) == Decision()
    assert watch.observe(lost, 30.0).reseek == {TP0: 41}
    assert watch.observe(moved, 35.0) == Decision()
    assert watch.observe(lost, 40.0) == Decision()
    assert watch.observe(lost, 64.0) == Decision()  # counted from the reading at 35
    assert watch.observe(lost, 65.0).exit


def test_progress_or_a_new_rebalance_starts_the_count_again() -> None:
    watch = RecoveryWatch(stall_seconds=30, reseeks_before_exit=1)
    assert not watch.observe(_state({TP0: 40, TP1: 50}), 0.0).reseek
    assert watch.observe(_state({TP0: 40, TP1: 50}), 30.0).reseek == {TP0: 41}
    assert not watch.observe(_state({TP0: 60, TP1: 50}), 40.0).reseek  # the move-back worked
    assert not watch.observe(_state({TP0: 60, TP1: 50}), 69.0).reseek
    assert watch.observe(_state({TP0: 60, TP1: 50}), 70.0).reseek == {TP0: 61}
    assert not watch.observe(_state({TP0: 60, TP1: 50}, generation=4), 100.0).exit
    assert not watch.observe(_state({TP0: 60, TP1: 50}, generation=4), 129.0).reseek


def test_a_finished_or_idle_recovery_is_never_touched() -> None:
    done, idle = RecoveryWatch(stall_seconds=5, reseeks_before_exit=0), RecoveryWatch(5, 0)
    for second in range(0, 100, 5):
        assert done.observe(_state({TP0: 100, TP1: 50}), float(second)) == Decision()
        assert idle.observe(_state({TP0: 40, TP1: 10}, recovering=False), float(second)) == (
            Decision()
        )


class _Consumer:
    """Faust's consumer as the watch uses it: positions, and seeks on the consumer's thread."""

    def __init__(self, position: int = 101, fail_seeks: int = 0) -> None:
        self.at = position
        self.fail_seeks = fail_seeks
        self.seeks: list[dict[Any, int]] = []

    async def position(self, tp: Any) -> int:
        return self.at

    async def seek_wait(self, partitions: dict[Any, int]) -> None:
        if self.fail_seeks:
            self.fail_seeks -= 1
            raise ConnectionError("broker away")
        self.seeks.append(dict(partitions))


def _app(offsets: dict[Any, int], consumer: _Consumer | None = None) -> Any:
    recovery = SimpleNamespace(
        in_recovery=True,
        active_offsets=Counter(offsets),
        active_highwaters=Counter({TP0: 100, TP1: 50}),
    )
    return SimpleNamespace(
        tables=SimpleNamespace(recovery=recovery),
        consumer=consumer or _Consumer(),
        consumer_generation_id=7,
        should_stop=False,
    )


def test_recovery_state_copies_what_faust_keeps() -> None:
    app = _app({TP0: 40, TP1: 50})
    state = asyncio.run(recovery_state(app, 1.0))
    app.tables.recovery.active_offsets[TP0] = 99
    assert state == RecoveryState(True, 7, {TP0: 40, TP1: 50}, {TP0: 100, TP1: 50}, {TP0: 101})


def _run(app: Any, watch: RecoveryWatch) -> tuple[list[int], list[None]]:
    exits: list[int] = []
    reseeks: list[None] = []
    now = [0.0]

    def clock() -> float:
        now[0] += 10.0
        return now[0]

    def exit_process(status: int) -> None:
        exits.append(status)

    runner = watch_recovery(
        app,
        watch,
        0.0,
        clock=clock,
        exit_process=exit_process,
        on_reseek=lambda: reseeks.append(None),
    )
    asyncio.run(asyncio.wait_for(runner, timeout=10))
    return exits, reseeks


def test_the_runner_moves_the_partition_back_then_exits(caplog: pytest.LogCaptureFixture) -> None:
    app = _app({TP0: 40, TP1: 50})
    exits, reseeks = _run(app, RecoveryWatch(stall_seconds=30, reseeks_before_exit=1))
    assert app.consumer.seeks == [{TP0: 41}]
    assert len(reseeks) == 1
    assert exits == [EXIT_RECOVERY_STALLED]
    assert "moving its partition back" in caplog.text


def test_a_failed_move_is_logged_not_counted_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app({TP0: 40, TP1: 50}, _Consumer(fail_seeks=1))
    exits, reseeks = _run(app, RecoveryWatch(stall_seconds=30, reseeks_before_exit=1))
    assert "could not read or move the recovery" in caplog.text
    assert app.consumer.seeks == [{TP0: 41}]  # the next try went through
    assert len(reseeks) == 1
    assert exits == [EXIT_RECOVERY_STALLED]


def test_a_stopping_worker_is_not_ended_by_the_watch() -> None:
    app = _app({TP0: 40, TP1: 50})
    watch = RecoveryWatch(stall_seconds=30, reseeks_before_exit=0)
    reads: list[float] = []

    def stop_soon() -> float:
        reads.append(len(reads) * 10.0 + 10.0)
        if len(reads) == 4:  # the reading that would end the worker: it is stopping by then
            app.should_stop = True
        return reads[-1]

    exits: list[int] = []
    runner = watch_recovery(app, watch, 0.0, clock=stop_soon, exit_process=exits.append)
    asyncio.run(asyncio.wait_for(runner, timeout=10))
    assert exits == []
