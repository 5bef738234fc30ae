"""Kafka plumbing shared by the worker and the tools: client settings, topic creation.

Every client (Faust's, the admin client, the demo producer) is configured from the same
``Settings`` so that TLS and SASL work everywhere or nowhere.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import codec as aiokafka_codec
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

from scrubber.config import Settings
from scrubber.contracts import DEAD_LETTER_MAX_BYTES


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection arguments for any aiokafka client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    return kwargs


def compression_type(settings: Settings) -> str | None:
    """The producers' ``compression_type`` (``SCRUBBER_KAFKA_COMPRESSION``), None for none.

    Most of what a worker sends is its history changelog: the patient's whole history, every
    stored line's JSON, once per batch that touches the patient (5.5 KB per input line in the
    benchmark's stream, six times the results). JSON of that kind compresses to about a tenth
    with zstd, at about 6 µs of CPU per line; the broker stores and replicates, and a restarted
    worker reads, a tenth of the bytes. Off by default: every reader of the topics, a worker of
    an earlier release recovering the changelog too, must have the codec, and a worker that
    recovers compressed histories peaks higher (docs/performance.md). The codecs come with
    aiokafka's ``zstd`` extra (cramjam); a codec this install lacks is a ``ValueError`` naming
    the setting when a producer is made (the worker: at start), not a failed first send.
    """
    codec = settings.kafka_compression
    if codec == "none":
        return None
    # aiokafka's own check for the codec (``has_zstd`` and so on; cramjam for all but gzip).
    if not getattr(aiokafka_codec, f"has_{codec}")():
        raise ValueError(
            f"SCRUBBER_KAFKA_COMPRESSION={codec} needs the cramjam package "
            "(aiokafka's zstd extra); install it or choose gzip or none"
        )
    return codec


def producer_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection and compression arguments for an aiokafka producer."""
    return {**client_kwargs(settings), "compression_type": compression_type(settings)}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the scrubber owns: its name, partitions and configs."""

    name: str
    partitions: int
    configs: dict[str, str]


HISTORY_TABLE = "patient-history"


def history_changelog(settings: Settings) -> str:
    """The changelog topic Faust uses for the patient-history table."""
    return f"{settings.app_id}-{HISTORY_TABLE}-changelog"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics of contract v1 (lines, results, dead letters, the X12 edge) and the changelog.

    Input and result topics share one partition count and one key (the member id), so a
    patient's lines and results stay in order on one partition. Results are kept for seven
    days, dead letters for thirty: an operator needs time to inspect and replay them.
    """
    week = str(7 * 24 * 3600 * 1000)
    month = str(30 * 24 * 3600 * 1000)
    n = settings.partitions
    compact = {"cleanup.policy": "compact"}
    return [
        TopicSpec(settings.input_topic, n, {"retention.ms": week}),
        TopicSpec(settings.accepted_topic, n, {"retention.ms": week}),
        TopicSpec(settings.flagged_topic, n, {"retention.ms": week}),
        # A dead letter is its input's bytes plus headers: the input topics take records up to
        # Kafka's default 1 MiB, so the dead-letter topic takes twice that (larger inputs, from
        # a compressing upstream, keep their first bytes: processor.LineProcessor.dead_letter).
        TopicSpec(
            settings.dlq_topic,
            n,
            {"retention.ms": month, "max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
        ),
        # The X12 edge: interchanges in (their lines go to the input topic), acknowledgements out.
        TopicSpec(settings.x12_topic, n, {"retention.ms": week}),
        TopicSpec(settings.x12_ack_topic, n, {"retention.ms": month}),
        TopicSpec(settings.claims_topic, n, {"retention.ms": week}),
        TopicSpec(settings.x12_277ca_topic, n, {"retention.ms": month}),
        # The patient-history table's changelog: compacted, never deleted by time (a changelog
        # emptied by retention makes table recovery hang), and co-partitioned with the input.
        TopicSpec(history_changelog(settings), n, compact),
    ]


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: list[str], seconds: float
) -> tuple[dict[str, int], dict[str, str]]:
    """Partition counts as the broker reports them once topic creation has propagated.

    Right after CreateTopics the metadata can still list a new topic with no partitions. That
    takes well under a second on an idle broker, but a broker just restarted over a large data
    directory is still loading its logs and can take tens of seconds: retry until ``seconds``.
    Returns the counts, and the error the broker last gave for each topic it did not describe.
    """
    deadline = time.monotonic() + seconds
    while True:
        described = await admin.describe_topics(names)
        found = {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}
        errors = {
            d["topic"]: for_code(d["error_code"]).__name__ for d in described if d["error_code"]
        }
        if (len(found) == len(names) and all(found.values())) or time.monotonic() >= deadline:
            return found, errors
        await asyncio.sleep(0.5)


