"""Fixtures for tests over the real local stack: Kafka and Redis from deploy/local/stack.sh.

Each test gets its own topics, consumer group, Redis key prefix and HTTP port, so tests neither
see each other's messages nor disturb a demo worker running on the same stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrubber.accounting import Ledger, collect
from scrubber.bench.stream import delete_topics, topics_with
from scrubber.config import Settings
from scrubber.kafka import ensure_topics
from scrubber.refdata.build import build_bundle
from scrubber.refdata.model import Bundle
from scrubber.refdata.store import RefdataStore, connect

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def local_stack() -> None:
    """Start Kafka and Redis if they are not running (idempotent, quick when they are)."""
    subprocess.run([str(REPO / "deploy/local/stack.sh"), "up"], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def drop_topics(settings: Settings, tag: str) -> None:
    """Delete every topic whose name holds ``tag``: the test's own, and Faust's (changelog,
    assignor), which carry its app id. Best effort, bounded: a broker a test left down costs
    at most the timeout. Topics left behind by every run piled up on a developer's broker
    (15,000 partitions after a few weeks) until it ran out of heap."""
    with contextlib.suppress(Exception):  # cleanup only: the next run's topics have other names
        async with asyncio.timeout(20):
            bootstrap = settings.kafka_bootstrap
            await delete_topics(bootstrap, await topics_with(bootstrap, tag))


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings private to one test: own topics, group, Redis prefix, port and data dir.

    The test's topics are deleted after it.
    """
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        input_topic=f"test.{tag}.claims.lines.v1",
        accepted_topic=f"test.{tag}.claims.accepted.v1",
        flagged_topic=f"test.{tag}.claims.flagged.v1",
        dlq_topic=f"test.{tag}.claims.dlq.v1",
        x12_topic=f"test.{tag}.claims.x12.v1",
        x12_ack_topic=f"test.{tag}.claims.x12.ack.v1",
        claims_topic=f"test.{tag}.claims.claims.v1",
        x12_277ca_topic=f"test.{tag}.claims.x12.277ca.v1",
        app_id=f"claim-scrubber-test-{tag}",
        redis_prefix=f"scrubber-test-{tag}",
        web_port=free_port(),
        x12_web_port=free_port(),
        data_dir=str(tmp_path / "worker-data"),
        refdata_poll_seconds=0.5,
        partitions=4,
    )
    yield settings
    asyncio.run(drop_topics(settings, tag))


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess needs to run with these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"SCRUBBER_{name.upper()}"] = str(value)
    return env


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    """The real bundle: the repo's seeds and the shipped CMS extracts."""
    from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE

    return build_bundle(REPO / "seeds", mpfs=EXTRACT_MPFS, mue=EXTRACT_MUE)


async def load_bundle(settings: Settings, bundle: Bundle) -> None:
    """Put a bundle into Redis under the test's prefix and make it current."""
    redis = connect(settings)
    try:
        await RefdataStore(redis, settings.redis_prefix).load(bundle)
    finally:
        await redis.aclose()


class WorkerProcess:
    """A real ``scrubber worker`` process with the test's settings."""

    def __init__(
        self, settings: Settings, log_path: Path, command: tuple[str, ...] = ("worker",)
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scrubber", *self.command],
                env=settings_env(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def readyz(self) -> tuple[int, dict[str, object]] | None:
        try:
            r = httpx.get(self.base_url + "/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        return r.status_code, r.json()

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            status = self.readyz()
            if status is not None and status[0] == 200:
                return
            time.sleep(0.25)
        raise AssertionError(f"worker not ready after {seconds} s\n{self.log_tail()}")

    def wait_alive(self, seconds: float = 60) -> None:
        """Wait until /healthz answers and reference data is loaded (partitions may be none)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            status = self.readyz()
            if status is not None and status[1].get("refdata_version"):
                return
            time.sleep(0.25)
        raise AssertionError(f"worker not alive after {seconds} s\n{self.log_tail()}")

    def wait_version(self, version: str, seconds: float = 60) -> None:
        """Wait until /readyz reports reference data ``version`` (a swap has been applied)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            status = self.readyz()
            if status is not None and status[1].get("refdata_version") == version:
                return
            time.sleep(0.1)
        raise AssertionError(f"worker did not apply version {version} in {seconds} s")

    def stop(self, seconds: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(seconds)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def account(self, lines: int = 30) -> str:
        """Whether the process runs (or how it ended), and its last warnings and errors."""
        if self.proc is None:
            state = "never started"
        elif self.proc.poll() is None:
            state = f"running (pid {self.proc.pid})"
        else:
            state = f"exited with {self.proc.returncode}"
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        notable = [
            line
            for line in text.splitlines()
            if '"level":"info"' not in line and '"level":"debug"' not in line
        ]
        return f"worker {state}; last warnings and errors:\n" + "\n".join(notable[-lines:])


def progress(settings: Settings, positions: list[tuple[int, int]], start: Any) -> int:
    """How many inputs have an output now (everything the topics hold, however much)."""
    now = asyncio.run(collect(settings, positions, start, wait_seconds=60, to_end=True))
    return len(now.outputs)


def wait_progress(
    settings: Settings,
    positions: list[tuple[int, int]],
    start: Any,
    share: float,
    seconds: float = 90,
) -> None:
    """Wait until ``share`` of the inputs have an output (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if progress(settings, positions, start) >= share * len(positions):
            return
    raise AssertionError(f"no progress to {share:.0%} within {seconds} s")


def assert_complete(ledger: Ledger, *workers: WorkerProcess) -> None:
    """Every input has its own output; otherwise say which are missing and what the workers did."""
    if ledger.complete():
        return
    accounts = "\n".join(w.account() for w in workers)
    raise AssertionError(
        f"{len(ledger.missing())} inputs without output: {ledger.describe_missing()}\n{accounts}"
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker on fresh topics; not started: the test decides when, and with what data."""
    asyncio.run(ensure_topics(settings))
    proc = WorkerProcess(settings, tmp_path / "worker.log")
    yield proc
    if proc.proc is not None:
        proc.stop()
