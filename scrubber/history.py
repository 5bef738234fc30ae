"""Per-patient history: storage and encoding of the lines later lines must be judged with.

A plain, immutable data structure and its stored form; nothing here decides a verdict. What a
line is judged with, which earlier lines a new one changes and when a revision is due belong to
``scrubber.revisions``; the adapters store histories (a Faust table with a compacted changelog
in the worker, a dict in the offline scrub), so both paths share the same history logic.

Each entry keeps the validated line, the digest of its content (to tell a redelivery from a
corrected resubmission), the revision and verdict digest last emitted for it (to emit a new
revision exactly when a line's verdict changes), and the line id of the input that caused that
revision (so a redelivered input re-sends only the revisions it caused). Entries are pruned by
service date, relative to the newest date of service seen for the patient, never by the clock:
replaying the same input yields the same history.

Stored form (``to_bytes``, format 3): ``H3``, one line of JSON with the member id and, per entry,
its line id, date of service, procedure code, content digest, revision, verdict digest, cause
and the length of its line, then each line's JSON, one after the other. Reading a history parses
only the small head; a line is validated from its own JSON when first used, and written back as
those same bytes. The head's date and code are what decide whether a line is handed to the
rules at all (``scrubber.revisions.visible``), so most stored lines are never validated.
Formats 2 (the same without the code) and 1 (one JSON document, ``{"f": 1, ...}``) are still
read, so a changelog written before keeps working; every write uses format 3.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from datetime import date, timedelta
from itertools import accumulate
from operator import attrgetter
from typing import Any, NamedTuple, cast, final

import orjson

from scrubber.contracts import ClaimLine

_FORMAT = 3
_MAGIC = b"H3"
_FORMAT_2 = 2
_MAGIC_2 = b"H2"
_LEGACY_FORMAT = 1

#: The formats ``to_bytes`` can write: 3, and 2 for a rolling upgrade from a release that reads
#: only format 2 (``SCRUBBER_HISTORY_FORMAT``).
WRITE_FORMATS = (_FORMAT_2, _FORMAT)

_ENTRY_KEYS = ("l", "c", "r", "v", "b")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

#: The most bytes one value of the patient-history table may take (a history, or a patient's
#: claims being assembled): each is one record of the table's changelog, and Kafka refuses a
#: record over the topic's limit (1 MiB unless it is set), which would stop the worker on that
#: line, and every worker after it. The rest of the 1 MiB is room for the key and the framing.
STORED_VALUE_MAX_BYTES = 768 * 1024

#: How many decoded histories ``from_bytes`` keeps, by their bytes (see ``_DECODED``).
DECODED_CACHE_SIZE = 1024

#: Dates of service read from stored heads, by their text: a patient's lines share a handful of
#: dates, and checking and parsing each again was a fifth of reading a history. A stream's
#: histories span a few hundred dates (the lateness window and the rules' reach) and its dates
#: move forward, so the cache starts afresh when it holds ``_DAYS_LIMIT``: at most about
#: 0.6 MB, where 100,000 dates held 13.6 MB for good once a long run had seen them.
_DAYS: dict[str, date] = {}
_DAYS_LIMIT = 4096


def _day(text: object) -> date:
    """A stored date of service (``YYYY-MM-DD``), checked and parsed; kept in ``_DAYS``."""
    if not (type(text) is str and _ISO_DAY.fullmatch(text)):
        raise ValueError("malformed patient history entry")
    day = date.fromisoformat(text)
    if len(_DAYS) >= _DAYS_LIMIT:
        _DAYS.clear()
    _DAYS[text] = day
    return day


#: Optional fields added to contract v1 after histories were first written: left out of the
#: stored line while absent, so a line stored before they existed has the same bytes, and the
#: same content digest, as the same line read today.
_ADDED_FIELDS = ("claim_line_count", "x12")


def line_json(line: ClaimLine) -> bytes:
    """The line as stored in a history: its known fields as JSON (unknown extra fields dropped).

    What a 277CA echoes of the line's claim (``x12.claim``: names, the envelope) is left out:
    judging later lines never needs it, the claim assembly keeps it once per claim, and it was
    more than half of an 837 line's bytes. A revision's line carries the rest of ``x12``.
    """
    exclude: dict[str, Any] = {name: True for name in _ADDED_FIELDS if getattr(line, name) is None}
    if line.x12 is not None and line.x12.claim is not None:
        exclude["x12"] = {"claim": True}
    return line.model_dump_json(exclude=exclude or None).encode()


def content_digest(line: ClaimLine, data: bytes | None = None) -> str:
    """A digest of what a line says (known fields only: unknown extra fields do not count).

    Where the line came from (its X12 control numbers) is not what it says: the same line sent
    again in another interchange is a redelivery, not a correction. ``data`` is
    ``line_json(line)`` when the caller has it already (and the line has no X12 trace).
    """
    if line.x12 is not None:
        absent = {name for name in _ADDED_FIELDS if getattr(line, name) is None}
        data = line.model_dump_json(exclude={"x12", *absent}).encode()
    return hashlib.blake2b(data or line_json(line), digest_size=12).hexdigest()


class StoreWriteError(Exception):
    """The history store refused a write (a full disk, a broken store).

    Raised by the store's writes only, never by encoding, so that it means what the worker
    acts on: it cannot go on (a RocksDB that failed a write stays read-only until it is opened
    again, and later lines would be judged without the histories it did not keep). Nothing
    catches it on the way: the worker stops without a commit. Its text is the cause's type
    only (no PHI).
    """


class UnreadableHistory(Exception):  # noqa: N818 - a condition of the data, not a program error
    """A stored patient history that does not decode (a bug, a format change, a damaged store).

    Carries the stored bytes, so the caller can set them aside for a person to look at; its
    text names only the error type: the bytes hold PHI.
    """

    def __init__(self, data: bytes, error_type: str) -> None:
        super().__init__(f"stored patient history does not decode ({error_type})")
        self.data = data
        self.error_type = error_type


def read_stored(data: bytes) -> PatientHistory:
    """``PatientHistory.from_bytes``, with any decoding failure as ``UnreadableHistory``."""
    try:
        return PatientHistory.from_bytes(data)
    except Exception as exc:  # whatever the damage, the answer is the same: set it aside
        raise UnreadableHistory(data, type(exc).__name__) from None


class _EntrySlots:
    """The slots of ``HistoryEntry``, without its immutability.

    An entry is made for every line a history is asked for (``PatientHistory.at``), and filling
    eleven slots through ``object.__setattr__`` (the way round an immutable class's
    ``__setattr__``) cost more than the rest of making the entry. ``HistoryEntry._build``
    fills an instance of this class with plain slot writes instead, then makes it a
    ``HistoryEntry``: the two have the same layout, so Python allows the change of
    ``__class__``, and from then on the entry is immutable.
    """

    __slots__ = (
        "_blob",
        "_code",
        "_head",
        "_line",
        "cause",
        "content",
        "line_id",
        "order",
        "revision",
        "service_date",
        "verdict",
    )

    line_id: str
    """The line's stable identity (kept: every lookup and sort in the history reads it)."""
    service_date: date
    """The date of service the entry is pruned and windowed by."""
    order: tuple[date, str]
    """The entry's place in the history: (date of service, line id)."""
    content: str
    revision: int
    verdict: str
    cause: str | None
    """The line id of the input whose processing emitted ``revision``: the line itself, or the
    line whose arrival changed this one's verdict. None in histories written before it was
    kept (a redelivery then re-sends the verdict, as it cannot tell)."""
    _line: ClaimLine | None
    _blob: bytes | None
    _code: str | None
    _head: list[Any] | None


