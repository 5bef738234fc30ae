"""``python -m scrubber.bench.ptp``: the NCCI PTP edit table at full size.

Measures what a reference-data build and a worker pay for the PTP table: reading and validating
the file, encoding it for the bundle (bytes per row, JSON size), decoding it into the lookup
index (seconds and resident memory) and the cost of a lookup, for pairs that have edits and for
pairs that do not. Numbers are printed, never asserted.

The index is measured in a fresh child process that loads only the table's JSON, as a worker
does: in the process that just read two million rows, freed memory would be reused and the
resident-set delta would say little.

The default file is the 2.14-million-row sizing table, whose dates are placeholders (one
effective date, no deletions), which compresses better than the real file can. So the table is
also encoded a second time with each row's dates redrawn at random from quarterly release dates
since 1996 (about half of them deleted): a pessimistic bound on the real file's size, since real
windows repeat far more than random ones.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from scrubber.refdata.cms_ptp import read_ptp
from scrubber.refdata.ptp import PtpIndex, PtpRow, PtpTable

DEFAULT_FILE = Path("/work/shared/refdata/ncci-ptp-sizing.txt.gz")

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """The resident set size of the current process, from the kernel (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


def _quarters() -> list[date]:
    return [date(year, month, 1) for year in range(1996, 2027) for month in (1, 4, 7, 10)]


def redated(rows: Sequence[PtpRow], seed: int) -> list[PtpRow]:
    """The rows with random quarterly windows: about half open, the rest deleted later on."""
    rng = random.Random(seed)
    starts = _quarters()
    out = []
    for row in rows:
        k = rng.randrange(len(starts))
        deletion = None
        if rng.random() < 0.5:
            end = rng.randrange(k, len(starts))
            deletion = starts[end + 1] - timedelta(days=1) if end + 1 < len(starts) else None
        out.append(
            PtpRow(
                row.column1,
                row.column2,
                k == 0 and rng.random() < 0.5,
                starts[k],
                deletion,
                row.modifier_indicator,
                row.rationale,
                row.source,
            )
        )
    return out


def _encoded_size(table: PtpTable) -> int:
    return len(base64.b64decode(table.data))


def lookup_pairs(
    rows: Sequence[PtpRow], codes: Sequence[str], n: int, seed: int
) -> dict[str, list[tuple[str, str]]]:
    """``n`` pairs with edits, ``n`` pairs of known codes without, ``n`` with an unknown code."""
    rng = random.Random(seed)
    pairs = {(r.column1, r.column2) for r in rows}
    hits = [(r.column1, r.column2) for r in rng.choices(rows, k=n)]
    misses: list[tuple[str, str]] = []
    while len(misses) < n:
        pair = (rng.choice(codes), rng.choice(codes))
        if pair not in pairs:
            misses.append(pair)
    unknown = [(rng.choice(codes), f"Z{rng.randrange(10_000):04d}") for _ in range(n)]
    return {"hit": hits, "miss": misses, "unknown": unknown}


@contextmanager
def _timed(out: dict[str, Any], name: str) -> Iterator[None]:
    """Wall and CPU seconds of the block, as ``<name>_s`` and ``<name>_cpu_s``.

    On a shared machine the wall time includes time spent waiting for a core; the CPU time
    does not, so the two together say how much of a slow run was the machine.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    out[f"{name}_s"] = time.perf_counter() - wall
    out[f"{name}_cpu_s"] = time.process_time() - cpu


#: Each lookup loop runs this many times and the fastest run counts (as ``timeit`` advises):
#: other processes on the machine only ever make a run slower. Lookups are timed in CPU time
#: (``process_time``), which leaves out the time the process waits for a core.
REPEATS = 5


def _per_call(loop: Callable[[], int], repeats: int = REPEATS) -> float:
    """CPU microseconds per item of the fastest of ``repeats`` runs of a loop returning its size.

    The loops drop each answer as a worker does: keeping 200,000 answers alive would make the
    garbage collector walk them over and over, and time that instead.
    """
    best = float("inf")
    size = 1
    for _ in range(repeats):
        start = time.process_time()
        size = loop()
        best = min(best, time.process_time() - start)
    return best / max(size, 1) * 1e6


def _edits_loop(index: PtpIndex, pairs: Sequence[tuple[str, str]]) -> int:
    edits = index.edits
    for column1, column2 in pairs:
        edits(column1, column2)
    return len(pairs)


def _column1_codes_loop(index: PtpIndex, pairs: Sequence[tuple[str, str]]) -> int:
    column1_codes = index.column1_codes
    for column1, column2 in pairs:
        _ = column1 in column1_codes(column2)
    return len(pairs)


def _has_edits_loop(index: PtpIndex, pairs: Sequence[tuple[str, str]]) -> int:
    has_edits = index.has_edits
    for column1, _column2 in pairs:
        has_edits(column1)
    return len(pairs)


def _empty_loop(pairs: Sequence[tuple[str, str]]) -> int:
    for _column1, _column2 in pairs:
        pass
    return len(pairs)


def measure_index(table_json: Path, pairs_json: Path | None) -> dict[str, Any]:
    """In this (fresh) process: load the table, build the index, time lookups if given pairs."""
    table = PtpTable.model_validate_json(table_json.read_bytes())
    pairs: dict[str, list[tuple[str, str]]] = {}
    if pairs_json is not None:
        pairs = {k: [(a, b) for a, b in v] for k, v in json.loads(pairs_json.read_bytes()).items()}
    out: dict[str, Any] = {}
    gc.collect()
    before = rss_bytes()
    with _timed(out, "index_build"):
        index = PtpIndex.from_table(table)
    gc.collect()
    out["index_rss_delta_bytes"] = rss_bytes() - before

    tracemalloc.start()
    again = PtpIndex.from_table(table)
    traced, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del again

    out["index_traced_bytes"] = traced
    out["index_traced_peak_bytes"] = traced_peak
    for kind, todo in pairs.items():
        out[f"edits_{kind}_found"] = sum(1 for a, b in todo if index.edits(a, b))
        out[f"edits_{kind}_us"] = _per_call(partial(_edits_loop, index, todo))
    if pairs:
        todo = pairs["miss"]
        out["column1_codes_in_us"] = _per_call(partial(_column1_codes_loop, index, todo))
        out["has_edits_us"] = _per_call(partial(_has_edits_loop, index, todo))
        out["loop_us"] = _per_call(partial(_empty_loop, todo))
    return out


def _child(directory: Path, table: str, pairs: str | None) -> dict[str, Any]:
    """``measure_index`` in a new interpreter, on files written into ``directory``."""
    argv = [sys.executable, "-m", "scrubber.bench.ptp", "--index-child", str(directory / table)]
    if pairs is not None:
        argv += ["--pairs", str(directory / pairs)]
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(path: Path, lookups: int, seed: int, redate: bool) -> dict[str, Any]:
    """Read, encode, then measure the index in a child process; one dictionary of numbers."""
    out: dict[str, Any] = {"file": str(path)}
    with _timed(out, "read"):
        rows = read_ptp(path)
    out["rows"] = len(rows)
    with _timed(out, "table_build"):
        table = PtpTable.from_rows(rows)
    out["codes"] = len(table.codes)
    out["rationales"] = len(table.rationales)
    out["encoded_bytes"] = _encoded_size(table)
    out["data_chars"] = len(table.data)
    table_json = table.model_dump_json().encode()
    out["json_bytes"] = len(table_json)
    redated_json = b""
    if redate:
        varied = PtpTable.from_rows(redated(rows, seed))
        out["redated_encoded_bytes"] = _encoded_size(varied)
        redated_json = varied.model_dump_json().encode()
        out["redated_json_bytes"] = len(redated_json)
        del varied
    pairs = lookup_pairs(rows, table.codes, lookups, seed)
    del rows, table
    with tempfile.TemporaryDirectory(prefix="ptp-bench-") as tmp:
        directory = Path(tmp)
        (directory / "table.json").write_bytes(table_json)
        (directory / "pairs.json").write_text(json.dumps(pairs))
        del table_json, pairs
        out.update(_child(directory, "table.json", "pairs.json"))
        if redate:
            (directory / "redated.json").write_bytes(redated_json)
            del redated_json
            for key, value in _child(directory, "redated.json", None).items():
                out[f"redated_{key}"] = value
    return out


def _seconds(numbers: dict[str, Any], name: str) -> str:
    return f"{numbers[name + '_s']:.2f} s (CPU {numbers[name + '_cpu_s']:.2f} s)"


def report(numbers: dict[str, Any]) -> str:
    """The numbers as a table a person reads."""
    rows = numbers["rows"]
    mb = 1024 * 1024
    lines = [
        f"file                      {numbers['file']}",
        f"rows                      {rows:,}",
        f"distinct codes            {numbers['codes']:,}",
        f"distinct rationales       {numbers['rationales']:,}",
        f"read (read_ptp)           {_seconds(numbers, 'read')}",
        f"table (from_rows)         {_seconds(numbers, 'table_build')}",
        f"read + table              {numbers['read_s'] + numbers['table_build_s']:.2f} s "
        f"(CPU {numbers['read_cpu_s'] + numbers['table_build_cpu_s']:.2f} s)",
        f"encoded (zlib)            {numbers['encoded_bytes']:,} bytes, "
        f"{numbers['encoded_bytes'] / max(rows, 1):.2f} bytes/row",
        f"data (base64)             {numbers['data_chars']:,} chars, "
        f"{numbers['data_chars'] / max(rows, 1):.2f} chars/row",
        f"table JSON                {numbers['json_bytes']:,} bytes",
    ]
    if "redated_encoded_bytes" in numbers:
        lines += [
            f"  with random dates       {numbers['redated_encoded_bytes']:,} bytes, "
            f"{numbers['redated_encoded_bytes'] / max(rows, 1):.2f} bytes/row; "
            f"JSON {numbers['redated_json_bytes']:,} bytes",
        ]
    for prefix, label in (("", "index (from_table)"), ("redated_", "  same, random dates")):
        if f"{prefix}index_build_s" not in numbers:
            continue
        lines += [
            f"{label:<26}{_seconds(numbers, prefix + 'index_build')}; resident "
            f"+{numbers[prefix + 'index_rss_delta_bytes'] / mb:.1f} MB; tracemalloc "
            f"{numbers[prefix + 'index_traced_bytes'] / mb:.1f} MB kept, "
            f"{numbers[prefix + 'index_traced_peak_bytes'] / mb:.1f} MB peak",
        ]
    lines += [
        f"edits(), pair with edits  {numbers['edits_hit_us']:.2f} us "
        f"({numbers['edits_hit_found']:,} found)",
        f"edits(), pair without     {numbers['edits_miss_us']:.2f} us "
        f"({numbers['edits_miss_found']:,} found)",
        f"edits(), unknown code     {numbers['edits_unknown_us']:.2f} us",
        f"c1 in column1_codes(c2)   {numbers['column1_codes_in_us']:.2f} us",
        f"has_edits()               {numbers['has_edits_us']:.2f} us",
        f"(lookups: CPU time, best of {REPEATS} runs, the loop's own "
        f"{numbers['loop_us']:.2f} us included)",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``--index-child`` is how the benchmark runs its own child process."""
    p = argparse.ArgumentParser(prog="python -m scrubber.bench.ptp", description=__doc__)
    p.add_argument("--file", type=Path, default=DEFAULT_FILE, help="PTP file: TXT, zip or gz")
    p.add_argument("--lookups", type=int, default=200_000, help="lookups timed per kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-redate", action="store_true", help="skip the second encoding with random dates"
    )
    p.add_argument("--json", action="store_true", help="print the numbers as JSON as well")
    p.add_argument("--index-child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--pairs", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure and print; in the child, print the index numbers as one JSON line."""
    args = parse_args(argv)
    if args.index_child is not None:
        numbers = measure_index(args.index_child, args.pairs)
        print(json.dumps(numbers))
        return 0
    numbers = measure(args.file, args.lookups, args.seed, redate=not args.no_redate)
    print(report(numbers))
    if args.json:
        print(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
