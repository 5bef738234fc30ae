"""The synthetic full-size fee schedule the benchmark builds with: CMS's layout, CMS's values."""

from __future__ import annotations

from pathlib import Path

from scrubber.bench.synthetic import synthetic_mpfs
from scrubber.refdata.cms import read_mpfs
from scrubber.refdata.inputs import EXTRACT_MPFS

PPRRVU = EXTRACT_MPFS
#: The line of the column header row in the shipped PPRRVU extract (1-based).
HEADER_LINE = 10


def test_synthetic_full_size_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "PPRRVU-synthetic.csv"
    synthetic_mpfs(path)
    mpfs = read_mpfs(path)
    assert len(mpfs.rows) == 19000
    extract = read_mpfs(PPRRVU)
    assert (mpfs.release, mpfs.released) == (extract.release, extract.released)
    modifiers = {row.modifier for row in mpfs.rows}
    assert {"", "26", "TC"} <= modifiers
    components = {row.code for row in mpfs.rows if row.modifier in {"26", "TC"}}
    assert len(components) > 100
    assert all(
        row.pctc == "1" for row in mpfs.rows if row.code in components
    )  # PC/TC split only where the indicator allows it
    assert len({row.status for row in mpfs.rows}) > 5
    assert {row.global_days for row in mpfs.rows} == {
        "000",
        "010",
        "090",
        "MMM",
        "XXX",
        "YYY",
        "ZZZ",
    }
    # the header block is the extract's, byte for byte
    head = path.read_bytes().split(b"\r\n")[:HEADER_LINE]
    assert head == PPRRVU.read_bytes().split(b"\r\n")[:HEADER_LINE]


def test_synthetic_is_deterministic_and_sized(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    synthetic_mpfs(a, n_codes=500, seed=7)
    synthetic_mpfs(b, n_codes=500, seed=7)
    synthetic_mpfs(c, n_codes=500, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert len(read_mpfs(a).rows) == 500
    for n in (0, 1, 2, 3):
        path = tmp_path / f"n{n}.csv"
        synthetic_mpfs(path, n_codes=n)
        assert len(read_mpfs(path).rows) == n
