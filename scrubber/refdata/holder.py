"""A worker's reference data: one in-memory snapshot, swapped when the Redis pointer moves.

The hot path reads ``holder.snapshot`` (an attribute, no await, no network). A background loop
polls the current-version pointer every ``poll_seconds``; when it changes, the new version is
fetched, checked against its content hash and turned into a complete snapshot before the one
attribute assignment that publishes it, so an event sees either the old version or the new one,
never a mixture. If Redis goes away the worker keeps its snapshot and says so (``redis_ok``);
if it never had one, it is not ready and emits nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from scrubber.metrics import Metrics
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.refdata.store import RefdataStore

log = logging.getLogger(__name__)


class ReferenceHolder:
    """Holds the current snapshot and keeps it current."""

    def __init__(
        self,
        store: RefdataStore,
        metrics: Metrics,
        poll_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.snapshot: ReferenceSnapshot | None = None
        self.redis_ok = False
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self.ready = asyncio.Event()

    async def refresh(self) -> bool:
        """Check the pointer once; swap to a new version if there is one. True when swapped."""
        try:
            version = await self.store.current_version()
            if not self.redis_ok:
                log.info("redis reachable")
            self.redis_ok = True
            self.metrics.redis_up.set(1)
        except (RedisError, OSError) as exc:
            self._unreachable(exc)
            return False
        if version is None:
            self.last_error = "no reference data version is loaded in Redis"
            return False
        if self.snapshot is not None and self.snapshot.version == version:
            self.last_error = None
            return False
        started = time.perf_counter()
        try:
            bundle = await self.store.fetch(version)
        except (RedisError, OSError) as exc:
            self._unreachable(exc)
            return False
        except (LookupError, ValueError) as exc:
            # A broken version must not replace a good one: keep serving the old snapshot.
            self.last_error = f"version {version} cannot be used: {type(exc).__name__}"
            log.error(
                "reference data version rejected", extra={"version": version, "error": str(exc)}
            )
            return False
        # Indexing (the NCCI table, the code sets) is CPU work too: off the event loop.
        try:
            snapshot = await asyncio.to_thread(ReferenceSnapshot, bundle)
        except (ValueError, OverflowError) as exc:
            # A version whose tables cannot be indexed must not replace a good one, nor end
            # the loop that keeps the worker's reference data current.
            self.last_error = f"version {version} cannot be used: {type(exc).__name__}"
            log.error(
                "reference data version rejected", extra={"version": version, "error": str(exc)}
            )
            return False
        old = self.snapshot.version if self.snapshot else None
        self.snapshot = snapshot  # the one assignment that publishes the new version
        self.loaded_at = self.clock()
        self.last_error = None
        self.metrics.refdata.info({"version": snapshot.version})
        self.metrics.refdata_loaded_timestamp.set(self.loaded_at)
        self.metrics.refdata_swaps.inc()
        seconds = time.perf_counter() - started
        self.metrics.refdata_swap_seconds.set(seconds)
        self.ready.set()
        log.info(
            "reference data loaded",
            extra={
                "version": snapshot.version,
                "previous": old,
                "codes": len(snapshot.codes),
                "ptp_edits": len(snapshot.ptp),
                "seconds": round(seconds, 3),
            },
        )
        return True

    def _unreachable(self, exc: BaseException) -> None:
        if self.redis_ok or self.last_error is None:  # log the change, not every poll
            log.warning(
                "redis unreachable; keeping the reference data in memory",
                extra={
                    "error_type": type(exc).__name__,
                    "version": self.snapshot.version if self.snapshot else None,
                },
            )
        self.redis_ok = False
        self.metrics.redis_up.set(0)
        self.last_error = f"redis unreachable: {type(exc).__name__}"

    async def run(self) -> None:
        """Poll forever: every second until the first version arrives, then every poll_seconds."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.poll_seconds if self.snapshot is not None else 1.0)
