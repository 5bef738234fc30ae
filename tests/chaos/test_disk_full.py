"""A full disk under the ``rocksdb://`` history store: the worker stops without committing and
resumes, losing nothing, once there is space again.

The worker's data directory is a small tmpfs the test mounts (it needs root, as a machine
running this suite as root has; elsewhere the test is skipped and says why). Mid-run the test
fills the tmpfs; the history write of the next batch fails, and the worker must exit with
status 74 (no commit past what its histories hold). Started again while the disk is still full,
it must fail (Faust cannot open the store) without judging or committing anything. With the
space back, a start completes every line with the verdicts of the offline scrub.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from scrubber.accounting import collect, committed_offsets, end_offsets, publish
from scrubber.stream.app import EXIT_STORE_FAILED
from tests.integration.conftest import load_bundle, progress, wait_progress

from .conftest import CHAOS_LINES
from .test_faults import _conserved, _fault, _outputs, _records, _repeats_within

pytestmark = pytest.mark.integration

TMPFS_MB = 64
#: Lines of the run: bounded whatever CHAOS_LINES says, so that the histories of the first half
#: fit the tmpfs with room to spare before the test fills it.
LINES = min(CHAOS_LINES // 2, 2000)


def _mount(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the full disk needs root")
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def _fill(path: Path) -> Path:
    """Write zeros until the filesystem has no space left."""
    filler = path / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with filler.open("ab", buffering=0) as f:  # the last bytes a megabyte did not fit
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_disk_full_under_the_rocksdb_store(settings, worker, bundle, tmp_path: Path) -> None:
    data = tmp_path / "small-disk"
    _mount(data)
    try:
        worker.settings = settings.model_copy(
            update={"table_store": "rocksdb://", "data_dir": str(data)}
        )
        records = _records(bundle, LINES, seed=67)
        half = len(records) // 2
        asyncio.run(load_bundle(settings, bundle))
        worker.start()
        worker.wait_ready(120)
        start = asyncio.run(end_offsets(settings, _outputs(settings)))
        positions = asyncio.run(publish(settings, records[:half]))
        wait_progress(settings, positions, start, 0.5)

        filling = time.monotonic()
        filler = _fill(data)
        positions += asyncio.run(publish(settings, records[half:]))
        assert worker.proc is not None
        try:
            status = worker.proc.wait(120)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the worker went on with a full disk\n{worker.log_tail()}"
            ) from None
        stopped = time.monotonic() - filling
        assert status == EXIT_STORE_FAILED, (status, worker.log_tail())
        assert "the patient history store refused a write" in worker.log_tail(), worker.log_tail()
        fault = _fault(settings, positions, start)
        written = asyncio.run(end_offsets(settings, _outputs(settings)))

        # Started again on the full disk: it writes no output, and commits nothing new.
        answered = progress(settings, positions, start)
        worker.start()
        try:
            again = worker.proc.wait(120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"a start on the full disk ran on\n{worker.log_tail()}") from None
        print(f"disk full: a start on the full disk exited with {again}")
        assert again != 0, worker.log_tail()  # a failure, never a clean stop
        assert progress(settings, positions, start) == answered
        assert asyncio.run(end_offsets(settings, _outputs(settings))) == written
        assert asyncio.run(committed_offsets(settings)) == fault.committed

        filler.unlink()
        back = time.monotonic()
        worker.start()
        worker.wait_ready(180)
        ledger = asyncio.run(collect(settings, positions, start, wait_seconds=240))
        print(f"disk full: the worker stopped {stopped:.1f} s after the filling began")
        _conserved(
            ledger,
            records,
            bundle,
            "disk_full",
            time.monotonic() - back,
            in_flight=fault.in_flight,
        )
        _repeats_within(ledger, [fault])
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait()
        subprocess.run(["umount", "-l", str(data)], check=False)
