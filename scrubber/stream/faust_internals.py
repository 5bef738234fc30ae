"""Every use of faust-streaming's and aiokafka's private API, behind a check of their versions.

The worker relies on a few things neither library offers publicly: it corrects Faust's commit
bookkeeping (``acked_runs``, ``AckGate``, no gap offsets taken as acknowledged), hands fetched
records to Faust's conductor without four tasks each (``drain_messages``, which reads the
conductor's, the flow control's and asyncio's lock's state), shortens aiokafka's fetch wait,
resumes a partition left unfetched after a full buffer, reaches the aiokafka producer inside
Faust's (to hand it record batches), sets Faust's current event for table writes, tells Faust's
offset bookkeeping about records it handled outside Faust's stream (and builds events for
them), and reads and moves Faust's table recovery.
Each of these depends on names and behaviour of one release, so they live here and nowhere else:
an upgrade of either library means reading this module (and its tests) against the new release,
then adding the release to ``TESTED_VERSIONS``.

Nothing here changes either library as a side effect of an import or a constructor. Process-wide
changes (the patches of Faust's classes and functions, the garbage collector's tuning) are made
by ``install``, which the worker calls once at start-up, after checking the installed versions,
and which returns an ``Installation`` whose ``undo`` restores everything. Private attributes are
looked up when used, not at import, so an unsupported release fails the version check with a
clear message rather than an ``ImportError``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import faust
import faust.streams as faust_streams
import faust.transport.consumer as faust_consumer
import faust.types.tuples as faust_tuples
from faust.types import TP
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from scrubber.stream.gaps import Gap, RawRecord

log = logging.getLogger(__name__)

#: The releases this module was written and tested against (PEP 440 specifiers). The lock file
#: (deploy/requirements.lock) pins versions inside these.
TESTED_VERSIONS: Final[Mapping[str, str]] = {
    "faust-streaming": "==0.15.3",
    "aiokafka": "==0.14.*",
}

#: Garbage collector thresholds of the worker (the defaults are 700, 10, 10). The young
#: generation's count is containers allocated less those freed, and a batch of 500 lines keeps
#: up to about 11,000 of them alive until it is written, on top of the decoded histories that
#: come and go (``scrubber.history``): below that, a young collection started every second or
#: third batch and walked those live objects for nothing (130 a run at 10,000, about 3 % of the
#: worker's CPU; 5 at 50,000, see docs/performance.md).
GC_THRESHOLDS: Final = (50_000, 10, 10)

VersionLookup = Callable[[str], str]


class UnsupportedVersionError(RuntimeError):
    """faust-streaming or aiokafka is a release the worker was not tested with."""


def untested_versions(version: VersionLookup = importlib.metadata.version) -> dict[str, str]:
    """The packages of ``TESTED_VERSIONS`` whose installed release is outside it.

    Maps each to the installed version, or to "not installed" / the unparsable version string.
    """
    found: dict[str, str] = {}
    for package, spec in TESTED_VERSIONS.items():
        try:
            installed = version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
            continue
        try:
            ok = Version(installed) in SpecifierSet(spec)
        except InvalidVersion:
            ok = False
        if not ok:
            found[package] = installed
    return found


def check_versions(version: VersionLookup = importlib.metadata.version) -> None:
    """Raise ``UnsupportedVersionError`` unless every package is a tested release."""
    untested = untested_versions(version)
    if untested:
        installed = ", ".join(f"{name} {found}" for name, found in sorted(untested.items()))
        supported = ", ".join(f"{name} {spec}" for name, spec in TESTED_VERSIONS.items())
        raise UnsupportedVersionError(
            f"installed: {installed}; supported: {supported}. The worker changes internals of "
            "these libraries (scrubber/stream/faust_internals.py) that other releases may not "
            "have or may use differently; install the supported releases "
            "(deploy/requirements.lock)."
        )


# ------------------------------------------------------------------------------ install / undo
@dataclass
class Installation:
    """What ``install`` changed; ``undo`` restores it, newest change first (idempotent)."""

    _restore: list[Callable[[], None]] = field(default_factory=list)
    active: bool = True

    def undo(self) -> None:
        """Put every patched name and setting back as it was before ``install``."""
        while self._restore:
            self._restore.pop()()
        self.active = False
        if _active and _active[0] is self:
            _active.clear()


#: The installation in effect, if any (one per process: a second would record the first's
#: patches as the originals).
_active: list[Installation] = []

_MISSING: Final = object()


def _replace(installation: Installation, owner: Any, name: str, value: Any) -> None:
    """Set ``owner.name`` and remember how to put back what ``owner`` itself held."""
    before = vars(owner).get(name, _MISSING)
    setattr(owner, name, value)

    def restore() -> None:
        if before is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, before)

    installation._restore.append(restore)


def install(
    *,
    tune_gc: bool = True,
    fast_handoff: bool = True,
    version: VersionLookup = importlib.metadata.version,
) -> Installation:
    """Check the library versions, then make the worker's process-wide changes.

    - Faust's commit bookkeeping uses ``acked_runs`` instead of ``consecutive_numbers``.
    - Faust's consumer acknowledges an input record only when the worker's ``AckGate`` admits
      it (``gated_ack``), and takes no offset as acknowledged because it saw a gap in the
      offsets it fetched (``_add_gap`` does nothing; the gap guard acknowledges what it reads
      back).
    - With ``fast_handoff``, Faust's consumer hands a fetched record to the conductor with a
      direct ``await`` whenever that cannot suspend (``drain_messages``).
    - With ``tune_gc``, the garbage collector runs less often and leaves alone what exists now
      (``tune_garbage_collector``).

    Raises ``UnsupportedVersionError`` (before changing anything) on an untested release, and
    ``RuntimeError`` when an installation is active already.
    """
    check_versions(version)
    if _active:
        raise RuntimeError("the Faust internals are installed already; undo that first")
    installation = Installation()
    try:
        _replace(installation, faust_consumer, "consecutive_numbers", acked_runs)
        consumer_class = faust_consumer.Consumer
        _replace(installation, consumer_class, "ack", gated_ack(consumer_class.ack))
        _replace(installation, consumer_class, "_add_gap", _no_gap)
        if fast_handoff:
            _replace(installation, consumer_class, "_drain_messages", drain_messages)
        if tune_gc:
            thresholds = gc.get_threshold()
            tune_garbage_collector()

            def restore_gc() -> None:
                gc.unfreeze()
                gc.set_threshold(*thresholds)

            installation._restore.append(restore_gc)
    except BaseException:
        installation.undo()
        raise
    _active.append(installation)
    return installation


# ------------------------------------------------------------------------------ commit bookkeeping
def acked_runs(offsets: Iterable[int]) -> Iterator[list[int]]:
    """Runs of acknowledged offsets, as Faust's ``consecutive_numbers``, but a repeat continues one.

    Faust commits, per partition, the end of the first run of consecutive acknowledged offsets
    (``Consumer._new_offset``), and takes that run off its sorted list of acknowledged offsets.
    The list can hold an offset twice: Faust adds the offsets of a gap it saw in the fetched
    records (which it takes for compaction) to the list without its index, and the gap guard
    handles and acknowledges those same records. With ``[5, 6, 6, 7, 7, 8]`` Faust's runs are
    ``[5, 6]``, ``[6, 7]``, ...: one offset per commit, so after a restart under a backlog the
    group offset crept forward by about three records a second and a second crash replayed most
    of the run (robinhood/faust#625 reports the same stall). Here a repeated offset belongs to
    the run, so the same list gives ``[5, 6, 6, 7, 7, 8]`` and Faust commits 9 at once. Every
    offset in a run was acknowledged, so nothing is committed that was not handled. With
    Faust's gap bookkeeping switched off (``install``) those repeats no longer arise; this stays
    so that a repeat from any other source can never stall the commit.
    """
    run: list[int] = []
    for offset in offsets:
        if run and offset - run[-1] > 1:
            yield run
            run = []
        run.append(offset)
    if run:
        yield run


class AckGate:
    """The input records the worker handled, the only ones Faust may acknowledge.

    Faust acknowledges records it never hands to the agent: a record fetched before a rebalance
    and taken from the queue after it (a stale generation, or flow stopped) is "skipped" and
    acknowledged at once, so the group offset could be committed past records no one handled;
    and a gap in the fetched offsets was taken as acknowledged, first delivered record included
    (``Consumer._add_gap``). Either way a restart, a rebalance or the gap guard's view of the
    committed offset could lose them. With the gate (``gated_ack``), Faust's consumer
    acknowledges an input record only if the worker let it through: a record it held for a
    batch (``FaustAcks.hold``) or one the gap guard read back and the worker handled. A record
    refused is fetched again (Faust seeks to the committed offset after a rebalance) or read
    back by the gap guard, so a refusal costs at most a second look, never a record.
    """

    def __init__(
        self, topics: frozenset[str], on_refused: Callable[[], None] | None = None
    ) -> None:
        self.topics = topics
        self._admitted: weakref.WeakSet[Any] = weakref.WeakSet()
        #: Acknowledgements refused since start (records Faust let go of without handing over).
        self.refused = 0
        self.on_refused = on_refused

    def admit(self, message: Any) -> None:
        """``message`` may be acknowledged (its record is held for, or was, handled)."""
        self._admitted.add(message)

    def allows(self, message: Any) -> bool:
        """Whether Faust may acknowledge ``message`` now (counts the refusals)."""
        if message.topic not in self.topics:
            return True
        if message in self._admitted:
            self._admitted.discard(message)
            return True
        self.refused += 1
        if self.on_refused is not None:
            self.on_refused()
        return False


#: The gate of each app (one per worker; looked up by the patched ``Consumer.ack``).
_GATES: weakref.WeakKeyDictionary[Any, AckGate] = weakref.WeakKeyDictionary()


def gated_ack(original: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """Faust's ``Consumer.ack``, refusing what the app's ``AckGate`` does not allow.

    A refused record is no longer waited for (graceful shutdown waits for unacknowledged
    records) and its offset is not marked safe to commit.
    """

    def ack(self: Any, message: Any) -> bool:
        gate = _GATES.get(self.app)
        if gate is not None:
            with faust_tuples.ack_lock:
                if not message.acked and not gate.allows(message):
                    message.acked = True
                    self._unacked_messages.discard(message)
                    return False
        return original(self, message)

    return ack


async def _no_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Faust's ``Consumer._add_gap``, taking nothing as acknowledged (see ``AckGate``)."""


class FaustAcks:
    """Faust's per-record offset bookkeeping, as the batch handler (stream/runtime.py) uses it.

    A record Faust delivered carries a reference count; Faust acknowledges it (marks its offset
    safe to commit) when the count drops to zero. ``hold`` takes one more reference per record,
    ``release`` gives it back with Faust's own ``Message.ack``, so a record Faust's stream has
    let go of already is acknowledged by the release, never left behind. The app's ``AckGate``
    (for ``topics``, the input topics) admits the records held and the ones read back.
    """

    def __init__(
        self,
        app: Any,
        topics: frozenset[str] = frozenset(),
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.gate = AckGate(topics, on_refused)
        _GATES[app] = self.gate

    def hold(self, events: Sequence[Any]) -> None:
        """One more reference on each event's record; the record may be acknowledged."""
        admit = self.gate.admit
        for event in events:
            message = event.message
            message.incref()
            admit(message)

    def release(self, events: Sequence[Any]) -> None:
        """Give the references back; a record with none left is acknowledged."""
        consumer = self.app.consumer
        for event in events:
            event.message.ack(consumer)

    def _message(self, topic: str, partition: int, offset: int, record: RawRecord | None) -> Any:
        """A message as Faust builds the ones it fetches (no key or value for an empty offset)."""
        return faust_tuples.ConsumerMessage(
            topic,
            partition,
            offset,
            (record.timestamp if record is not None else None) or 0.0,
            0,
            list(record.headers) if record is not None else [],
            record.key if record is not None else None,
            record.value if record is not None else None,
            None,
            tp=TP(topic, partition),
            generation_id=self.app.consumer_generation_id,
        )

    def event(self, topic: str, record: RawRecord) -> Any:
        """A Faust event for a record read outside Faust (tables take their partition from it)."""
        message = self._message(topic, record.partition, record.offset, record)
        return faust.Event(self.app, record.key, record.value, message.headers, message)

    def track(self, topic: str, gap: Gap) -> list[Any]:
        """Messages for every offset of a range read back, tracked as Faust tracks its own.

        Tracked, a rebalance waits for them (``Consumer.wait_empty``) as for the agent's
        records, so records read back are never handled while their partition moves. Offsets
        without a record (transaction markers) get a message too: the group offset must be
        able to move past them. Every message is admitted by the gate. A failure is logged and
        gives no messages (bookkeeping only: the group offset then stays behind until a
        restart, which hands the records again).
        """
        records = {r.offset: r for r in gap.records}
        messages: list[Any] = []
        try:
            consumer = self.app.consumer
            for offset in range(gap.start, gap.end):
                message = self._message(topic, gap.partition, offset, records.get(offset))
                self.gate.admit(message)
                consumer.track_message(message)
                messages.append(message)
        except Exception as exc:
            self._failed("could not track recovered records", gap.partition, messages, exc)
            self.untrack(messages)
            return []
        return messages

    def recovered(self, messages: Sequence[Any]) -> None:
        """Acknowledge tracked messages whose records were handled and written.

        Without this Faust's acknowledged offsets keep a gap and the group offset never moves
        past it, so every later rebalance or restart replays everything since (measured: 3,245
        repeated outputs for 4,000 lines in a 1-2-1 rebalance).
        """
        try:
            consumer = self.app.consumer
            for message in messages:
                consumer.ack(message)
        except Exception as exc:  # bookkeeping only: the records themselves are handled already
            self._failed("could not ack recovered records", None, messages, exc)

    def untrack(self, messages: Sequence[Any]) -> None:
        """Let go of messages whose records were not handled: never acknowledged, not waited for.

        Their offsets stay uncommitted; the gap guard reads the records again.
        """
        try:
            unacked = self.app.consumer._unacked_messages
        except Exception:
            unacked = set()
        with faust_tuples.ack_lock:
            for message in messages:
                message.acked = True
                unacked.discard(message)

    @staticmethod
    def _failed(what: str, partition: int | None, messages: Sequence[Any], exc: Exception) -> None:
        offsets = [m.offset for m in messages]
        log.warning(
            what,
            extra={
                "partition": partition if partition is not None else _partition_of(messages),
                "from_offset": min(offsets) if offsets else None,
                "to_offset": max(offsets) if offsets else None,
                "error_type": type(exc).__name__,
            },
        )


def _partition_of(messages: Sequence[Any]) -> int | None:
    return messages[0].partition if messages else None


# ------------------------------------------------------------------------------ events and tables
def enter_event(event: Any) -> None:
    """Make ``event`` Faust's current event in this task (what table reads and writes go by).

    Faust picks a table's partition (its store and its changelog partition) from the current
    event, which its own stream task sets; the agent's task handles a batch of events, so it
    sets each one itself.
    """
    faust_streams._current_event.set(weakref.ref(event))


# ------------------------------------------------------------------------------ the fetch loop
def handoff_never_waits(consumer: Any) -> Callable[[Any], bool]:
    """For ``consumer``, a test of whether handing a record of a partition over cannot suspend.

    Faust's conductor callback (``Conductor._compile_message_handler``'s ``on_message``, which
    takes the conductor's callback lock and calls the partition's handler: the compiled
    ``ConductorHandler`` where Faust's Cython extensions are installed, as in the lock file,
    else ``ConductorCompiler.build``'s closure; both wait in the same places) waits in exactly
    four places: for the app's flow control (suspended during a rebalance), for the callback
    lock, for the producer's buffer to ebb, and for a full channel queue (decoding with
    ``propagate=True`` does not wait). The producer's buffer must also be empty (see below).
    When none of those can wait and the consumer's flow is not suspended, the callback runs to
    its end without giving up the event loop, and nothing could interrupt it: awaiting it
    directly then has the outcome of racing it against ``suspend_flow`` in ``wait_first``,
    which creates four tasks for every record. One thing differs: ``wait_first`` gave the event
    loop a turn after every record; the loop now gives it one every 100 records (Faust's own
    ``yield_every``), and whenever a fetch or a handoff waits.
    """
    app = consumer.app
    flow_suspended = consumer.suspend_flow.is_set
    flow_active = app.flow_control.is_active
    conductor = app.topics
    lock = conductor._tp_to_callback_lock
    channels_of = conductor._tp_index.get  # a defaultdict: ``get`` adds nothing
    buffer = app.producer.buffer

    def never_waits(tp: Any) -> bool:
        if flow_suspended() or not flow_active():
            return False
        # A free lock with waiters (one is being woken) makes the next acquire wait; a Python
        # whose lock has no ``_waiters`` is taken to have some (Faust's path, never wrong).
        if lock.locked() or getattr(lock, "_waiters", True):
            return False
        # Not only when the buffer is over its limit (where the callback would wait): while
        # records wait in it, the record goes through Faust's path, which gives the task that
        # sends them a turn; handed over directly 100 at a time, a buffer that records keep
        # filling stays full and the worker falls behind (docs/performance.md).
        if buffer.size > 0:
            return False
        return not any(channel.queue.full() for channel in channels_of(tp, ()))

    return never_waits


async def drain_messages(self: Any, fetcher: Any) -> None:
    """Faust 0.15.3's ``Consumer._drain_messages``, without four tasks per record.

    The loop is Faust's, line for line (read offsets, gap tracking, ``commit_every``, a yield to
    the event loop every 100 records, the same errors and shutdown), except at the handoff of
    each record to the conductor: Faust runs ``wait_first(callback(message),
    suspend_flow.wait())``, which schedules the callback, a wait on ``suspend_flow`` and waits
    on the service's stopped and crashed events as four tasks, and then cancels three of them.
    That was a quarter of a bare Faust passthrough's CPU. Here the callback is awaited directly
    when it cannot suspend (``handoff_never_waits``); otherwise Faust's own ``wait_first`` runs,
    so a rebalance, a full buffer or a full producer buffer are met exactly as before.
    """
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = faust_consumer.CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    never_waits = handoff_never_waits(self)

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)

            # Faust: getmany can loop without releasing the event loop.
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if never_waits(tp):
                            await callback(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    else:
                        # Faust logs the key and value here; they hold PHI.
                        self.log.dev("DROPPED MESSAGE ROFF %r", offset)
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


# ------------------------------------------------------------------------------ consumer, producer
def shorten_fetch_wait(app: Any, wait_ms: int) -> bool:
    """Let the broker hold a fetch request at most ``wait_ms`` (Faust hardcodes 1,500 ms).

    aiokafka keeps one fetch request in flight per broker, and leaves out of it every partition
    whose records it still holds for the application. A worker that is still handling the last
    fetch's records therefore often asks only for partitions with nothing new (Faust's
    ``__assignor-__leader`` topic, say); the broker holds that request for the full wait, and
    the input partitions cannot be fetched again until it returns. Measured in the benchmark at
    half of the worker's peak rate: a steady 1.2-1.7 s of latency on every line with 1,500 ms,
    p99 about 100 ms with 50 ms. Idle, a worker sends a fetch every ``wait_ms`` instead.

    The consumer takes the value when it starts (``_fetch_max_wait_ms``, passed to its
    fetcher), so this sets it on the consumer before that and on a running fetcher too.
    Returns whether the consumer had the attribute: a consumer not built yet, or without it,
    leaves the default in place (and the worker logs it), never fails.
    """
    try:
        consumer = app.consumer._thread._ensure_consumer()
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise AttributeError("_fetch_max_wait_ms")
        consumer._fetch_max_wait_ms = wait_ms
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is not None:
            fetcher._fetch_max_wait_ms = wait_ms
    except Exception as exc:
        log.warning(
            "could not shorten the consumer's fetch wait",
            extra={"error_type": type(exc).__name__},
        )
        return False
    return True


def aiokafka_producer(app: Any) -> Any:
    """The aiokafka producer inside Faust's (``Producer._producer``), once the app started it.

    Faust's producer offers only a record's ``send``; the worker's results and history
    changelog go out as record batches (``outputs.RecordBatches``: aiokafka's public
    ``create_batch`` and ``send_batch``) through the same aiokafka producer, the one Faust
    flushes before it commits.
    """
    return app.producer._ensure_producer()


def producer_connected(app: Any) -> bool:
    """Whether Faust's producer has started and holds a connected aiokafka producer."""
    producer = app.producer
    return bool(getattr(producer, "_producer", None)) and bool(producer.started)


def tune_garbage_collector() -> None:
    """Collect garbage less often, and never scan what was loaded at start again.

    Every line allocates thousands of short-lived objects (pydantic models, JSON documents,
    Kafka records), and with the default threshold (700) the collector ran every few records,
    now and then over the whole heap: about a fifth of the worker's CPU, and full collections of
    200-300 ms that made the tail of the latency. Objects that exist when the worker starts
    (modules, the Faust app) are frozen out of collections. Nothing changes but when memory
    that is garbage anyway is found. Called by ``install``, which undoes it.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def resume_buffered(app: Any, tp: Any) -> bool:
    """Fetch ``tp`` again if Faust stopped fetching it for a full stream buffer and never resumed.

    Faust stops fetching a partition whose records arrive while the agent's queue is nearly full
    (``Consumer.on_buffer_full``) and resumes it when the queue drains (``on_buffer_drop``,
    called from the queue's pressure-drop callbacks). Those callbacks run only when the stream
    takes from the queue at or below the drop size (and all of them only at an empty queue),
    one per take; if the queue was replaced, or the stream's compiled iterator does not take
    that way, the partition stays unfetched: its records wait in the fetcher and it delivers
    nothing. The
    worker calls this for a partition that has been quiet far longer than a full buffer takes to
    drain. Returns whether the partition was held that way (and is now fetched again).
    """
    consumer = app.consumer
    held = tp in getattr(consumer, "_buffered_partitions", ())
    if held:
        consumer.on_buffer_drop(tp)
    return held


# ------------------------------------------------------------------------------ table recovery
def in_table_recovery(app: Any) -> bool:
    """Whether Faust is recovering tables from their changelogs (it answers nothing meanwhile)."""
    return bool(getattr(app, "in_recovery", False))


@dataclass(frozen=True)
class RecoveryProgress:
    """Copies of Faust's table recovery state (the recovery changes its own while it runs).

    Per changelog partition, the last offset the recovery received and the offset it must
    reach (the recovery's ``active_offsets`` and ``active_highwaters``).
    """

    in_recovery: bool
    generation: int
    offsets: dict[Any, int | None]
    targets: dict[Any, int | None]


def recovery_progress(app: Any) -> RecoveryProgress:
    """Read Faust's table recovery (``app.tables.recovery``) and the consumer's generation."""
    recovery = app.tables.recovery
    return RecoveryProgress(
        in_recovery=bool(recovery.in_recovery),
        generation=int(app.consumer_generation_id or 0),
        offsets=dict(recovery.active_offsets),
        targets=dict(recovery.active_highwaters),
    )


async def consumer_position(app: Any, tp: Any) -> int | None:
    """The next offset the consumer will fetch of ``tp`` (read on the consumer's thread)."""
    position: int | None = await app.consumer.position(tp)
    return position


async def move_consumer(app: Any, offsets: Mapping[Any, int]) -> None:
    """Seek partitions to offsets on the consumer's own thread, as Faust's recovery seeks."""
    await app.consumer.seek_wait(dict(offsets))
