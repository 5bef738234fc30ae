"""Framing: cut a byte stream into X12 interchanges (ISA .. IEA) before any parser sees them.

A file or a Kafka record may hold several interchanges, and each interchange declares its own
separators in its fixed-length ISA header. pyx12's reader takes the separators of the first ISA
for the whole stream, so a second interchange with other separators would be misread; it also
has no notion of a byte range to reject. The cut is therefore made here, from the ISA header's
fixed positions, and each interchange is handed to pyx12 on its own.

Only what the X12 envelope itself defines is checked here (the 106-character ISA with its
separators, an IEA segment that ends the interchange). Everything else, including the IEA's
counts and control number, is pyx12's to validate. A piece that cannot be framed is returned as
``Unframed`` with a TA1 note code (X12 I18) saying why, so that nothing is dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The ISA segment is fixed-length: 105 characters and its segment terminator.
ISA_LENGTH = 106
#: Offsets of the element separators inside an ISA segment (after ISA and each of ISA01..ISA15).
_ISA_SEPARATOR_OFFSETS = (3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103)
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
#: Interchange control versions this product reads: HIPAA 5010 only.
SUPPORTED_VERSION = b"00501"


@dataclass(frozen=True, slots=True)
class Separators:
    """The delimiters an ISA header declares."""

    element: str
    component: str
    repetition: str
    segment: str


@dataclass(frozen=True, slots=True)
class Framed:
    """One interchange, ISA through the IEA segment terminator, with the separators it declares."""

    index: int
    """1-based position of the interchange in its input."""
    offset: int
    """Byte offset of its ISA in the input (after a byte order mark, if any)."""
    data: bytes
    separators: Separators
    control_number: str
    """ISA13, as written."""


@dataclass(frozen=True, slots=True)
class Unframed:
    """Bytes that could not be cut into an interchange, and why (a TA1 interchange note code)."""

    index: int
    offset: int
    length: int
    note_code: str
    """X12 I18 code: 004, 017, 022, 023, 026 (see ``scrubber.x12.codes.TA1_NOTES``)."""
    header: bytes | None = None
    """The ISA segment when it was readable, so that a TA1 can still be addressed."""
    separators: Separators | None = None
    control_number: str | None = None
    transaction_sets: int = 0
    """ST segments seen in the bytes (each is counted as rejected); 0 when the header is
    unreadable, since segments cannot be told apart without its separators."""


def strip_start(data: bytes) -> int:
    """Offset of the first byte after a UTF-8 byte order mark and leading whitespace."""
    start = len(_BOM) if data.startswith(_BOM) else 0
    while start < len(data) and data[start] in _WHITESPACE:
        start += 1
    return start


def looks_like_x12(data: bytes) -> bool:
    """True when the bytes start (after a BOM and whitespace) with an ISA segment id."""
    start = strip_start(data[:4096])
    return data[start : start + 3] == b"ISA"


def read_separators(header: bytes) -> Separators | None:
    """The separators of a 106-byte ISA segment, or None when they are not consistent.

    The element separator must appear at all sixteen fixed offsets, and the four delimiters must
    be distinct, printable and neither letters nor digits (they could not be told from data).
    """
    if len(header) < ISA_LENGTH or not header.startswith(b"ISA"):
        return None
    element = header[3:4]
    if any(header[i : i + 1] != element for i in _ISA_SEPARATOR_OFFSETS):
        return None
    delimiters = (element, header[104:105], header[82:83], header[105:106])
    for d in delimiters:
        if d.isalnum() or d == b" " or not d.isascii():
            return None
    if len(set(delimiters)) != 4:
        return None
    e, c, r, s = (d.decode("ascii") for d in delimiters)
    return Separators(element=e, component=c, repetition=r, segment=s)


def split_interchanges(data: bytes) -> list[Framed | Unframed]:
    """Cut ``data`` into interchanges, in order; every byte that is not whitespace is accounted for.

    Whitespace (and line breaks) between interchanges and after segment terminators is
    tolerated. A piece that does not start with a readable ISA runs to the next readable ISA (or
    the end) and is reported as ``Unframed``; so is an interchange with no IEA before the next
    ISA or the end of the data (truncated).
    """
    out: list[Framed | Unframed] = []
    pos = strip_start(data)
    while pos < len(data):
        index = len(out) + 1
        header = data[pos : pos + ISA_LENGTH]
        separators = read_separators(header)
        if separators is None:
            end = _next_isa(data, pos + 1)
            note = "022" if not header.startswith(b"ISA") else _header_note(header)
            out.append(
                Unframed(index, pos, end - pos, note, transaction_sets=_count_st(data, pos, end))
            )
            pos = _skip_whitespace(data, end)
            continue
        control = header[90:99].decode("ascii", "replace").strip()
        if header[84:89] != SUPPORTED_VERSION:
            end = _interchange_end(data, pos, separators) or _next_isa(data, pos + 1)
            out.append(
                Unframed(
                    index,
                    pos,
                    end - pos,
                    "017",
                    header,
                    separators,
                    control,
                    _count_st(data, pos, end, separators),
                )
            )
            pos = _skip_whitespace(data, end)
            continue
        found = _interchange_end(data, pos, separators)
        if found is None:
            stop = _next_isa(data, pos + ISA_LENGTH)
            chunk = data[pos:stop]
            wrong = re.search(
                rb"[\r\n]*IEA(?!" + re.escape(separators.element.encode()) + rb")", chunk
            )
            note = (
                "026"
                if wrong is not None and b"IEA" + separators.element.encode() not in chunk
                else "023"
            )
            out.append(
                Unframed(
                    index,
                    pos,
                    stop - pos,
                    note,
                    header,
                    separators,
                    control,
                    _count_st(data, pos, stop, separators),
                )
            )
            pos = _skip_whitespace(data, stop)
            continue
        out.append(Framed(index, pos, data[pos:found], separators, control))
        pos = _skip_whitespace(data, found)
    return out


def _skip_whitespace(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _WHITESPACE:
        pos += 1
    return pos


def _header_note(header: bytes) -> str:
    """Why an ISA-looking header is unreadable: too short, or separators inconsistent."""
    if len(header) < ISA_LENGTH:
        return "023"
    return "026"


def _next_isa(data: bytes, start: int) -> int:
    """Offset of the next readable ISA header at or after ``start`` (the end of data if none)."""
    for match in re.finditer(rb"ISA", data[start:]):
        at = start + match.start()
        if read_separators(data[at : at + ISA_LENGTH]) is not None:
            return at
    return len(data)


def _interchange_end(data: bytes, pos: int, separators: Separators) -> int | None:
    """Offset just past the IEA segment's terminator, if an IEA comes before the next ISA."""
    term = re.escape(separators.segment.encode())
    element = re.escape(separators.element.encode())
    boundary = re.compile(term + rb"[ \t\r\n]*IEA" + element)
    # A readable ISA header (sixteen separators at fixed offsets) before any IEA means this
    # interchange was cut off and the next one begins, wherever the cut fell.
    next_isa = _next_isa(data, pos + ISA_LENGTH)
    for match in boundary.finditer(data, pos + ISA_LENGTH - 1, next_isa):
        stop = data.find(separators.segment.encode(), match.end(), next_isa)
        # IEA01 (up to 5 digits) and IEA02 (9 characters): a longer "IEA" segment was cut off
        # and ran into what follows, such as the next interchange's ISA.
        if stop < 0 or stop - match.end() > 16:
            return None
        return stop + 1
    return None


def _count_st(data: bytes, start: int, end: int, separators: Separators | None = None) -> int:
    """ST segments between two offsets: the transaction sets a rejected piece carried."""
    if separators is None:
        return 0  # without the header's separators, segments cannot be told apart
    chunk = data[start:end]
    term = re.escape(separators.segment.encode())
    element = re.escape(separators.element.encode())
    return len(re.findall(term + rb"[ \t\r\n]*ST" + element, chunk))
