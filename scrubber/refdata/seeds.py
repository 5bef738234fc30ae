"""The seed documents, read into plain facts that each remember the line they came from.

The reference data bundle starts from a handful of documents saved from the web, not from data
files: a *code publication* (sections and pipe tables about one CPT code), a *coding reference
page* (official descriptors, MPFS indicators, add-on codes and a modifier list for one code) and an
*advocacy page* (a candidate-code table whose header and cells are glued together). Their tables
lose pipes, run into each other, spill a row over two lines, or stop half way through.

This module turns each document into immutable records and does nothing else:

* every record carries ``source`` = ``"<file name>:<line>"`` (1-based), so a billing office can
  ask where a value came from and the lint can point at the exact line;
* it extracts faithfully: a wrong description, a taxonomy code of another specialty or a
  malformed ICD-10 code is kept exactly as written, because judging the facts is the lint's job
  and a silently "corrected" seed would hide the error from it;
* it never guesses: a document of no known kind, or a row it cannot split without inventing a
  boundary, raises ``SeedParseError`` naming the file (and line), while sections and tables it
  does not know are skipped, so a user's new seed of a known kind still parses.

No value of any seed is written into this module: codes, descriptions and indicator values all
come from the text. The only vocabulary here is the documents' own labels and CMS's published
names of MPFS status codes.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from scrubber.standards import HCPCS_CODE_PATTERN, MODIFIER_SHAPE

__all__ = [
    "SeedAddOn",
    "SeedCode",
    "SeedDiagnosis",
    "SeedDocument",
    "SeedFact",
    "SeedIndicator",
    "SeedKind",
    "SeedMention",
    "SeedModifier",
    "SeedParseError",
    "SeedRelatedCode",
    "SeedTaxonomy",
    "parse_seed",
    "parse_seeds",
    "parse_text",
]

SeedKind = Literal["code_publication", "coding_reference", "advocacy"]


class SeedParseError(ValueError):
    """A seed document that cannot be read without guessing; the message starts with its name."""


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeedCode:
    """A code (or a code family written with a trailing X) a document is about, as it gives it.

    ``source`` is the line the code's description is on (the title line of a publication, the
    "Long Descr" line of a reference page, the table row of an advocacy page), because the
    description is what the bundle takes from it; ``code_source`` is the line that names the
    code as the document's own, which on a reference page is its first "CPT® Code NNNNN".
    ``rvu`` is the advocacy table's text (a number such as "1.23", or "variable"), never a
    number: the seed's claim, not a computed value.
    """

    code: str
    is_family: bool
    description: str | None
    rvu: str | None
    notes: str | None
    source: str
    code_source: str | None = None
    short_description: str | None = None
    medium_description: str | None = None
    official_description: str | None = None


@dataclass(frozen=True, slots=True)
class SeedModifier:
    """A modifier a document lists for its code (``when_to_use`` only in publications' tables)."""

    code: str
    description: str
    when_to_use: str | None
    for_code: str | None
    source: str


@dataclass(frozen=True, slots=True)
class SeedTaxonomy:
    """A provider taxonomy code a publication says performs its code, with the specialty named."""

    code: str
    specialty: str
    notes: str | None
    for_code: str | None
    source: str


@dataclass(frozen=True, slots=True)
class SeedDiagnosis:
    """An ICD-10 code a publication relates to its code, written as in the document (with dot)."""

    code: str
    description: str
    relevance: str | None
    for_code: str | None
    source: str


@dataclass(frozen=True, slots=True)
class SeedRelatedCode:
    """Another procedure code a publication relates to its code, and how it says they relate."""

    code: str
    description: str
    relationship: str | None
    for_code: str | None
    source: str


@dataclass(frozen=True, slots=True)
class SeedIndicator:
    """One official indicator line of a reference page (global days, PC/TC, MUE, ...).

    ``name`` is a normalised key (``"global_days"``, ``"pctc"``, ...), ``text`` everything after
    the label as written, ``value`` the code part of it (``"000"`` of ``"000 - Endoscopic or Minor
    Procedure"``). For ``status`` the value is the CMS status letter when the text is one of CMS's
    status names ("Active Code" -> ``"A"``). When the text has no code part and no known name
    (an APC status written out in words, say), ``value`` is the text itself: nothing is invented.
    """

    name: str
    value: str
    text: str
    for_code: str | None
    source: str


@dataclass(frozen=True, slots=True)
class SeedAddOn:
    """An add-on code a reference page says may be reported with its (primary) code."""

    primary: str
    add_on: str
    description: str | None
    source: str
    mpfs_status: str | None = None
    apc: str | None = None


@dataclass(frozen=True, slots=True)
class SeedFact:
    """A bullet item of a publication ("Service type: ...", a typical site of service, ...).

    ``section`` is the heading the bullet sits under, ``label`` the text before ": " when the
    item is written "Label: text", else None.
    """

    section: str | None
    label: str | None
    text: str
    for_code: str | None
    source: str


@dataclass(frozen=True, slots=True)
class SeedMention:
    """A code or code family an advocacy page names in its prose, outside its candidate table.

    ``rvu`` is the RVU claim the same sentence makes about it, as written ("15.00 – 18.23").
    """

    code: str
    is_family: bool
    rvu: str | None
    source: str


@dataclass(frozen=True, slots=True)
class SeedDocument:
    """Everything one seed document states, as records; plain data, no I/O after parsing."""

    name: str
    kind: SeedKind
    codes: tuple[SeedCode, ...]
    modifiers: tuple[SeedModifier, ...] = ()
    taxonomies: tuple[SeedTaxonomy, ...] = ()
    diagnoses: tuple[SeedDiagnosis, ...] = ()
    related_codes: tuple[SeedRelatedCode, ...] = ()
    indicators: tuple[SeedIndicator, ...] = ()
    add_ons: tuple[SeedAddOn, ...] = ()
    facts: tuple[SeedFact, ...] = ()
    mentions: tuple[SeedMention, ...] = ()


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def parse_seed(path: pathlib.Path) -> SeedDocument:
    """Read one seed document and return what it states; ``SeedParseError`` if it is unknown."""
    name = path.name
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeedParseError(f"{name}: not UTF-8 text ({exc})") from exc
    return parse_text(name, text)


def parse_seeds(directory: pathlib.Path) -> list[SeedDocument]:
    """Parse every ``*.txt`` file directly in ``directory``, in order of file name."""
    paths = sorted((p for p in directory.glob("*.txt") if p.is_file()), key=lambda p: p.name)
    return [parse_seed(p) for p in paths]


def parse_text(name: str, text: str) -> SeedDocument:
    """Parse a document's text as if it were the file ``name`` (which only names the sources)."""
    # Split on newlines only: str.splitlines() would also break on form feeds and Unicode line
    # separators, and the line numbers would no longer be the ones an editor shows.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    doc = _Doc(name, lines)
    kind = _detect(doc)
    if kind == "code_publication":
        return _parse_code_publication(doc)
    if kind == "coding_reference":
        return _parse_coding_reference(doc)
    return _parse_advocacy(doc)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

#: A CPT (NNNNN, NNNNF, NNNNT) or HCPCS level II (ANNNN) code, as the standard shapes it.
_CODE = HCPCS_CODE_PATTERN
#: An exact CPT code or a family written with trailing X's (NNNNX, NNNXX) on an advocacy page.
_CODE_OR_FAMILY = r"[0-9]{3}(?:[0-9]{2}|[0-9]X|XX)"


class _Doc:
    """A document's lines and the name its sources are written with."""

    __slots__ = ("lines", "name")

    def __init__(self, name: str, lines: list[str]) -> None:
        self.name = name
        self.lines = lines

    def src(self, index: int) -> str:
        """The ``file:line`` of the 0-based line ``index``."""
        return f"{self.name}:{index + 1}"

    def error(self, message: str, index: int | None = None) -> SeedParseError:
        """An error naming the file (and the line, when there is one)."""
        where = self.name if index is None else self.src(index)
        return SeedParseError(f"{where}: {message}")


def _next_nonblank(lines: Sequence[str], start: int) -> int | None:
    for index in range(start, len(lines)):
        if lines[index].strip():
            return index
    return None


# --------------------------------------------------------------------------------------------
# Which kind of document
# --------------------------------------------------------------------------------------------

#: "CPT NNNNN: Title" — the title line of a code publication.
_TITLE_RE = re.compile(
    rf"^(?:CPT|HCPCS)®?\s+(?:code\s+)?(?P<code>{_CODE})\s*:\s*(?P<title>\S.*?)\s*$",
    re.IGNORECASE,
)
#: How many non-blank lines from the top a publication's title line may be.
_TITLE_WINDOW = 5
_OFFICIAL_RE = re.compile(r"^\s*Official\s+Description\s*$", re.IGNORECASE)
_LONG_DESCR_RE = re.compile(r"^Long\s+Descr(?:iption)?\s+\S")
#: "CodeProcedure DescriptionRVUNotes": the advocacy table header, glued or spaced.
_ADVOCACY_HEADER_RE = re.compile(
    r"^\s*Code\s*Procedure\s*Description\s*RVU\s*Notes\s*$", re.IGNORECASE
)


def _title_line(doc: _Doc) -> tuple[int, re.Match[str]] | None:
    seen = 0
    for index, line in enumerate(doc.lines):
        if not line.strip():
            continue
        match = _TITLE_RE.match(line.strip())
        if match:
            return index, match
        seen += 1
        if seen >= _TITLE_WINDOW:
            break
    return None


def _detect(doc: _Doc) -> SeedKind:
    kinds: list[SeedKind] = []
    if _title_line(doc) is not None:
        kinds.append("code_publication")
    if any(_OFFICIAL_RE.match(line) or _LONG_DESCR_RE.match(line) for line in doc.lines):
        kinds.append("coding_reference")
    if any(_ADVOCACY_HEADER_RE.match(line) for line in doc.lines):
        kinds.append("advocacy")
    if not kinds:
        raise doc.error(
            "not a recognised seed document (no 'CPT NNNNN: title' line near the top, no "
            "'Official Description' or 'Long Descr', no 'Code Procedure Description RVU Notes' "
            "table)"
        )
    if len(kinds) > 1:
        raise doc.error(f"ambiguous seed document: looks like each of {', '.join(kinds)}")
    return kinds[0]


# --------------------------------------------------------------------------------------------
# Kind 1: code publication
# --------------------------------------------------------------------------------------------

_TableKind = Literal["modifier", "taxonomy", "diagnosis", "related"]


@dataclass(frozen=True, slots=True)
class _TableShape:
    """How a known table's header is recognised: its first column, and words in the others."""

    kind: _TableKind
    first: Callable[[str], bool]
    second: str
    third: str


_RELATED_FIRST_RE = re.compile(r"^(?:related\s+)?(?:cpt|hcpcs)(?:/hcpcs)?®?(?:\s+codes?)?$")
_TABLE_SHAPES: tuple[_TableShape, ...] = (
    _TableShape("modifier", lambda c: c.startswith("modifier"), "description", "use"),
    _TableShape("taxonomy", lambda c: c.startswith("taxonomy"), "specialty", "note"),
    _TableShape(
        "diagnosis", lambda c: c.startswith(("icd", "diagnosis")), "description", "relevance"
    ),
    _TableShape(
        "related",
        lambda c: _RELATED_FIRST_RE.match(c) is not None,
        "description",
        "relationship",
    ),
)
_SEPARATOR_CELL_RE = re.compile(r"^:?-+:?$")
#: "Label: text" inside a bullet; a label is short and is not a sentence.
_LABELLED_RE = re.compile(r"^(?P<label>[^:.]{1,40}):\s+(?P<text>\S.*)$")
#: A heading is a short line that does not end like a sentence or a list lead-in.
_HEADING_MAX = 60
_BULLET_MARKS = ("-", "•", "*")


def _cells(line: str) -> list[str]:
    """A pipe row's cells: edge pipes dropped (either may be missing), stripped, no empty tail."""
    text = line.strip()
    text = text.removeprefix("|")
    text = text.removesuffix("|")
    cells = [cell.strip() for cell in text.split("|")]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _is_separator(cells: Sequence[str]) -> bool:
    return bool(cells) and all(_SEPARATOR_CELL_RE.match(cell) for cell in cells)


def _header_shape(doc: _Doc, index: int, cells: Sequence[str]) -> _TableShape | None:
    """The known table a header row starts, None for any other header."""
    names = [cell.lower() for cell in cells]
    for shape in _TABLE_SHAPES:
        if len(names) < 2 or not shape.first(names[0]):
            continue
        if (
            len(names) > 3
            or shape.second not in names[1]
            or (len(names) == 3 and shape.third not in names[2])
        ):
            raise doc.error(
                f"{shape.kind} table header with unexpected columns: {' | '.join(cells)}", index
            )
        return shape
    return None


def _is_header(doc: _Doc, index: int, cells: Sequence[str]) -> bool:
    """A row is a header when a separator row follows it or it names a known table."""
    following = index + 1
    if (
        following < len(doc.lines)
        and "|" in doc.lines[following]
        and _is_separator(_cells(doc.lines[following]))
    ):
        return True
    names = [cell.lower() for cell in cells]
    return len(names) >= 2 and any(shape.first(names[0]) for shape in _TABLE_SHAPES)


def _is_heading(line: str) -> bool:
    text = line.strip()
    return (
        bool(text)
        and len(text) <= _HEADING_MAX
        and not text.endswith((".", ":", ";", ",", "!", "?"))
    )


class _PublicationTables:
    """Collects the records of a publication's known tables, row by row."""

    def __init__(self, doc: _Doc, for_code: str) -> None:
        self.doc = doc
        self.for_code = for_code
        self.modifiers: list[SeedModifier] = []
        self.taxonomies: list[SeedTaxonomy] = []
        self.diagnoses: list[SeedDiagnosis] = []
        self.related: list[SeedRelatedCode] = []

    def add(self, shape: _TableShape, width: int, index: int, cells: list[str]) -> None:
        """Record one row of a known table whose header has ``width`` columns."""
        doc = self.doc
        if len(cells) > width:
            raise doc.error(
                f"{shape.kind} row has {len(cells)} cells but its header has {width}", index
            )
        if len(cells) < 2 or not cells[0]:
            raise doc.error(f"{shape.kind} row without a code and a description", index)
        code, second = cells[0], cells[1]
        third = cells[2] if len(cells) > 2 and cells[2] else None
        src = doc.src(index)
        if shape.kind == "modifier":
            self.modifiers.append(SeedModifier(code, second, third, self.for_code, src))
        elif shape.kind == "taxonomy":
            self.taxonomies.append(SeedTaxonomy(code, second, third, self.for_code, src))
        elif shape.kind == "diagnosis":
            self.diagnoses.append(SeedDiagnosis(code, second, third, self.for_code, src))
        else:
            self.related.append(SeedRelatedCode(code, second, third, self.for_code, src))


def _parse_code_publication(doc: _Doc) -> SeedDocument:
    found = _title_line(doc)
    if found is None:  # pragma: no cover - _detect saw it
        raise doc.error("no 'CPT NNNNN: title' line")
    title_index, title = found
    code = title.group("code")
    seed_code = SeedCode(
        code=code,
        is_family=False,
        description=title.group("title"),
        rvu=None,
        notes=None,
        source=doc.src(title_index),
        code_source=doc.src(title_index),
    )
    tables = _PublicationTables(doc, code)
    facts: list[SeedFact] = []

    shape: _TableShape | None = None  # the known table being read; None: none, or unknown
    width = 0
    in_table = False
    section: str | None = None
    bullet_pending = False
    for index, line in enumerate(doc.lines):
        text = line.strip()
        if "|" in text:
            bullet_pending = False
            cells = _cells(text)
            if not cells or _is_separator(cells):
                continue
            if _is_header(doc, index, cells):
                # A header may follow the previous table's last row with no blank line.
                shape, width, in_table = _header_shape(doc, index, cells), len(cells), True
            elif in_table and shape is not None:
                tables.add(shape, width, index, cells)
            # else: a row of an unknown table, or a stray pipe line: skipped.
            continue
        if not text:
            continue  # a blank line inside a table does not end it; text does
        in_table = False
        if index == title_index:
            continue
        if text in _BULLET_MARKS:
            bullet_pending = True
            continue
        item: str | None = None
        if bullet_pending:
            item, bullet_pending = text, False
        elif text[0] in _BULLET_MARKS and text[1:2].isspace():
            item = text[1:].strip()
        if item is None:
            if _is_heading(text):
                section = text
            continue
        labelled = _LABELLED_RE.match(item)
        label, value = (labelled["label"], labelled["text"]) if labelled else (None, item)
        facts.append(SeedFact(section, label, value, code, doc.src(index)))

    return SeedDocument(
        name=doc.name,
        kind="code_publication",
        codes=(seed_code,),
        modifiers=tuple(tables.modifiers),
        taxonomies=tuple(tables.taxonomies),
        diagnoses=tuple(tables.diagnoses),
        related_codes=tuple(tables.related),
        facts=tuple(facts),
    )


# --------------------------------------------------------------------------------------------
# Kind 2: coding reference page
# --------------------------------------------------------------------------------------------

#: "CPT® Code NNNNN" (singular: "CPT® Codes NNNNN and NNNNN" names other codes).
_PAGE_CODE_RE = re.compile(rf"(?:CPT®?|HCPCS)\s+Code\s+(?P<code>{_CODE})\b", re.IGNORECASE)

_PAREN = r"(?:\s*\([^)]*\))?"
_DESCRIPTOR_LABELS: tuple[tuple[str, str], ...] = (
    ("short", r"Short\s+Descr(?:iption)?"),
    ("medium", r"Medium\s+Descr(?:iption)?"),
    ("long", r"Long\s+Descr(?:iption)?"),
)
#: The reference page's indicator labels (whitespace in them may be non-breaking spaces) and
#: the normalised names the bundle uses.
_INDICATOR_LABELS: tuple[tuple[str, str], ...] = (
    ("status", r"(?:MPFS\s+)?Status\s+Code"),
    ("global_days", r"Global\s+(?:Days|Period)"),
    ("pctc", r"PC/TC\s+Indicator"),
    ("mult_proc", r"Multiple\s+Procedures?"),
    ("bilateral", r"Bilateral\s+Surgery"),
    ("physician_supervision", r"Physician\s+Supervisions?"),
    ("assistant", r"Assistant\s+(?:Surgeon|at\s+Surgery)"),
    ("co_surgeons", r"Co-?Surgeons?"),
    ("team_surgery", r"Team\s+Surgery"),
    ("diagnostic_imaging_family", r"Diagnostic\s+Imaging\s+Family"),
    ("apc_status", r"APC\s+Status\s+Indicator"),
    ("type_of_service", r"Type\s+of\s+Service"),
    ("betos", r"(?:Berenson-Eggers\s+TOS|BETOS)"),
    ("mue", r"MUE"),
    ("ccs", r"CCS\s+Clinical\s+Classification"),
)


def _label_re(label: str) -> re.Pattern[str]:
    return re.compile(rf"^{label}{_PAREN}\s+(?P<text>\S.*?)\s*$")


_DESCRIPTOR_RES = tuple((key, _label_re(label)) for key, label in _DESCRIPTOR_LABELS)
_INDICATOR_RES = tuple((key, _label_re(label)) for key, label in _INDICATOR_LABELS)
#: "090 - Major Surgery", "XNX - some category", "1", "2 (date of service)": the code part.
_VALUE_RE = re.compile(r"^(?P<value>[0-9A-Z]{1,4})(?:\s*$|\s+[-–(])")
#: CMS's names of MPFS status codes (RVU file documentation), lower case, singular.
_STATUS_NAMES: dict[str, str] = {
    "active code": "A",
    "bundled code": "B",
    "carrier priced code": "C",
    "carriers price the code": "C",
    "contractor priced code": "C",
    "contractors price the code": "C",
    "deleted code": "D",
    "excluded from physician fee schedule by regulation": "E",
    "excluded from mpfs by regulation": "E",
    "deleted/discontinued code": "F",
    "deleted modifier": "H",
    "anesthesia service": "J",
    "measurement code": "M",
    "non-covered service": "N",
    "noncovered service": "N",
    "bundled/excluded code": "P",
    "restricted coverage": "R",
    "injection": "T",
    "statutory exclusion": "X",
}
_PRIMARY_INTRO_RE = re.compile(r"\bprimary code\b.*\badd-?on codes\b", re.IGNORECASE)
_ADDON_RE = re.compile(
    rf"^(?P<code>{_CODE})\s+Add-?on\s+Code\b\s*"
    r"(?:MPFS\s+Status:\s*(?P<status>.+?)\s*(?=\bAPC\b|\bIllustration\b))?"
    r"(?:APC\s+(?P<apc>\S+)\s*)?"
    r"(?:Illustration\s+for\s+Code\b\s*)?"
    r"(?P<desc>.*?)\s*$",
    re.IGNORECASE,
)
#: One line of the modifier list: two characters, a space, the description.
_MODIFIER_LINE_RE = re.compile(rf"^(?P<code>{MODIFIER_SHAPE.pattern})\s+(?P<desc>\S.*?)\s*$")
#: The revision history table that follows the modifier list.
_HISTORY_RE = re.compile(r"^\s*Date\s*$")


def _match_label(
    patterns: Sequence[tuple[str, re.Pattern[str]]], line: str
) -> tuple[str, str] | None:
    for key, pattern in patterns:
        match = pattern.match(line)
        if match:
            return key, match["text"]
    return None


def _is_block_line(line: str) -> bool:
    return (
        _match_label(_DESCRIPTOR_RES, line) is not None
        or _match_label(_INDICATOR_RES, line) is not None
    )


def _indicator_value(name: str, text: str) -> str:
    match = _VALUE_RE.match(text)
    if match:
        return match["value"]
    if name == "status":
        key = " ".join(text.lower().rstrip(".").split()).removesuffix("s")
        if key in _STATUS_NAMES:
            return _STATUS_NAMES[key]
    return text


def _content_start(lines: Sequence[str]) -> int:
    """Where the page's content starts: its "Official Description" heading (else the top)."""
    return next((i for i, line in enumerate(lines) if _OFFICIAL_RE.match(line)), 0)


def _block_start(lines: Sequence[str], start: int) -> int | None:
    """The descriptor block's first line: a label line directly followed by another one.

    Requiring two in a row keeps a prose line that happens to start like a label ("MUE limits
    ...") from being taken for the block; a page with a single label line still has one.
    """
    candidates = [i for i in range(start, len(lines)) if _is_block_line(lines[i])]
    for index in candidates:
        if index + 1 < len(lines) and _is_block_line(lines[index + 1]):
            return index
    return candidates[0] if candidates else None


def _page_code(doc: _Doc) -> tuple[str, int]:
    """The page's own code, from the "CPT® Code NNNNN" of its content.

    The content runs from "Official Description" to the descriptor block; the page's chrome
    (a search box's example question about some other code) is not read.
    Every singular mention in the content must agree ("CPT® Codes NNNNN and NNNNN" is plural
    and names other codes); a page that names two as its own is refused, not guessed at.
    """
    lines = doc.lines
    start = _content_start(lines)
    end = _block_start(lines, start)
    mentions: dict[str, int] = {}
    for index in range(start, len(lines) if end is None else end):
        for match in _PAGE_CODE_RE.finditer(lines[index]):
            mentions.setdefault(match["code"], index)
    if not mentions:
        raise doc.error("coding reference page without a 'CPT® Code NNNNN' naming its code")
    if len(mentions) > 1:
        where = ", ".join(f"{code} (line {index + 1})" for code, index in mentions.items())
        raise doc.error(f"coding reference page names several codes as its own: {where}")
    ((code, index),) = mentions.items()
    return code, index


def _parse_coding_reference(doc: _Doc) -> SeedDocument:
    lines = doc.lines
    code, code_index = _page_code(doc)

    official: tuple[str, int] | None = None
    for index, line in enumerate(lines):
        if _OFFICIAL_RE.match(line):
            following = _next_nonblank(lines, index + 1)
            if following is not None:
                official = (lines[following].strip(), following)
            break

    # The descriptor and indicator block: from its first label line, through blank lines only
    # when another label line follows them. Unknown lines inside it are skipped; what follows
    # it is read from after its last label line.
    descriptors: dict[str, tuple[str, int]] = {}
    indicators: list[SeedIndicator] = []
    start = _block_start(lines, _content_start(lines))
    end = 0 if official is None else official[1] + 1
    if start is not None:
        index, last = start, start
        while index < len(lines):
            line = lines[index]
            if not line.strip():
                following = _next_nonblank(lines, index)
                if following is None or not _is_block_line(lines[following]):
                    break
                index = following
                continue
            descriptor = _match_label(_DESCRIPTOR_RES, line)
            indicator = _match_label(_INDICATOR_RES, line)
            if descriptor is not None:
                descriptors.setdefault(descriptor[0], (descriptor[1], index))
                last = index
            elif indicator is not None:
                name, text = indicator
                indicators.append(
                    SeedIndicator(name, _indicator_value(name, text), text, code, doc.src(index))
                )
                last = index
            index += 1
        end = max(end, last + 1)

    # Add-on codes: announced by "This is a primary code ... add-on codes.", one per line.
    add_ons: list[SeedAddOn] = []
    intro = next((i for i in range(end, len(lines)) if _PRIMARY_INTRO_RE.search(lines[i])), None)
    if intro is not None:
        index = intro + 1
        while index < len(lines):
            line = lines[index].strip()
            if not line:
                index += 1
                continue
            match = _ADDON_RE.match(line)
            if not match:
                break
            add_ons.append(
                SeedAddOn(
                    primary=code,
                    add_on=match["code"],
                    description=match["desc"] or None,
                    source=doc.src(index),
                    mpfs_status=match["status"],
                    apc=match["apc"],
                )
            )
            index += 1
        if not add_ons:
            raise doc.error("add-on codes announced but none could be read", intro)
        end = index

    # The modifier list: the first run of "XX description" lines before the history table.
    modifiers: list[SeedModifier] = []
    in_list = False
    for index in range(end, len(lines)):
        line = lines[index]
        if _HISTORY_RE.match(line):
            break
        if not line.strip():
            continue
        match = _MODIFIER_LINE_RE.match(line)
        if match:
            in_list = True
            modifiers.append(SeedModifier(match["code"], match["desc"], None, code, doc.src(index)))
        elif in_list:
            break

    long = descriptors.get("long")
    described = long if long is not None else official
    seed_code = SeedCode(
        code=code,
        is_family=False,
        description=None if described is None else described[0],
        rvu=None,
        notes=None,
        source=doc.src(code_index if described is None else described[1]),
        code_source=doc.src(code_index),
        short_description=descriptors["short"][0] if "short" in descriptors else None,
        medium_description=descriptors["medium"][0] if "medium" in descriptors else None,
        official_description=None if official is None else official[0],
    )
    return SeedDocument(
        name=doc.name,
        kind="coding_reference",
        codes=(seed_code,),
        modifiers=tuple(modifiers),
        indicators=tuple(indicators),
        add_ons=tuple(add_ons),
    )


# --------------------------------------------------------------------------------------------
# Kind 3: advocacy page
# --------------------------------------------------------------------------------------------

#: A glued row: code, description, RVU (a number or "variable"), notes. The RVU is the first
#: number that is directly followed by the notes (a capital, a bracket or a quote) or ends the
#: line; "10.1 sq cm" inside a description is followed by a space and is not taken for it.
_ADVOCACY_ROW_RE = re.compile(
    rf"^(?P<code>{_CODE_OR_FAMILY})\s*(?P<desc>\S.*?)\s*"
    r"(?P<rvu>[0-9]+(?:\.[0-9]+)?|variable)"
    r"(?=[A-Z(“\"‘']|\s*$)\s*(?P<notes>.*?)\s*$"
)
_ADVOCACY_ROW_START_RE = re.compile(rf"^{_CODE_OR_FAMILY}(?![0-9])")
_MENTION_RE = re.compile(rf"(?<![\w.])(?P<code>{_CODE_OR_FAMILY})(?!\w|\.[0-9])")
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_MENTION_RVU_RE = re.compile(
    rf"\bRVUs?(?:\s+values?)?\s+(?:of\s+)?(?P<rvu>{_NUMBER}(?:\s*[–-]\s*{_NUMBER})?)"
)
_SENTENCE_END_RE = re.compile(r"[.!?](?:\s|$)")


def _parse_advocacy(doc: _Doc) -> SeedDocument:
    lines = doc.lines
    codes: list[SeedCode] = []
    table_lines: set[int] = set()
    for header in (i for i, line in enumerate(lines) if _ADVOCACY_HEADER_RE.match(line)):
        table_lines.add(header)
        first = _next_nonblank(lines, header + 1)
        rows: list[SeedCode] = []
        index = header + 1 if first is None else first
        while index < len(lines) and lines[index].strip():
            text = lines[index].strip()
            table_lines.add(index)
            match = _ADVOCACY_ROW_RE.match(text)
            if match:
                code = match["code"]
                rows.append(
                    SeedCode(
                        code=code,
                        is_family=code.endswith("X"),
                        description=match["desc"],
                        rvu=match["rvu"],
                        notes=match["notes"] or None,
                        source=doc.src(index),
                        code_source=doc.src(index),
                    )
                )
            elif _ADVOCACY_ROW_START_RE.match(text) or not rows:
                raise doc.error(
                    "candidate table row not recognised (code, description, RVU, notes)", index
                )
            else:  # the previous row's notes, continued on this line
                row = rows[-1]
                notes = text if not row.notes else f"{row.notes} {text}"
                rows[-1] = SeedCode(
                    code=row.code,
                    is_family=row.is_family,
                    description=row.description,
                    rvu=row.rvu,
                    notes=notes,
                    source=row.source,
                    code_source=row.code_source,
                )
            index += 1
        if not rows:
            raise doc.error("candidate table without rows", header)
        codes.extend(rows)

    mentions: list[SeedMention] = []
    for index, line in enumerate(lines):
        if index in table_lines:
            continue
        for match in _MENTION_RE.finditer(line):
            # The RVU claim about a code is in the rest of its sentence, before any other code.
            rest = line[match.end() :]
            found = (_SENTENCE_END_RE.search(rest), _MENTION_RE.search(rest))
            cut = min((m.start() for m in found if m is not None), default=len(rest))
            sentence = rest[:cut]
            rvu = _MENTION_RVU_RE.search(sentence)
            code = match["code"]
            mentions.append(
                SeedMention(
                    code=code,
                    is_family=code.endswith("X"),
                    rvu=None if rvu is None else rvu["rvu"],
                    source=doc.src(index),
                )
            )

    return SeedDocument(
        name=doc.name,
        kind="advocacy",
        codes=tuple(codes),
        mentions=tuple(mentions),
    )
