"""Acknowledgements of received interchanges: 999 (005010X231A1), TA1, and reject records.

The 999 is pyx12's: its ``error_999_visitor`` walks the validator's error tree and writes the
AK1/AK2/IK3/IK4/IK5/AK9 segments. Four of its choices are replaced, by overriding one method
each, because they do not fit a service that must give the same answer twice:

- the header: pyx12 takes the date, the time and a random group control number from the clock
  and ``random``. Here the time is passed in, the 999's ISA13 echoes the acknowledged ISA13 and
  its GS06 is that number without leading zeros, so a redelivered interchange gets an
  acknowledgement with the same control numbers (a convention, stated in the README), and GS08
  names 005010X231A1, the guide followed, where pyx12 writes 005010X231;
- AK901: pyx12 writes R as soon as one set is rejected; X231 has P (partially accepted) for a
  group with sets accepted and rejected, and R only when no set is accepted;
- AK904 (sets accepted): 0 when the group itself is in error (GE01 count, control numbers), as
  then none of its sets is taken;
- the TA1: pyx12 puts it after the GE; a TA1 belongs right after the ISA, so the scrubber sends
  it as an interchange of its own (ISA, TA1, IEA), for a rejected interchange or when ISA14
  asks for one.

Errors the 837P mapping finds after the guide's validation (``MappingError``) are added to the
set's IK3/IK4 segments the same way pyx12 writes its own.

Reject records (``reject_records``) describe each rejected transaction set by control numbers,
segment positions, element positions and codes only: never a value from the input.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyx12.error_999
import pyx12.segment
import pyx12.x12file

from scrubber.x12 import codes
from scrubber.x12.envelope import Unframed
from scrubber.x12.validator import InterchangeReport, MappingError, TransactionSet

ACK_VERSION = "005010X231A1"
_ISA_ELEMENT_NOTES = {5: "005", 6: "006", 7: "007", 8: "008", 9: "014", 10: "015", 13: "018"}
_ISA_ELEMENT_NOTES |= {11: "016", 12: "017", 14: "019", 15: "020", 16: "027", 1: "010", 2: "011"}
_ISA_ELEMENT_NOTES |= {3: "012", 4: "013"}


@dataclass(frozen=True, slots=True)
class Ack:
    """The acknowledgement of one received interchange: a 999, a TA1 interchange, or both."""

    data: bytes
    kind: str
    """``999``, ``TA1``, or ``TA1+999``."""
    key: bytes = b""
    """The acknowledged interchange's sender (ISA06, trimmed): the record key on the ack topic,
    so that one submitter's acknowledgements stay in order."""


def ack_control(control: str) -> tuple[str, str]:
    """ISA13 and GS06 of the acknowledgement of an interchange with ISA13 ``control``."""
    digits = control.strip()
    if len(digits) != 9 or not digits.isdigit():
        digits = "000000001"
    return digits, str(int(digits) or 1)


def render_ack(report: InterchangeReport, now: datetime) -> Ack | None:
    """The 999 (and TA1 when asked for) of an interchange pyx12 could read.

    None when it had no functional group to acknowledge and no TA1 was asked for.
    """
    isa = report.isa
    if isa is None:
        return None
    key = (isa.get_value("ISA06") or "").strip().encode()
    if report.own_errors:
        return Ack(_ta1(isa, "R", interchange_note(report), now), "TA1", key)
    parts: list[bytes] = []
    if isa.get_value("ISA14") == "1":
        parts.append(_ta1(isa, "A", "000", now))
    if report.groups:
        parts.append(_render_999(report, now))
    if not parts:
        return None
    kind = "TA1+999" if len(parts) == 2 else ("999" if report.groups else "TA1")
    return Ack(b"".join(parts), kind, key)


