"""837P (005010X222A1) loops to claim lines (contract v1), one per SV1 service line.

The validator has already checked the transaction set against the implementation guide; this
module only reads it. Its rules are the README's mapping table:

- claim id CLM01, line number LX01, payer NM109 of 2010BB, member id NM109 of 2010BA;
- birth date and sex from the DMG of the patient: 2010CA when the claim sits under a patient
  loop (2000C), else 2010BA (the subscriber is the patient);
- rendering NPI from 2420A, else 2310B, else the billing provider (2010AA), with the taxonomy
  (PRV03) of the same loop (2000A's PRV*BI for the billing provider);
- billing NPI and tax id (REF*EI) from 2010AA;
- service date from DTP*472 of the line (D8, or the first date of an RD8 range);
- place of service SV105, else CLM05-1;
- procedure SV101-2, modifiers SV101-3..6, units SV104, charge SV102;
- diagnosis codes from the HI of the claim (ABK principal, then ABF, in HI order), taken in the
  order of the line's SV107 pointers (SV107-1 is the line's first-listed diagnosis);
- claim_line_count = the number of 2400 loops of the claim; x12 = ISA13, GS06, ST02.

Every line is serialised and read back with the contract (``ClaimLine.model_validate_json``)
before it is kept: a value the guide allows but the contract does not (a member id longer than
64 characters, a charge with three decimals) becomes a ``MappingError`` that names the segment
and element, the whole set is rejected in the 999, and nothing unreadable is ever published.

The module also keeps what a 277CA must echo back of the 837 (``ClaimEcho``): names, the
submitter's batch number, charges. Those never go into a claim line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from pydantic import ValidationError

from scrubber.contracts import ClaimLine, X12Claim, X12Party, X12Trace
from scrubber.x12.validator import Loop, MappingError, SegmentRef, TransactionSet

#: HI qualifiers of ICD-10-CM diagnoses: ABK principal, ABF other (837P 2300 HI).
PRINCIPAL_DIAGNOSIS = "ABK"
OTHER_DIAGNOSIS = "ABF"


@dataclass(frozen=True, slots=True)
class Party:
    """A name and identifier the 277CA echoes (NM1 of the 837)."""

    entity_type: str
    """NM102: 1 person, 2 organisation."""
    last_name: str
    first_name: str | None
    id_qualifier: str | None
    identifier: str | None


@dataclass(frozen=True, slots=True)
class LineEcho:
    """What a 277CA's 2220D echoes of a service line."""

    line_number: int
    procedure_qualifier: str
    procedure: str
    modifiers: tuple[str, ...]
    charge: str
    units: str | None
    service_from: date
    service_to: date


@dataclass(frozen=True, slots=True)
class Envelope:
    """The addresses of the 837's interchange and group, which a 277CA sends back swapped."""

    sender_qualifier: str
    sender: str
    receiver_qualifier: str
    receiver: str
    usage: str
    """ISA15: P production, T test."""
    group_sender: str
    group_receiver: str


@dataclass(frozen=True, slots=True)
class ClaimEcho:
    """What a 277CA echoes of a claim and of the transaction set it came in.

    Holds PHI (names, member id): it lives in memory for the 277CA and is never logged.
    """

    claim_id: str
    charge: str
    patient: Party
    member_id: str
    billing: Party
    submitter: Party
    receiver: Party
    batch: str
    """BHT03 of the 837: the 277CA's 2200B TRN02."""
    trace: X12Trace
    envelope: Envelope
    lines: tuple[LineEcho, ...]

    @property
    def service_from(self) -> date:
        """The first date of service of the claim."""
        return min(line.service_from for line in self.lines)

    @property
    def service_to(self) -> date:
        """The last date of service of the claim."""
        return max(line.service_to for line in self.lines)


@dataclass(frozen=True, slots=True)
class MappedLine:
    """A claim line as it is published: its key (member id) and its JSON value."""

    member_id: str
    value: bytes
    line: ClaimLine