class HistoryEntry(_EntrySlots):
    """One line of the patient and what was last emitted for it.

    Immutable. An entry made from a stored history (``PatientHistory.at``) validates its line
    only when the line is first asked for: the processor reads the lines near the one it
    judges, and validating a patient's whole history on every read was most of a worker's time
    per line. Its date, procedure code and line id come from the stored head row, and ``blob``
    is the line's JSON exactly as it was read.
    """

    __slots__ = ()

    def __new__(
        cls,
        line: ClaimLine,
        content: str,
        revision: int,
        verdict: str,
        *,
        cause: str | None = None,
        blob: bytes | None = None,
    ) -> HistoryEntry:
        """An entry of a line judged now (``__new__``, not ``__init__``: see ``_build``)."""
        return cls._build(
            line,
            blob,
            line.procedure_code,
            None,
            content,
            revision,
            verdict,
            cause,
            line.line_id,
            line.service_date,
        )

    @classmethod
    def _build(
        cls,
        line: ClaimLine | None,
        blob: bytes | None,
        code: str | None,
        head: list[Any] | None,
        content: str,
        revision: int,
        verdict: str,
        cause: str | None,
        line_id: str,
        service_date: date,
    ) -> HistoryEntry:
        """The one way an entry is made: every slot written once, then made immutable.

        The slots are filled on a plain ``_EntrySlots`` and the instance's class changed after
        (see ``_EntrySlots``): cheaper than writing each through ``object.__setattr__``.
        """
        fields = _EntrySlots()
        fields._line = line
        fields._blob = blob
        fields._code = code
        fields._head = head
        fields.content = content
        fields.revision = revision
        fields.verdict = verdict
        fields.cause = cause
        fields.line_id = line_id
        fields.service_date = service_date
        fields.order = (service_date, line_id)
        fields.__class__ = cls
        return cast(HistoryEntry, fields)

    @classmethod
    def stored(cls, doc: dict[str, Any]) -> HistoryEntry:
        """An entry as format 1 wrote it (``{"l": line, "c", "r", "v", "b"}``), validated lazily.

        Only a document in exactly the shape format 1 wrote is taken lazily (its id, date and
        revision read straight from the JSON); anything else is validated at once.
        """
        raw = doc.get("l") if tuple(doc) == _ENTRY_KEYS else None
        cause = doc.get("b")
        if (
            isinstance(raw, dict)
            and type(doc["r"]) is int
            and (cause is None or type(cause) is str)
        ):
            claim_id, number = raw.get("claim_id"), raw.get("line_number")
            day, code = raw.get("service_date"), raw.get("procedure_code")
            if (
                type(claim_id) is str
                and type(number) is int
                and type(day) is str
                and _ISO_DAY.fullmatch(day)
            ):
                return cls._build(
                    None,
                    orjson.dumps(raw),
                    code if type(code) is str else None,
                    None,
                    doc["c"],
                    doc["r"],
                    doc["v"],
                    cause,
                    f"{claim_id}:{number}",
                    date.fromisoformat(day),
                )
        return cls(
            line=ClaimLine.model_validate(doc["l"], strict=False),
            content=doc["c"],
            revision=int(doc["r"]),
            verdict=doc["v"],
            cause=cause if isinstance(cause, str) else None,
        )

    @property
    def line(self) -> ClaimLine:
        """The validated line (validated on first use for an entry read from bytes)."""
        line = self._line
        if line is None:
            assert self._blob is not None  # an entry has its line, its JSON, or both
            line = ClaimLine.model_validate_json(self._blob)
            object.__setattr__(self, "_line", line)
        return line

    @property
    def procedure_code(self) -> str:
        """The line's procedure code, known without validating the line (from the head).

        An entry read from format 2 takes it from its stored JSON, and only a line whose JSON
        does not tell is validated for it.
        """
        code = self._code
        if code is None:
            code = self._stored_code() or self.line.procedure_code
            object.__setattr__(self, "_code", code)
        return code

    @property
    def blob(self) -> bytes:
        """The line's JSON as stored (``line_json``), computed once per entry."""
        blob = self._blob
        if blob is None:
            blob = line_json(self.line)
            object.__setattr__(self, "_blob", blob)
        return blob

    def head(self) -> list[Any]:
        """What format 3 stores of the entry besides its line, the line's JSON length last.

        Built once per entry (an entry is immutable), or the row it was made from
        (``PatientHistory.at``). Writing never validates a line: the code of an entry read
        from format 2 comes from its stored JSON (``_stored_code``).
        """
        head = self._head
        if head is None:
            head = [
                self.line_id,
                self.service_date.isoformat(),
                self._stored_code(),
                self.content,
                self.revision,
                self.verdict,
                self.cause,
                len(self.blob),
            ]
            object.__setattr__(self, "_head", head)
        return head

    def _stored_code(self) -> str | None:
        """The line's procedure code without validating the line (None: it cannot be told).

        An entry read from format 2 knows its code only from its stored JSON, which was made
        from a validated line. Writing the history back happens after the batch was judged,
        where a stored line that no longer validates must not stop the worker; a None code
        in a format-3 head means "read it from the line" (``PatientHistory.code_at``).
        """
        if self._code is not None:
            return self._code
        if self._line is not None:
            return self._line.procedure_code
        try:
            code = orjson.loads(self.blob).get("procedure_code")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return code if type(code) is str else None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"HistoryEntry is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"HistoryEntry is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HistoryEntry):
            return NotImplemented
        return (self.line, self.content, self.revision, self.verdict, self.cause) == (
            other.line,
            other.content,
            other.revision,
            other.verdict,
            other.cause,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"HistoryEntry(line={self.line!r}, content={self.content!r}, "
            f"revision={self.revision!r}, verdict={self.verdict!r}, cause={self.cause!r})"
        )


