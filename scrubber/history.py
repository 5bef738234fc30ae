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
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta
from operator import attrgetter
from typing import Any, cast

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

#: How many decoded histories ``from_bytes`` keeps, by their bytes (see ``_DECODED``).
DECODED_CACHE_SIZE = 1024

#: Dates of service read from stored heads, by their text: a patient's lines share a handful of
#: dates, and checking and parsing each again was a fifth of reading a history. Bounded: a
#: stream spans a few thousand dates, and past the limit a date is parsed every time.
_DAYS: dict[str, date] = {}
_DAYS_LIMIT = 100_000


def _day(text: object) -> date:
    """A stored date of service (``YYYY-MM-DD``), checked and parsed; kept in ``_DAYS``."""
    if not (type(text) is str and _ISO_DAY.fullmatch(text)):
        raise ValueError("malformed patient history entry")
    day = date.fromisoformat(text)
    if len(_DAYS) < _DAYS_LIMIT:
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

    Reading a history makes an entry for every stored line, and filling eleven slots through
    ``object.__setattr__`` (the way round an immutable class's ``__setattr__``) cost more than
    the rest of reading the entry. ``HistoryEntry._build`` fills an instance of this class
    with plain slot writes instead, then makes it a ``HistoryEntry``: the two have the same
    layout, so Python allows the change of ``__class__``, and from then on the entry is
    immutable.
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

    Immutable. An entry read back from bytes (``from_bytes``) validates its line only when the
    line is first asked for: the processor reads the lines near the one it judges, and
    validating a patient's whole history on every read was most of a worker's time per line.
    Its date, procedure code and line id come from the stored head, and it writes back the
    line's JSON exactly as it was read (``blob``), so a history write encodes only the lines
    that are new.
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
    def from_head(cls, head: list[Any], blob: bytes) -> HistoryEntry:
        """An entry of a format-3 history: its head (see ``head``) and its line's JSON.

        A format-2 head (the same without the procedure code) gives an entry whose code is
        read from its line when first asked for.
        """
        if len(head) == 8:
            line_id, day, code, content, revision, verdict, cause, _size = head
        else:
            line_id, day, content, revision, verdict, cause, _size = head
            code = None
        service_date = _DAYS.get(day) if type(day) is str else None
        if service_date is None:
            service_date = _day(day)
        if not (
            type(line_id) is str
            and (code is None or type(code) is str)
            and type(content) is str
            and type(revision) is int
            and type(verdict) is str
            and (cause is None or type(cause) is str)
        ):
            raise ValueError("malformed patient history entry")
        # A format-3 head with a code is what ``head`` would build again: it is written back
        # as read (its size is the blob's, which was cut by it).
        return cls._build(
            None,
            blob,
            code,
            head if code is not None else None,
            content,
            revision,
            verdict,
            cause,
            line_id,
            service_date,
        )

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

        Built once per entry (an entry is immutable) or kept as it was read: most entries of a
        history written back are the ones it was read with. Writing never validates a line:
        the code of an entry read from format 2 comes from its stored JSON (``_stored_code``).
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
        in a format-3 head means "read it from the line" (``from_head``).
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

    def head_2(self) -> list[Any]:
        """What format 2 stores of the entry (format 3's head without the code)."""
        head = self.head()
        return [head[0], head[1], *head[3:]]

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


@dataclass(frozen=True, slots=True)
class PatientHistory:
    """The lines of one patient, ordered by (date of service, line id)."""

    member_id: str = ""
    entries: tuple[HistoryEntry, ...] = ()
    prunes: int = field(default=0, compare=False, repr=False)
    """How many times ``prune`` dropped lines from this history (in memory only)."""

    @classmethod
    def empty(cls, member_id: str) -> PatientHistory:
        """The history of a patient the scrubber has not seen before."""
        return cls(member_id=member_id)

    def get(self, line_id: str) -> HistoryEntry | None:
        """The entry of a line id, if the line is known."""
        for entry in self.entries:
            if entry.line_id == line_id:
                return entry
        return None

    def between(self, first: date, last: date) -> tuple[HistoryEntry, ...]:
        """Entries whose date of service is in ``first`` .. ``last``."""
        return tuple([e for e in self.entries if first <= e.service_date <= last])

    def upsert(self, entry: HistoryEntry) -> PatientHistory:
        """The history with this entry added, or replacing the entry of the same line id."""
        line_id = entry.line_id
        kept = [e for e in self.entries if e.line_id != line_id]
        kept.append(entry)
        kept.sort(key=_ORDER)
        return PatientHistory(self.member_id, tuple(kept), self.prunes)

    def prune(self, keep_days: int) -> PatientHistory:
        """Drop lines dated more than ``keep_days`` before the patient's newest line.

        Relative to the newest date of service, never to the clock: replaying the same input
        yields the same history. How much to keep is the caller's policy (``revisions``).
        """
        if not self.entries:
            return self
        dates = [e.service_date for e in self.entries]
        horizon = max(dates) - timedelta(days=keep_days)
        if min(dates) >= horizon:
            return self
        kept = tuple(e for e in self.entries if e.service_date >= horizon)
        if len(kept) == len(self.entries):
            return self
        return PatientHistory(self.member_id, kept, self.prunes + 1)

    def to_bytes(self, version: int = _FORMAT) -> bytes:
        """The stored form (format 3, see the module's docstring) for the table and changelog.

        Each entry's line JSON is kept on the entry, so a write encodes only the new lines and
        the small head. ``version`` 2 writes format 2, which a release before format 3 reads
        (during a rolling upgrade from it, until every worker reads format 3).
        """
        entries = self.entries
        if version == _FORMAT:
            magic, heads = _MAGIC, [e.head() for e in entries]
        elif version == _FORMAT_2:
            magic, heads = _MAGIC_2, [e.head_2() for e in entries]
        else:
            raise ValueError(f"cannot write patient history format {version!r}")
        head = orjson.dumps({"f": version, "m": self.member_id, "e": heads})
        data = b"".join((magic, head, b"\n", *[e.blob for e in entries]))
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
            history = cls._read(data, _FORMAT, 8)
        elif data.startswith(_MAGIC_2):
            history = cls._read(data, _FORMAT_2, 7)
        else:
            doc = orjson.loads(data)
            if doc.get("f") != _LEGACY_FORMAT:
                raise ValueError(f"unknown patient history format {doc.get('f')!r}")
            entries = [HistoryEntry.stored(e) for e in doc["e"]]
            history = cls(member_id=doc["m"], entries=tuple(entries))
        _remember(data, history)
        return history

    @classmethod
    def _read(cls, data: bytes, version: int, fields: int) -> PatientHistory:
        """A history of format 3 or 2 (the magic is two bytes either way)."""
        end = data.index(b"\n")  # JSON escapes newlines in strings: the first ends the head
        head = orjson.loads(data[len(_MAGIC) : end])
        if head.get("f") != version:
            raise ValueError(f"unknown patient history format {head.get('f')!r}")
        entries = []
        at = end + 1
        for item in head["e"]:
            size = item[-1] if isinstance(item, list) and len(item) == fields else None
            if type(size) is not int or size < 0 or at + size > len(data):
                raise ValueError("malformed patient history entry")
            entries.append(HistoryEntry.from_head(item, data[at : at + size]))
            at += size
        if at != len(data):
            raise ValueError("patient history has bytes after its last entry")
        return cls(member_id=head["m"], entries=tuple(entries))


#: Recently written or read histories by their bytes. A history is immutable and its bytes are
#: a function of it, so answering ``from_bytes`` from here gives what decoding would.
_DECODED: OrderedDict[bytes, PatientHistory] = OrderedDict()


def _remember(data: bytes, history: PatientHistory) -> None:
    _DECODED[data] = history
    _DECODED.move_to_end(data)
    while len(_DECODED) > DECODED_CACHE_SIZE:
        _DECODED.popitem(last=False)
