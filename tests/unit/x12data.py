"""837P interchanges built in code for the X12 tests (synthetic people, valid NPIs).

A segment is a list of elements; an element is a string or a list of components. ``render``
writes them with any separators and computes SE01, GE01 and IEA01 unless a test overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scrubber.identifiers import make_npi

BILLING_NPI = make_npi("123456789")
RENDERING_2310B = make_npi("198765432")
RENDERING_2420A = make_npi("155555555")
OTHER_BILLING_NPI = make_npi("144444444")

Element = str | list[str]
Segment = list[Element]


@dataclass(frozen=True)
class Separators:
    element: str = "*"
    component: str = ":"
    repetition: str = "^"
    segment: str = "~"
    newline: str = "\n"


@dataclass
class Line:
    procedure: str = "99213"
    modifiers: tuple[str, ...] = ()
    charge: str = "100"
    units: str = "1"
    place: str | None = None
    pointers: tuple[str, ...] = ("1",)
    date: str = "20240301"
    end_date: str | None = None
    rendering: str | None = None
    rendering_taxonomy: str | None = None


@dataclass
class Claim:
    claim_id: str = "CLAIM001"
    charge: str | None = None
    place: str = "11"
    diagnoses: tuple[tuple[str, str], ...] = (("ABK", "J209"), ("ABF", "R05"))
    rendering: str | None = RENDERING_2310B
    rendering_taxonomy: str | None = "207Q00000X"
    lines: list[Line] = field(default_factory=lambda: [Line()])


@dataclass
class Patient:
    last: str = "DOE"
    first: str = "JANE"
    birth: str = "20100615"
    sex: str = "F"


@dataclass
class Subscriber:
    member_id: str = "MEMBER001"
    payer_id: str = "PAYER01"
    birth: str = "19800101"
    sex: str = "M"
    claims: list[Claim] = field(default_factory=list)
    patient: Patient | None = None
    """When set, the claims sit under a patient loop (2000C) with this patient."""


@dataclass
class Provider:
    npi: str = BILLING_NPI
    tax_id: str = "123456789"
    taxonomy: str = "207Q00000X"
    subscribers: list[Subscriber] = field(default_factory=list)


def transaction_set(
    control: str, providers: list[Provider], batch: str = "BATCH0001"
) -> list[Segment]:
    """An 837P transaction set (ST..SE) with SE01 computed."""
    segs: list[Segment] = [
        ["ST", "837", control, "005010X222A1"],
        ["BHT", "0019", "00", batch, "20240315", "1200", "CH"],
        ["NM1", "41", "2", "SUBMITTER CLINIC", "", "", "", "", "46", "S12345"],
        ["PER", "IC", "BILLING OFFICE", "TE", "5555551234"],
        ["NM1", "40", "2", "RECEIVER CH", "", "", "", "", "46", "R54321"],
    ]
    hl = 0
    for provider in providers:
        hl += 1
        provider_hl = hl
        segs += [
            ["HL", str(hl), "", "20", "1"],
            ["PRV", "BI", "PXC", provider.taxonomy],
            ["NM1", "85", "2", "BILLING CLINIC", "", "", "", "", "XX", provider.npi],
            ["N3", "123 MAIN ST"],
            ["N4", "ANYTOWN", "CA", "900010000"],
            ["REF", "EI", provider.tax_id],
        ]
        for sub in provider.subscribers:
            hl += 1
            sub_hl = hl
            segs += [
                ["HL", str(hl), str(provider_hl), "22", "1" if sub.patient else "0"],
                [
                    "SBR",
                    "S" if sub.patient else "P",
                    "" if sub.patient else "18",
                    "GRP1",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "CI",
                ],
                ["NM1", "IL", "1", "DOE", "JOHN", "", "", "", "MI", sub.member_id],
                ["N3", "1 ELM ST"],
                ["N4", "ANYTOWN", "CA", "900010000"],
                ["DMG", "D8", sub.birth, sub.sex],
                ["NM1", "PR", "2", "ACME HEALTH", "", "", "", "", "PI", sub.payer_id],
            ]
            if sub.patient is not None:
                hl += 1
                segs += [
                    ["HL", str(hl), str(sub_hl), "23", "0"],
                    ["PAT", "19"],
                    ["NM1", "QC", "1", sub.patient.last, sub.patient.first],
                    ["N3", "1 ELM ST"],
                    ["N4", "ANYTOWN", "CA", "900010000"],
                    ["DMG", "D8", sub.patient.birth, sub.patient.sex],
                ]
            for claim in sub.claims:
                segs += _claim(claim)
    segs.append(["SE", str(len(segs) + 1), control])
    return segs


def _claim(claim: Claim) -> list[Segment]:
    total = claim.charge or _sum(line.charge for line in claim.lines)
    segs: list[Segment] = [
        ["CLM", claim.claim_id, total, "", "", [claim.place, "B", "1"], "Y", "A", "Y", "Y"],
        ["HI", *[[q, code] for q, code in claim.diagnoses]],
    ]
    if claim.rendering:
        segs.append(["NM1", "82", "1", "SMITH", "ANNA", "", "", "", "XX", claim.rendering])
        if claim.rendering_taxonomy:
            segs.append(["PRV", "PE", "PXC", claim.rendering_taxonomy])
    for number, line in enumerate(claim.lines, start=1):
        segs.append(["LX", str(number)])
        segs.append(
            [
                "SV1",
                ["HC", line.procedure, *line.modifiers],
                line.charge,
                "UN",
                line.units,
                line.place or "",
                "",
                list(line.pointers),
            ]
        )
        if line.end_date:
            segs.append(["DTP", "472", "RD8", f"{line.date}-{line.end_date}"])
        else:
            segs.append(["DTP", "472", "D8", line.date])
        if line.rendering:
            segs.append(["NM1", "82", "1", "JONES", "LEE", "", "", "", "XX", line.rendering])
            if line.rendering_taxonomy:
                segs.append(["PRV", "PE", "PXC", line.rendering_taxonomy])
    return segs


def _sum(values: Any) -> str:
    from decimal import Decimal

    return format(sum((Decimal(v) for v in values), Decimal(0)).normalize(), "f")


def isa(
    control: str,
    sep: Separators,
    sender: str = "SUBMITTER01",
    receiver: str = "RECEIVER01",
    version: str = "00501",
) -> str:
    e = sep.element
    fields = [
        "ISA",
        "00",
        " " * 10,
        "00",
        " " * 10,
        "ZZ",
        f"{sender:<15}",
        "ZZ",
        f"{receiver:<15}",
        "240315",
        "1200",
        sep.repetition,
        version,
        control,
        "0",
        "T",
        sep.component,
    ]
    return e.join(fields) + sep.segment


def render(
    groups: list[tuple[str, list[list[Segment]]]],
    control: str = "000000101",
    sep: Separators = Separators(),
    functional: tuple[str, str] = ("HC", "005010X222A1"),
    iea_count: int | None = None,
    ge_count: int | None = None,
    truncate_after: int | None = None,
) -> bytes:
    """An interchange with these groups (GS06, transaction sets) written with ``sep``."""
    out = [isa(control, sep) + sep.newline]
    for gs_control, sets in groups:
        segs: list[Segment] = [
            [
                "GS",
                functional[0],
                "SUBMITTER01",
                "RECEIVER01",
                "20240315",
                "1200",
                gs_control,
                "X",
                functional[1],
            ]
        ]
        for ts in sets:
            segs += ts
        segs.append(["GE", str(len(sets) if ge_count is None else ge_count), gs_control])
        out += [_segment(s, sep) for s in segs]
    out.append(
        _segment(["IEA", str(len(groups) if iea_count is None else iea_count), control], sep)
    )
    text = "".join(out)
    if truncate_after is not None:
        text = text[:truncate_after]
    return text.encode("ascii")


def _segment(seg: Segment, sep: Separators) -> str:
    parts = [sep.component.join(e) if isinstance(e, list) else e for e in seg]
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return sep.element.join(parts) + sep.segment + sep.newline


def simple(claims: list[Claim] | None = None, **subscriber: Any) -> list[Segment]:
    """One transaction set, one billing provider, one subscriber with these claims."""
    return transaction_set(
        "0001", [Provider(subscribers=[Subscriber(claims=claims or [Claim()], **subscriber)])]
    )
