"""A realistic synthetic claim-line stream for the benchmark, built from a reference bundle.

``scrubber.examples.generate`` makes a small, deliberately dirty demo file (15% flag-worthy, 8%
malformed, codes drawn uniformly). A benchmark needs what production looks like instead, because
the cost of a line depends on what it is and on the patient's other lines:

- **Patients** have skewed activity (a few chronic patients with dozens of lines, most with a
  handful), a usual physician in a primary-care group and, for some, a surgeon in a surgical group.
- **Claims** have one to four lines. Office and hospital E/M visits are the most common lines;
  surgeries are a minority; add-on codes come with their primary on the same claim (mostly).
  A visit inside a surgery's global period carries the modifier that makes it payable (24, 25,
  57), as a careful billing office would write it, so clean lines are accepted.
- **Arrival order** is submission order: the date of service plus a lag of a few days, and for a
  share of claims weeks or months, so a share of lines arrives out of date-of-service order and
  the history and revision logic is exercised.
- **Mistakes** at a few percent (unknown code, malformed modifier, bad NPI check digit, lower-case
  diagnosis, units over the MUE, an E/M modifier on a procedure, a missing 25, an add-on whose
  primary is on no claim, a duplicate line on another claim), **malformed messages** at about one
  percent, and a small share of **redeliveries** (the same line sent twice).

Deterministic for a given seed and bundle. No real person is in here: ids are generated, NPIs
carry valid check digits (except where a bad one is the mistake).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import orjson

from scrubber.examples import malformed_variant
from scrubber.identifiers import make_npi
from scrubber.refdata.model import Bundle, CodeReference

#: Common, well-formed ICD-10-CM codes, by setting (the reference data carries no diagnoses).
OFFICE_DIAGNOSES = ("I10", "E11.9", "E78.5", "J06.9", "M54.50", "Z00.00", "F41.1", "K21.9")
SURGICAL_DIAGNOSES = ("S81.811A", "L03.115", "C44.311", "T81.4XXA", "S41.011A", "D17.1", "L72.3")
HOSPITAL_DIAGNOSES = ("J18.9", "I50.9", "N39.0", "A41.9", "R07.9", "I21.4")
PAYERS = ("MCR-J15", "MCR-J15", "MCR-J15", "AETNA-60054", "UHC-87726", "BCBS-00590")

PCP_TAXONOMIES = ("207Q00000X", "207R00000X", "208D00000X")
SURGEON_TAXONOMIES = ("208600000X", "2086S0122X", "207X00000X", "208200000X", "207K00000X")
HOSPITALIST_TAXONOMY = "208M00000X"
EMERGENCY_TAXONOMY = "207P00000X"

#: Charge ranges in dollars: procedures, then E/M visits.
_CHARGES = {False: (200, 6000), True: (60, 900)}

#: Global periods (post-operative days) as the global-period rules define them.
_POSTOP = {"000": 0, "010": 10, "090": 90}


@dataclass(frozen=True, slots=True)
class StreamMix:
    """Shares of the stream that are not clean, on-time lines."""

    flag_worthy: float = 0.03
    """Lines given a billing mistake the scrubber should flag (before cross-line effects)."""
    malformed: float = 0.01
    """Messages that cannot be read (not JSON, truncated, wrong types, missing fields)."""
    late_claims: float = 0.12
    """Claims submitted weeks or months after the date of service (out of order)."""
    redelivered: float = 0.005
    """Lines delivered a second time, unchanged (at-least-once upstream)."""


@dataclass(frozen=True, slots=True)
class Provider:
    """A rendering provider and the group that bills for it."""

    npi: str
    taxonomy: str
    group_npi: str
    tax_id: str

    def package(self) -> tuple[str, str]:
        """What binds a global surgery package: the group and the specialty (plus the NPI)."""
        return (self.tax_id, self.taxonomy)


@dataclass(frozen=True, slots=True)
class CodeBook:
    """The bundle's codes sorted into the kinds a claim is made of."""

    office_em: tuple[str, ...]
    hospital_admit: tuple[str, ...]
    hospital_subsequent: tuple[str, ...]
    hospital_discharge: tuple[str, ...]
    emergency_em: tuple[str, ...]
    critical: str | None
    critical_add_on: str | None
    major: tuple[str, ...]  # 090 surgeries
    minor: tuple[str, ...]  # 000 and 010 procedures
    add_ons: dict[str, tuple[str, ...]]  # primary -> its add-on codes
    mue: dict[str, int]
    global_days: dict[str, str]

    @classmethod
    def of(cls, bundle: Bundle) -> CodeBook:
        """Classify the payable codes of a bundle (any size: the seeds' or a full fee schedule)."""
        payable = {c: r for c, r in bundle.codes.items() if r.status in ("A", "R", "T")}

        def em_in(lo: int, hi: int) -> tuple[str, ...]:
            return tuple(sorted(c for c in payable if c.isdigit() and lo <= int(c) <= hi))

        office = em_in(99202, 99215)
        admit = em_in(99221, 99223)
        subsequent = em_in(99231, 99233)
        discharge = em_in(99238, 99239)
        emergency = em_in(99281, 99285)
        em_codes = set(em_in(99202, 99499))
        major = tuple(sorted(c for c, r in payable.items() if r.global_days == "090"))
        minor = tuple(
            sorted(
                c
                for c, r in payable.items()
                if r.global_days in ("000", "010") and c not in em_codes
            )
        )
        add_ons = _add_on_primaries(payable, em_codes)
        critical = "99291" if "99291" in payable else None
        critical_add_on = next(iter(add_ons.get("99291", ())), None) if critical else None
        add_ons.pop("99291", None)
        mue = {c: r.mue_value for c, r in payable.items() if r.mue_value}
        fallback = tuple(sorted(payable)) or tuple(sorted(bundle.codes))
        return cls(
            office_em=office or fallback,
            hospital_admit=admit or office or fallback,
            hospital_subsequent=subsequent or admit or office or fallback,
            hospital_discharge=discharge or subsequent or admit or office or fallback,
            emergency_em=emergency or office or fallback,
            critical=critical,
            critical_add_on=critical_add_on,
            major=major or minor or fallback,
            minor=minor or major or fallback,
            add_ons={p: tuple(sorted(a)) for p, a in add_ons.items()},
            mue=mue,
            global_days={c: r.global_days for c, r in payable.items() if r.global_days},
        )


