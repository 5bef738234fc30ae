"""The worker's changes to Faust: refused on untested releases, made only by install, undone.

Also Faust's offset bookkeeping as the batch handler reaches it (``FaustAcks``), on Faust's own
message class.
"""

from __future__ import annotations

import gc
import importlib.metadata
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust.transport.consumer as faust_consumer
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from faust.utils.functional import consecutive_numbers

from scrubber.stream import faust_internals
from scrubber.stream.faust_internals import (
    GC_THRESHOLDS,
    TESTED_VERSIONS,
    FaustAcks,
    UnsupportedVersionError,
    acked_runs,
    check_versions,
    gated_ack,
    install,
    untested_versions,
)
from scrubber.stream.gaps import Gap, RawRecord


def _versions(**found: str | None) -> Callable[[str], str]:
    """A version lookup answering ``found`` (None: not installed), else the tested release."""
    tested = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}

    def version(package: str) -> str:
        value = found.get(package.replace("-", "_"), tested[package])
        if value is None:
            raise importlib.metadata.PackageNotFoundError(package)
        return value

    return version


def test_the_locked_releases_are_tested_ones() -> None:
    lock = (Path(__file__).resolve().parents[2] / "deploy/requirements.lock").read_text()
    pins = dict(line.split("==", 1) for line in lock.splitlines() if "==" in line)
    assert set(TESTED_VERSIONS) <= set(pins)
    assert untested_versions(pins.__getitem__) == {}
    assert untested_versions() == {}  # what this environment runs
    check_versions()


@pytest.mark.parametrize(
    ("found", "untested"),
    [
        ({}, {}),
        ({"aiokafka": "0.14.1"}, {}),
        ({"aiokafka": "0.14.0.post1"}, {}),
        ({"faust_streaming": "0.15.4"}, {"faust-streaming": "0.15.4"}),
        ({"faust_streaming": "0.15.2"}, {"faust-streaming": "0.15.2"}),
        ({"faust_streaming": "0.15.3rc1"}, {"faust-streaming": "0.15.3rc1"}),
        ({"aiokafka": "0.13.0"}, {"aiokafka": "0.13.0"}),
        ({"aiokafka": "0.15.0"}, {"aiokafka": "0.15.0"}),
        ({"aiokafka": "not a version"}, {"aiokafka": "not a version"}),
        ({"faust_streaming": None}, {"faust-streaming": "not installed"}),
        (
            {"faust_streaming": "0.16.0", "aiokafka": "0.12.0"},
            {"faust-streaming": "0.16.0", "aiokafka": "0.12.0"},
        ),
    ],
)
def test_untested_releases_are_named(
    found: dict[str, str | None], untested: dict[str, str]
) -> None:
    assert untested_versions(_versions(**found)) == untested


def test_the_refusal_names_the_installed_and_the_supported_releases() -> None:
    with pytest.raises(UnsupportedVersionError) as refused:
        check_versions(_versions(faust_streaming="0.16.0"))
    message = str(refused.value)
    assert "faust-streaming 0.16.0" in message
    assert "faust-streaming ==0.15.3" in message and "aiokafka ==0.14.*" in message
    assert "aiokafka 0.14.0" not in message  # only what is wrong is named as installed


