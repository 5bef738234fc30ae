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

What the watch does: every few seconds it reads the recovery's per-partition progress. When a
recovery still has records to read and none arrived for ``stall_seconds``, the partitions that
are behind are moved back to the first offset the recovery has not seen, so the records are
fetched and delivered again (applying a changelog record twice leaves the same value, and
skipping them would lose histories). When that does not help after ``reseeks_before_exit``
tries, the process exits with ``EXIT_RECOVERY_STALLED`` without committing: a fresh process
reads the changelog from the start, and the input is redelivered, never lost.

The decision is pure (``RecoveryWatch.observe``); ``watch_recovery`` reads Faust's state and
acts on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: Exit status of a worker whose table recovery could not be made to progress.
EXIT_RECOVERY_STALLED = 76


@dataclass(frozen=True)
class RecoveryState:
    """What the watch reads of a recovery.

    Per changelog partition, the last offset applied and the offset the recovery must reach
    (Faust's ``active_offsets`` and ``active_highwaters``).
    """

    in_recovery: bool
    generation: int
    offsets: Mapping[Any, int]
    targets: Mapping[Any, int]

    def behind(self) -> dict[Any, int]:
        """Partitions with records still to read: the next offset each one needs."""
        behind = {}
        for tp, target in self.targets.items():
            done = self.offsets.get(tp)
            if target is not None and done is not None and target > done:
                behind[tp] = done + 1
        return behind


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
    _seen: tuple[int, tuple[tuple[Any, int], ...]] | None = None
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
        if now - self._since < self.stall_seconds:
            return Decision()
        self._since = now  # the next step, if any, comes after another full wait
        if self._reseeks >= self.reseeks_before_exit:
            return Decision(exit=True)
        self._reseeks += 1
        return Decision(reseek=behind)


def recovery_state(app: Any) -> RecoveryState:
    """Read Faust's recovery (copies: the recovery changes them while the worker runs)."""
    recovery = app.tables.recovery
    return RecoveryState(
        in_recovery=bool(recovery.in_recovery),
        generation=int(app.consumer_generation_id or 0),
        offsets=dict(recovery.active_offsets),
        targets=dict(recovery.active_highwaters),
    )


async def watch_recovery(
    app: Any,
    watch: RecoveryWatch,
    interval: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    exit_process: Callable[[int], Any] = os._exit,
    on_reseek: Callable[[], Any] = lambda: None,
) -> None:
    """Read the recovery every ``interval`` seconds and act on the watch's decision.

    ``on_reseek`` is called for every partition moved back (the worker counts them).
    """
    while True:
        await asyncio.sleep(interval)
        try:
            state = recovery_state(app)
        except Exception as exc:  # before the app has its tables, or while it stops
            log.debug("recovery state unreadable", extra={"error_type": type(exc).__name__})
            continue
        decision = watch.observe(state, clock())
        if decision.exit:
            log.critical(
                "table recovery made no progress after moving back its partitions; exiting "
                "without committing",
                extra={"behind": _describe(state.behind(), state)},
            )
            logging.shutdown()
            exit_process(EXIT_RECOVERY_STALLED)
            return
        for tp, offset in decision.reseek.items():
            position = None
            try:
                position = await app.consumer.position(tp)
                await app.consumer.seek(tp, offset)
            except Exception as exc:
                log.warning(
                    "could not move a changelog partition back",
                    extra={"partition": tp.partition, "error_type": type(exc).__name__},
                )
                continue
            on_reseek()
            log.warning(
                "table recovery made no progress; moving its partition back",
                extra={
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "offset": offset,
                    "position": position,
                    "target": state.targets.get(tp),
                },
            )


def _describe(behind: Mapping[Any, int], state: RecoveryState) -> list[str]:
    """``topic[partition] next/target`` per partition (topic names and offsets, nothing else)."""
    return [f"{tp.topic}[{tp.partition}] {n}/{state.targets.get(tp)}" for tp, n in behind.items()]
