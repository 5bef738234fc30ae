"""The reference-data part of the benchmark: the full tables, built, swapped in and used.

The product's defaults are the full CMS fee schedule and MUE tables and a full ICD-10-CM code
set; a deployment adds the four parts of the NCCI practitioner PTP table (well over a million
rows). This part builds that bundle (with the 2.14-million-pair sizing table standing in for the
PTP files when it is at hand), and measures what a worker pays for it: the build, the bundle's
size, a swap (decode, check and index a version, what ``ReferenceHolder.refresh`` does off the
event loop), the resident memory a snapshot adds (in a fresh process), and the engine's time per
line with and without the PTP table, on the benchmark's own stream. Numbers are printed, never
asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scrubber.refdata.build import build_bundle
from scrubber.refdata.cms_icd10cm import default_code_set
from scrubber.refdata.inputs import DEFAULT_MPFS, DEFAULT_MUE, DEFAULT_PTP
from scrubber.refdata.model import Bundle, ReferenceSnapshot
from scrubber.refdata.payers_file import DEFAULT_PAYERS

from .local import BENCH_NOW, EngineCase, time_engine

REPO = Path(__file__).resolve().parents[2]

#: The sizing table's usual place beside the repository (the shared reference data folder).
SIZING_PTP = REPO.parent / "shared" / "refdata" / "ncci-ptp-sizing.txt.gz"

#: Run in a fresh interpreter: resident memory before and after a snapshot of the bundle.
_RSS_PROBE = """
import gc, sys
from pathlib import Path
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
from scrubber.refdata.model import Bundle, ReferenceSnapshot
gc.collect()
before = rss()
data = Path(sys.argv[1]).read_bytes()
snapshot = ReferenceSnapshot(Bundle.from_json(data))
del data
gc.collect()
print(before, rss())
"""


def full_bundle(ptp: Sequence[Path]) -> Bundle:
    """The seeds with every shipped full table, the shipped payer profiles, and ``ptp``."""
    return build_bundle(
        REPO / "seeds",
        mpfs=DEFAULT_MPFS,
        mue=DEFAULT_MUE,
        ptp=ptp,
        payers=DEFAULT_PAYERS,
        icd10cm=[default_code_set()],
    )


def measure_refdata(
    ptp: Sequence[Path] | None, cases: list[EngineCase], repeats: int, work: Path
) -> dict[str, Any]:
    """Build, size, swap, memory and engine cost of the full reference data."""
    if ptp is None:
        ptp = [SIZING_PTP] if SIZING_PTP.exists() else [DEFAULT_PTP]
    began = time.perf_counter()
    bundle = full_bundle(ptp)
    build_seconds = time.perf_counter() - began
    data = bundle.to_json()
    path = work / "refdata-full.json"
    path.write_bytes(data)

    swaps = []
    for _ in range(max(1, repeats)):
        began = time.perf_counter()
        snapshot = ReferenceSnapshot(Bundle.from_json(data))
        swaps.append(time.perf_counter() - began)

    probe = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-c", _RSS_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    before, after = (int(v) for v in probe.stdout.split())

    without_ptp = ReferenceSnapshot(bundle.model_copy(update={"ptp": None}))
    with_ptp = time_engine(cases, snapshot, BENCH_NOW.date(), repeats)
    no_ptp = time_engine(cases, without_ptp, BENCH_NOW.date(), repeats)
    return {
        "ptp_files": [p.name for p in ptp],
        "codes": len(bundle.codes),
        "ptp_edits": bundle.ptp.count if bundle.ptp else 0,
        "icd10cm_sets": [s.name for s in bundle.icd10cm],
        "build_seconds": build_seconds,
        "bundle_bytes": len(data),
        "swap_seconds": sorted(swaps)[len(swaps) // 2],
        "swap_seconds_runs": swaps,
        "snapshot_rss_bytes": after - before,
        "engine_us_per_line": with_ptp["us_per_line"],
        "engine_us_per_line_without_ptp": no_ptp["us_per_line"],
        "ptp_us_per_line": with_ptp["us_per_line"] - no_ptp["us_per_line"],
    }


def describe(result: dict[str, Any]) -> str:
    """One paragraph for the terminal."""
    return (
        f"reference data: {result['codes']:,} codes, {result['ptp_edits']:,} NCCI PTP edits "
        f"({', '.join(result['ptp_files'])}), ICD-10-CM {', '.join(result['icd10cm_sets'])}; "
        f"build {result['build_seconds']:.1f} s, bundle {result['bundle_bytes'] / 1e6:.1f} MB, "
        f"swap {result['swap_seconds']:.2f} s, snapshot +{result['snapshot_rss_bytes'] / 2**20:.0f}"
        f" MiB RSS; engine {result['engine_us_per_line']:.1f} us/line with the PTP table, "
        f"{result['engine_us_per_line_without_ptp']:.1f} without "
        f"(PTP {result['ptp_us_per_line']:+.1f} us/line)"
    )


if __name__ == "__main__":  # a quick look: python -m scrubber.bench.refdata
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure_refdata(None, [], 1, Path(tmp)), indent=2))
