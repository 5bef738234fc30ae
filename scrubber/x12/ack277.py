"""The 277CA (005010X214): each claim's verdict, sent back to the submitter of the 837.

pyx12 has the 277CA's map (it validates one, see the tests) but no writer for it, so the
segments are composed here and written with pyx12's ``X12Writer``, which counts SE01, GE01 and
IEA01 itself.

Structure, as X214 prescribes: one 277CA transaction set per 837 transaction set (the guide ties
them one to one, and its 2200B TRN02 echoes the 837's BHT03), grouped in one interchange per
submitter; under it the information source (2000A, the scrubber as a clearinghouse, ``AY``),
the information receiver (2000B, the 837's submitter), one 2000C per billing provider and one
2000D per claim, with its claim status (2200D) and, for a rejected claim, one 2220D per line
that caused the rejection.

Status codes (category code list 507, status code list 508; the choices are the README's):

- accepted claim: ``A2:20`` (acknowledgement/acceptance into adjudication system; accepted for
  processing), action ``WQ``;
- rejected claim (any line flagged): ``A3:21`` (returned as unprocessable; missing or invalid
  information) with up to two more composites (STC10, STC11) naming what, ``A7:<code>``, action
  ``U``, and STC12 listing the line numbers and rule ids (no claim data);
- a flagged line: ``A7:<code>`` (rejected for invalid information), one composite per kind of
  finding (up to three), action ``U``;
- 2200B and 2200C (the unit of work and each billing provider): ``A1:19:AY`` (receipt
  acknowledged by the clearinghouse) with the counts and amounts accepted and rejected.

X214 has no "accepted with warnings" (X12 RFI 2203): a line flagged by a warning is rejected
here too, as the outcome ``flagged`` says.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import pyx12.segment
import pyx12.x12file

from scrubber.contracts import Category, ClaimResult, Outcome
from scrubber.x12.mapping import ClaimEcho, Envelope, LineEcho, Party

VERSION = "005010X214"
ACCEPTED = ("A2", "20", None)
REJECTED = ("A3", "21", None)
RECEIVED = ("A1", "19", "AY")
LINE_CATEGORY = "A7"
#: Health Care Claim Status Codes (list 508) per finding category, with an entity code where the
#: status code requires one (1P: provider). The code/modifier/diagnosis/date/duplicate codes
#: name the element in question; units, add-on and global-period findings are about the
#: procedure as billed, so they point at the procedure code too (a convention: 508 has no code
#: for them that fits better).
STATUS_BY_CATEGORY: dict[Category, tuple[str, str | None]] = {
    Category.CODE: ("454", None),
    Category.MODIFIER: ("453", None),
    Category.UNITS: ("454", None),
    Category.ADD_ON: ("454", None),
    Category.GLOBAL_PERIOD: ("454", None),
    Category.DIAGNOSIS: ("255", None),
    Category.DATE: ("187", None),
    Category.DUPLICATE: ("54", None),
    Category.PROVIDER: ("562", "1P"),
    Category.NCCI_PTP: ("454", None),  # the column 2 procedure as billed with its column 1
    # The patient's earlier lines could not be considered: nothing in the line is named as
    # wrong, so the generic "missing or invalid information" (21).
    Category.HISTORY: ("21", None),
}
#: A provider finding about the taxonomy rather than the NPI.
TAXONOMY_RULES = {"provider.taxonomy_malformed": ("145", "1P")}

Composite = tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class ClaimAck:
    """A claim's latest verdict with what the 277CA must echo of its 837 claim."""

    result: ClaimResult
    echo: ClaimEcho


RuleLookup = Callable[[str], tuple[Category, bool] | None]
"""rule id -> (category, flags the line); None for an unknown rule id."""


def catalogue_lookup(rule_id: str) -> tuple[Category, bool] | None:
    """The engine's rule catalogue: a rule's category and whether it flags (error, warning)."""
    from scrubber.contracts import Severity
    from scrubber.rules.library import default_engine

    try:
        rule = default_engine().rule(rule_id)
    except KeyError:
        return None
    return rule.category, rule.severity is not Severity.INFO


def line_statuses(
    rule_ids: Iterable[str], lookup: RuleLookup = catalogue_lookup
) -> list[Composite]:
    """The A7 status composites of a flagged line, one per distinct status code, in rule order."""
    out: list[Composite] = []
    for rule_id in rule_ids:
        found = lookup(rule_id)
        if found is None or not found[1]:
            continue
        code, entity = TAXONOMY_RULES.get(rule_id) or STATUS_BY_CATEGORY[found[0]]
        composite = (LINE_CATEGORY, code, entity)
        if composite not in out:
            out.append(composite)
    return out or [(LINE_CATEGORY, "21", None)]