def render_unframed_ack(piece: Unframed, now: datetime) -> Ack | None:
    """A TA1 rejecting bytes that did not form an interchange, when their ISA can address it."""
    if piece.header is None or piece.separators is None:
        return None
    s = piece.separators
    isa = pyx12.segment.Segment(
        piece.header.decode("latin-1")[:-1], s.segment, s.element, s.component
    )
    key = (isa.get_value("ISA06") or "").strip().encode()
    return Ack(_ta1(isa, "R", piece.note_code, now), "TA1", key)


def interchange_note(report: InterchangeReport) -> str:
    """The TA105 note code of an interchange rejected at its envelope."""
    node = report.node
    if report.failure is not None or node is None:
        return "024"
    found = [code for code, _text in node.errors]
    for element in node.elements:
        for _code, text, _value in element.errors:
            if "ISA" in text:
                found.append(_ISA_ELEMENT_NOTES.get(element.ele_pos, "024"))
            elif "IEA" in text:
                found.append("021" if element.ele_pos == 1 else "001")
    if not node.is_closed():
        found.append("023")
    return sorted(found)[0] if found else "024"


def _writer(buffer: io.StringIO) -> pyx12.x12file.X12Writer:
    return pyx12.x12file.X12Writer(buffer, "~", "*", ":", "\n", "^")


def _isa(source: pyx12.segment.Segment, control: str, now: datetime) -> pyx12.segment.Segment:
    """The acknowledgement's ISA: sender and receiver of the acknowledged one, swapped."""
    isa = pyx12.segment.Segment("ISA*00*          *00*          ", "~", "*", ":")
    isa.set("05", source.get_value("ISA07") or "ZZ")
    isa.set("06", source.get_value("ISA08") or "")
    isa.set("07", source.get_value("ISA05") or "ZZ")
    isa.set("08", source.get_value("ISA06") or "")
    isa.set("09", now.strftime("%y%m%d"))
    isa.set("10", now.strftime("%H%M"))
    isa.set("11", "^")
    isa.set("12", "00501")
    isa.set("13", control)
    isa.set("14", "0")
    isa.set("15", source.get_value("ISA15") or "P")
    isa.set("16", ":")
    return isa


def _ta1(source: pyx12.segment.Segment, code: str, note: str, now: datetime) -> bytes:
    buffer = io.StringIO()
    writer = _writer(buffer)
    control, _group = ack_control(source.get_value("ISA13") or "")
    writer.Write(_isa(source, control, now))
    ta1 = pyx12.segment.Segment("TA1", "~", "*", ":")
    ta1.append(source.get_value("ISA13") or "")
    ta1.append(source.get_value("ISA09") or "")
    ta1.append(source.get_value("ISA10") or "")
    ta1.append(code)
    ta1.append(note)
    writer.Write(ta1)
    writer.Write(pyx12.segment.Segment("IEA", "~", "*", ":"))
    writer.close()
    return buffer.getvalue().encode("ascii", "replace")


def _render_999(report: InterchangeReport, now: datetime) -> bytes:
    buffer = io.StringIO()
    visitor = _Visitor999(buffer, report, now)
    report.errh.accept(visitor)
    visitor.wr.close()
    return buffer.getvalue().encode("ascii", "replace")


