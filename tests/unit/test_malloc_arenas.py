"""SCRUBBER_MALLOC_ARENAS: the worker limits glibc's malloc arenas before its first thread.

The limit is process-wide and cannot be undone, so each case runs in a fresh interpreter: eight
threads allocate there, and glibc's own ``malloc_stats`` report counts the arenas they got.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from scrubber.config import Settings
from scrubber.malloc import limit_arenas

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc arenas are glibc's",
)

#: Eight threads that each allocate and keep blocks big enough for malloc (not pymalloc) while
#: the others do, then glibc's per-arena report on stderr.
_PROBE = """
import ctypes, sys, threading
from scrubber.malloc import limit_arenas
print(limit_arenas(int(sys.argv[1])), flush=True)
barrier = threading.Barrier(8)
kept = []
def work():
    barrier.wait()
    for _ in range(2000):
        kept.append(bytearray(4096))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


#: What would set the arenas, or the allocator, from outside: the probe runs without them.
_OUTSIDE = ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "LD_PRELOAD")


def _arenas(limit: int, env: dict[str, str] | None = None) -> tuple[str, int]:
    base = {k: v for k, v in os.environ.items() if k not in _OUTSIDE}
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(limit)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**base, **(env or {})},
        timeout=60,
        check=True,
    )
    return run.stdout.strip(), run.stderr.count("Arena ")


def test_two_arenas_for_eight_threads() -> None:
    said, arenas = _arenas(2)
    assert said == "True"
    assert 1 <= arenas <= 2


def test_without_the_limit_the_threads_get_arenas_of_their_own() -> None:
    """The probe can tell: glibc's default gives contending threads more than two."""
    said, arenas = _arenas(0)
    assert said == "False"
    assert arenas > 2


def test_malloc_arena_max_in_the_environment_wins() -> None:
    said, arenas = _arenas(2, {"MALLOC_ARENA_MAX": "4"})
    assert said == "False"
    assert 1 <= arenas <= 4


def test_glibc_tunables_setting_the_arenas_win() -> None:
    said, arenas = _arenas(2, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=3"})
    assert said == "False"
    assert 1 <= arenas <= 3


@pytest.mark.parametrize("value", ["", "0", "many"])
def test_a_malloc_arena_max_glibc_ignores_does_not_stop_the_limit(value: str) -> None:
    said, arenas = _arenas(2, {"MALLOC_ARENA_MAX": value})
    assert said == "True"
    assert 1 <= arenas <= 2


def test_two_is_the_default() -> None:
    assert Settings.model_fields["malloc_arenas"].default == 2
    assert limit_arenas(0) is False


def test_the_worker_command_limits_the_arenas_before_anything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the version check, the topics and the Faust app: before any thread."""
    from typer.testing import CliRunner

    import scrubber.kafka
    import scrubber.stream.app
    from scrubber import malloc
    from scrubber.cli import app
    from scrubber.stream import faust_internals

    calls: list[tuple[object, ...]] = []

    async def ensure_topics(settings: Settings) -> dict[str, int]:
        calls.append(("topics",))
        return {}

    class Worker:
        def __init__(self, settings: Settings) -> None:
            calls.append(("worker",))

        def run(self) -> None:
            calls.append(("run",))

    monkeypatch.setattr(malloc, "limit_arenas", lambda n: bool(calls.append(("arenas", n))))
    monkeypatch.setattr(faust_internals, "check_versions", lambda: calls.append(("versions",)))
    monkeypatch.setattr(scrubber.kafka, "ensure_topics", ensure_topics)
    monkeypatch.setattr(scrubber.stream.app, "Worker", Worker)
    monkeypatch.setenv("SCRUBBER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SCRUBBER_MALLOC_ARENAS", "3")
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 0, result.output
    assert calls == [("arenas", 3), ("versions",), ("topics",), ("worker",), ("run",)]