async def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    """How many partitions each named topic has (topics that do not exist are left out)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}


async def _topic_config(admin: AIOKafkaAdminClient, topic: str, name: str) -> str:
    """The effective value of one of a topic's configs ("" when the broker does not say)."""
    response = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    for resource in response[0].resources:
        for entry in resource[4]:
            if entry[0] == name:
                return str(entry[1] or "")
    return ""


class TopicError(RuntimeError):
    """The scrubber's topics cannot be used as they are; a worker refuses to start."""


class TopicMismatchError(TopicError):
    """A topic exists with another partition count (or cleanup policy) than the scrubber needs."""


class TopicsNotReadyError(TopicError):
    """The broker did not report a topic's partitions in time (it is starting, or overloaded)."""


async def ensure_topics(
    settings: Settings, replication_factor: int = 1, metadata_seconds: float = 120.0
) -> dict[str, int]:
    """Create the scrubber's topics where missing; refuse a partition count that differs.

    The partition count cannot be changed safely once keys are spread over partitions (a patient's
    history would be on the wrong worker), so a mismatch is an error, never silently accepted.
    A topic whose partitions the broker has not reported within ``metadata_seconds`` is an
    error of its own (the broker is not ready), not a mismatch. Returns the partition count of
    every topic.
    """
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        specs = topic_specs(settings)
        for spec in specs:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=replication_factor,
                        topic_configs=spec.configs,
                    )
                ]
            )
            # The client returns the broker's answer per topic instead of raising it.
            for topic, code, *_ in getattr(response, "topic_errors", ()):
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise TopicError(
                        f"the broker refused to create topic {topic}: {for_code(code).__name__}"
                    )
        found, errors = await _partition_counts(admin, [s.name for s in specs], metadata_seconds)
        unknown = sorted(s.name for s in specs if not found.get(s.name))
        if unknown:
            said = "; ".join(f"{t}: {errors[t]}" for t in unknown if t in errors)
            raise TopicsNotReadyError(
                f"the broker did not report the partitions of {', '.join(unknown)} within "
                f"{metadata_seconds:g} s ({said or 'no partitions yet'}); is it still loading "
                "its logs?"
            )
        changelog = history_changelog(settings)
        policy = await _topic_config(admin, changelog, "cleanup.policy")
        if "compact" not in policy or "delete" in policy:
            raise TopicMismatchError(
                f"topic {changelog} has cleanup.policy={policy}; the history changelog must be "
                "compacted and never deleted by time, or table recovery loses patients"
            )
        limit = await _topic_config(admin, settings.dlq_topic, "max.message.bytes")
        if limit.isdigit() and int(limit) < DEAD_LETTER_MAX_BYTES:
            raise TopicMismatchError(
                f"topic {settings.dlq_topic} has max.message.bytes={limit}; dead letters need "
                f"{DEAD_LETTER_MAX_BYTES} (a dead letter the topic refuses stops the worker on "
                "that offset): set it on the topic with kafka-configs.sh --alter"
            )
        for spec in specs:
            have = found.get(spec.name)
            if have != spec.partitions:
                raise TopicMismatchError(
                    f"topic {spec.name} has {have} partitions, settings say {spec.partitions} "
                    "(SCRUBBER_PARTITIONS); partition counts cannot change under keyed data"
                )
        return found
    finally:
        await admin.close()
