"""The CMS practitioner PTP file reader: build time only (``scrubber refdata build``).

Turns CMS's tab-separated PTP files (``ccipra-vNNNrN-f1.TXT`` .. ``f4.TXT``, each in a zip) into
``PtpRow`` objects for ``scrubber.refdata.ptp.PtpTable``; the worker reads the encoded table from
the bundle and never imports this module. A full release is well over a million rows, so
``read_ptp`` validates every row (a wrong date window or indicator silently read would become a
wrong verdict on real claims) but keeps the per-row cost down by validating each distinct code,
date and rationale text once and reusing the result.
"""

from __future__ import annotations

import gzip
import io
import itertools
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import IO, cast

from scrubber.refdata.cms import CmsFileError
from scrubber.refdata.ptp import CODE_RE, PtpRow, slot_setters

__all__ = ["PtpFileError", "read_ptp"]


class PtpFileError(CmsFileError):
    """A ``CmsFileError`` that can also name the member of a zip the bad line is in.

    The message reads ``"<zip>!<member>:<line>: ..."`` for a zip member, so the person fixing the
    file knows which of the release's files to open; otherwise it is the plain
    ``"<file>:<line>: ..."`` of every CMS reader.
    """

    def __init__(self, path: Path, line: int, message: str, member: str | None = None) -> None:
        super().__init__(path, line, message)
        self.member = member
        if member is not None:
            self.args = (f"{path.name}!{member}:{line}: {message}",)


def _row_factory() -> Callable[[str, str, bool, date, date | None, str, str, str], PtpRow]:
    names = ("column1", "column2", "prior_1996", "effective", "deletion",
             "modifier_indicator", "rationale", "source")  # fmt: skip
    set_c1, set_c2, set_prior, set_eff, set_del, set_ind, set_why, set_source = slot_setters(
        PtpRow, names
    )
    new = object.__new__

    def make(
        column1: str,
        column2: str,
        prior_1996: bool,
        effective: date,
        deletion: date | None,
        modifier_indicator: str,
        rationale: str,
        source: str,
    ) -> PtpRow:
        row: PtpRow = new(PtpRow)
        set_c1(row, column1)
        set_c2(row, column2)
        set_prior(row, prior_1996)
        set_eff(row, effective)
        set_del(row, deletion)
        set_ind(row, modifier_indicator)
        set_why(row, rationale)
        set_source(row, source)
        return row

    return make


_new_row = _row_factory()


# ---------------------------------------------------------------------------------- reading

_DATE_RE = re.compile(r"[0-9]{8}")
_WORD_RE = re.compile(r"[A-Z0-9]+")
_INDICATORS = frozenset({"0", "1", "9"})
_CELLS = 7

#: What each header column must say once its wrapped cells are joined (as sets of words, so
#: spacing and punctuation do not matter). The header is wrapped over four lines; requiring the
#: words of the lower lines ("Date", "9=not applicable") proves the whole header is there.
_HEADER: tuple[tuple[str, frozenset[str]], ...] = (
    ("Column 1", frozenset({"COLUMN", "1"})),
    ("Column 2", frozenset({"COLUMN", "2"})),
    ("*=in existence prior to 1996", frozenset({"EXISTENCE", "PRIOR", "1996"})),
    ("Effective Date", frozenset({"EFFECTIVE", "DATE"})),
    ("Deletion Date *=no data", frozenset({"DELETION", "DATE"})),
    (
        "Modifier 0=not allowed 1=allowed 9=not applicable",
        frozenset({"MODIFIER", "0", "NOT", "ALLOWED", "1", "9", "APPLICABLE"}),
    ),
    ("PTP Edit Rationale", frozenset({"RATIONALE"})),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD_RE.findall(text.upper()))


def _code(value: str, column: str) -> str:
    code = value.strip().upper()
    if not CODE_RE.fullmatch(code):
        raise ValueError(f"{column}: {value!r} is not a 5-character HCPCS/CPT code")
    return code


def _date(value: str, column: str) -> date:
    text = value.strip()
    if not _DATE_RE.fullmatch(text):
        raise ValueError(f"{column}: {value!r} is not a date (YYYYMMDD)")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ValueError(f"{column}: {value!r} is not a calendar date") from None


