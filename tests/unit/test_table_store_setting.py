"""SCRUBBER_TABLE_STORE picks the history table's store (no Kafka needed to build the app)."""

from __future__ import annotations

from pathlib import Path

import faust.stores.memory
import faust.stores.rocksdb
import pytest

from scrubber.config import Settings
from scrubber.kafka import HISTORY_TABLE
from scrubber.stream.app import ROCKSDB_OPTIONS, Worker
from scrubber.stream.table_store import ChangelogTable


@pytest.mark.parametrize(
    ("url", "store"),
    [("memory://", faust.stores.memory.Store), ("rocksdb://", faust.stores.rocksdb.Store)],
)
def test_the_setting_chooses_the_history_store(url: str, store: type, tmp_path: Path) -> None:
    worker = Worker(Settings(table_store=url, data_dir=str(tmp_path)))
    assert type(worker.table.data) is store


def test_rocksdb_gets_the_worker_sized_options(tmp_path: Path) -> None:
    worker = Worker(Settings(table_store="rocksdb://", data_dir=str(tmp_path)))
    options = worker.table.data.rocksdb_options
    for name, value in ROCKSDB_OPTIONS.items():
        assert getattr(options, name) == value, name


def test_the_history_table_is_the_apps_changelog_table(tmp_path: Path) -> None:
    """Made by Faust's ``app.Table`` from the app's ``Table`` setting: without it the batches
    would have no changelog records to wait for (``changelog_sent`` waits on nothing else)."""
    worker = Worker(Settings(table_store="memory://", data_dir=str(tmp_path)))
    assert type(worker.table) is ChangelogTable
    assert worker.app.tables[HISTORY_TABLE] is worker.table
