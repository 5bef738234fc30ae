"""The fast handoff (``faust_internals.drain_messages``) against Faust 0.15.3's own fetch loop.

Both loops run over Faust's real consumer, conductor, topic channel, flow control and producer
buffer (an app that never connects: only ``getmany``, the fetch from Kafka, is scripted), and
must leave the same events in the agent's queue, the same read offsets, the same gaps and the
same commits. The fast one must hand a record over without ``wait_first`` exactly when that
cannot wait, and fall back to Faust's ``wait_first`` whenever it could.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import faust
import faust.transport.consumer as faust_consumer
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from scrubber.stream.faust_internals import drain_messages, handoff_never_waits

TOPIC = "fast-handoff-in"
TPS = (TP(TOPIC, 0), TP(TOPIC, 1))

Batch = Sequence[tuple[TP, int]]


def _message(tp: TP, offset: int) -> ConsumerMessage:
    return ConsumerMessage(
        tp.topic,
        tp.partition,
        offset,
        1_700_000_000.0,
        0,
        [],
        f"k{offset}".encode(),
        f"v{tp.partition}-{offset}".encode(),
        None,
        tp=tp,
    )


@dataclass
class Rig:
    """A Faust app's real consumer and conductor, with a scripted fetch and recorded effects."""

    app: Any
    consumer: Any
    channel: Any
    fetcher: Any
    gaps: list[tuple[TP, int, int]] = field(default_factory=list)
    commits: int = 0
    waits: int = 0

    def delivered(self) -> list[tuple[int, int, bytes]]:
        """What reached the agent's queue: (partition, offset, value) in order."""
        queue = self.channel.queue
        events = []
        while not queue.empty():
            event = queue.get_nowait()
            events.append((event.message.partition, event.message.offset, event.value))
        return events

    def read_offsets(self) -> dict[TP, int | None]:
        return {tp: self.consumer._read_offset[tp] for tp in TPS}