def _add_on_primaries(
    payable: dict[str, CodeReference], em_codes: set[str]
) -> dict[str, list[str]]:
    """Primary code -> add-on codes, from the reference data where it says, else by code family.

    Where no code lists an add-on among its ``add_on_codes``, its primary is taken to be the
    nearest lower code of the same family (13102 -> 13101, 15772 -> 15771, 99292 -> 99291): how
    CPT numbers add-ons, and a primary the scrubber accepts for an add-on with no listed primary.
    """
    add_ons = sorted(c for c, r in payable.items() if r.global_days == "ZZZ")
    listed: dict[str, list[str]] = {}
    for code, ref in payable.items():
        for add_on in ref.add_on_codes:
            if add_on in payable:
                listed.setdefault(add_on, []).append(code)
    ordered = sorted(c for c, r in payable.items() if r.global_days != "ZZZ")
    out: dict[str, list[str]] = {}
    for add_on in add_ons:
        primaries = sorted(listed.get(add_on, ()))
        if not primaries:
            family = [c for c in ordered if c[:3] == add_on[:3] and c < add_on]
            if add_on not in em_codes:
                family = [c for c in family if c not in em_codes]
            primaries = family[-1:]
        if primaries:
            out.setdefault(primaries[0], []).append(add_on)
    return out


@dataclass
class _Patient:
    member_id: str
    birth_date: str
    sex: str
    pcp: Provider
    surgeon: Provider
    surgeries: list[tuple[date, str, Provider]] = field(default_factory=list)
    busy: set[tuple[date, str]] = field(default_factory=set)


@dataclass
class _Claim:
    submitted: date
    order: int
    lines: list[dict[str, Any]]


def _providers(
    rng: random.Random, groups: int, per_group: int, taxonomies: Sequence[str]
) -> list[Provider]:
    out: list[Provider] = []
    for _ in range(groups):
        group_npi = make_npi(f"1{rng.randrange(10**8):08d}")
        tax_id = f"{rng.randrange(10**9):09d}"
        taxonomy = rng.choice(taxonomies)
        for _ in range(per_group):
            npi = make_npi(f"{rng.choice('12')}{rng.randrange(10**8):08d}")
            out.append(Provider(npi, taxonomy, group_npi, tax_id))
    return out


def _binds(a: Provider, b: Provider) -> bool:
    return a.npi == b.npi or a.package() == b.package()


