"""Synthetic, realistic claim lines built from the reference data: for the demo, tests and load.

Deterministic for a given seed. No real person is in here: member ids, dates of birth and
provider numbers are generated (NPIs with valid check digits, so that only the lines meant to be
flag-worthy are). Codes, modifiers, taxonomies and diagnoses come from the reference bundle,
which was built from the seed documents, so the lines exercise the codes the product knows.

A share of the lines is meant to be flagged (unknown codes, malformed modifiers) and a share is
malformed on the wire (not JSON, truncated, wrong types, missing fields, empty): the demo shows
every kind ending in a result or a dead letter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson

from scrubber.identifiers import make_npi
from scrubber.refdata.model import Bundle

#: Diagnosis codes used for synthetic lines: common, well-formed ICD-10-CM codes. The reference
#: data does not carry diagnoses; these only need to be plausible, not tied to a code.
DIAGNOSES = ("S81.811A", "L03.115", "C44.311", "T81.4XXA", "M79.604", "S41.011A", "Z48.817")
TAXONOMIES = ("208200000X", "207K00000X", "2086S0122X", "207Q00000X", "207X00000X")
PLACES = ("11", "22", "24", "21")


@dataclass(frozen=True, slots=True)
class Mix:
    """Shares of flag-worthy and malformed lines (the rest are meant to be clean)."""

    flag_worthy: float = 0.15
    malformed: float = 0.08


def _providers(rng: random.Random, count: int) -> list[dict[str, Any]]:
    groups = [
        {"npi": make_npi(f"1{rng.randrange(10**8):08d}"), "tax_id": f"{rng.randrange(10**9):09d}"}
        for _ in range(max(1, count // 3))
    ]
    return [
        {
            "rendering": {
                "npi": make_npi(f"1{rng.randrange(10**8):08d}"),
                "taxonomy": rng.choice(TAXONOMIES),
            },
            "billing": rng.choice(groups),
        }
        for _ in range(count)
    ]


def _codes(bundle: Bundle) -> tuple[list[str], list[str]]:
    """Payable procedure codes and E/M codes from the bundle."""
    payable = [c for c, r in bundle.codes.items() if r.status in ("A", "R", "T", None)]
    em = [c for c in payable if c.startswith("992")]
    procedures = [c for c in payable if not c.startswith("99") and len(c) == 5]
    return procedures or payable, em or payable


def malformed_variant(rng: random.Random, good: bytes) -> bytes:
    """A broken copy of a good message: the kinds of damage a real producer or network does."""
    kind = rng.randrange(6)
    if kind == 0:
        return b"this is not json"
    if kind == 1:
        return good[: len(good) // 2]  # truncated in transit
    if kind == 2:
        doc = orjson.loads(good)
        doc["units"] = "two"  # wrong type
        return orjson.dumps(doc)
    if kind == 3:
        doc = orjson.loads(good)
        del doc["service_date"]  # a required field missing
        return orjson.dumps(doc)
    if kind == 4:
        doc = orjson.loads(good)
        doc["diagnosis_codes"] = []  # at least one diagnosis is required
        return orjson.dumps(doc)
    return b"[1, 2, 3]"  # JSON, but not an object


def generate(
    bundle: Bundle,
    lines: int,
    seed: int = 7,
    patients: int | None = None,
    start: date = date(2025, 3, 3),
    mix: Mix | None = None,
) -> list[bytes]:
    """``lines`` claim lines as raw JSON bytes, in claims of one to four lines."""
    mix = mix or Mix()
    rng = random.Random(seed)
    procedures, em = _codes(bundle)
    modifiers = [m for m in ("LT", "RT", "59", "XS", "51", "22") if m in bundle.modifiers]
    providers = _providers(rng, 12)
    n_patients = patients or max(1, lines // 4)
    members = [f"M{rng.randrange(10**9):09d}" for _ in range(n_patients)]
    out: list[bytes] = []
    claim_no = 0
    while len(out) < lines:
        claim_no += 1
        member = rng.choice(members)
        prov = rng.choice(providers)
        day = start + timedelta(days=rng.randrange(300))
        birth = date(1940, 1, 1) + timedelta(days=rng.randrange(60 * 365))
        for line_number in range(1, rng.randint(1, 4) + 1):
            if len(out) >= lines:
                break
            code = (
                rng.choice(em)
                if line_number == 1 and rng.random() < 0.4
                else rng.choice(procedures)
            )
            mods = rng.sample(modifiers, k=min(len(modifiers), rng.choice((0, 0, 0, 1, 1, 2))))
            doc: dict[str, Any] = {
                "claim_id": f"C{seed:02d}{claim_no:08d}",
                "line_number": line_number,
                "payer_id": rng.choice(("MCR-J15", "AETNA-60054", "UHC-87726")),
                "patient": {
                    "member_id": member,
                    "birth_date": birth.isoformat(),
                    "sex": rng.choice("FMU"),
                },
                "rendering_provider": prov["rendering"],
                "billing_provider": prov["billing"],
                "service_date": day.isoformat(),
                "place_of_service": rng.choice(PLACES),
                "procedure_code": code,
                "modifiers": mods,
                "units": 1,
                "charge": f"{rng.randrange(80, 4000)}.00",
                "diagnosis_codes": rng.sample(DIAGNOSES, k=rng.randint(1, 3)),
            }
            roll = rng.random()
            if roll < mix.flag_worthy:
                # Mistakes billing offices make: a code family or a made-up code, a modifier
                # typed in lower case or cut short.
                if rng.random() < 0.5:
                    doc["procedure_code"] = rng.choice(("1430X", "99999", "1577X", "0000T"))
                else:
                    doc["modifiers"] = [rng.choice(("lt", "5", "RTT", "2 "))]
            raw = orjson.dumps(doc)
            if mix.flag_worthy <= roll < mix.flag_worthy + mix.malformed:
                raw = malformed_variant(rng, raw)
            out.append(raw)
    return out
