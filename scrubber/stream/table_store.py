"""Patient histories in the worker's Faust table, kept decoded for the length of a batch.

Owns the history table as the processor sees it (a ``HistoryStore``): which partition's store
and changelog a history is read from and written to, and when it is written. Faust picks that
partition from its current event, which ``faust_internals.enter_event`` sets.
"""

from __future__ import annotations

from typing import Any

from scrubber.history import PatientHistory, read_stored
from scrubber.stream.faust_internals import enter_event

#: Key prefix of the histories set aside because they no longer decode.
SET_ASIDE_PREFIX = b"set-aside:"


class TableHistoryStore:
    """Patient histories in a Faust table (values are ``PatientHistory.to_bytes``), per batch.

    The agent handles input records in batches. Within a batch the histories it reads and writes
    are kept here, decoded, and each one that changed is written to the table once, by
    ``flush``, before the batch's records are acknowledged: the records of a claim arrive
    together, and encoding and writing a history (and its changelog record) for every one of
    them was a fifth of the worker's time. Reads see exactly what writing every history at once
    would have shown, so the verdicts are the same.

    Faust picks the table partition (its store and its changelog partition) from the current
    event. ``at`` names the event whose records follow; a history is written with an event of
    the partition it was read for, so it lands where writing it at once would have put it.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self._partition: int | None = None
        self._events: dict[int, Any] = {}
        self._pending: dict[str, tuple[int | None, PatientHistory]] = {}

    def at(self, event: Any) -> None:
        """Handle the following records as records of ``event``'s partition."""
        partition = event.message.partition
        self._events[partition] = event
        self._partition = partition
        enter_event(event)

    def get(self, member_id: str) -> PatientHistory | None:
        """The patient's history, or None when the table has none."""
        pending = self._pending.get(member_id)
        if pending is not None:
            if pending[0] == self._partition:
                return pending[1]
            # The same key on another partition: write it first, then read the table as usual.
            del self._pending[member_id]
            self._write(member_id, *pending)
        raw = self.table.get(member_id.encode())
        return read_stored(raw) if raw else None

    def set_aside(self, member_id: str, data: bytes) -> None:
        """Keep a history that does not decode under ``set-aside:<member id>`` in the table.

        Written at once, with the current event's partition (the patient's), so the changelog
        keeps the bytes for a person to look at, while the patient's own key gets the history
        rebuilt from the lines that follow.
        """
        self.table[SET_ASIDE_PREFIX + member_id.encode()] = data

    def put(self, member_id: str, history: PatientHistory) -> None:
        """Keep the new history; ``flush`` writes it."""
        self._pending[member_id] = (self._partition, history)

    def flush(self) -> None:
        """Write every history the batch changed (Faust also writes it to the changelog)."""
        pending, self._pending = self._pending, {}
        for member_id, (partition, history) in pending.items():
            self._write(member_id, partition, history)

    def _write(self, member_id: str, partition: int | None, history: PatientHistory) -> None:
        if partition is not None:
            enter_event(self._events[partition])
        try:
            self.table[member_id.encode()] = history.to_bytes()
        finally:
            if self._partition is not None:
                enter_event(self._events[self._partition])


class TableClaimStore:
    """Each patient's claims being assembled (``ClaimAssembler.to_bytes``) in a Faust table.

    Keyed and partitioned like the histories, and written while the record's event is Faust's
    current event (``TableHistoryStore.at`` sets it), so a patient's claims live with the
    patient's history and are recovered with it from a compacted changelog. Written at once:
    only lines of an 837 (with ``claim_line_count``) touch it.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, member_id: str) -> bytes | None:
        """The patient's stored assembly, or None."""
        raw = self.table.get(member_id.encode())
        return bytes(raw) if raw else None

    def put(self, member_id: str, data: bytes) -> None:
        """Keep the patient's assembly (Faust also writes it to the changelog)."""
        self.table[member_id.encode()] = data
