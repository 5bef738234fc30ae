"""The secured stack: Kafka SASL_SSL (SCRAM-SHA-512) and Redis over TLS with ACL users.

`deploy/local/stack.sh` serves the same broker and Redis on secured ports, with a local CA and
random passwords (`stack.sh secure-env`). These tests prove the worker runs end to end with
least privilege, that the credentials are really checked, and that no secret reaches the logs.
"""

from __future__ import annotations

import asyncio
import shlex
import ssl
import subprocess
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError

from scrubber.accounting import collect, end_offsets, key_of, publish
from scrubber.config import Settings
from scrubber.examples import generate
from scrubber.kafka import client_kwargs, ensure_topics
from scrubber.refdata.model import Bundle
from scrubber.refdata.store import RefdataStore, connect

from .conftest import REPO, WorkerProcess, load_bundle

pytestmark = pytest.mark.integration


def secure_env(role: str) -> dict[str, str]:
    """The SCRUBBER_* settings `stack.sh secure-env <role>` prints for the secured endpoints."""
    out = subprocess.run(
        [str(REPO / "deploy/local/stack.sh"), "secure-env", role],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    return env


def secured(settings: Settings, role: str) -> Settings:
    """The test's own settings (topics, group, prefix) with the secured endpoints of ``role``."""
    overrides = {
        name.removeprefix("SCRUBBER_").lower(): value for name, value in secure_env(role).items()
    }
    return Settings.model_validate({**settings.model_dump(), **overrides})


def secrets(settings: Settings) -> list[str]:
    """Every secret the settings carry, as plain text."""
    values = [settings.redis_url.get_secret_value().split("@")[0].rsplit(":", 1)[-1]]
    if settings.kafka_sasl_password is not None:
        values.append(settings.kafka_sasl_password.get_secret_value())
    return [v for v in values if v]


def test_secrets_are_not_in_reprs(settings: Settings) -> None:
    worker = secured(settings, "worker")
    for secret in secrets(worker):
        assert len(secret) >= 16
        assert secret not in repr(worker)
        assert secret not in str(worker.model_dump())


def test_redis_worker_user_reads_reference_data_and_writes_only_heartbeats(
    settings: Settings, bundle: Bundle
) -> None:
    admin = secured(settings, "admin")
    worker = secured(settings, "worker")
    assert worker.redis_url.get_secret_value().startswith("rediss://")

    async def scenario() -> None:
        admin_redis = connect(admin)
        worker_redis = connect(worker)
        try:
            await RefdataStore(admin_redis, admin.redis_prefix).load(bundle)
            store = RefdataStore(worker_redis, worker.redis_prefix)
            # What a worker does: read the pointer and the version, write its heartbeat.
            assert await store.current_version() == bundle.version
            assert (await store.fetch(bundle.version)).version == bundle.version
            await store.heartbeat("w1", {"refdata_version": bundle.version}, ttl_seconds=30)
            assert await admin_redis.get(f"{worker.redis_prefix}:workers:w1") is not None
            # What it may not do: move the pointer, overwrite or delete a version, read or
            # write keys of anything else.
            with pytest.raises(NoPermissionError):
                await worker_redis.set(store.current_key, "forged")
            with pytest.raises(NoPermissionError):
                await worker_redis.set(
                    f"{worker.redis_prefix}:refdata:bundle:{bundle.version}", b"{}"
                )
            with pytest.raises(NoPermissionError):
                await worker_redis.delete(store.current_key)
            with pytest.raises(NoPermissionError):
                await store.rollback()
            with pytest.raises(NoPermissionError):
                await worker_redis.get("some-other-service:key")
            with pytest.raises(NoPermissionError):
                await worker_redis.flushdb()
            assert await store.current_version() == bundle.version
        finally:
            await admin_redis.aclose()
            await worker_redis.aclose()

    asyncio.run(scenario())


def test_redis_refuses_a_wrong_password_and_an_unknown_ca(settings: Settings) -> None:
    worker = secured(settings, "worker")
    url = worker.redis_url.get_secret_value()
    user_pass, _, host = url.removeprefix("rediss://").partition("@")
    user = user_pass.split(":", 1)[0]
    wrong = worker.model_copy(
        update={"redis_url": SecretStr(f"rediss://{user}:not-the-password@{host}")}
    )
    no_ca = worker.model_copy(update={"redis_tls_cafile": None})

    async def attempt(s: Settings) -> None:
        redis = connect(s)
        try:
            await redis.ping()
        finally:
            await redis.aclose()

    from redis.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError):
        asyncio.run(attempt(wrong))
    # The server's certificate is signed by the stack's own CA, which the system does not trust.
    with pytest.raises(RedisConnectionError):
        asyncio.run(attempt(no_ca))


def test_kafka_refuses_a_wrong_password_and_plaintext(settings: Settings) -> None:
    worker = secured(settings, "worker")

    async def start(**overrides: object) -> None:
        kwargs = {**client_kwargs(worker), **overrides}
        producer = AIOKafkaProducer(**kwargs, request_timeout_ms=5000)
        try:
            await producer.start()
        finally:
            await producer.stop()

    asyncio.run(start())  # the right credentials work
    with pytest.raises(KafkaError):
        asyncio.run(start(sasl_plain_password="not-the-password"))  # noqa: S106
    with pytest.raises(KafkaError):
        # A client that skips TLS on the secured port never gets metadata.
        asyncio.run(start(security_protocol="SASL_PLAINTEXT", ssl_context=None))
    with pytest.raises((KafkaError, ssl.SSLError)):
        # TLS against a CA the client does not trust.
        asyncio.run(start(ssl_context=ssl.create_default_context()))


def test_worker_runs_with_sasl_ssl_and_least_privilege_redis(
    settings: Settings, bundle: Bundle, tmp_path: Path
) -> None:
    admin = secured(settings, "admin")
    worker_settings = secured(settings, "worker")
    asyncio.run(ensure_topics(worker_settings))

    asyncio.run(load_bundle(admin, bundle))  # as the admin user, over TLS
    worker = WorkerProcess(worker_settings, tmp_path / "worker.log")
    worker.start()
    try:
        worker.wait_ready()
        lines = generate(bundle, 300, seed=23)
        records: list[tuple[bytes | None, bytes]] = [(key_of(raw), raw) for raw in lines]
        outputs = [
            worker_settings.accepted_topic,
            worker_settings.flagged_topic,
            worker_settings.dlq_topic,
        ]
        start = asyncio.run(end_offsets(worker_settings, outputs))
        positions = asyncio.run(publish(worker_settings, records))
        ledger = asyncio.run(collect(worker_settings, positions, start, wait_seconds=90))
        assert ledger.complete(), f"{len(ledger.missing())} inputs without output"
        assert ledger.duplicates() == 0
        versions = set()
        for pos in positions:
            (own,) = ledger.own(pos)
            if own.kind != "dlq":
                versions.add(orjson.loads(own.value)["refdata_version"])
        assert versions == {bundle.version}
        status = worker.readyz()
        assert status is not None and status[1]["redis_ok"] is True
    finally:
        assert worker.stop() == 0
    log_text = worker.log_path.read_text()
    for secret in secrets(worker_settings):
        assert secret not in log_text