def _rig(batches: Sequence[Batch], *, buffer: int = 4096, commit_every: int | None = None) -> Rig:
    app = faust.App(
        f"fast-handoff-{id(batches)}",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        web_enabled=False,
        stream_buffer_maxsize=buffer,
        broker_commit_every=commit_every or 10_000,
    )
    topic = app.topic(
        TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    channel = topic.clone(is_iterator=True)
    conductor = app.topics
    conductor.add(channel)
    conductor._acking_topics.add(TOPIC)  # as the conductor's subscriber marks an acking channel
    for tp in TPS:
        conductor._tp_index[tp].add(channel)
    conductor._update_callback_map()
    app.flow_control.resume()
    consumer = app.consumer
    consumer._commit_every = commit_every
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    rig = Rig(app, consumer, channel, fetcher)
    script = list(batches)

    def getmany(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        async def fetch() -> AsyncIterator[tuple[TP, Any]]:
            batch = script.pop(0) if script else []
            for tp, offset in batch:
                yield tp, _message(tp, offset)
            if not script:
                fetcher._stopped.set()

        return fetch()

    async def add_gap(tp: TP, start: int, end: int) -> None:
        rig.gaps.append((tp, start, end))

    async def commit(*args: Any, **kwargs: Any) -> bool:
        rig.commits += 1
        return True

    original_wait_first = consumer.wait_first

    async def wait_first(*coros: Any, **kwargs: Any) -> Any:
        rig.waits += 1
        return await original_wait_first(*coros, **kwargs)

    consumer.getmany = getmany
    consumer._add_gap = add_gap
    consumer.commit = commit
    consumer.wait_first = wait_first
    return rig


Loop = Callable[[Any, Any], Any]
FAUST: Loop = faust_consumer.Consumer._drain_messages
FAST: Loop = drain_messages

#: Two partitions interleaved, a gap in partition 0 (3 -> 7), a record older than the read
#: offset (offset 0 of partition 1, which Faust drops), one at the read offset again (offset 1
#: of partition 1, which Faust delivers again), and a second fetch.
SCRIPT: list[Batch] = [
    [(TPS[0], 1), (TPS[1], 0), (TPS[0], 2), (TPS[1], 1), (TPS[0], 3)],
    [(TPS[1], 0), (TPS[1], 1), (TPS[0], 7), (TPS[1], 2), (TPS[0], 8), (TPS[1], 3)],
]


async def _run(loop: Loop, rig: Rig) -> None:
    await asyncio.wait_for(loop(rig.consumer, rig.fetcher), timeout=10)


async def test_the_fast_loop_delivers_what_fausts_loop_delivers() -> None:
    faust_rig, fast_rig = _rig(SCRIPT), _rig(SCRIPT)
    await _run(FAUST, faust_rig)
    await _run(FAST, fast_rig)
    expected = faust_rig.delivered()
    assert [(p, o) for p, o, _ in expected] == [
        (0, 1), (1, 0), (0, 2), (1, 1), (0, 3), (1, 1), (0, 7), (1, 2), (0, 8), (1, 3),
    ]  # fmt: skip
    assert fast_rig.delivered() == expected
    assert fast_rig.read_offsets() == faust_rig.read_offsets() == {TPS[0]: 8, TPS[1]: 3}
    assert fast_rig.gaps == faust_rig.gaps == [(TPS[0], 4, 7)]
    assert faust_rig.waits == 10  # Faust: four tasks for every record handed over
    assert fast_rig.waits == 0  # nothing could wait: every record handed over directly


async def test_commit_every_is_kept() -> None:
    script: list[Batch] = [[(TPS[0], n) for n in range(1, 6)]]
    faust_rig, fast_rig = _rig(script, commit_every=2), _rig(script, commit_every=2)
    for rig in (faust_rig, fast_rig):
        rig.consumer._n_acked = 2  # acknowledged since the last commit: exactly commit_every
        await _run(FAUST if rig is faust_rig else FAST, rig)
    assert fast_rig.commits == faust_rig.commits == 1
    assert fast_rig.consumer._n_acked == faust_rig.consumer._n_acked == 0


async def _condition(rig: Rig, condition: str) -> Callable[[], Any]:
    """Make ``condition`` true on the rig; returns what lifts it."""
    consumer, app = rig.consumer, rig.app
    if condition == "consumer flow suspended":
        consumer.suspend_flow.set()
        return consumer.suspend_flow.clear
    if condition == "app flow control suspended":
        app.flow_control.suspend()
        return app.flow_control.resume
    if condition == "callback lock held":
        await app.topics._tp_to_callback_lock.acquire()
        return app.topics._tp_to_callback_lock.release
    if condition == "producer buffer over its limit":
        buffer = app.producer.buffer
        limit = buffer.max_messages
        buffer.max_messages = 0
        buffer.pending.put_nowait(object())  # one record over a limit of none: ebb must wait

        def lift() -> None:
            buffer.pending.get_nowait()
            buffer.max_messages = limit

        return lift
    if condition == "changelog records waiting in the producer buffer":
        pending = app.producer.buffer.pending
        pending.put_nowait(object())  # one record, within the limit: the callback would not wait
        return pending.get_nowait
    rig.channel.queue.put_nowait(object())  # maxsize 1: now full
    return rig.channel.queue.get_nowait


@pytest.mark.parametrize(
    "condition",
    ["consumer flow suspended", "app flow control suspended", "callback lock held",
     "producer buffer over its limit", "changelog records waiting in the producer buffer",
     "agent queue full"],
)  # fmt: skip
async def test_whatever_could_wait_goes_through_fausts_wait_first(condition: str) -> None:
    outcomes = []
    for loop in (FAUST, FAST):
        rig = _rig([[(TPS[0], 1)]], buffer=1)
        never_waits = handoff_never_waits(rig.consumer)
        assert never_waits(TPS[0])
        lift = await _condition(rig, condition)
        assert not never_waits(TPS[0])
        run = asyncio.ensure_future(_run(loop, rig))
        for _ in range(50):  # let the loop reach its handoff, then lift the condition
            await asyncio.sleep(0)
            if rig.waits:
                break
        assert rig.waits == 1  # the handoff went through Faust's wait_first
        lift()
        await run
        outcomes.append(([(p, o) for p, o, _ in rig.delivered()], rig.read_offsets()))
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][1][TPS[0]] == 1


def test_install_replaces_the_fetch_loop_only_when_asked() -> None:
    from scrubber.stream.faust_internals import install

    original = faust_consumer.Consumer._drain_messages
    installation = install(tune_gc=False)
    try:
        assert faust_consumer.Consumer._drain_messages is drain_messages
    finally:
        installation.undo()
    assert faust_consumer.Consumer._drain_messages is original
    installation = install(tune_gc=False, fast_handoff=False)
    try:
        assert faust_consumer.Consumer._drain_messages is original
    finally:
        installation.undo()