@dataclass(slots=True)
class MappedSet:
    """The claim lines and echoes of one transaction set, or the errors that stop it."""

    lines: list[MappedLine] = field(default_factory=list)
    claims: list[ClaimEcho] = field(default_factory=list)
    errors: list[MappingError] = field(default_factory=list)


class _Refused(Exception):  # noqa: N818 - a control-flow signal, not an error to report as such
    """An element the claim line cannot take; carries where it is (never its value)."""

    def __init__(
        self, ref: SegmentRef, element: int | None, component: int | None, code: str
    ) -> None:
        super().__init__(ref.segment.get_seg_id())
        self.error = MappingError(
            position=ref.position,
            segment_id=ref.segment.get_seg_id() or "",
            element=element,
            component=component,
            element_ref=None if element is None else element_ref(ref.node, element, component),
            code=code,
        )


class _MissingError(LookupError):
    """A segment or loop the guide requires is absent (the validator should have said so)."""


def element_ref(node: Any, element: int, component: int | None) -> str | None:
    """The data element reference number (IK402) of an element or component, from the map."""
    el = node.get_child_node_by_ordinal(element)
    if el is None:
        return None
    if component is not None and el.is_composite():
        sub = next((c for c in el.children if c.seq == component), None)
        return str(sub.data_ele) if sub is not None else None
    return str(el.data_ele) if el.data_ele else None


Source = tuple[SegmentRef, int, int | None]
"""Where a claim-line field was read: segment, element position, component position."""


def envelope_of(ts: TransactionSet) -> Envelope:
    """The interchange and group addresses of a transaction set."""
    isa = ts.group.interchange.isa
    gs = ts.group.node.seg_data

    def get(segment: Any, ref: str) -> str:
        return ((segment.get_value(ref) if segment is not None else None) or "").strip()

    return Envelope(
        sender_qualifier=get(isa, "ISA05"),
        sender=get(isa, "ISA06"),
        receiver_qualifier=get(isa, "ISA07"),
        receiver=get(isa, "ISA08"),
        usage=get(isa, "ISA15") or "P",
        group_sender=get(gs, "GS02"),
        group_receiver=get(gs, "GS03"),
    )


def map_transaction_set(ts: TransactionSet, interchange_control: str) -> MappedSet:
    """The claim lines of a valid 837P transaction set, in document order, or its errors."""
    out = MappedSet()
    envelope = envelope_of(ts)
    trace = X12Trace(
        interchange_control=interchange_control,
        group_control=ts.group.control,
        transaction_set_control=ts.control,
    )
    header = ts.root.child("HEADER")
    detail = ts.root.child("DETAIL")
    if header is None or detail is None:  # the guide requires both; the validator said so
        return out
    bht = header.segment("BHT")
    submitter = _party(header.child("1000A"))
    receiver = _party(header.child("1000B"))
    batch = (bht.value("BHT03") if bht else None) or ""
    shared = {
        "submitter": _party_doc(submitter),
        "receiver": _party_doc(receiver),
        "batch": batch,
        "envelope": asdict(envelope),
    }
    try:
        for provider in detail.loops("2000A"):
            for claim, subscriber, patient in _claims(provider):
                first = len(out.lines)
                try:
                    _claim(claim, provider, subscriber, patient, trace, shared, out.lines)
                except _MissingError:
                    # IK304 3: required segment missing, reported at the claim's CLM.
                    raise _Refused(claim.segments[0], None, None, "3") from None
                echo = echo_from_lines([m.line for m in out.lines[first:]])
                if echo is not None:
                    out.claims.append(echo)
    except _Refused as refused:
        return MappedSet(errors=[refused.error])
    return out


def _claims(provider: Loop) -> list[tuple[Loop, Loop, Loop | None]]:
    """Every claim under a billing provider with its subscriber and patient loops, in order."""
    found: list[tuple[int, Loop, Loop, Loop | None]] = []
    for subscriber in provider.loops("2000B"):
        for claim in subscriber.loops("2300"):
            found.append((claim.segments[0].position, claim, subscriber, None))
        for patient in subscriber.loops("2000C"):
            for claim in patient.loops("2300"):
                found.append((claim.segments[0].position, claim, subscriber, patient))
    return [(c, s, p) for _pos, c, s, p in sorted(found, key=lambda f: f[0])]