class _Reader:
    """Reads the lines of one PTP text, validating as it goes; caches make repeats cheap.

    The caches map a raw cell to its validated value. Two million rows hold some twelve thousand
    distinct codes, a few hundred dates and a dozen rationale texts, so almost every cell is one
    dict lookup, and equal values share one object (which also keeps the rows small).
    """

    def __init__(self, path: Path, member: str | None) -> None:
        self.path = path
        self.member = member
        self.name = path.name if member is None else f"{path.name}!{member}"
        self.codes: dict[str, str] = {}
        self.effective: dict[str, date] = {}
        self.deletion: dict[str, date | None] = {"*": None}
        self.rationales: dict[str, str] = {}
        self.last = 0  # the last line the header search read, for read errors

    def error(self, line: int, message: str) -> PtpFileError:
        return PtpFileError(self.path, line, message, self.member)

    def read(self, binary: IO[bytes]) -> list[PtpRow]:
        """All rows of one text stream, or an error: never a partial list.

        Lines end at LF only (a CR before it is dropped), because Latin-1 bytes such as 0x85 are
        line breaks to ``str.splitlines``. A stream that breaks off (a damaged gzip, a zip member
        failing its CRC) is an error at the line after the last one read.
        """
        numbered = enumerate(io.TextIOWrapper(binary, encoding="latin-1", newline="\n"), 1)
        self.last = 0
        last = 0
        rows: list[PtpRow] = []
        try:
            last, first_data = self._header(numbered)
            blank_line = 0
            for line, raw in itertools.chain(first_data, numbered):
                last = line
                text = raw.rstrip("\r\n")
                if not text.strip():
                    blank_line = blank_line or line
                    continue
                if blank_line:
                    raise self.error(blank_line, "blank line between data rows")
                try:
                    rows.append(self._row(text.split("\t"), line))
                except ValueError as exc:
                    raise self.error(line, str(exc)) from None
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
            line = max(last, self.last) + 1
            raise self.error(line, f"the file cannot be read from this line on: {exc}") from None
        if not rows:
            raise self.error(last, "no data rows after the column header")
        return rows

    def _header(self, numbered: Iterator[tuple[int, str]]) -> tuple[int, list[tuple[int, str]]]:
        """Consume the preamble and the wrapped header.

        Returns the last line read and the first line after the header (read to see that the
        header had ended; empty at the end of the file). The preamble (notice and title lines)
        is free text and may be absent; the header is found by its first cells, "Column 1" and
        "Column 2", and its continuation lines are those that follow with both of those cells
        empty. A code where the header should be means the header is missing, which is an error
        rather than a guess at the layout.
        """
        start = 0
        last = 0
        block: list[list[str]] = []
        for line, raw in numbered:
            last = self.last = line
            cells = raw.rstrip("\r\n").split("\t")
            if not start:
                if _words(cells[0]) == ("COLUMN", "1") and len(cells) > 1:
                    start = line
                    block.append(cells)
                elif CODE_RE.fullmatch(cells[0].strip().upper()):
                    raise self.error(
                        line,
                        "data row before the column header (expected a header row starting "
                        "'Column 1<TAB>Column 2')",
                    )
                continue
            continued = len(cells) > 2 and not cells[0].strip() and not cells[1].strip()
            if continued and any(cell.strip() for cell in cells):
                block.append(cells)
                continue
            self._check_header(start, block)
            return line, [(line, raw)]
        if not start:
            raise self.error(
                max(last, 1), "no column header (a row starting 'Column 1<TAB>Column 2')"
            )
        self._check_header(start, block)
        return last, []

    def _check_header(self, line: int, block: list[list[str]]) -> None:
        width = max(len(cells) for cells in block)
        names = [
            " ".join(" ".join(cells[i].split()) for cells in block if i < len(cells) and cells[i])
            for i in range(width)
        ]
        names = [" ".join(name.split()) for name in names]
        for i, (expected, words) in enumerate(_HEADER):
            name = names[i] if i < len(names) else ""
            if not words <= set(_words(name)):
                raise self.error(
                    line,
                    f"header column {i + 1} reads {name!r}, expected {expected!r} "
                    "(the header is wrapped over four lines: are some missing?)",
                )
        for i in range(len(_HEADER), width):
            if names[i]:
                raise self.error(line, f"unexpected header column {i + 1}: {names[i]!r}")

    def _row(self, cells: list[str], line: int) -> PtpRow:
        if len(cells) < _CELLS:
            raise ValueError(
                f"too few cells: {len(cells)}, expected {_CELLS} (column 1, column 2, prior to "
                "1996, effective date, deletion date, modifier indicator, rationale)"
            )
        if len(cells) > _CELLS:
            for i in range(_CELLS, len(cells)):
                if cells[i].strip():
                    raise ValueError(f"unexpected value in cell {i + 1}: {cells[i]!r}")
        raw1, raw2, prior, raw_eff, raw_del, indicator, raw_why = cells[:_CELLS]
        try:
            column1 = self.codes[raw1]
        except KeyError:
            column1 = self.codes[raw1] = _code(raw1, "column 1")
        try:
            column2 = self.codes[raw2]
        except KeyError:
            column2 = self.codes[raw2] = _code(raw2, "column 2")
        if prior == "":
            prior_1996 = False
        elif prior == "*":
            prior_1996 = True
        else:
            prior_1996 = self._prior(prior)
        try:
            effective = self.effective[raw_eff]
        except KeyError:
            effective = self.effective[raw_eff] = _date(raw_eff, "effective date")
        try:
            deletion = self.deletion[raw_del]
        except KeyError:
            deletion = self.deletion[raw_del] = (
                None if raw_del.strip() == "*" else _date(raw_del, "deletion date")
            )
        if deletion is not None and deletion < effective:
            raise ValueError(
                f"deletion date {raw_del.strip()} is before effective date {raw_eff.strip()}"
            )
        if indicator not in _INDICATORS:
            indicator = indicator.strip()
            if indicator not in _INDICATORS:
                raise ValueError(
                    f"modifier indicator: {cells[5]!r} is not 0 (not allowed), 1 (allowed) or "
                    "9 (not applicable)"
                )
        try:
            rationale = self.rationales[raw_why]
        except KeyError:
            rationale = self.rationales[raw_why] = " ".join(raw_why.split())
        return _new_row(
            column1,
            column2,
            prior_1996,
            effective,
            deletion,
            indicator,
            rationale,
            f"{self.name}:{line}",
        )

    @staticmethod
    def _prior(value: str) -> bool:
        text = value.strip()
        if text not in {"", "*"}:
            raise ValueError(
                f"prior to 1996: {value!r} is not '*' (in existence prior to 1996) or empty"
            )
        return text == "*"