def render_277ca(
    acks: Sequence[ClaimAck],
    now: datetime,
    control_number: int = 1,
    lookup: RuleLookup = catalogue_lookup,
) -> bytes:
    """277CA interchanges for the given claims: one per submitter, one set per 837 set.

    ``control_number`` is the ISA13 of the first interchange (the next ones count up from it);
    the scrubber keeps no sequence of its own, so the caller supplies it. Claims keep their order
    within a transaction set; sets and interchanges follow the order their first claim has.
    """
    by_envelope: dict[Envelope, dict[tuple[str, str, str], list[ClaimAck]]] = {}
    for ack in acks:
        trace = ack.echo.trace
        key = (trace.interchange_control, trace.group_control, trace.transaction_set_control)
        by_envelope.setdefault(ack.echo.envelope, {}).setdefault(key, []).append(ack)
    out = io.StringIO()
    for number, (envelope, sets) in enumerate(by_envelope.items(), start=control_number):
        _interchange(out, envelope, list(sets.values()), number, now, lookup)
    return out.getvalue().encode("ascii", "replace")


def _seg(text: str) -> pyx12.segment.Segment:
    return pyx12.segment.Segment(text, "~", "*", ":")


def _set(segment: pyx12.segment.Segment, values: Mapping[str, str | None]) -> pyx12.segment.Segment:
    for ref, value in values.items():
        if value:
            segment.set(ref, value)
    return segment


def _interchange(
    out: io.StringIO,
    envelope: Envelope,
    sets: list[list[ClaimAck]],
    number: int,
    now: datetime,
    lookup: RuleLookup,
) -> None:
    writer = pyx12.x12file.X12Writer(out, "~", "*", ":", "\n", "^")
    control = f"{number % 1_000_000_000:09d}"
    isa = _seg("ISA*00*          *00*          ")
    _set(
        isa,
        {
            "05": envelope.receiver_qualifier or "ZZ",
            "06": f"{envelope.receiver:<15}"[:15],
            "07": envelope.sender_qualifier or "ZZ",
            "08": f"{envelope.sender:<15}"[:15],
            "09": now.strftime("%y%m%d"),
            "10": now.strftime("%H%M"),
            "11": "^",
            "12": "00501",
            "13": control,
            "14": "0",
            "15": envelope.usage,
            "16": ":",
        },
    )
    writer.Write(isa)
    gs = _seg("GS")
    _set(
        gs,
        {
            "01": "HN",
            "02": envelope.group_receiver,
            "03": envelope.group_sender,
            "04": now.strftime("%Y%m%d"),
            "05": now.strftime("%H%M"),
            "06": str(number % 1_000_000_000 or 1),
            "07": "X",
            "08": VERSION,
        },
    )
    writer.Write(gs)
    for index, claims in enumerate(sets, start=1):
        for segment in _transaction_set(claims, index, now, lookup):
            writer.Write(segment)
    writer.Write(_seg("GE"))
    writer.Write(_seg("IEA"))
    writer.close()


def _transaction_set(
    claims: list[ClaimAck], index: int, now: datetime, lookup: RuleLookup
) -> list[pyx12.segment.Segment]:
    first = claims[0].echo
    day = now.strftime("%Y%m%d")
    reference = f"{first.trace.interchange_control}{first.trace.transaction_set_control}"[:50]
    segs = [
        _set(_seg("ST"), {"01": "277", "02": f"{index:04d}", "03": VERSION}),
        _set(
            _seg("BHT"),
            {
                "01": "0085",
                "02": "08",
                "03": reference,
                "04": day,
                "05": now.strftime("%H%M"),
                "06": "TH",
            },
        ),
    ]
    hl = 1
    segs.append(_set(_seg("HL"), {"01": str(hl), "03": "20", "04": "1"}))
    source = first.receiver
    segs.append(_nm1("AY", source, default_qualifier="46"))
    segs.append(_set(_seg("TRN"), {"01": "1", "02": reference}))
    segs.append(_set(_seg("DTP"), {"01": "050", "02": "D8", "03": day}))
    segs.append(_set(_seg("DTP"), {"01": "009", "02": "D8", "03": day}))
    hl += 1
    receiver_hl = hl
    segs.append(_set(_seg("HL"), {"01": str(hl), "02": "1", "03": "21", "04": "1"}))
    segs.append(_nm1("41", first.submitter, default_qualifier="46", qualifier="46"))
    segs.append(_set(_seg("TRN"), {"01": "2", "02": first.batch or reference}))
    segs.extend(_totals(claims, day, ("90", "AA")))
    providers: dict[Party, list[ClaimAck]] = {}
    for ack in claims:
        providers.setdefault(ack.echo.billing, []).append(ack)
    for party, provider_claims in providers.items():
        hl += 1
        provider_hl = hl
        segs.append(
            _set(_seg("HL"), {"01": str(hl), "02": str(receiver_hl), "03": "19", "04": "1"})
        )
        segs.append(_nm1("85", party, default_qualifier="XX"))
        segs.append(_set(_seg("TRN"), {"01": "1", "02": "0"}))
        segs.extend(_totals(provider_claims, None, ("QA", "QC")))
        for ack in provider_claims:
            hl += 1
            segs.append(_set(_seg("HL"), {"01": str(hl), "02": str(provider_hl), "03": "PT"}))
            segs.extend(_claim(ack, day, lookup))
    segs.append(_seg("SE"))
    return segs


