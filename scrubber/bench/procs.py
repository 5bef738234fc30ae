"""Processes under measurement: start, sample CPU and memory from /proc, stop.

Linux only (``/proc/<pid>/stat`` and ``status``): no extra dependency, and the numbers are the
kernel's own (CPU seconds in user and system mode, resident set size and its high-water mark).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port nobody listens on right now (for a worker's /metrics)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory(pid: int) -> tuple[int, int]:
    """(resident set size, its high-water mark) of a process, in bytes."""
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return rss, hwm


@dataclass
class Samples:
    """CPU and memory of one process over time, sampled in the background."""

    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    peak_rss: int = 0

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds used between two wall-clock times (nearest samples)."""
        if not self.times:
            return 0.0
        i = min(bisect_left(self.times, start), len(self.times) - 1)
        j = min(bisect_left(self.times, end), len(self.times) - 1)
        return max(0.0, self.cpu[j] - self.cpu[i])


class Measured:
    """A child process and a thread sampling its CPU and memory every ``interval`` seconds."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        interval: float = 0.25,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.samples = Samples()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT, cwd=cwd
            )
        self._stop = threading.Event()
        self._interval = interval
        self.sampler_thread = threading.Thread(
            target=self._sample, name=f"sample-{name}", daemon=True
        )
        self.sampler_thread.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the child still runs."""
        return self.proc.poll() is None

    def _sample(self) -> None:
        while not self._stop.is_set() and self.alive():
            try:
                cpu = cpu_seconds(self.pid)
                rss, hwm = memory(self.pid)
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                break
            s = self.samples
            s.times.append(time.time())
            s.cpu.append(cpu)
            s.rss.append(rss)
            s.peak_rss = max(s.peak_rss, hwm)
            self._stop.wait(self._interval)

    def stop(self, seconds: float = 30.0) -> int:
        """SIGTERM, wait (then SIGKILL), and stop sampling; returns the exit code."""
        if self.alive():
            try:
                _, hwm = memory(self.pid)
                self.samples.peak_rss = max(self.samples.peak_rss, hwm)
            except (FileNotFoundError, ProcessLookupError):
                pass
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(seconds)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stop.set()
        self.sampler_thread.join(timeout=5)
        return int(self.proc.returncode)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the child's log, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def python_module(module: str, *args: str) -> list[str]:
    """The command line running a module with this interpreter."""
    return [sys.executable, "-m", module, *args]
