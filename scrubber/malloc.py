"""How many glibc malloc arenas the worker may use.

glibc gives each new thread a malloc arena of its own on its first allocation (the first eight
whatever the cores, then up to eight per core), and memory freed into one arena is reused only
through that arena and rarely given back to the system. The worker's Kafka consumer runs in a
thread of its own (Faust's consumer thread): while a worker recovers its histories it decodes
hundreds of megabytes of changelog records there, and what that thread frees stays in its arena,
which the event loop's thread does not reuse. With two arenas, the worker holding the full
reference data and 1,000,000 patients' histories peaked at 281 MiB against 326 MiB with glibc's
default (docs/performance.md).

The limit is set with ``mallopt`` when the worker starts, before any thread exists, and applies
to the arenas made after it. A limit set from outside wins (``MALLOC_ARENA_MAX`` as a positive
number, or ``glibc.malloc.arena_max`` in ``GLIBC_TUNABLES``: glibc read them already);
elsewhere than glibc nothing happens.
"""

from __future__ import annotations

import ctypes
import os

#: glibc's ``mallopt`` parameter for the arena limit (malloc.h).
M_ARENA_MAX = -8


def limit_from_outside() -> bool:
    """Whether the environment set glibc's arena limit (the values glibc itself takes)."""
    value = os.environ.get("MALLOC_ARENA_MAX", "").strip()
    if value.isdigit() and int(value) > 0:
        return True
    return "glibc.malloc.arena_max=" in os.environ.get("GLIBC_TUNABLES", "")


def limit_arenas(arenas: int) -> bool:
    """Let glibc make at most ``arenas`` malloc arenas from now on; 0 leaves its default.

    Returns whether the limit was set: False for 0, for a limit set from outside, or where
    there is no glibc ``mallopt`` (another libc, another system).
    """
    if arenas <= 0 or limit_from_outside():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas) == 1)
