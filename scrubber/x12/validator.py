"""Validate one interchange against the X12 implementation guides with pyx12, and keep its loops.

pyx12 (``x12n_document``) is the validator: its reader checks the envelope counts and control
numbers, its map walker places every segment in its loop of the implementation guide (here
005010X222A1) and reports missing, unexpected and repeated segments, and its maps check every
element's type, length and code values. Its error tree is what the 999 is made from.

This module drives those parts the way ``pyx12.x12n_document.x12n_document`` does, segment by
segment, for three reasons that function cannot serve:

- it loads the transaction's map (1 MB of XML, about 0.2 s) on every call; here each map is
  loaded once per process and reused (the walker keeps its counts outside the map, so a map is
  read-only during a walk);
- it keeps its error tree to itself, and the scrubber needs the verdict of each transaction set
  to decide which sets produce claim lines;
- it does not keep the segments: here every segment is kept with the loop path the walker found
  for it, and each transaction set becomes a tree of ``Loop`` objects for the 837P mapping.

Only the transactions in ``SUPPORTED`` are walked. A functional group of any other kind (a 270
sent to a claims address, an 837I) is rejected as not supported (AK9 code 1 or 2, IK5 code 1)
instead of being walked with a map the scrubber has no use for.

pyx12 logs every error with the offending value; its loggers are silenced (``__init__``), since
those values are claim data.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pyx12.error_handler
import pyx12.map_if
import pyx12.params
import pyx12.segment
import pyx12.x12file
from pyx12.map_if._segment import apply_segment_errors
from pyx12.map_walker import apply_walk_errors, walk_tree

from scrubber.x12.envelope import Framed

#: (GS01 functional identifier, GS08 version) -> pyx12 map file, for the transactions read here.
CLAIMS_837P = {("HC", "005010X222A1"): "837.5010.X222.A1.xml"}
ACK_999 = {("FA", "005010X231A1"): "999.5010X231.A1.xml"}
ACK_277CA = {("HN", "005010X214"): "277.5010.X214.xml"}
SUPPORTED = CLAIMS_837P

_ENVELOPE = ("ISA", "IEA", "GS", "GE", "ST", "SE")


@cache
def _params() -> pyx12.params.ParamsBase:
    return pyx12.params.params()


@cache
def load_map(name: str) -> Any:
    """A pyx12 map, parsed once per process (``map_if`` is not typed)."""
    return pyx12.map_if.load_map_file(name, _params())


@dataclass(eq=False, slots=True)
class SegmentRef:
    """A segment of a transaction set with the place the map walker found for it."""

    position: int
    """Position in the transaction set, ST being 1 (as in a 999's IK302)."""
    segment: pyx12.segment.Segment
    node: Any
    """The pyx12 map node (``segment_if``) the segment matched."""

    def value(self, ref: str) -> str | None:
        """An element or component by reference designator (``"CLM01"``, ``"SV101-2"``).

        None when it is absent or empty.
        """
        text = self.segment.get_value(ref)
        return text if text else None


@dataclass(eq=False, slots=True)
class Loop:
    """One occurrence of a loop of the implementation guide, with its segments and sub-loops."""

    loop_id: str
    segments: list[SegmentRef] = field(default_factory=list)
    children: list[Loop] = field(default_factory=list)

    def loops(self, loop_id: str) -> list[Loop]:
        """The direct sub-loops with this id, in order."""
        return [c for c in self.children if c.loop_id == loop_id]

    def child(self, loop_id: str) -> Loop | None:
        """The first direct sub-loop with this id."""
        return next((c for c in self.children if c.loop_id == loop_id), None)

    def walk(self, loop_id: str) -> Iterator[Loop]:
        """Every loop with this id at any depth below this one, in document order."""
        for c in self.children:
            if c.loop_id == loop_id:
                yield c
            yield from c.walk(loop_id)

    def segment(self, seg_id: str, qualifier: str | None = None) -> SegmentRef | None:
        """The first segment with this id (and first element ``qualifier``) in this loop."""
        for ref in self.segments:
            if ref.segment.get_seg_id() == seg_id and (
                qualifier is None or ref.segment.get_value("01") == qualifier
            ):
                return ref
        return None

    def all(self, seg_id: str) -> list[SegmentRef]:
        """Every segment with this id in this loop (not in sub-loops)."""
        return [r for r in self.segments if r.segment.get_seg_id() == seg_id]


@dataclass(frozen=True, slots=True)
class MappingError:
    """A problem found after the guide's validation, when turning a set into claim lines.

    Reported in the 999 like a guide error (IK3/IK4 with an IK403 code), so that the submitter
    learns that the set was not taken and where the element is.
    """

    position: int
    segment_id: str
    element: int | None
    """None for an error of the segment itself (then ``code`` is an IK304 code)."""
    component: int | None
    element_ref: str | None
    code: str
    """An IK403 code (X12 723), e.g. ``7`` invalid code value, ``I12`` pattern match failure;
    or, for a segment error, an IK304 code (X12 620), e.g. ``3`` required segment missing."""


@dataclass(eq=False)
class TransactionSet:
    """One ST..SE with pyx12's error node for it and its loop tree."""

    set_id: str
    control: str
    root: Loop
    node: Any
    """``pyx12.error_handler.err_st``."""
    group: Group
    mapping_errors: list[MappingError] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """Closed by its SE, and no error at the set's own level or in its segments."""
        return bool(self.node.is_closed()) and self.node.err_count() == 0

    @property
    def accepted(self) -> bool:
        """Valid, mapped without error, in an accepted group of an accepted interchange."""
        return (
            self.valid
            and not self.mapping_errors
            and self.group.own_errors == 0
            and self.group.interchange.own_errors == 0
        )


@dataclass(eq=False)
class Group:
    """One GS..GE."""

    fic: str
    version: str
    control: str
    supported: bool
    node: Any
    """``pyx12.error_handler.err_gs``."""
    interchange: InterchangeReport
    sets: list[TransactionSet] = field(default_factory=list)

    @property
    def own_errors(self) -> int:
        """Errors of the group envelope itself (GS/GE elements, counts, control numbers)."""
        elements = sum(e.get_error_count() for e in self.node.elements)
        closed = 0 if self.node.is_closed() else 1
        return int(len(self.node.errors) + elements + closed)


@dataclass(eq=False)
class InterchangeReport:
    """The outcome of validating one framed interchange."""

    framed: Framed
    errh: Any
    """``pyx12.error_handler.err_handler``: the tree a 999 is rendered from."""
    isa: pyx12.segment.Segment | None = None
    groups: list[Group] = field(default_factory=list)
    failure: str | None = None
    """Set when pyx12 could not read the interchange at all (an exception type name)."""

    @property
    def node(self) -> Any:
        """``pyx12.error_handler.err_isa``, or None when not even the ISA was read."""
        return self.errh.cur_isa_node

    @property
    def own_errors(self) -> int:
        """Errors of the interchange envelope (ISA/IEA elements, counts, control numbers)."""
        if self.failure is not None or self.node is None:
            return 1
        elements = sum(e.get_error_count() for e in self.node.elements)
        closed = 0 if self.node.is_closed() else 1
        return int(len(self.node.errors) + elements + closed)

    @property
    def sets(self) -> list[TransactionSet]:
        """Every transaction set of every group, in order."""
        return [ts for g in self.groups for ts in g.sets]


def validate(
    framed: Framed, supported: Mapping[tuple[str, str], str] = SUPPORTED
) -> InterchangeReport:
    """Validate an interchange with pyx12 and return its error tree and loop trees.

    Never raises for bad input: when pyx12 itself fails on the data (it raises on some broken
    structures), the report carries the exception's type in ``failure`` and the whole interchange
    counts as rejected.
    """
    errh = pyx12.error_handler.err_handler()
    report = InterchangeReport(framed, errh)
    try:
        _walk(report, supported)
    except Exception as exc:  # pyx12 raises assorted errors on broken structures
        report.failure = type(exc).__name__
    return report


def _walk(report: InterchangeReport, supported: Mapping[tuple[str, str], str]) -> None:
    errh = report.errh
    text = report.framed.data.decode("latin-1")  # one character per byte; pyx12 checks the set
    src = pyx12.x12file.X12Reader(io.StringIO(text))
    control_map = load_map("x12.control.00501.xml")
    node: Any = control_map.getnodebypath("/ISA_LOOP/ISA")
    walker = walk_tree()
    cur_map: Any = None
    group: Group | None = None
    current: TransactionSet | None = None
    stack: list[Loop] = []
    for seg in src:
        seg_id = seg.get_seg_id()
        orig_node = node
        # In an unsupported group only the envelope is read: ST/SE to count and name the sets,
        # GS/GE/IEA (control map) to validate the group and interchange trailers.
        unsupported = group is not None and not group.supported and seg_id not in ("GS", "IEA")
        skipping = unsupported and seg_id not in _ENVELOPE
        if seg_id == "ISA":
            node = control_map.getnodebypath("/ISA_LOOP/ISA")
            walker.forceWalkCounterToLoopStart("/ISA_LOOP", "/ISA_LOOP/ISA")
        elif seg_id == "GS":
            node = control_map.getnodebypath("/ISA_LOOP/GS_LOOP/GS")
            walker.forceWalkCounterToLoopStart("/ISA_LOOP/GS_LOOP", "/ISA_LOOP/GS_LOOP/GS")
        elif group is not None and not group.supported:
            # Nothing of an unsupported group is walked; its trailers are found in the control map.
            if seg_id == "GE":
                node = control_map.getnodebypath("/ISA_LOOP/GS_LOOP/GE")
            elif seg_id == "IEA":
                node = control_map.getnodebypath("/ISA_LOOP/IEA")
        else:
            node, _pop, _push, walk_errors = walker.walk_errors(
                node, seg, src.get_seg_count(), src.get_cur_line(), src.get_ls_id()
            )
            apply_walk_errors(errh, walk_errors)
        if node is None:
            node = orig_node  # not in the guide: the walker recorded the error
            continue
        if seg_id == "ISA":
            report.isa = seg
            errh.add_isa_loop(seg, src)
            errh.handle_errors(src.pop_errors())
        elif seg_id == "IEA":
            errh.handle_errors(src.pop_errors())
            errh.close_isa_loop(node, seg, src)
        elif seg_id == "GS":
            fic = seg.get_value("GS01") or ""
            version = seg.get_value("GS08") or ""
            map_file = supported.get((fic, version))
            errh.add_gs_loop(seg, src)
            group = Group(
                fic,
                version,
                errh.cur_gs_node.gs_control_num or "",
                map_file is not None,
                errh.cur_gs_node,
                report,
            )
            report.groups.append(group)
            if map_file is not None:
                cur_map = load_map(map_file)
                src.check_837_lx = cur_map.id == "837"
                node = cur_map.getnodebypath("/ISA_LOOP/GS_LOOP/GS")
            else:
                known = {f for f, _ in supported}
                # AK905: 1 functional group not supported, 2 version not supported.
                errh.gs_error("2" if fic in known else "1", "functional group not supported")
            errh.handle_errors(src.pop_errors())
        elif seg_id == "GE":
            errh.handle_errors(src.pop_errors())
            errh.close_gs_loop(node, seg, src)
        elif seg_id == "ST":
            errh.add_st_loop(seg, src)
            errh.handle_errors(src.pop_errors())
            if group is not None:
                if not group.supported:
                    errh.st_error("1", "transaction set not supported")  # IK502 1
                current = TransactionSet(
                    seg.get_value("ST01") or "",
                    errh.cur_st_node.trn_set_control_num or "",
                    Loop("ST_LOOP"),
                    errh.cur_st_node,
                    group,
                )
                group.sets.append(current)
                stack = [current.root]
        elif seg_id == "SE":
            errh.handle_errors(src.pop_errors())
            errh.close_st_loop(node, seg, src)
        elif skipping:
            src.pop_errors()
        else:
            errh.add_seg(node, seg, src.get_seg_count(), src.get_cur_line(), src.get_ls_id())
            errh.handle_errors(src.pop_errors())
        if not unsupported or seg_id == "GE":
            apply_segment_errors(node, seg, errh)
        if current is not None and seg_id not in ("ISA", "IEA", "GS", "GE") and not unsupported:
            # The reader counts ST as 1 but not SE: SE's position is one past the last segment.
            position = src.get_seg_count() + (1 if seg_id == "SE" else 0)
            _place(stack, SegmentRef(position, seg, node))
        if seg_id == "SE":
            current = None
    src.cleanup()  # loop trailers never seen: SE, GE or IEA missing
    errh.handle_errors(src.pop_errors())


#: Loop paths by map node; the maps live as long as the process (``load_map``), so do these.
_LOOP_PATHS: dict[int, tuple[str, ...]] = {}


def loop_path(node: Any) -> tuple[str, ...]:
    """The loop ids of a map node below the transaction set (``("DETAIL", "2000A", ...)``)."""
    path = _LOOP_PATHS.get(id(node))
    if path is None:
        loops = list(node.x12path.loop_list)
        if "ST_LOOP" in loops:
            loops = loops[loops.index("ST_LOOP") + 1 :]
        path = _LOOP_PATHS[id(node)] = tuple(loops)
    return path


def _place(stack: list[Loop], ref: SegmentRef) -> None:
    """Put a segment in the loop tree: close loops it left, open loops it entered.

    The walker gives each segment its loop path; a segment that starts its loop (an HL, CLM or
    LX) opens a new occurrence of that loop even when the previous segment was in the same loop.
    """
    path = loop_path(ref.node)
    depth = 0
    while depth < len(path) and depth + 1 < len(stack) and stack[depth + 1].loop_id == path[depth]:
        depth += 1
    if path and depth == len(path) and ref.node.is_first_seg_in_loop():
        depth -= 1
    del stack[depth + 1 :]
    for loop_id in path[depth:]:
        loop = Loop(loop_id)
        stack[-1].children.append(loop)
        stack.append(loop)
    stack[-1].segments.append(ref)