class StreamGenerator:
    """Builds the stream; one instance per run (it keeps the patients' timelines)."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        seed: int = 20260101,
        patients: int = 20_000,
        start: date = date(2025, 6, 2),
        days: int = 365,
        mix: StreamMix | None = None,
    ) -> None:
        self.book = CodeBook.of(bundle)
        self.modifiers = set(bundle.modifiers)
        self.rng = random.Random(seed)
        self.seed = seed
        self.start = start
        self.days = days
        self.mix = mix or StreamMix()
        rng = self.rng
        self.pcps = _providers(rng, max(1, patients // 400), 4, PCP_TAXONOMIES)
        self.surgeons = _providers(rng, max(1, patients // 1500), 3, SURGEON_TAXONOMIES)
        self.hospitalists = _providers(rng, max(1, patients // 4000), 6, (HOSPITALIST_TAXONOMY,))
        self.emergency = _providers(rng, max(1, patients // 4000), 6, (EMERGENCY_TAXONOMY,))
        self.patients = [self._patient(i) for i in range(patients)]
        # Skewed activity: a Pareto weight per patient, capped so no patient dominates.
        self.weights = [min(rng.paretovariate(1.6), 25.0) for _ in range(patients)]
        self.claim_no = 0
        self.claims: list[_Claim] = []

    def _patient(self, index: int) -> _Patient:
        rng = self.rng
        birth = date(1935, 1, 1) + timedelta(days=rng.randrange(85 * 365))
        return _Patient(
            member_id=f"B{self.seed % 1000:03d}{index:07d}",
            birth_date=birth.isoformat(),
            sex=rng.choice("FFMMU" if rng.random() < 0.02 else "FM"),
            pcp=rng.choice(self.pcps),
            surgeon=rng.choice(self.surgeons),
        )

    # ----------------------------------------------------------------------- lines and claims
    def _line(
        self,
        patient: _Patient,
        provider: Provider,
        day: date,
        code: str,
        diagnoses: Sequence[str],
        modifiers: Sequence[str] = (),
        place: str = "11",
        units: int = 1,
    ) -> dict[str, Any]:
        rng = self.rng
        return {
            "claim_id": "",
            "line_number": 0,
            "payer_id": rng.choice(PAYERS),
            "patient": {
                "member_id": patient.member_id,
                "birth_date": patient.birth_date,
                "sex": patient.sex,
            },
            "rendering_provider": {"npi": provider.npi, "taxonomy": provider.taxonomy},
            "billing_provider": {"npi": provider.group_npi, "tax_id": provider.tax_id},
            "service_date": day.isoformat(),
            "place_of_service": place,
            "procedure_code": code,
            "modifiers": list(modifiers),
            "units": units,
            "charge": f"{rng.randrange(*_CHARGES[code.startswith('99')])}.00",
            "diagnosis_codes": rng.sample(
                list(diagnoses), k=rng.randint(1, min(3, len(diagnoses)))
            ),
        }

    def _claim(self, day: date, lines: list[dict[str, Any]]) -> None:
        rng = self.rng
        self.claim_no += 1
        claim_id = f"K{self.seed % 1000:03d}{self.claim_no:09d}"
        for number, doc in enumerate(lines, start=1):
            doc["claim_id"] = claim_id
            doc["line_number"] = number
        if rng.random() < self.mix.late_claims:
            lag = rng.randint(14, 150)  # a resubmission, a slow office, a secondary payer
        else:
            lag = min(int(rng.expovariate(1 / 3.0)), 13)
        self.claims.append(_Claim(day + timedelta(days=lag), self.claim_no, lines))

    def _em_modifiers(self, patient: _Patient, provider: Provider, day: date) -> list[str]:
        """The modifier a careful biller puts on an E/M near a surgery of the same package."""
        for s_day, glob, surgeon in patient.surgeries:
            if not _binds(provider, surgeon):
                continue
            if glob == "090" and s_day - timedelta(days=1) <= day <= s_day:
                return ["57"]
            if glob in ("000", "010") and day == s_day:
                return ["25"]
            if s_day < day <= s_day + timedelta(days=_POSTOP[glob]):
                return ["24"]
        return []

    def _procedure_modifiers(self, patient: _Patient, provider: Provider, day: date) -> list[str]:
        for s_day, glob, surgeon in patient.surgeries:
            if _binds(provider, surgeon) and s_day < day <= s_day + timedelta(days=_POSTOP[glob]):
                return ["79"]
        return []

    def _free_day(self, patient: _Patient, code: str, day: date) -> date:
        """A day on which the patient has no line of this code yet (no accidental duplicates)."""
        while (day, code) in patient.busy:
            day += timedelta(days=1)
        patient.busy.add((day, code))
        return day

    def _office_visit(self, p: _Patient, day: date) -> None:
        rng = self.rng
        code = rng.choice(self.book.office_em)
        day = self._free_day(p, code, day)
        lines = []
        if rng.random() < 0.12 and self.book.minor:
            procedure = rng.choice(self.book.minor)
            p.busy.add((day, procedure))
            mods = self._procedure_modifiers(p, p.pcp, day)
            glob = self._global(procedure)
            p.surgeries.append((day, glob, p.pcp))
            em = self._line(p, p.pcp, day, code, OFFICE_DIAGNOSES, ["25"])
            lines = [em, self._line(p, p.pcp, day, procedure, SURGICAL_DIAGNOSES, mods)]
        else:
            mods = self._em_modifiers(p, p.pcp, day)
            lines = [self._line(p, p.pcp, day, code, OFFICE_DIAGNOSES, mods)]
        self._claim(day, lines)

    def _global(self, code: str) -> str:
        return self.book.global_days.get(code, "XXX")

    def _surgery(self, p: _Patient, day: date) -> None:
        """A decision visit, the surgery with its add-ons, and a follow-up visit."""
        rng = self.rng
        book = self.book
        primary = rng.choice(book.major if rng.random() < 0.6 else book.minor)
        glob = self._global(primary)
        day = self._free_day(p, primary, day)
        if glob == "090" and rng.random() < 0.7:
            visit_day = day - timedelta(days=rng.choice((0, 1)))
            em = rng.choice(book.office_em)
            visit_day = self._free_day(p, em, visit_day)
            if visit_day <= day:
                p.surgeries.append((day, glob, p.surgeon))
                mods = self._em_modifiers(p, p.surgeon, visit_day)
                p.surgeries.pop()
                mods = mods or (["57"] if day - visit_day <= timedelta(days=1) else [])
                self._claim(
                    visit_day, [self._line(p, p.surgeon, visit_day, em, SURGICAL_DIAGNOSES, mods)]
                )
        mods = self._procedure_modifiers(p, p.surgeon, day)
        side = rng.random()
        if side < 0.2 and "LT" in self.modifiers:
            mods = [*mods, "LT"]
        elif side < 0.4 and "RT" in self.modifiers:
            mods = [*mods, "RT"]
        lines = [self._line(p, p.surgeon, day, primary, SURGICAL_DIAGNOSES, mods, place="22")]
        for add_on in book.add_ons.get(primary, ()):
            if rng.random() < 0.85:
                units = 1 if rng.random() < 0.8 else min(2, book.mue.get(add_on, 1))
                lines.append(
                    self._line(
                        p, p.surgeon, day, add_on, SURGICAL_DIAGNOSES, place="22", units=units
                    )
                )
        if len(lines) < 4 and rng.random() < 0.15:
            second = rng.choice(book.minor)
            if second != primary and (day, second) not in p.busy:
                p.busy.add((day, second))
                mods2 = ["59"] if "59" in self.modifiers else []
                lines.append(
                    self._line(p, p.surgeon, day, second, SURGICAL_DIAGNOSES, mods2, place="22")
                )
        self._claim(day, lines[:4])
        p.surgeries.append((day, glob, p.surgeon))
        if glob in ("010", "090") and rng.random() < 0.3:
            # An unrelated problem seen by the surgeon during the post-operative days.
            follow = day + timedelta(days=rng.randint(1, int(glob)))
            em = rng.choice(book.office_em)
            follow = self._free_day(p, em, follow)
            mods = self._em_modifiers(p, p.surgeon, follow)
            self._claim(follow, [self._line(p, p.surgeon, follow, em, SURGICAL_DIAGNOSES, mods)])

    def _hospital(self, p: _Patient, day: date) -> None:
        rng = self.rng
        book = self.book
        if rng.random() < 0.5:
            doc = rng.choice(self.emergency)
            if book.critical and rng.random() < 0.08:
                day = self._free_day(p, book.critical, day)
                lines = [self._line(p, doc, day, book.critical, HOSPITAL_DIAGNOSES, place="23")]
                if book.critical_add_on and rng.random() < 0.6:
                    lines.append(
                        self._line(
                            p, doc, day, book.critical_add_on, HOSPITAL_DIAGNOSES, place="23"
                        )
                    )
                self._claim(day, lines)
                return
            code = rng.choice(book.emergency_em)
            day = self._free_day(p, code, day)
            mods = self._em_modifiers(p, doc, day)
            self._claim(day, [self._line(p, doc, day, code, HOSPITAL_DIAGNOSES, mods, "23")])
            return
        doc = rng.choice(self.hospitalists)
        stay = rng.randint(1, 4)
        for offset in range(stay):
            if offset == 0:
                code = rng.choice(book.hospital_admit)
            elif offset == stay - 1:
                code = rng.choice(book.hospital_discharge)
            else:
                code = rng.choice(book.hospital_subsequent)
            d = self._free_day(p, code, day + timedelta(days=offset))
            mods = self._em_modifiers(p, doc, d)
            self._claim(d, [self._line(p, doc, d, code, HOSPITAL_DIAGNOSES, mods, "21")])

    # ----------------------------------------------------------------------- the stream
    def generate(self, lines: int) -> list[bytes]:
        """``lines`` raw JSON messages in submission order (valid, flag-worthy and malformed)."""
        rng = self.rng
        # Each episode adds 1.4 lines on average; make enough, then cut to the exact count.
        episodes = int(lines / 1.25) + 16
        chosen = rng.choices(range(len(self.patients)), weights=self.weights, k=episodes)
        per_patient: dict[int, list[date]] = {}
        for index in chosen:
            per_patient.setdefault(index, []).append(
                self.start + timedelta(days=rng.randrange(self.days))
            )
        for index in sorted(per_patient):
            p = self.patients[index]
            for day in sorted(per_patient[index]):
                kind = rng.random()
                if kind < 0.70:
                    self._office_visit(p, day)
                elif kind < 0.82:
                    self._surgery(p, day)
                else:
                    self._hospital(p, day)
        self.claims.sort(key=lambda c: (c.submitted, c.order))
        # Submission order is the arrival order: lines of a claim stay together, in order.
        docs = [doc for claim in self.claims for doc in claim.lines]
        return self._finish(docs, lines)

    def _finish(self, docs: list[dict[str, Any]], lines: int) -> list[bytes]:
        rng = self.rng
        mix = self.mix
        out: list[bytes] = []
        for doc in docs:
            if len(out) >= lines:
                break
            roll = rng.random()
            if roll < mix.flag_worthy:
                extra = self._mistake(doc)
                out.append(orjson.dumps(doc))
                if extra is not None and len(out) < lines:
                    out.append(orjson.dumps(extra))
                continue
            raw = orjson.dumps(doc)
            if roll < mix.flag_worthy + mix.malformed:
                raw = malformed_variant(rng, raw)
            out.append(raw)
            if rng.random() < mix.redelivered and len(out) < lines:
                out.append(raw)
        return out[:lines]

    def _mistake(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Give a line a billing mistake; return an extra line when the mistake is a duplicate."""
        rng = self.rng
        kind = rng.randrange(9)
        code = doc["procedure_code"]
        if kind == 0:
            doc["procedure_code"] = rng.choice(("1430X", "99999", "1577X", "0000T", "9921"))
        elif kind == 1:
            doc["modifiers"] = [*doc["modifiers"], rng.choice(("lt", "5", "RTT", "2 "))][:4]
        elif kind == 2:
            npi = doc["rendering_provider"]["npi"]
            doc["rendering_provider"] = {
                **doc["rendering_provider"],
                "npi": npi[:9] + str((int(npi[9]) + 1) % 10),
            }
        elif kind == 3:
            doc["diagnosis_codes"] = [d.lower() for d in doc["diagnosis_codes"]]
        elif kind == 4:
            doc["units"] = self.book.mue.get(code, 1) + 1
        elif kind == 5:
            doc["modifiers"] = [m for m in doc["modifiers"] if m not in ("25", "57", "24")]
            if not doc["modifiers"] and code not in self.book.office_em:
                doc["modifiers"] = ["25"]  # an E/M-only modifier on a procedure
        elif kind == 6:
            doc["modifiers"] = ["XS", "22"] if "XS" in self.modifiers else ["22"]
        else:
            dup: dict[str, Any] = orjson.loads(orjson.dumps(doc))
            self.claim_no += 1
            dup["claim_id"] = f"K{self.seed % 1000:03d}{self.claim_no:09d}"
            dup["line_number"] = 1
            return dup
        return None