_ORDER = attrgetter("order")

#: The fields of a format-3 head row (``HistoryEntry.head``), and where its code is.
_ROW_FIELDS = 8
_ROW_CODE = 2

#: More bytes than any head row takes as JSON, with its comma: two line ids (a claim id of at
#: most 64 characters, ``:``, a line number of at most 999), a code of at most 16 characters,
#: each character escaped to at most six bytes, a date, two digests and three integers; and
#: more than the rest of the head (``H3``, ``{"f":3,"m":...,"e":[]}`` with a member id of at
#: most 64 such characters, the newline). ``PatientHistory.within`` measures the head exactly
#: only when a history could reach its limit with this much per row.
_ROW_BOUND = 1280


def _check_row(row: object) -> date:
    """A format-3 head row's date of service; ValueError when the row is not one ``head`` makes."""
    if type(row) is not list or len(row) != _ROW_FIELDS:
        raise ValueError("malformed patient history entry")
    line_id, day, code, content, revision, verdict, cause, size = row
    if not (
        type(line_id) is str
        and (code is None or type(code) is str)
        and type(content) is str
        and type(revision) is int
        and type(verdict) is str
        and (cause is None or type(cause) is str)
        and type(size) is int
        and size >= 0
    ):
        raise ValueError("malformed patient history entry")
    service_date = _DAYS.get(day) if type(day) is str else None
    return service_date if service_date is not None else _day(day)