def _claim(
    claim: Loop,
    provider: Loop,
    subscriber: Loop,
    patient: Loop | None,
    trace: X12Trace,
    shared: dict[str, Any],
    out: list[MappedLine],
) -> None:
    """Append the claim's lines to ``out``; each carries what a 277CA echoes of the claim."""
    clm = _required(claim.segment("CLM"))
    billing_nm1 = _required(_loop(provider, "2010AA").segment("NM1"))
    billing_ref = _loop(provider, "2010AA").segment("REF", "EI")
    billing_prv = provider.segment("PRV", "BI")
    subscriber_nm1 = _required(_loop(subscriber, "2010BA").segment("NM1"))
    payer_nm1 = _required(_loop(subscriber, "2010BB").segment("NM1"))
    patient_loop = _loop(patient, "2010CA") if patient is not None else _loop(subscriber, "2010BA")
    dmg = patient_loop.segment("DMG")
    diagnoses = _diagnoses(claim)
    rendering_claim = claim.child("2310B")
    services = claim.loops("2400")

    fields: dict[str, Source] = {}
    claim_id = _text(clm, 1, None, fields, "claim_id")
    payer_id = _text(payer_nm1, 9, None, fields, "payer_id")
    member_id = _text(subscriber_nm1, 9, None, fields, "patient.member_id")
    patient_doc: dict[str, Any] = {"member_id": member_id}
    if dmg is not None:
        born = dmg.value("DMG02")
        if born is not None:
            patient_doc["birth_date"] = _date(dmg, 2, born).isoformat()
            fields["patient.birth_date"] = (dmg, 2, None)
        sex = dmg.value("DMG03")
        if sex is not None:
            patient_doc["sex"] = sex
            fields["patient.sex"] = (dmg, 3, None)
    billing_doc: dict[str, Any] = {
        "npi": _text(billing_nm1, 9, None, fields, "billing_provider.npi")
    }
    if billing_ref is not None:
        billing_doc["tax_id"] = _text(billing_ref, 2, None, fields, "billing_provider.tax_id")
    claim_place = clm.value("CLM05-1")
    claim_echo = {
        "charge": clm.value("CLM02") or "0",
        "patient": _party_doc(_party_of(_required(patient_loop.segment("NM1")))),
        "billing": _party_doc(_party_of(billing_nm1)),
        **shared,
    }

    for service in services:
        lx = _required(service.segment("LX"))
        sv1 = _required(service.segment("SV1"))
        dtp = _required(service.segment("DTP", "472"))
        own = dict(fields)
        line_number = _int(lx, 1, own, "line_number")
        rendering_doc = _rendering(
            service.child("2420A"), rendering_claim, billing_nm1, billing_prv, own
        )
        start, end = _service_dates(dtp)
        own["service_date"] = (dtp, 3, None)
        place = sv1.value("SV105")
        if place is not None:
            own["place_of_service"] = (sv1, 5, None)
        elif claim_place is not None:
            own["place_of_service"] = (clm, 5, 1)
            place = claim_place
        modifiers = [m for m in (sv1.value(f"SV101-{i}") for i in range(3, 7)) if m is not None]
        own["modifiers"] = (sv1, 1, 3)
        units_text = sv1.value("SV104")
        doc: dict[str, Any] = {
            "claim_id": claim_id,
            "line_number": line_number,
            "payer_id": payer_id,
            "patient": patient_doc,
            "rendering_provider": rendering_doc,
            "billing_provider": billing_doc,
            "service_date": start.isoformat(),
            "place_of_service": place,
            "procedure_code": _text(sv1, 1, 2, own, "procedure_code"),
            "modifiers": modifiers,
            "units": _units(sv1, units_text, own),
            "charge": _text(sv1, 2, None, own, "charge"),
            "diagnosis_codes": _pointed(sv1, diagnoses, own),
            "claim_line_count": len(services),
            "x12": {
                "interchange_control": trace.interchange_control,
                "group_control": trace.group_control,
                "transaction_set_control": trace.transaction_set_control,
                "service_to": end.isoformat(),
                "procedure_qualifier": sv1.value("SV101-1") or "HC",
                "units_text": units_text,
                "claim": claim_echo,
            },
        }
        if place is None:
            del doc["place_of_service"]
        value = orjson.dumps(doc)
        try:
            line = ClaimLine.model_validate_json(value)
        except ValidationError as exc:
            raise _contract_error(exc, own, sv1) from None
        out.append(MappedLine(line.patient.member_id, value, line))


