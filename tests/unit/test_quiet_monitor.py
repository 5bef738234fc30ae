"""The worker's Faust Monitor: no work per record, but what Faust's consumer reads is kept."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors import Monitor
from faust.types import TP

from scrubber.stream.monitor import QuietMonitor

TOPIC_PARTITION = TP("in", 3)


class _Weakly:
    """A stream or table as the Monitor sees one (it keeps weak references to both)."""

    name = "histories"

    def __init__(self) -> None:
        self.task_owner = self


def _exercise(monitor: Monitor) -> None:
    message = SimpleNamespace(time_in=None, time_out=None, time_total=None)
    stream, table = _Weakly(), _Weakly()
    monitor.on_message_in(TOPIC_PARTITION, 7, message)  # type: ignore[arg-type]
    state = monitor.on_stream_event_in(TOPIC_PARTITION, 7, stream, None)  # type: ignore[arg-type]
    monitor.on_stream_event_out(TOPIC_PARTITION, 7, stream, None, state)  # type: ignore[arg-type]
    monitor.on_message_out(TOPIC_PARTITION, 7, message)  # type: ignore[arg-type]
    monitor.on_table_get(table, b"k")  # type: ignore[arg-type]
    monitor.on_table_set(table, b"k", b"v")  # type: ignore[arg-type]
    monitor.on_table_del(table, b"k")  # type: ignore[arg-type]


def test_fausts_monitor_counts_every_record_and_the_quiet_one_does_not() -> None:
    faust_monitor, quiet = Monitor(), QuietMonitor()
    _exercise(faust_monitor)
    _exercise(quiet)
    assert faust_monitor.messages_received_total == 1 and faust_monitor.events_total == 1
    assert len(faust_monitor.events_runtime) == 1 and faust_monitor.tables
    assert quiet.messages_received_total == 0 and quiet.events_total == 0
    assert len(quiet.events_runtime) == 0 and not quiet.tables
    assert quiet.tp_read_offsets == {}


def test_the_quiet_monitor_still_says_when_a_partitions_stream_last_took_an_event() -> None:
    """Faust's consumer reads ``stream_inbound_time`` to warn of a stream that stopped."""
    quiet = QuietMonitor()
    _exercise(quiet)
    assert TOPIC_PARTITION in quiet.stream_inbound_time
