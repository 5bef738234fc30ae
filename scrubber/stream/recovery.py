"""A watch on Faust's table recovery: a stalled recovery is repaired, or the worker exits.

A worker that exits is started again by its supervisor.

Why: after a rebalance, faust-streaming (0.15.3) can take records of a changelog partition from
the consumer and drop them before they reach the recovery. Its fetch loop filters fetched
records by a set of active partitions that the rebalance changes while the fetch is waiting,
and the consumer's position has already moved past the dropped records. The recovery then
waits for offsets the consumer will never deliver again ("No event received for active tp"
every 30 s) and nothing in Faust times out: the worker holds its input partitions and answers
none of their lines. Seen about once in 30 runs of the 1 -> 2 -> 1 rebalance scenario, and
reported upstream for the same version (faust-streaming #74, #155).

What the watch does: every few seconds it reads, per changelog partition the recovery still
reads, the last offset the recovery received and the consumer's position. A partition whose
position is past the next offset the recovery needs has had records fetched that the recovery
never got; when that lasts ``stall_seconds`` with no offset received, those partitions are moved
back to the next offset the recovery needs, so the records are fetched and delivered again
(a changelog record applied twice leaves the same value; skipping them would lose histories).
When that does not help after ``reseeks_before_exit`` tries, the process exits with
``EXIT_RECOVERY_STALLED`` without committing, and a fresh start recovers again; the input is
redelivered, never lost. A recovery that simply receives nothing (the broker is away, the
fetch is slow) has fetched nothing past its offsets and is left alone.

Owns the decision (``RecoveryWatch.observe``, pure) and the loop that reads the recovery and
acts on it (``watch_recovery``). What it reads of Faust's recovery and how it moves the consumer
are Faust internals, reached through stream/faust_internals.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from scrubber.stream import faust_internals

log = logging.getLogger(__name__)

#: Exit status of a worker whose table recovery could not be made to progress.
EXIT_RECOVERY_STALLED = 76


@dataclass(frozen=True)
class RecoveryState:
    """What the watch reads of a recovery.

    Per changelog partition, the last offset the recovery received and the offset it must reach
    (Faust's ``active_offsets`` and ``active_highwaters``), and the consumer's position (the
    next offset it will fetch) of the partitions that are behind.
    """

    in_recovery: bool
    generation: int
    offsets: Mapping[Any, int | None]
    targets: Mapping[Any, int | None]
    positions: Mapping[Any, int | None] = field(default_factory=dict)

    def behind(self) -> dict[Any, int]:
        """Partitions with records still to read: the next offset each one needs."""
        behind = {}
        for tp, target in self.targets.items():
            done = self.offsets.get(tp)
            if target is not None and done is not None and target > done:
                behind[tp] = done + 1
        return behind

    def passed(self) -> dict[Any, int]:
        """Partitions behind whose consumer has fetched past the next offset they need."""
        passed = {}
        for tp, needed in self.behind().items():
            position = self.positions.get(tp)
            if position is not None and position > needed:
                passed[tp] = needed
        return passed


@dataclass(frozen=True)
class Decision:
    """What to do now: nothing, move partitions back (``reseek``), or ``exit``."""

    reseek: dict[Any, int] = field(default_factory=dict)
    exit: bool = False


@dataclass
class RecoveryWatch:
    """Decides, from successive readings of a recovery, when it has stalled and what to do."""

    stall_seconds: float
    reseeks_before_exit: int = 3
    _seen: tuple[int, tuple[tuple[Any, int | None], ...]] | None = None
    _since: float = 0.0
    _reseeks: int = 0

    def observe(self, state: RecoveryState, now: float) -> Decision:
        """The decision for this reading, taken at monotonic time ``now``."""
        behind = state.behind() if state.in_recovery else {}
        progress = (state.generation, tuple(sorted(state.offsets.items(), key=repr)))
        if not behind or progress != self._seen:
            # Idle, done, or moving: a stall is counted from here.
            self._seen, self._since, self._reseeks = progress, now, 0
            return Decision()
        passed = state.passed()
        if not passed:
            # Nothing fetched that the recovery lacks: it waits for Kafka, nothing was lost.
            self._since = now
            return Decision()
        if now - self._since < self.stall_seconds:
            return Decision()
        self._since = now  # the next step, if any, comes after another full wait
        if self._reseeks >= self.reseeks_before_exit:
            return Decision(exit=True)
        self._reseeks += 1
        return Decision(reseek=passed)

    def move_failed(self) -> None:
        """The partitions could not be moved back: that try does not count."""
        self._reseeks = max(0, self._reseeks - 1)


async def recovery_state(app: Any, call_seconds: float) -> RecoveryState:
    """Read Faust's recovery (copies: the recovery changes them while the worker runs).

    Positions are read from the consumer's own thread, and only for the partitions behind.
    """
    progress = faust_internals.recovery_progress(app)
    read = RecoveryState(
        in_recovery=progress.in_recovery,
        generation=progress.generation,
        offsets=progress.offsets,
        targets=progress.targets,
    )
    if not read.in_recovery:
        return read
    positions = {}
    for tp in read.behind():
        # Bounded: the consumer thread may wait on Kafka.
        positions[tp] = await asyncio.wait_for(
            faust_internals.consumer_position(app, tp), call_seconds
        )
    return replace(read, positions=positions)


async def watch_recovery(
    app: Any,
    watch: RecoveryWatch,
    interval: float,
    *,
    call_seconds: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    exit_process: Callable[[int], Any] = os._exit,
    on_reseek: Callable[[], Any] = lambda: None,
) -> None:
    """Read the recovery every ``interval`` seconds and act on the watch's decision.

    Runs as long as the worker: a reading or a move that fails is logged and tried again at the
    next reading. ``on_reseek`` is called for every partition moved back (the worker counts
    them); ``call_seconds`` bounds each call into the consumer.
    """
    while not getattr(app, "should_stop", False):
        await asyncio.sleep(interval)
        try:
            state = await recovery_state(app, call_seconds)
            decision = watch.observe(state, clock())
            if decision.exit and not getattr(app, "should_stop", False):
                log.critical(
                    "table recovery made no progress after moving back its partitions; exiting "
                    "without committing",
                    extra={"behind": _describe(state.passed(), state)},
                )
                logging.shutdown()
                exit_process(EXIT_RECOVERY_STALLED)
                return
            if decision.reseek:
                # On the consumer's own thread, as Faust's recovery seeks.
                try:
                    await asyncio.wait_for(
                        faust_internals.move_consumer(app, decision.reseek), call_seconds
                    )
                except Exception:
                    watch.move_failed()
                    raise
                for tp, offset in decision.reseek.items():
                    on_reseek()
                    log.warning(
                        "table recovery made no progress; moving its partition back",
                        extra={
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "offset": offset,
                            "position": state.positions.get(tp),
                            "target": state.targets.get(tp),
                        },
                    )
        except Exception as exc:  # before the app has its tables, while it stops, Kafka away
            log.warning(
                "recovery watch could not read or move the recovery",
                extra={"error_type": type(exc).__name__},
            )


def _describe(behind: Mapping[Any, int], state: RecoveryState) -> list[str]:
    """``topic[partition] next/target`` per partition (topic names and offsets, nothing else)."""
    return [f"{tp.topic}[{tp.partition}] {n}/{state.targets.get(tp)}" for tp, n in behind.items()]
