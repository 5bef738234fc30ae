"""Synthetic, full-size PPRRVU files for the benchmark and scale tests.

The real fee schedule file has about 19,000 records and cannot ship (CPT descriptors are AMA
copyright); the shipped extract has 67. This module writes a file of any size in the extract's
exact layout, values random but inside CMS's value sets, so that a build, a snapshot and the
engine can be measured at production size. A benchmark tool: nothing the worker or a bundle build
imports.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from scrubber.refdata.cms import column_key, read_mpfs, read_mpfs_header
from scrubber.refdata.inputs import EXTRACT_MPFS

__all__ = ["synthetic_mpfs"]

#: The shipped PPRRVU extract; ``synthetic_mpfs`` copies its header block so the synthetic file
#: has exactly the layout the reader meets in production.
_TEMPLATE = EXTRACT_MPFS


def _synthetic_codes(rng: random.Random) -> Iterator[str]:
    """Endless unique, plausible codes: CPT, Category III, level II HCPCS and dental."""
    seen: set[str] = set()
    while True:
        kind = rng.random()
        if kind < 0.72:
            code = f"{rng.randint(10000, 99999)}"
        elif kind < 0.75:
            code = f"0{rng.randint(1, 999):03d}T"
        elif kind < 0.95:
            code = f"{rng.choice('ABCEGJKLQV')}{rng.randint(0, 9999):04d}"
        else:
            code = f"D{rng.randint(0, 9999):04d}"
        if code not in seen:
            seen.add(code)
            yield code


def _money(value: float) -> str:
    return f"{max(value, 0.0):.2f}"


def _synthetic_code_rows(
    rng: random.Random, code: str, components: bool, conversion_factor: str, endo: str
) -> list[dict[str, str]]:
    """The record(s) of one synthetic code, keyed by column name; 3 rows if it has PC/TC parts.

    Values stay inside the RVU25D value sets and keep the documented relations (non-payable
    statuses carry indicator 9, PC/TC codes are XXX diagnostic tests whose TC row has no work).
    """
    dental = code.startswith("D")
    status = "R" if dental else rng.choices("ABCINXEMTJ", [80, 3, 4, 3, 3, 2, 2, 1, 1, 1])[0]
    payable = status in {"A", "R", "T"}
    if components:
        pctc, glob = "1", "XXX"
    elif payable and not dental:
        pctc = rng.choices("023456789", [85, 2, 3, 1, 2, 1, 1, 1, 4])[0]
        glob = rng.choices(
            ["000", "010", "090", "XXX", "ZZZ", "YYY", "MMM"], [15, 8, 15, 45, 12, 3, 2]
        )[0]
        if pctc != "0":
            glob = "XXX"
    else:
        pctc, glob = "9", rng.choice(["XXX", "YYY"])
    split = ("0.00", "0.00", "0.00")
    if glob in {"010", "090"}:
        pre = rng.choice([0.09, 0.10, 0.11, 0.12])
        post = rng.choice([0.10, 0.17, 0.19, 0.21])
        split = (f"{pre:.2f}", f"{1 - pre - post:.2f}", f"{post:.2f}")
    surgical = glob in {"000", "010", "090"}
    if not payable:
        mult, bilat, asst, cosurg, team = "9", "9", "9", "9", "9"
    else:
        mult = "4" if components else rng.choice("223") if surgical else rng.choice("0009")
        bilat = rng.choice("0123") if surgical or components else "0"
        asst = rng.choice("0112") if surgical else "0"
        cosurg = rng.choice("0012") if surgical else "0"
        team = rng.choice("0002") if surgical else "0"
    work = round(rng.uniform(0.0, 30.0), 2) if payable else 0.0
    pe_nf, pe_f = round(work * rng.uniform(0.3, 2.0), 2), round(work * 0.5, 2)
    mp = round(work / 8, 2)
    base = {
        "DESCRIPTION": f"Synthetic service {code}, for benchmarks",  # a comma: quoted cell
        "STATUS CODE": status,
        "NOT USED FOR MEDICARE PAYMENT": "+" if status == "I" else "",
        "NON-FAC NA INDICATOR": "NA" if glob == "090" else "",
        "FACILITY NA INDICATOR": "",
        "PCTC IND": pctc,
        "GLOB DAYS": glob,
        "PRE OP": split[0],
        "INTRA OP": split[1],
        "POST OP": split[2],
        "MULT PROC": mult,
        "BILAT SURG": bilat,
        "ASST SURG": asst,
        "CO-SURG": cosurg,
        "TEAM SURG": team,
        "ENDO BASE": endo if mult == "3" else "",
        "CONV FACTOR": conversion_factor,
        "PHYSICIAN SUPERVISION OF DIAGNOSTIC PROCEDURES": "01" if components else "09",
        "CALCULATION FLAG": "0",
        "DIAGNOSTIC IMAGING FAMILY INDICATOR": "88" if components else "99",
        "NON-FACILITY PE USED FOR OPPS PAYMENT AMOUNT": "0.00",
        "FACILITY PE USED FOR OPPS PAYMENT AMOUNT": "0.00",
        "MP USED FOR OPPS PAYMENT AMOUNT": "0.00",
    }
    variants = [("", work, pe_nf, pe_f, mp)]
    if components:  # global = professional (26) + technical (TC)
        variants += [("26", work, pe_f, pe_f, mp * 0.8), ("TC", 0.0, pe_nf - pe_f, 0.0, mp * 0.2)]
    elif payable and rng.random() < 0.002:
        variants.append(("53", work / 2, pe_nf / 2, pe_f / 2, mp / 2))  # discontinued procedure
    out = []
    for mod, w, nf, f, m in variants:
        row = dict(base)
        row["HCPCS"] = code
        row["MOD"] = mod
        row["WORK RVU"] = _money(w)
        row["NON-FAC PE RVU"] = _money(nf)
        row["FACILITY PE RVU"] = _money(f)
        row["MP RVU"] = _money(m)
        row["NON-FACILITY TOTAL"] = _money(w + nf + m)
        row["FACILITY TOTAL"] = _money(w + f + m)
        out.append(row)
    return out


def synthetic_mpfs(path: Path, n_codes: int = 19000, seed: int = 0) -> None:
    """Write a full-size synthetic PPRRVU file in the shipped extract's exact layout.

    For benchmarks and scale tests: the real file is ~19,000 records and cannot be shipped (CPT
    descriptors are AMA copyright). The header block and column order are copied from the
    packaged extract, so the synthetic file exercises the same header reconstruction the real one
    does; values are random but inside CMS's value sets, and about one code in twenty is a
    diagnostic test with its 26 and TC component rows. ``n_codes`` is the number of data records
    (code and modifier rows) written, like the row count of the real file; the same ``seed``
    writes the same file.
    """
    header = read_mpfs_header(_TEMPLATE)
    template = read_mpfs(_TEMPLATE)
    factors = Counter(r.conversion_factor for r in template.rows if r.conversion_factor)
    conversion_factor = factors.most_common(1)[0][0] if factors else "0.0000"

    rng = random.Random(seed)
    codes = _synthetic_codes(rng)
    out: list[dict[str, str]] = []
    endoscopy_bases: list[str] = []
    while len(out) < n_codes:
        code = next(codes)
        components = n_codes - len(out) >= 3 and rng.random() < 0.05
        endo = rng.choice(endoscopy_bases) if endoscopy_bases else code
        rows = _synthetic_code_rows(rng, code, components, conversion_factor, endo)
        if len(out) + len(rows) > n_codes:
            rows = rows[:1]
        if rows[0]["GLOB DAYS"] == "000" and len(endoscopy_bases) < 200:
            endoscopy_bases.append(code)
        out.extend(rows)
    out.sort(key=lambda r: (r["HCPCS"], r["MOD"]))

    # Template columns -> the names generated above; a column we do not know stays empty.
    known = {column_key(name): name for name in out[0]} if out else {}
    columns = [known.get(column_key(name), "") for name in header.names]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerows(cells for _, cells in header.block)
        writer.writerow(header.cells)
        writer.writerows([row.get(column, "") for column in columns] for row in out)
