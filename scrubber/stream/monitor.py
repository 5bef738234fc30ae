"""Faust's Monitor without its work per record.

Faust calls its Monitor (``faust.sensors.Monitor``, the ``Monitor`` setting) for every record
fetched, every event a stream takes and gives back, every record acknowledged and every table
read and write: counters by topic, stream and task, per-event timings, a deque of run times.
The worker exports its own metrics (``scrubber.metrics``) and never reads Faust's, so that work
bought nothing and cost about a tenth of a bare Faust passthrough's CPU. ``QuietMonitor`` keeps
the Monitor's once-per-fetch, per-commit and per-rebalance bookkeeping, and of the per-event
hooks only the time a partition's stream last took an event (Faust's consumer reads it to warn
about a stream that stopped taking events).
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors import Monitor


class QuietMonitor(Monitor):
    """A Faust Monitor that does no work per record, event or table access."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing per fetched record."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        """Only when the partition's stream last took an event (``stream_inbound_time``)."""
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        """Nothing when a stream is done with an event."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Nothing per acknowledged record."""

    def on_table_get(self, table: Any, key: Any) -> None:
        """Nothing per table read."""

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        """Nothing per table write."""

    def on_table_del(self, table: Any, key: Any) -> None:
        """Nothing per table delete."""
