"""How many glibc malloc arenas the worker may use.

glibc gives every thread that allocates under contention an arena of its own, up to eight per
core, and memory freed into one arena is reused only by that arena's threads and rarely given
back to the system. The worker's Kafka consumer runs in a thread of its own (Faust's consumer
thread): while a worker recovers its histories it decodes hundreds of megabytes of changelog
records there, and what that thread frees stays in its arena, which the event loop's thread does
not reuse. With two arenas, the worker holding the full reference data and 1,000,000 patients'
histories peaked at 276 MiB against 326 MiB with glibc's default (docs/performance.md).

The limit is set with ``mallopt`` when the worker starts, before any thread exists, and applies
to the arenas made after it. A ``MALLOC_ARENA_MAX`` in the environment wins (glibc read it
already); elsewhere than glibc nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameter for the arena limit (malloc.h).
M_ARENA_MAX = -8


def limit_arenas(arenas: int) -> bool:
    """Let glibc make at most ``arenas`` malloc arenas from now on; 0 leaves its default.

    Returns whether the limit was set: False for 0, for a ``MALLOC_ARENA_MAX`` in the
    environment, or where there is no glibc ``mallopt`` (another libc, another system).
    """
    if arenas <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_ARENA_MAX, arenas) != 1:
        log.warning("could not limit the malloc arenas", extra={"arenas": arenas})
        return False
    return True