def _nm1(
    entity: str, party: Party, *, default_qualifier: str, qualifier: str | None = None
) -> pyx12.segment.Segment:
    return _set(
        _seg("NM1"),
        {
            "01": entity,
            "02": party.entity_type or "2",
            "03": party.last_name or "UNKNOWN",
            "04": party.first_name if party.entity_type == "1" else None,
            "08": qualifier or party.id_qualifier or default_qualifier,
            "09": party.identifier or "0",
        },
    )


def _amount(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text not in ("-0", "") else "0"


def _charges(claims: Iterable[ClaimAck]) -> Decimal:
    return sum((Decimal(a.echo.charge) for a in claims), Decimal(0))


def _totals(
    claims: list[ClaimAck], day: str | None, qty: tuple[str, str]
) -> list[pyx12.segment.Segment]:
    """The STC of a unit of work or a provider, then its accepted/rejected counts and amounts.

    The provider level (2200C) has no STC02 in X214, so ``day`` is None there.
    """
    accepted = [a for a in claims if a.result.outcome is Outcome.ACCEPTED]
    rejected = [a for a in claims if a.result.outcome is not Outcome.ACCEPTED]
    segs = [_stc(RECEIVED, [], day, "WQ", _amount(_charges(claims)))]
    if accepted:
        segs.append(_set(_seg("QTY"), {"01": qty[0], "02": str(len(accepted))}))
    if rejected:
        segs.append(_set(_seg("QTY"), {"01": qty[1], "02": str(len(rejected))}))
    if accepted:
        segs.append(_set(_seg("AMT"), {"01": "YU", "02": _amount(_charges(accepted))}))
    if rejected:
        segs.append(_set(_seg("AMT"), {"01": "YY", "02": _amount(_charges(rejected))}))
    return segs


def _composite(status: Composite) -> str:
    return ":".join(part for part in status if part)


def _stc(
    first: Composite,
    more: list[Composite],
    day: str | None,
    action: str,
    amount: str | None,
    message: str | None = None,
) -> pyx12.segment.Segment:
    stc = _seg("STC")
    stc.set("01", _composite(first))
    if day is not None:
        stc.set("02", day)
    stc.set("03", action)
    if amount is not None:
        stc.set("04", amount)
    for ref, status in zip(("10", "11"), more[:2], strict=False):
        stc.set(ref, _composite(status))
    if message:
        stc.set("12", message[:264])
    return stc


def _dates(first: date, last: date) -> dict[str, str]:
    if first == last:
        return {"01": "472", "02": "D8", "03": first.strftime("%Y%m%d")}
    return {"01": "472", "02": "RD8", "03": f"{first:%Y%m%d}-{last:%Y%m%d}"}


def _claim(ack: ClaimAck, day: str, lookup: RuleLookup) -> list[pyx12.segment.Segment]:
    echo, result = ack.echo, ack.result
    patient = Party("1", echo.patient.last_name, echo.patient.first_name, "MI", echo.member_id)
    segs = [_nm1("QC", patient, default_qualifier="MI", qualifier="MI")]
    segs.append(_set(_seg("TRN"), {"01": "2", "02": echo.claim_id}))
    flagged = [s for s in result.lines if s.outcome is not Outcome.ACCEPTED]
    charge = _amount(Decimal(echo.charge))
    if not flagged:
        segs.append(_stc(ACCEPTED, [], day, "WQ", charge))
    else:
        details: list[Composite] = []
        for status in flagged:
            for composite in line_statuses(status.rule_ids, lookup):
                if composite not in details:
                    details.append(composite)
        # Line numbers and rule ids only; no ':' (the component separator of the 277CA).
        message = "; ".join(
            f"line {s.line_id.rsplit(':', 1)[-1]} {' '.join(s.rule_ids) or 'flagged'}"
            for s in flagged
        )
        segs.append(_stc(REJECTED, details, day, "U", charge, message))
    segs.append(_set(_seg("DTP"), _dates(echo.service_from, echo.service_to)))
    lines = {line.line_number: line for line in echo.lines}
    for status in flagged:
        line = lines.get(int(status.line_id.rsplit(":", 1)[-1]))
        if line is None:
            continue
        composites = line_statuses(status.rule_ids, lookup)
        segs.append(_svc(line))
        segs.append(_stc(composites[0], composites[1:], day, "U", None))
        segs.append(_set(_seg("DTP"), _dates(line.service_from, line.service_to)))
    return segs


def _svc(line: LineEcho) -> pyx12.segment.Segment:
    svc = _seg("SVC")
    svc.set("01-1", line.procedure_qualifier)
    svc.set("01-2", line.procedure)
    for offset, modifier in enumerate(line.modifiers[:4], start=3):
        svc.set(f"01-{offset}", modifier)
    svc.set("02", _amount(Decimal(line.charge)))
    if line.units:
        svc.set("07", line.units)
    return svc
