"""SCRUBBER_TABLE_STORE picks the history table's store (no Kafka needed to build the app)."""

from __future__ import annotations

from pathlib import Path

import faust.stores.memory
import faust.stores.rocksdb
import pytest

from scrubber.config import Settings
from scrubber.stream.app import ROCKSDB_OPTIONS, Worker


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
