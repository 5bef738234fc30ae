"""``ChangelogTable``: the worker's history table waits for its changelog records.

A real Faust table of a real (not started) Faust app; Faust's own ``send_changelog``, which
would need a running producer, hands back futures the test completes.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.tables.base import Collection

from scrubber.history import StoreWriteError
from scrubber.stream import table_store
from scrubber.stream.faust_internals import enter_event
from scrubber.stream.table_store import ChangelogTable, changelog_sent


class _Sent(asyncio.Future[Any]):
    """A changelog record's future, as Faust's ``FutureMessage`` is one."""

    message: Any


class _Event:
    """What a table reads of Faust's current event (Faust holds events by weak reference)."""

    message = SimpleNamespace(topic="claims.lines.v1", partition=2)


def _table(monkeypatch: pytest.MonkeyPatch) -> tuple[ChangelogTable, list[asyncio.Future[Any]]]:
    sent: list[asyncio.Future[Any]] = []

    def send_changelog(self: Any, partition: Any, key: Any, value: Any, *args: Any) -> Any:
        future = _Sent(loop=asyncio.get_running_loop())
        future.message = SimpleNamespace(partition=partition)  # as Faust's FutureMessage
        sent.append(future)
        return future

    monkeypatch.setattr(Collection, "send_changelog", send_changelog)
    app = faust.App("changelog-table-test", broker="kafka://127.0.0.1:1")
    table = ChangelogTable(app, name="histories", key_type=bytes, value_type=bytes)
    return table, sent


def test_sent_waits_for_every_record_sent_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    table, sent = _table(monkeypatch)

    async def run() -> None:
        first = table.send_changelog(0, b"M1", b"h1")
        table.send_changelog(1, b"M2", b"h2")
        assert first is sent[0]  # Faust's future, handed through
        waiting = asyncio.ensure_future(table.sent())
        sent[0].set_result("delivered")
        for _ in range(20):
            await asyncio.sleep(0)
        assert not waiting.done()  # one record is still on its way
        sent[1].set_result("delivered")
        await waiting
        # What was waited for is forgotten: the next wait is for new records only.
        table.send_changelog(0, b"M1", b"h1'")
        later = asyncio.ensure_future(changelog_sent(table))
        await asyncio.sleep(0)
        assert not later.done()
        sent[2].set_result("delivered")
        await later
        await table.sent()  # nothing left to wait for

    asyncio.run(run())


def test_a_record_not_delivered_is_a_refused_write(monkeypatch: pytest.MonkeyPatch) -> None:
    table, sent = _table(monkeypatch)

    async def run() -> None:
        table.send_changelog(0, b"M1", b"h1")
        table.send_changelog(0, b"M2", b"h2")
        sent[0].set_result("delivered")
        sent[1].set_exception(TimeoutError("the broker never answered for CANARY-PHI"))
        with pytest.raises(StoreWriteError, match="TimeoutError") as caught:
            await table.sent()
        assert "CANARY" not in str(caught.value)

    asyncio.run(run())


def test_a_write_and_a_delete_through_the_table_are_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The path that matters: ``table[key] = value`` (and ``del``) reach the kept futures."""
    table, sent = _table(monkeypatch)
    event = _Event()

    async def run() -> None:
        enter_event(event)
        table[b"M1"] = b"history"
        del table[b"M1"]
        assert len(sent) == 2
        waiting = asyncio.ensure_future(table.sent())
        sent[0].set_result("delivered")
        await asyncio.sleep(0)
        assert not waiting.done()
        sent[1].set_result("delivered")
        await waiting

    asyncio.run(run())


def test_a_wait_cancelled_leaves_faust_s_futures_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled, a record's future would still be sent, and Faust's callback for it fail."""
    table, sent = _table(monkeypatch)

    async def run() -> None:
        table.send_changelog(0, b"M1", b"h1")
        waiting = asyncio.ensure_future(table.sent())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert not sent[0].cancelled()

    asyncio.run(run())


def test_a_record_never_acknowledged_is_a_refused_write(monkeypatch: pytest.MonkeyPatch) -> None:
    table, _sent = _table(monkeypatch)
    monkeypatch.setattr(table_store, "CHANGELOG_WAIT_SECONDS", 0.05)

    async def run() -> None:
        table.send_changelog(0, b"M1", b"h1")
        with pytest.raises(StoreWriteError, match=r"not acknowledged in 0\.05 s"):
            await table.sent()

    asyncio.run(run())
