"""The README's own commands, run as a user would run them on this machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", section, flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_readme_quick_start_names_the_two_commands() -> None:
    commands = _quick_start_commands()
    assert "make demo" in commands
    assert "make test" in commands


def _worker_running() -> bool:
    return (
        subprocess.run(
            [str(REPO / "deploy/local/worker.sh"), "status"], capture_output=True
        ).returncode
        == 0
    )


def test_make_demo_accounts_for_every_line() -> None:
    was_running = _worker_running()
    lines = [x for x in (REPO / "seeds/examples/claims.jsonl").read_bytes().splitlines() if x]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRUBBER_")}
    env["COLUMNS"] = "200"
    try:
        done = subprocess.run(
            ["make", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = done.stdout
        assert re.search(rf"lines in\W+{len(lines)}\b", out), out
        counts = {
            name: int(re.search(rf"{name}\W+(\d+)", out).group(1))  # type: ignore[union-attr]
            for name in ("accepted", "flagged", "dead-lettered")
        }
        assert sum(counts.values()) == len(lines), out
        assert all(counts.values()), counts
        assert "no result" not in out
        metrics = httpx.get("http://127.0.0.1:6066/metrics", timeout=5).text
        assert "scrubber_lines_consumed_total" in metrics
        ready = httpx.get("http://127.0.0.1:6066/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["ready"] is True
    finally:
        if not was_running:
            subprocess.run([str(REPO / "deploy/local/worker.sh"), "stop"], check=False)


def test_stack_script_starts_and_stops_a_separate_stack(tmp_path: Path) -> None:
    """A second stack on other ports and another state dir: up, status, down, nothing left."""
    env = dict(os.environ)
    env.update(
        SCRUBBER_STACK_DIR=str(tmp_path / "stack"),
        KAFKA_PORT="29092",
        KAFKA_CONTROLLER_PORT="29093",
        KAFKA_SECURE_PORT="29094",
        REDIS_PORT="26379",
        REDIS_TLS_PORT="26380",
    )
    script = str(REPO / "deploy/local/stack.sh")
    try:
        subprocess.run([script, "up"], env=env, check=True, timeout=300)
        subprocess.run([script, "up"], env=env, check=True, timeout=60)  # idempotent
        status = subprocess.run([script, "status"], env=env, capture_output=True, text=True)
        assert status.returncode == 0, status.stdout
        for port in ("29092", "29094", "26379", "26380"):
            assert f"127.0.0.1:{port}" in status.stdout, status.stdout
        pids = [
            (tmp_path / "stack/kafka/kafka.pid").read_text().strip(),
            (tmp_path / "stack/redis/redis.pid").read_text().strip(),
        ]
    finally:
        subprocess.run([script, "down"], env=env, check=True, timeout=120)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} survived stack.sh down"
    assert subprocess.run([script, "status"], env=env, capture_output=True).returncode != 0
