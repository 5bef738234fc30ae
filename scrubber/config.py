"""One place for every setting: environment variables with the prefix ``SCRUBBER_``.

The settings are frozen: a worker reads them once at start, and nothing changes them underneath
it. Secrets are ``SecretStr`` so that a repr, a log line or a traceback never shows them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of the worker and the command-line tools (``SCRUBBER_<NAME>``)."""

    model_config = SettingsConfigDict(
        env_prefix="SCRUBBER_", frozen=True, extra="ignore", env_file=None
    )

    # Kafka
    kafka_bootstrap: str = Field(
        default="127.0.0.1:19092", description="Kafka bootstrap servers, comma-separated"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(default=None, description="CA bundle for Kafka TLS")

    kafka_session_timeout_seconds: float = Field(
        default=15.0,
        ge=6.0,
        le=300.0,
        description="how long the group waits for a silent worker before giving its partitions "
        "to the others: the pause after a crash (heartbeats go every fifth of it)",
    )
    kafka_commit_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60.0,
        description="how often a worker commits the offsets of inputs whose outputs are "
        "written: what a crash can make it handle again",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=50,
        ge=1,
        le=1500,
        description="longest the broker holds a fetch for partitions with no new record "
        "(Faust asks for 1,500 ms, which a busy worker turns into 1.5 s of latency)",
    )
    kafka_compression: Literal["none", "zstd", "lz4", "gzip", "snappy"] = Field(
        default="none",
        description="what the worker and the tools compress the record batches they send with: "
        "a patient's whole history goes to the changelog with every batch that touches it, "
        "about 5.5 KB per input line, which zstd makes about a tenth. Off by default: a worker "
        "of a release before this one cannot read zstd (a rolling upgrade), and it costs a "
        "recovering worker memory",
    )
    stream_buffer_maxsize: int = Field(
        default=16_384,
        ge=1_024,
        le=1_000_000,
        description="input records the worker may hold fetched but not yet taken by its "
        "agent: at least about 2.5 s of its peak rate (below that, a full buffer stops the "
        "fetching of every partition and the consumer idles between fetches), and no more "
        "than it needs (a worker that falls behind holds this many records in memory, and Faust "
        "sizes the queue of changelog records it recovers histories from by it too)",
    )
    malloc_arenas: int = Field(
        default=2,
        ge=0,
        le=64,
        description="glibc malloc arenas the worker may use (0: glibc's default, eight per "
        "core): memory the Kafka consumer's thread frees while histories are recovered stays "
        "in that thread's arena; with two, a worker holding a million patients' histories "
        "peaked at 281 MiB instead of 326 (MALLOC_ARENA_MAX or GLIBC_TUNABLES win)",
    )
    history_format: int = Field(
        default=3,
        ge=2,
        le=3,
        description="the stored format of patient histories the worker writes (it reads 1, 2 "
        "and 3): 2 only while workers of a release that reads no format 3 may still take "
        "partitions (a rolling upgrade to this release), then 3",
    )
    fast_handoff: bool = Field(
        default=True,
        description="hand each fetched record to Faust's conductor with a direct await when "
        "that cannot wait, instead of Faust's four tasks per record (Faust's own handoff "
        "whenever the conductor could wait, or records wait in Faust's producer buffer); "
        "false: Faust's handoff for every record",
    )

    recovery_stall_seconds: float = Field(
        default=30.0,
        ge=5.0,
        le=3600.0,
        description="how long a table recovery may lack records the consumer fetched before "
        "its changelog partitions are moved back (three times in vain: the worker exits, 76)",
    )

    input_topic: str = "claims.lines.v1"
    accepted_topic: str = "claims.accepted.v1"
    flagged_topic: str = "claims.flagged.v1"
    dlq_topic: str = "claims.dlq.v1"
    x12_topic: str = Field(
        default="claims.x12.v1",
        description="raw X12 837P interchanges the worker reads; their claim lines go to the "
        "input topic",
    )
    claims_topic: str = Field(
        default="claims.claims.v1",
        description="claim results: one per claim of an 837, when every line has a verdict",
    )
    x12_277ca_topic: str = Field(
        default="claims.x12.277ca.v1",
        description="277CA claim acknowledgements of claims that came in an 837",
    )
    x12_ack_topic: str = Field(
        default="claims.x12.ack.v1", description="999 and TA1 acknowledgements of the X12 topic"
    )
    partitions: int = Field(
        default=4,
        ge=1,
        description="partition count of the input and result topics (workers beyond it idle)",
    )
    app_id: str = Field(
        default="claim-scrubber", description="Faust app id: the consumer group and table prefix"
    )

    table_store: str = Field(
        default="memory://",
        description="Faust table store of patient histories: memory:// or rocksdb:// (rocksdict)",
    )
    lateness_days: int = Field(
        default=365,
        ge=0,
        description="how far behind a patient's newest date of service a line may arrive and "
        "still be judged with the lines around it",
    )
    data_dir: str = Field(
        default=".scrubber-data", description="worker-local state (Faust table stores)"
    )

    # Redis (reference data)
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:16379/0"),
        description="Redis URL; may carry a user and password, so it is a secret",
    )
    redis_tls_cafile: str | None = Field(
        default=None, description="CA bundle for Redis TLS (a rediss:// URL)"
    )
    redis_prefix: str = Field(default="scrubber", description="prefix of every Redis key")
    refdata_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how often a worker checks the current-version pointer for a new version",
    )

    # HTTP: /metrics, /healthz, /readyz
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    x12_web_port: int = Field(
        default=6067,
        ge=0,
        le=65535,
        description="port of the X12 intake's /metrics (scrubber x12 serve)",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    def redis_key(self, *parts: str) -> str:
        """A namespaced Redis key: ``<prefix>:<part>:<part>``."""
        return ":".join((self.redis_prefix, *parts))