def test_an_untested_release_changes_nothing() -> None:
    thresholds = gc.get_threshold()
    with pytest.raises(UnsupportedVersionError):
        install(version=_versions(aiokafka="0.15.0"))
    assert faust_consumer.consecutive_numbers is consecutive_numbers  # type: ignore[attr-defined]
    assert gc.get_threshold() == thresholds
    assert not faust_internals._active


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """Whatever a failing test leaves, the collector is as it was afterwards."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_install_patches_and_undo_restores(restore_gc: None) -> None:
    thresholds = gc.get_threshold()
    assert thresholds != GC_THRESHOLDS
    assert faust_consumer.consecutive_numbers is consecutive_numbers  # type: ignore[attr-defined]
    installation = install()
    try:
        assert faust_consumer.consecutive_numbers is acked_runs  # type: ignore[attr-defined]
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        installation.undo()
    assert faust_consumer.consecutive_numbers is consecutive_numbers  # type: ignore[attr-defined]
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
    installation.undo()  # a second undo changes nothing
    assert faust_consumer.consecutive_numbers is consecutive_numbers  # type: ignore[attr-defined]


def test_one_installation_at_a_time() -> None:
    first = install(tune_gc=False)
    try:
        with pytest.raises(RuntimeError, match="installed already"):
            install(tune_gc=False)
        assert faust_consumer.consecutive_numbers is acked_runs  # type: ignore[attr-defined]
    finally:
        first.undo()
    install(tune_gc=False).undo()  # possible again after the undo
    assert faust_consumer.consecutive_numbers is consecutive_numbers  # type: ignore[attr-defined]


def test_importing_and_building_the_worker_patch_nothing(tmp_path: Path) -> None:
    """In a fresh interpreter: the worker's modules and its constructor leave Faust as it is."""
    script = f"""
import gc
import faust.transport.consumer as faust_consumer
from faust.utils.functional import consecutive_numbers
thresholds = gc.get_threshold()
from scrubber.config import Settings
from scrubber.stream.app import Worker
Worker(Settings(data_dir={str(tmp_path)!r}))
assert faust_consumer.consecutive_numbers is consecutive_numbers, "patched"
assert faust_consumer.Consumer.ack.__module__ == "faust.transport.consumer", "ack patched"
assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0, "gc tuned"
print("untouched")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "untouched"


def test_the_worker_command_refuses_an_untested_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from scrubber.cli import app

    lookup = _versions(faust_streaming="0.16.1")
    monkeypatch.setattr(faust_internals, "check_versions", partial(check_versions, lookup))
    monkeypatch.setenv("SCRUBBER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SCRUBBER_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2, result.output
    assert "refusing to start" in result.output
    assert "faust-streaming 0.16.1" in result.output


# ------------------------------------------------------------------------------ FaustAcks
class _Consumer:
    """Faust's consumer as the bookkeeping reaches it: what was tracked and acknowledged."""

    def __init__(self) -> None:
        self.tracked: list[Any] = []
        self.acked: list[Any] = []

    def track_message(self, message: Any) -> None:
        self.tracked.append(message)

    def ack(self, message: Any) -> bool:
        self.acked.append(message)
        return True


class _App:
    """A Faust app as the bookkeeping reaches it (weakly referable, as Faust's app is)."""

    def __init__(self, consumer: Any, generation: int = 4) -> None:
        self.consumer = consumer
        self.consumer_generation_id = generation


def _event(offset: int, refs: int = 1, topic: str = "in") -> Any:
    message = ConsumerMessage(topic, 2, offset, 0.0, 0, [], b"k", b"v", None, tp=TP(topic, 2))
    message.refcount = refs
    return SimpleNamespace(message=message)


def test_a_held_record_is_acknowledged_by_the_last_release_only() -> None:
    consumer = _Consumer()
    acks = FaustAcks(_App(consumer))
    events = [_event(10), _event(11)]
    acks.hold(events)
    # Faust's stream lets go of its reference when the agent asks for the next batch.
    for event in events:
        event.message.ack(consumer)
    assert consumer.acked == []
    acks.release(events[:1])
    assert [m.offset for m in consumer.acked] == [10]
    assert events[1].message.refcount == 1  # not released: never acknowledged


def test_a_release_before_faust_lets_go_leaves_the_ack_to_faust() -> None:
    consumer = _Consumer()
    acks = FaustAcks(_App(consumer))
    events = [_event(10)]
    acks.hold(events)
    acks.release(events)
    assert consumer.acked == []
    events[0].message.ack(consumer)
    assert [m.offset for m in consumer.acked] == [10]


def _gap(start: int, end: int, *records: RawRecord) -> Gap:
    return Gap(3, start, end, tuple(records))


def test_every_offset_of_a_range_read_back_is_tracked_and_acknowledged_as_faust_would() -> None:
    consumer = _Consumer()
    acks = FaustAcks(_App(consumer), frozenset({"claims"}))
    record = RawRecord(3, 77, b"M1", b"{}", 12.5, (("scrubber-attempt", b"2"),))
    messages = acks.track("claims", _gap(77, 79, record))  # 78: a transaction marker
    assert consumer.tracked == messages and consumer.acked == []  # in flight until handled
    acks.recovered(messages)
    assert consumer.acked == messages
    message, marker = messages
    assert isinstance(message, ConsumerMessage)
    assert (message.topic, message.partition, message.offset) == ("claims", 3, 77)
    assert message.tp == TP("claims", 3)
    assert (message.key, message.value, message.timestamp) == (b"M1", b"{}", 12.5)
    assert message.headers == [("scrubber-attempt", b"2")]
    assert message.generation_id == 4
    assert (marker.offset, marker.key, marker.value, marker.headers) == (78, None, None, [])
    assert acks.gate.allows(message) and acks.gate.allows(marker)


def test_records_let_go_of_are_never_acknowledged_nor_waited_for() -> None:
    consumer = _Consumer()
    consumer._unacked_messages = set()  # type: ignore[attr-defined]
    acks = FaustAcks(_App(consumer), frozenset({"claims"}))
    messages = acks.track("claims", _gap(5, 7))
    consumer._unacked_messages |= set(messages)  # type: ignore[attr-defined]
    acks.untrack(messages)
    assert all(m.acked for m in messages)
    assert consumer._unacked_messages == set()  # type: ignore[attr-defined]
    assert all(not m.ack(consumer) for m in messages)  # a later release changes nothing
    assert consumer.acked == []


