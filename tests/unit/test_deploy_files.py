"""docker-compose.yml describes the same stack, with the settings the code really reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from scrubber.config import Settings

REPO = Path(__file__).resolve().parents[2]


def test_compose_has_the_stack_and_only_real_settings() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert {"kafka", "redis", "worker"} <= compose["services"].keys()
    # The worker exits on purpose (statuses 74, 75 and 76) and relies on being started again.
    assert compose["services"]["worker"]["restart"] in {"on-failure", "always", "unless-stopped"}
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == (
        "broker,controller"
    )
    names = set(re.findall(r"SCRUBBER_[A-Z0-9_]+", (REPO / "docker-compose.yml").read_text()))
    known = {f"SCRUBBER_{n.upper()}" for n in Settings.model_fields}
    assert names, "compose sets no SCRUBBER_ settings"
    assert names <= known, names - known


def test_compose_kafka_version_matches_the_local_stack() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    image_version = compose["services"]["kafka"]["image"].split(":")[1]
    stack = (REPO / "deploy/local/stack.sh").read_text()
    assert f'KAFKA_VERSION="${{KAFKA_VERSION:-{image_version}}}"' in stack