def _rendering(
    line_loop: Loop | None,
    claim_loop: Loop | None,
    billing_nm1: SegmentRef,
    billing_prv: SegmentRef | None,
    fields: dict[str, Source],
) -> dict[str, Any]:
    """The rendering provider: 2420A, else 2310B, else the billing provider."""
    for loop in (line_loop, claim_loop):
        if loop is not None:
            nm1 = loop.segment("NM1")
            if nm1 is not None and nm1.value("NM109") is not None:
                doc: dict[str, Any] = {"npi": _text(nm1, 9, None, fields, "rendering_provider.npi")}
                prv = loop.segment("PRV")
                if prv is not None and prv.value("PRV03") is not None:
                    doc["taxonomy"] = _text(prv, 3, None, fields, "rendering_provider.taxonomy")
                return doc
    doc = {"npi": _text(billing_nm1, 9, None, fields, "rendering_provider.npi")}
    if billing_prv is not None and billing_prv.value("PRV03") is not None:
        doc["taxonomy"] = _text(billing_prv, 3, None, fields, "rendering_provider.taxonomy")
    return doc


def _diagnoses(claim: Loop) -> list[tuple[SegmentRef, int, str]]:
    """The claim's ICD-10-CM diagnoses in pointer order: ABK first, then every ABF."""
    principal: list[tuple[SegmentRef, int, str]] = []
    others: list[tuple[SegmentRef, int, str]] = []
    for hi in claim.all("HI"):
        for position in range(1, 13):
            qualifier = hi.value(f"HI{position:02d}-1")
            code = hi.value(f"HI{position:02d}-2")
            if code is None:
                continue
            if qualifier == PRINCIPAL_DIAGNOSIS:
                principal.append((hi, position, code))
            elif qualifier == OTHER_DIAGNOSIS:
                others.append((hi, position, code))
    return principal + others


def _pointed(
    sv1: SegmentRef, diagnoses: list[tuple[SegmentRef, int, str]], fields: dict[str, Source]
) -> list[str]:
    """The diagnosis codes the line points at (SV107-1..4), in pointer order."""
    codes: list[str] = []
    for component in range(1, 5):
        pointer = sv1.value(f"SV107-{component}")
        if pointer is None:
            continue
        if not pointer.isdigit() or not 1 <= int(pointer) <= len(diagnoses):
            raise _Refused(sv1, 7, component, "7")  # IK403 7: invalid code value
        ref, position, code = diagnoses[int(pointer) - 1]
        fields[f"diagnosis_codes.{len(codes)}"] = (ref, position, 2)
        codes.append(code)
    fields["diagnosis_codes"] = (sv1, 7, 1)
    return codes


def _units(sv1: SegmentRef, text: str | None, fields: dict[str, Source]) -> float | None:
    fields["units"] = (sv1, 4, None)
    if text is None:
        return None
    try:
        return float(Decimal(text))
    except InvalidOperation:
        raise _Refused(sv1, 4, None, "6") from None  # IK403 6: invalid character in data element


def _service_dates(dtp: SegmentRef) -> tuple[date, date]:
    """DTP*472: a D8 date, or both ends of an RD8 range."""
    text = dtp.value("DTP03") or ""
    if dtp.value("DTP02") == "RD8":
        first, _, last = text.partition("-")
        return _date(dtp, 3, first), _date(dtp, 3, last)
    day = _date(dtp, 3, text)
    return day, day


def _date(ref: SegmentRef, element: int, text: str) -> date:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise _Refused(ref, element, None, "8") from None  # IK403 8: invalid date


