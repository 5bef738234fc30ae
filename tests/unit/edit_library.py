"""A reference snapshot with every edit family loaded, for the property tests.

The seeds and the CMS extracts, plus NCCI PTP edits among the codes the example generator bills
(so pairs occur on one claim), add-on code edits of each type on the extract's add-on codes, an
ICD-10-CM code set that knows the generator's diagnoses and payer profiles for its payer ids.
Order-independence and "every final verdict is the line judged with all the others" must hold
with all of it.
"""

from __future__ import annotations

import zlib
from datetime import date
from functools import lru_cache
from pathlib import Path

from scrubber.examples import DIAGNOSES
from scrubber.refdata.aoc import AocRow, AocTable
from scrubber.refdata.build import build_bundle
from scrubber.refdata.icd10cm import Icd10CodeSet
from scrubber.refdata.inputs import EXTRACT_MPFS, EXTRACT_MUE
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.refdata.payers_file import parse_payer_profiles
from scrubber.refdata.ptp import PtpRow, PtpTable
from scrubber.rules.library import default_engine

REPO = Path(__file__).resolve().parents[2]

PROFILES = """\
profiles:
  - name: medicare
    payers: ["MCR-*"]
  - name: commercial
    payers: ["AETNA-*"]
    disable: ["global_period.em_postop_without_24"]
    severity:
      ncci_ptp.edit: warning
      diagnosis: info
"""


def _ptp_rows(codes: list[str]) -> list[PtpRow]:
    rows = []
    for i, first in enumerate(codes):
        for second in codes[i + 1 :]:
            mark = zlib.crc32(f"{first}{second}".encode())
            rows.append(
                PtpRow(
                    column1=first,
                    column2=second,
                    prior_1996=False,
                    effective=date(2020, 1, 1),
                    # some edits end mid-year, so both sides of a deletion date occur
                    deletion=date(2025, 6, 30) if mark % 5 == 0 else None,
                    modifier_indicator="01"[mark % 2],
                    rationale="Mutually exclusive procedures",
                    source="generated:1",
                )
            )
    return rows


def _aoc_rows(add_ons: list[str], primaries: list[str]) -> list[AocRow]:
    rows = []
    for edit_type, add_on in zip((1, 3, 2), add_ons, strict=False):
        for primary in primaries[:2] if edit_type != 2 else [None]:
            rows.append(
                AocRow(
                    edit_type=edit_type,
                    add_on=add_on,
                    add_on_deletion=None,
                    primary=primary,
                    primary_deletion=None,
                    effective=date(2020, 1, 1),
                    deletion=None,
                    notes="",
                    source="generated:1",
                )
            )
    return rows


@lru_cache(maxsize=1)
def edit_library_snapshot() -> ReferenceSnapshot:
    """The snapshot described above (built once per test session)."""
    base = build_bundle(REPO / "seeds", EXTRACT_MPFS, EXTRACT_MUE)
    procedures = sorted(
        c
        for c, r in base.codes.items()
        if r.status == "A" and r.global_days in ("000", "010", "090")
    )
    em = sorted(c for c in base.codes if c.startswith("992"))
    add_ons = sorted(c for c, r in base.codes.items() if r.global_days == "ZZZ")
    dx = sorted(c.replace(".", "") for c in DIAGNOSES)
    code_set = Icd10CodeSet(
        name="icd10cm-order-2025.txt",
        fiscal_year=2025,
        effective_from=date(2024, 10, 1),
        billable=" ".join(dx[:-1]),  # the last diagnosis is missing: an invalid code
        headers=" ".join(sorted({c[:3] for c in dx})),
        manifestation="",
    )
    engine = default_engine()
    specs = engine.rule_specs()
    profiles = parse_payer_profiles(
        PROFILES,
        "payers.yaml",
        rule_ids=[r for r, _, _ in specs],
        categories=sorted({c for _, c, _ in specs}),
        groups=engine.groups(),
    )
    bundle = base.model_copy(
        update={
            "ptp": PtpTable.from_rows(_ptp_rows(procedures[:10] + em[:4])),
            "aoc": AocTable.from_rows(_aoc_rows(add_ons, procedures)),
            "icd10cm": (code_set,),
            "payers": profiles,
            "version": "",
        }
    ).with_version()
    return ReferenceSnapshot(bundle)