class _Visitor999(pyx12.error_999.error_999_visitor):  # type: ignore[misc]
    """pyx12's 999 writer with a deterministic header and X231's AK9 and TA1 rules."""

    def __init__(self, fd: io.StringIO, report: InterchangeReport, now: datetime) -> None:
        super().__init__(fd)
        self.vriic = ACK_VERSION
        self.report = report
        self.now = now
        self.sets = {id(ts.node): ts for ts in report.sets}
        self.groups = {id(g.node): g for g in report.groups}

    def visit_root_pre(self, errh: Any) -> None:
        source = errh.cur_isa_node.seg_data
        self.isa_control_num, self.gs_control_num = ack_control(source.get_value("ISA13") or "")
        self.wr.Write(_isa(source, self.isa_control_num, self.now))
        first = self.report.groups[0].node.seg_data
        gs = pyx12.segment.Segment("GS", "~", "*", ":")
        gs.set("01", "FA")
        gs.set("02", (first.get_value("GS03") or "").rstrip())
        gs.set("03", (first.get_value("GS02") or "").rstrip())
        gs.set("04", self.now.strftime("%Y%m%d"))
        gs.set("05", self.now.strftime("%H%M%S"))
        gs.set("06", self.gs_control_num)
        gs.set("07", "X")
        gs.set("08", self.vriic)
        self.wr.Write(gs)

    def visit_root_post(self, errh: Any) -> None:
        ge = pyx12.segment.Segment("GE", "~", "*", ":")
        ge.set("02", self.gs_control_num or "")
        self.wr.Write(ge)
        self.wr.Write(pyx12.segment.Segment("IEA", "~", "*", ":"))

    def visit_gs_post(self, err_gs: Any) -> None:
        group = self.groups.get(id(err_gs))
        sets = group.sets if group is not None else []
        accepted = sum(1 for ts in sets if ts.accepted)
        if group is None or group.own_errors or accepted == 0:
            code = "R"
        elif accepted < len(sets):
            code = "P"
        else:
            code = "A"
        ak9 = pyx12.segment.Segment("AK9", "~", "*", ":")
        ak9.set("01", code)
        ak9.set("02", str(int(err_gs.st_count_orig or 0)))
        ak9.set("03", str(int(err_gs.st_count_recv or len(sets))))
        ak9.set("04", str(accepted))
        for error in group_errors(err_gs)[:5]:
            ak9.append(error)
        self.wr.Write(ak9)
        self.wr.Write(pyx12.segment.Segment(f"SE*0*{self.st_control_num:04d}", "~", "*", ":"))

    def visit_st_post(self, err_st: Any) -> None:
        ts = self.sets.get(id(err_st))
        if ts is not None and ts.mapping_errors and ts.valid:
            for error in ts.mapping_errors:
                self._write_mapping_error(error)
            ik5 = pyx12.segment.Segment("IK5", "~", "*", ":")
            ik5.set("01", "R")
            ik5.append("5")
            self.wr.Write(ik5)
            return
        super().visit_st_post(err_st)

    def _write_mapping_error(self, error: MappingError) -> None:
        ik3 = pyx12.segment.Segment("IK3", "~", "*", ":")
        ik3.set("01", error.segment_id)
        ik3.set("02", str(error.position))
        ik3.set("04", "8" if error.element is not None else error.code)
        self.wr.Write(ik3)
        if error.element is None:
            return
        ik4 = pyx12.segment.Segment("IK4", "~", "*", ":")
        ik4.set("01-1", str(error.element))
        if error.component is not None:
            ik4.set("01-2", str(error.component))
        if error.element_ref:
            ik4.set("02", error.element_ref)
        ik4.set("03", error.code)
        self.wr.Write(ik4)


def group_errors(err_gs: Any) -> list[str]:
    """AK905.. codes of a group's own errors, as pyx12's 999 writer derives them."""
    found = {str(code) for code, _text in err_gs.errors}
    for element in err_gs.elements:
        for _code, text, _value in element.errors:
            if "GE" in text:
                found.add("6" if element.ele_pos == 2 else "1")
            else:
                found.add({6: "6", 8: "2"}.get(element.ele_pos, "1"))
    if not err_gs.is_closed():
        found.add("3")
    return sorted(found)


