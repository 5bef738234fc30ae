"""Work on a thread of its own for the length of a ``with`` block (a load, a sampler).

The test's own thread keeps the clock and the checks; an exception on the background thread is
kept and fails the test when the block ends, instead of dying silently with stale results.
"""

from __future__ import annotations

import threading
from typing import Self


class Background:
    """Runs ``run`` on a daemon thread from ``__enter__`` until ``stop`` is set by ``__exit__``."""

    def __init__(self, name: str, join_seconds: float = 30.0) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.join_seconds = join_seconds
        self.thread = threading.Thread(target=self._guarded, name=name, daemon=True)

    def run(self) -> None:
        """The work; return when ``self.stop`` is set."""
        raise NotImplementedError

    def _guarded(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # reported by __exit__
            self.error = exc

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(self.join_seconds)
        assert not self.thread.is_alive(), f"{self.thread.name} did not stop"
        assert self.error is None, repr(self.error)