def test_a_failing_track_or_ack_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    acks = FaustAcks(_App(None, 1))
    assert acks.track("claims", _gap(5, 6, RawRecord(3, 5, None, None, None, ()))) == []
    assert "could not track recovered records" in caplog.text
    acks.recovered([SimpleNamespace(offset=5, partition=3)])
    assert "could not ack recovered records" in caplog.text


def test_an_event_for_a_record_read_back_names_its_partition() -> None:
    app = _App(_Consumer(), 9)
    record = RawRecord(1, 40, b"M7", b"line", None, (("h", b"v"),))
    event = FaustAcks(app).event("claims", record)
    assert event.app is app
    assert (event.key, event.value) == (b"M7", b"line")
    assert (event.message.topic, event.message.partition, event.message.offset) == (
        "claims",
        1,
        40,
    )
    assert event.message.generation_id == 9


# ------------------------------------------------------------------------------ the ack gate
class _FaustConsumer:
    """What the gated ``Consumer.ack`` reads of Faust's consumer; ``acked`` by the original."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._unacked_messages: set[Any] = set()
        self.acked: list[int] = []


def _original_ack(consumer: Any, message: Any) -> bool:
    message.acked = True
    consumer._unacked_messages.discard(message)
    consumer.acked.append(message.offset)
    return True


def test_faust_acknowledges_only_the_input_records_the_worker_let_through() -> None:
    app = _App(None)
    consumer = _FaustConsumer(app)
    app.consumer = consumer
    refusals: list[int] = []
    acks = FaustAcks(app, frozenset({"in"}), on_refused=lambda: refusals.append(1))
    ack = gated_ack(_original_ack)
    held, skipped, other = _event(10), _event(11), _event(12, topic="changelog")
    consumer._unacked_messages |= {held.message, skipped.message}
    acks.hold([held])
    # Faust lets go of a record it took from the queue after a rebalance without handing it over.
    assert ack(consumer, skipped.message) is False
    assert ack(consumer, held.message) is True
    assert ack(consumer, other.message) is True  # not an input topic: Faust's own rule
    assert consumer.acked == [10, 12]
    assert acks.gate.refused == 1 and refusals == [1]
    assert skipped.message.acked  # no longer waited for at shutdown, never committed
    assert consumer._unacked_messages == set()


def test_an_app_without_a_gate_acknowledges_as_faust_does() -> None:
    consumer = _FaustConsumer(_App(None))
    assert gated_ack(_original_ack)(consumer, _event(3).message) is True
    assert consumer.acked == [3]


def test_install_gates_faust_acks_and_takes_no_gap_as_acknowledged() -> None:
    original_ack = faust_consumer.Consumer.ack
    original_gap = faust_consumer.Consumer._add_gap
    installation = install(tune_gc=False)
    try:
        assert faust_consumer.Consumer.ack is not original_ack
        assert faust_consumer.Consumer._add_gap is not original_gap
    finally:
        installation.undo()
    assert faust_consumer.Consumer.ack is original_ack
    assert faust_consumer.Consumer._add_gap is original_gap


def test_the_gate_in_front_of_fausts_own_ack_through_a_message_s_last_reference() -> None:
    """Faust's ``Message.ack`` -> ``on_final_ack`` -> the gated ``Consumer.ack`` -> Faust's own."""
    from collections import defaultdict

    class Consumer:
        ack = gated_ack(faust_consumer.Consumer.ack)

        def __init__(self, app: Any) -> None:
            self.app = app
            self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None)
            self._acked_index: dict[Any, set[int]] = defaultdict(set)
            self._acked: dict[Any, list[int]] = defaultdict(list)
            self._unacked_messages: set[Any] = set()
            self._n_acked = 0
            self._waiting_for_ack = None

    app = _App(None)
    app.topics = SimpleNamespace(acks_enabled_for=lambda topic: True)  # type: ignore[attr-defined]
    consumer = Consumer(app)
    app.consumer = consumer
    acks = FaustAcks(app, frozenset({"in"}))
    held, skipped = _event(10, refs=1), _event(11, refs=1)
    consumer._unacked_messages |= {held.message, skipped.message}
    acks.hold([held])
    held.message.ack(consumer)  # Faust's stream lets go: our hold keeps it
    skipped.message.ack(consumer)  # a record Faust never handed over: its last reference
    assert consumer._acked[TP("in", 2)] == []
    acks.release([held])
    assert consumer._acked[TP("in", 2)] == [10]
    assert consumer._unacked_messages == set()
    assert acks.gate.refused == 1