def _ordered(days: list[date], ids: list[str]) -> bool:
    """Whether rows are in history order: by date, then line id."""
    orders = list(zip(days, ids, strict=True))
    return orders == sorted(orders)


class _Columns(NamedTuple):
    """A history's columns, one item per entry, in history order."""

    rows: list[list[Any]]
    """Each entry's format-3 head (``HistoryEntry.head``), written back as it is."""
    ids: list[str]
    days: list[date]
    codes: list[str | None]
    """The procedure code of the head (None: only the entry's line tells it)."""
    blobs: list[bytes | int]
    """Each entry's line as stored (``line_json``), or where it starts in the bytes the history
    was read from (``PatientHistory._base``; its length is the row's last field)."""
    cells: list[HistoryEntry | None]
    """Each entry, once made (``PatientHistory.at``)."""


def _still(base: bytes, blobs: list[bytes | int]) -> bytes:
    """``base`` while a line still points into it, else nothing (so it can be freed)."""
    return base if base and int in map(type, blobs) else b""


class _HistorySlots:
    """The slots of ``PatientHistory``, without its immutability (see ``_EntrySlots``)."""

    __slots__ = (
        "_base",
        "_blobs",
        "_cells",
        "_codes",
        "_days",
        "_ids",
        "_rows",
        "member_id",
        "prunes",
    )

    member_id: str
    prunes: int
    """How many times ``prune`` or ``within`` dropped lines from this history (in memory only)."""
    _rows: list[list[Any]]
    _ids: list[str]
    _days: list[date]
    _codes: list[str | None]
    _blobs: list[bytes | int]
    _cells: list[HistoryEntry | None]
    _base: bytes
    """The bytes the history was read from, which its entries' stored JSON points into."""

    def _set(self, member_id: str, prunes: int, columns: _Columns, base: bytes) -> PatientHistory:
        """Write every slot once, then make the instance a ``PatientHistory``.

        As ``HistoryEntry._build`` does (see ``_EntrySlots``): nine writes through
        ``object.__setattr__`` for every history made cost more than the rest of an upsert.
        """
        self.member_id = member_id
        self.prunes = prunes
        self._rows, self._ids, self._days, self._codes, self._blobs, self._cells = columns
        self._base = base
        self.__class__ = PatientHistory
        return cast(PatientHistory, self)