def _text(
    ref: SegmentRef, element: int, component: int | None, fields: dict[str, Source], name: str
) -> str:
    fields[name] = (ref, element, component)
    designator = f"{element:02d}" if component is None else f"{element:02d}-{component}"
    value = ref.value(designator)
    if value is None:
        raise _Refused(ref, element, component, "1")  # IK403 1: mandatory element missing
    return value


def _int(ref: SegmentRef, element: int, fields: dict[str, Source], name: str) -> int:
    text = _text(ref, element, None, fields, name)
    if not text.isdigit():
        raise _Refused(ref, element, None, "6")
    return int(text)


def _required(ref: SegmentRef | None) -> SegmentRef:
    if ref is None:  # the validator rejects a set that lacks a required segment
        raise _MissingError("segment")
    return ref


def _loop(parent: Loop | None, loop_id: str) -> Loop:
    loop = parent.child(loop_id) if parent is not None else None
    if loop is None:
        raise _MissingError(loop_id)
    return loop


def _party(loop: Loop | None) -> Party:
    nm1 = loop.segment("NM1") if loop is not None else None
    if nm1 is None:
        return Party("2", "", None, None, None)
    return _party_of(nm1)


def _party_doc(party: Party) -> dict[str, Any]:
    return {k: v for k, v in asdict(party).items() if v is not None}


def echo_from_lines(lines: Sequence[ClaimLine], claim: X12Claim | None = None) -> ClaimEcho | None:
    """What a 277CA echoes of a claim, from its lines as they were mapped from the 837.

    The one way an echo is made: the offline scrub and the worker both have a claim's lines
    (the worker in its claim assembly), not the 837. The claim's part (``x12.claim``) is
    ``claim`` when given (the assembly keeps it once per claim), else the first line's that
    has it. None without one (lines that did not come from an 837).
    """
    first = next((x for x in lines if x.x12 is not None), None)
    if claim is None:
        claim = next((x.x12.claim for x in lines if x.x12 is not None and x.x12.claim), None)
    if first is None or first.x12 is None or claim is None:
        return None

    def party(p: X12Party) -> Party:
        return Party(p.entity_type, p.last_name, p.first_name, p.id_qualifier, p.identifier)

    def line_echo(line: ClaimLine) -> LineEcho:
        x12 = line.x12
        return LineEcho(
            line_number=line.line_number,
            procedure_qualifier=(x12.procedure_qualifier if x12 else None) or "HC",
            procedure=line.procedure_code,
            modifiers=tuple(line.modifiers),
            charge=str(line.charge),
            units=x12.units_text if x12 else None,
            service_from=line.service_date,
            service_to=(x12.service_to if x12 else None) or line.service_date,
        )

    return ClaimEcho(
        claim_id=first.claim_id,
        charge=claim.charge,
        patient=party(claim.patient),
        member_id=first.patient.member_id,
        billing=party(claim.billing),
        submitter=party(claim.submitter),
        receiver=party(claim.receiver),
        batch=claim.batch,
        trace=first.x12.controls(),
        envelope=Envelope(**claim.envelope.model_dump()),
        lines=tuple(line_echo(x) for x in sorted(lines, key=lambda x: x.line_number)),
    )


def _party_of(nm1: SegmentRef) -> Party:
    return Party(
        entity_type=nm1.value("NM102") or "2",
        last_name=nm1.value("NM103") or "",
        first_name=nm1.value("NM104"),
        id_qualifier=nm1.value("NM108"),
        identifier=nm1.value("NM109"),
    )


def _contract_error(exc: ValidationError, fields: dict[str, Source], sv1: SegmentRef) -> _Refused:
    """Where the first contract error came from, as IK403 I12 (implementation pattern match).

    The value is valid X12 but outside what a claim line may hold.
    """
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    loc = [str(p) for p in first["loc"]]
    for size in range(len(loc), 0, -1):
        source = fields.get(".".join(loc[:size]))
        if source is not None:
            ref, element, component = source
            return _Refused(ref, element, component, "I12")
    return _Refused(sv1, 1, None, "I12")
