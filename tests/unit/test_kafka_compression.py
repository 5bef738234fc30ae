"""SCRUBBER_KAFKA_COMPRESSION: what every producer of the scrubber compresses with.

The broker side (the batches really stored compressed) is tests/integration/test_compression.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from scrubber import kafka
from scrubber.config import Settings
from scrubber.kafka import compression_type, producer_kwargs
from scrubber.stream.app import Worker


def test_nothing_is_compressed_by_default() -> None:
    """Off until every reader has the codec: a worker of an earlier release cannot read zstd."""
    assert Settings.model_fields["kafka_compression"].default == "none"
    assert compression_type(Settings.model_construct()) is None


@pytest.mark.parametrize("codec", ["zstd", "lz4", "gzip", "snappy"])
def test_a_codec_is_passed_to_the_producers_as_named(codec: str) -> None:
    settings = Settings(kafka_compression=codec)
    assert compression_type(settings) == codec
    assert producer_kwargs(settings)["compression_type"] == codec


def test_none_sends_uncompressed() -> None:
    settings = Settings(kafka_compression="none")
    assert compression_type(settings) is None
    assert producer_kwargs(settings)["compression_type"] is None


def test_an_unknown_codec_is_refused_by_the_settings() -> None:
    with pytest.raises(ValidationError, match="kafka_compression"):
        Settings(kafka_compression="brotli")


def test_producer_kwargs_keep_the_connection_settings() -> None:
    settings = Settings(kafka_bootstrap="broker-a:9092,broker-b:9092")
    kwargs = producer_kwargs(settings)
    assert kwargs["bootstrap_servers"] == "broker-a:9092,broker-b:9092"
    assert kwargs["security_protocol"] == "PLAINTEXT"


@pytest.mark.parametrize(
    ("codec", "check"), [("zstd", "has_zstd"), ("lz4", "has_lz4"), ("snappy", "has_snappy")]
)
def test_a_missing_codec_library_is_a_clear_error_at_start(
    codec: str, check: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(kafka_compression=codec, table_store="memory://", data_dir=str(tmp_path))
    assert compression_type(settings) == codec
    monkeypatch.setattr(kafka.aiokafka_codec, check, lambda: False)
    with pytest.raises(ValueError, match="SCRUBBER_KAFKA_COMPRESSION") as raised:
        compression_type(settings)
    assert "cramjam" in str(raised.value)
    with pytest.raises(ValueError, match="SCRUBBER_KAFKA_COMPRESSION"):
        Worker(settings)


def test_gzip_needs_no_extra_library(monkeypatch: pytest.MonkeyPatch) -> None:
    for check in ("has_zstd", "has_lz4", "has_snappy"):
        monkeypatch.setattr(kafka.aiokafka_codec, check, lambda: False)
    assert compression_type(Settings(kafka_compression="gzip")) == "gzip"


async def test_the_installed_aiokafka_accepts_every_codec_offered() -> None:
    """The project's own install (aiokafka's zstd extra) has each codec the setting offers:
    aiokafka refuses, when the producer is made, a codec whose library is missing."""
    for codec in ("zstd", "lz4", "gzip", "snappy"):
        settings = Settings(kafka_compression=codec)
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", compression_type=codec)
        await producer.stop()
        assert compression_type(settings) == codec


@pytest.mark.parametrize("codec", ["zstd", "none"])
def test_the_worker_gives_the_codec_to_faust(codec: str, tmp_path: Path) -> None:
    worker = Worker(
        Settings(kafka_compression=codec, table_store="memory://", data_dir=str(tmp_path))
    )
    expected = None if codec == "none" else codec
    assert worker.app.conf.producer_compression_type == expected