# ----------------------------------------------------------------------------- reject records
def reject_records(report: InterchangeReport) -> list[dict[str, Any]]:
    """One PHI-free record per rejected transaction set of a read interchange.

    An interchange or group rejected at its envelope rejects every set in it; an interchange
    that had no readable set at all still gets one record (with no set control number).
    """
    framed = report.framed
    base: dict[str, Any] = {
        "interchange": framed.index,
        "byte_offset": framed.offset,
        "interchange_control": framed.control_number,
    }
    if report.own_errors:
        note = interchange_note(report)
        envelope = [
            {
                "level": "interchange",
                "code": note,
                "description": codes.describe(codes.INTERCHANGE_NOTES, note),
            }
        ]
        if report.failure is not None:
            envelope[0]["parser_error"] = report.failure
        sets = report.sets
        if not sets:
            return [
                {
                    **base,
                    "level": "interchange",
                    "group_control": None,
                    "transaction_set_control": None,
                    "transaction_set_id": None,
                    "errors": envelope,
                }
            ]
        return [_set_record(base, ts, "interchange", envelope) for ts in sets]
    out: list[dict[str, Any]] = []
    for group in report.groups:
        if group.own_errors:
            errors = [
                {"level": "group", "code": c, "description": codes.describe(codes.GROUP_ERRORS, c)}
                for c in group_errors(group.node)
            ]
            out.extend(_set_record(base, ts, "group", errors + set_errors(ts)) for ts in group.sets)
            continue
        out.extend(
            _set_record(base, ts, "transaction_set", set_errors(ts))
            for ts in group.sets
            if not ts.accepted
        )
    return out


def unframed_record(piece: Unframed) -> dict[str, Any]:
    """The reject record of bytes that did not form an interchange."""
    return {
        "interchange": piece.index,
        "byte_offset": piece.offset,
        "interchange_control": piece.control_number,
        "level": "interchange",
        "group_control": None,
        "transaction_set_control": None,
        "transaction_set_id": None,
        "transaction_sets": piece.transaction_sets,
        "errors": [
            {
                "level": "interchange",
                "code": piece.note_code,
                "description": codes.describe(codes.INTERCHANGE_NOTES, piece.note_code),
            }
        ],
    }


def _set_record(
    base: dict[str, Any], ts: TransactionSet, level: str, errors: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        **base,
        "level": level,
        "group_control": ts.group.control,
        "transaction_set_control": ts.control,
        "transaction_set_id": ts.set_id,
        "errors": errors,
    }


def set_errors(ts: TransactionSet) -> list[dict[str, Any]]:
    """The errors of one set: its own (IK5 codes), its segments' (IK3) and elements' (IK4)."""
    node = ts.node
    out: list[dict[str, Any]] = []
    for code, _text in node.errors:
        out.append(
            {
                "level": "transaction_set",
                "code": code,
                "description": codes.describe(codes.SET_ERRORS, code),
            }
        )
    if not node.is_closed():
        out.append({"level": "transaction_set", "code": "2", "description": codes.SET_ERRORS["2"]})
    for seg in node.children:
        where = {"segment_id": seg.seg_id, "segment_position": seg.seg_count}
        for code, _text, _value in seg.errors:
            out.append(
                {
                    "level": "segment",
                    **where,
                    "code": code,
                    "description": codes.describe(codes.SEGMENT_ERRORS, code),
                }
            )
        for element in seg.elements:
            for code, _text, _value in element.errors:
                out.append(
                    {
                        "level": "element",
                        **where,
                        "element_position": element.ele_pos,
                        "component_position": element.subele_pos,
                        "element_reference": element.ele_ref_num,
                        "code": code,
                        "description": codes.describe(codes.ELEMENT_ERRORS, code),
                    }
                )
    for error in ts.mapping_errors:
        where = {"segment_id": error.segment_id, "segment_position": error.position}
        if error.element is None:
            out.append(
                {
                    "level": "segment",
                    **where,
                    "code": error.code,
                    "description": codes.describe(codes.SEGMENT_ERRORS, error.code),
                }
            )
        else:
            out.append(
                {
                    "level": "element",
                    **where,
                    "element_position": error.element,
                    "component_position": error.component,
                    "element_reference": error.element_ref,
                    "code": error.code,
                    "description": codes.describe(codes.ELEMENT_ERRORS, error.code),
                }
            )
    return out