def read_ptp(path: Path) -> tuple[PtpRow, ...]:
    """Read a CMS practitioner PTP file: the ``.TXT``, a gzip of one, or a zip of several.

    The kind is told from the file's first bytes, not its name. A zip's members whose names end
    in ``.txt`` (any case) are read in name order, each with its own header; other members
    (documents that come in the same zip) are ignored. Every row is validated; the first bad one
    raises ``CmsFileError`` (a ``PtpFileError``) naming the file -- ``zip!member`` for a zip --
    and the 1-based line, and nothing is returned.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise PtpFileError(path, 1, f"cannot open the file: {exc.strerror}") from None
    if magic[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as gz:
            return tuple(_Reader(path, None).read(cast(IO[bytes], gz)))
    if magic[:2] == b"PK":
        return tuple(_read_zip(path))
    with path.open("rb") as fh:
        return tuple(_Reader(path, None).read(fh))


def _read_zip(path: Path) -> list[PtpRow]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise PtpFileError(path, 1, f"not a readable zip archive: {exc}") from None
    with archive:
        members = sorted(
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and info.filename.lower().endswith(".txt")
        )
        if not members:
            names = ", ".join(repr(i.filename) for i in archive.infolist()) or "none"
            raise PtpFileError(path, 1, f"no .txt member in the zip (members: {names})")
        rows: list[PtpRow] = []
        for member in members:
            try:
                fh = archive.open(member)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
                raise PtpFileError(path, 1, f"cannot open the member: {exc}", member) from None
            with fh:
                rows.extend(_Reader(path, member).read(fh))
        return rows
