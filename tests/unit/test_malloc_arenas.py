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


def _arenas(limit: int, env: dict[str, str] | None = None) -> tuple[str, int]:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(limit)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
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


def test_two_is_the_default_and_zero_leaves_glibc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert Settings.model_fields["malloc_arenas"].default == 2
    assert limit_arenas(0) is False