@final
class PatientHistory(_HistorySlots):
    """The lines of one patient, ordered by (date of service, line id). Immutable.

    Held as columns (``_Columns``) rather than as one object per line: each line's format-3
    head row (line id, date, code, content digest, revision, verdict digest, cause, size), its
    line id, date of service and procedure code, its stored JSON (or where it starts in the
    bytes the history was read from), and its ``HistoryEntry`` once one is asked for (``at``).
    A patient's history is read and written for nearly every line of the patient, while judging
    a line touches only the few lines of its date and the surgeries around it: reading one from
    bytes makes no object per line beyond what parsing the head gives, and the dates are
    sorted, so a window of them is found by bisection, not by a pass over the whole history.
    Final: ``_of`` makes every new history a ``PatientHistory``, so a subclass would lose its
    class.
    """

    __slots__ = ()

    def __init__(
        self, member_id: str = "", entries: Iterable[HistoryEntry] = (), prunes: int = 0
    ) -> None:
        """A history of these entries, in any order (they are sorted)."""
        ordered = sorted(entries, key=_ORDER)
        rows = [e.head() for e in ordered]
        object.__setattr__(self, "__class__", _HistorySlots)  # writable while it is filled
        cast(_HistorySlots, self)._set(
            member_id,
            prunes,
            _Columns(
                rows,
                [row[0] for row in rows],
                [e.service_date for e in ordered],
                [row[_ROW_CODE] for row in rows],
                [e.blob for e in ordered],
                list(ordered),
            ),
            b"",
        )

    @staticmethod
    def _of(member_id: str, prunes: int, columns: _Columns, base: bytes = b"") -> PatientHistory:
        """A history of columns already in order (the one way methods make a new history)."""
        return _HistorySlots()._set(member_id, prunes, columns, base)

    def _columns(self, cut: slice = slice(None)) -> _Columns:
        """Copies of the columns (of the entries in ``cut``)."""
        return _Columns(
            self._rows[cut],
            self._ids[cut],
            self._days[cut],
            self._codes[cut],
            self._blobs[cut],
            self._cells[cut],
        )

    @classmethod
    def empty(cls, member_id: str) -> PatientHistory:
        """The history of a patient the scrubber has not seen before."""
        return cls._of(member_id, 0, _Columns([], [], [], [], [], []))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PatientHistory is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PatientHistory is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatientHistory):
            return NotImplemented
        return (self.member_id, self.entries) == (other.member_id, other.entries)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PatientHistory(member_id={self.member_id!r}, entries={self.entries!r})"

    # ------------------------------------------------------------------------------ reading
    def at(self, index: int) -> HistoryEntry:
        """The entry at ``index`` in history order, made from its head row when first asked for."""
        entry = self._cells[index]
        if entry is None:
            row, blob = self._rows[index], self._blob(index)
            code = row[_ROW_CODE]
            # Rows were checked when read (``_check_row``); a row with a code is what the
            # entry's ``head`` would build again, so it is kept as the entry's head.
            entry = HistoryEntry._build(
                None,
                blob,
                code,
                row if code is not None else None,
                row[3],
                row[4],
                row[5],
                row[6],
                row[0],
                self._days[index],
            )
            self._cells[index] = entry
        return entry

    def _blob(self, index: int) -> bytes:
        """The stored JSON of the entry at ``index``."""
        blob = self._blobs[index]
        if not isinstance(blob, int):
            return blob
        return self._base[blob : blob + self._rows[index][-1]]

    def _stored_lines(self) -> list[bytes | memoryview]:
        """Every entry's stored JSON, in order: lines read together are one slice of the read."""
        parts: list[bytes | memoryview] = []
        base = memoryview(self._base)
        first = last = -1
        for blob, row in zip(self._blobs, self._rows, strict=True):
            if not isinstance(blob, int):
                if first >= 0:
                    parts.append(base[first:last])
                    first = last = -1
                parts.append(blob)
            elif blob == last:  # the next line of the same run
                last += row[-1]
            else:
                if first >= 0:
                    parts.append(base[first:last])
                first = blob
                last = first + row[-1]
        if first >= 0:
            parts.append(base[first:last])
        return parts

    @property
    def entries(self) -> tuple[HistoryEntry, ...]:
        """Every entry, in order (each made from its row when first asked for)."""
        return tuple([self.at(i) for i in range(len(self._rows))])

    @property
    def service_dates(self) -> list[date]:
        """The entries' dates of service, in order (sorted). The history's own: read only."""
        return self._days

    @property
    def line_ids(self) -> list[str]:
        """The entries' line ids, in history order. The history's own: read only."""
        return self._ids

    @property
    def procedure_codes(self) -> list[str | None]:
        """Procedure codes from the heads (None: ask ``code_at``). The history's own: read only."""
        return self._codes

    def code_at(self, index: int) -> str:
        """The procedure code of the entry at ``index``, from its head row when it has one."""
        code = self._codes[index]
        return code if code is not None else self.at(index).procedure_code

    def index(self, line_id: str) -> int | None:
        """Where a line id is in the history, if the line is known."""
        try:
            return self._ids.index(line_id)
        except ValueError:
            return None

    def get(self, line_id: str) -> HistoryEntry | None:
        """The entry of a line id, if the line is known."""
        i = self.index(line_id)
        return None if i is None else self.at(i)

    def span(self, first: date, last: date) -> range:
        """The indexes of the entries dated ``first`` .. ``last`` (found by bisection)."""
        days = self._days
        return range(bisect_left(days, first), bisect_right(days, last))

    def between(self, first: date, last: date) -> tuple[HistoryEntry, ...]:
        """Entries whose date of service is in ``first`` .. ``last``."""
        return tuple([self.at(i) for i in self.span(first, last)])

    # ------------------------------------------------------------------------------ changing
    def upsert(self, entry: HistoryEntry) -> PatientHistory:
        """The history with this entry added, or replacing the entry of the same line id."""
        columns = self._columns()
        rows, ids, days, codes, blobs, cells = columns
        day, line_id = entry.service_date, entry.line_id
        while line_id in ids:  # every entry of the line id (one, unless stored twice)
            old = ids.index(line_id)
            for column in columns:
                del column[old]
        at, end = bisect_left(days, day), bisect_right(days, day)
        while at < end and ids[at] < line_id:  # the same date: ordered by line id
            at += 1
        row = entry.head()
        rows.insert(at, row)
        ids.insert(at, line_id)
        days.insert(at, day)
        codes.insert(at, row[_ROW_CODE])
        blobs.insert(at, entry.blob)
        cells.insert(at, entry)
        return PatientHistory._of(self.member_id, self.prunes, columns, _still(self._base, blobs))

    def prune(self, keep_days: int) -> PatientHistory:
        """Drop lines dated more than ``keep_days`` before the patient's newest line.

        Relative to the newest date of service, never to the clock: replaying the same input
        yields the same history. How much to keep is the caller's policy (``revisions``).
        """
        days = self._days
        if not days:
            return self
        cut = bisect_left(days, days[-1] - timedelta(days=keep_days))
        if cut == 0:
            return self
        return self._dropping(self._columns(slice(cut, None)))

    def _dropping(self, columns: _Columns) -> PatientHistory:
        """The history of ``columns``, some of this one's, after ``prune`` or ``within``."""
        base = _still(self._base, columns.blobs)
        return PatientHistory._of(self.member_id, self.prunes + 1, columns, base)

    def within(self, max_bytes: int, keep: str | None = None) -> PatientHistory:
        """The history without as few of its oldest lines as it takes to store it in ``max_bytes``.

        ``len(self.within(n).to_bytes()) <= n`` (format 3; format 2 is shorter), unless even
        the newest line alone does not fit: then no line is kept but ``keep``, which may leave
        it over (no line the contract allows comes near the limit). The line ``keep`` (a line id)
        stays, wherever it is: the line just judged, so that its redelivery is known as one
        and its correction gets the next revision, however late its date. Exact: the rows'
        JSON is measured, but only for a history that could be that large at all (its lines'
        bytes plus ``_ROW_BOUND`` per row), so the usual patient costs one sum. How large a
        history may grow is the caller's policy (``revisions``).
        """
        rows = self._rows
        lengths = [row[-1] for row in rows]
        if sum(lengths) + (len(rows) + 1) * _ROW_BOUND <= max_bytes:
            return self
        # Each row's JSON and its line, with a comma before every row but the first.
        sizes = [len(orjson.dumps(row)) + 1 + row[-1] for row in rows]
        empty = orjson.dumps({"f": _FORMAT, "m": self.member_id, "e": []})
        # The head's newline takes the byte the first row's comma does not.
        total = len(_MAGIC) + len(empty) + sum(sizes)
        dropped: list[int] = []
        for index, line_id in enumerate(self._ids):
            if total <= max_bytes:
                break
            if line_id != keep:
                total -= sizes[index]
                dropped.append(index)
        if not dropped:
            return self
        if len(dropped) == dropped[-1] + 1:  # the oldest lines: one slice
            return self._dropping(self._columns(slice(len(dropped), None)))
        left = [i for i in range(len(rows)) if i > dropped[-1] or self._ids[i] == keep]
        return self._dropping(_Columns._make([c[i] for i in left] for c in self._columns()))

    # ------------------------------------------------------------------------------ stored form
    def to_bytes(self, version: int = _FORMAT) -> bytes:
        """The stored form (format 3, see the module's docstring) for the table and changelog.

        The head rows and each line's JSON are kept as they were read or made, so a write
        encodes only the small head. ``version`` 2 writes format 2, which a release before
        format 3 reads (during a rolling upgrade from it, until every worker reads format 3).
        """
        if version == _FORMAT:
            magic, heads = _MAGIC, self._rows
        elif version == _FORMAT_2:
            magic, heads = (
                _MAGIC_2,
                [[*row[:_ROW_CODE], *row[_ROW_CODE + 1 :]] for row in self._rows],
            )
        else:
            raise ValueError(f"cannot write patient history format {version!r}")
        head = orjson.dumps({"f": version, "m": self.member_id, "e": heads})
        data = b"".join((magic, head, b"\n", *self._stored_lines()))
        _remember(data, self)
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> PatientHistory:
        """Read what ``to_bytes`` wrote (lines were validated before they were stored).

        The worker reads a patient's history for every line and writes it back: the lines of a
        claim arrive one after the other, so the bytes read are most often the bytes just
        written. Those are answered from ``_DECODED`` instead of decoding them again.
        """
        cached = _DECODED.get(data)
        if cached is not None:
            _DECODED.move_to_end(data)
            return cached
        if data.startswith(_MAGIC):
            history = cls._read(data)
        elif data.startswith(_MAGIC_2):
            history = cls._read(data, _FORMAT_2)
        else:
            doc = orjson.loads(data)
            if doc.get("f") != _LEGACY_FORMAT:
                raise ValueError(f"unknown patient history format {doc.get('f')!r}")
            history = cls(member_id=doc["m"], entries=[HistoryEntry.stored(e) for e in doc["e"]])
        _remember(data, history)
        return history

    @staticmethod
    def _head(data: bytes, version: int) -> tuple[dict[str, Any], int]:
        """The parsed head of a format 3 or 2 history (the magic is two bytes either way)."""
        end = data.index(b"\n")  # JSON escapes newlines in strings: the first ends the head
        head = orjson.loads(data[len(_MAGIC) : end])
        if type(head) is not dict or head.get("f") != version:
            found = head.get("f") if type(head) is dict else None
            raise ValueError(f"unknown patient history format {found!r}")
        if type(head.get("e")) is not list:
            raise ValueError("malformed patient history")
        return head, end + 1

    @classmethod
    def _read(cls, data: bytes, version: int = _FORMAT) -> PatientHistory:
        """A format-3 history: its head's rows as they are, its lines' JSON as where they start.

        A format-2 row is format 3's without the code: read as a row whose code its line tells.
        """
        head, at = cls._head(data, version)
        rows: list[Any] = head["e"]
        if version == _FORMAT_2:
            rows = [
                [*row[:_ROW_CODE], None, *row[_ROW_CODE:]]
                if type(row) is list and len(row) == _ROW_FIELDS - 1
                else None
                for row in rows
            ]
        days = [_check_row(row) for row in rows]
        codes = [row[_ROW_CODE] for row in rows]
        # Each line's JSON is where it starts in ``data`` (sizes were checked: none negative).
        starts = list(accumulate([row[-1] for row in rows], initial=at))
        end = starts.pop()
        blobs = cast("list[bytes | int]", starts)
        if end > len(data):
            raise ValueError("malformed patient history entry")
        if end != len(data):
            raise ValueError("patient history has bytes after its last entry")
        columns = _Columns(rows, [row[0] for row in rows], days, codes, blobs, [None] * len(rows))
        history = cls._of(head["m"], 0, columns, data)
        if None in codes or not _ordered(days, columns.ids):
            # A row without a code (format 2, or a line whose stored JSON did not tell it when
            # it was written: ``_stored_code``), or rows out of order (never written by
            # ``to_bytes``): made again from the entries, which find the code in the line.
            history = cls(head["m"], history.entries)
        return history


#: Recently written or read histories by their bytes. A history is immutable and its bytes are
#: a function of it, so answering ``from_bytes`` from here gives what decoding would.
_DECODED: OrderedDict[bytes, PatientHistory] = OrderedDict()


def _remember(data: bytes, history: PatientHistory) -> None:
    _DECODED[data] = history
    _DECODED.move_to_end(data)
    while len(_DECODED) > DECODED_CACHE_SIZE:
        _DECODED.popitem(last=False)
