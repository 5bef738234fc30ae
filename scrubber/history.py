"""Per-patient history: the lines of a patient that later lines must be judged with.

A plain, immutable data structure. The processor reads it, asks the engine for verdicts, and
returns the next one; the adapters store it (a Faust table with a compacted changelog in the
worker, a dict in the offline scrub), so the engine never does I/O and both paths share the same
history logic.

Each entry keeps the validated line, the digest of its content (to tell a redelivery from a
corrected resubmission), and the revision and verdict digest last emitted for it (to emit a new
revision exactly when a line's verdict changes). Entries are pruned by service date, relative to
the newest date of service seen for the patient, never by the clock: replaying the same input
yields the same history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import orjson

from scrubber.contracts import ClaimLine

#: The furthest two lines can be apart and still affect each other's verdict: a 090 global
#: period runs from the day before the surgery to 90 days after it.
INFLUENCE_DAYS = 91

#: Default lateness allowance: how far behind the newest date of service a line may arrive and
#: still be judged with the lines around it (the history keeps this much plus INFLUENCE_DAYS).
DEFAULT_LATENESS_DAYS = 365

_FORMAT = 1


def content_digest(line: ClaimLine) -> str:
    """A digest of what a line says (known fields only: unknown extra fields do not count)."""
    return hashlib.blake2b(line.model_dump_json().encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of the patient and what was last emitted for it."""

    line: ClaimLine
    content: str
    revision: int
    verdict: str

    @property
    def line_id(self) -> str:
        """The line's stable identity."""
        return self.line.line_id

    @property
    def service_date(self) -> date:
        """The date of service the entry is pruned and windowed by."""
        return self.line.service_date


@dataclass(frozen=True, slots=True)
class PatientHistory:
    """The lines of one patient, ordered by (date of service, line id)."""

    member_id: str = ""
    entries: tuple[HistoryEntry, ...] = ()

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

    def others(self, line_id: str) -> tuple[ClaimLine, ...]:
        """Every known line of the patient except the given one."""
        return tuple(e.line for e in self.entries if e.line_id != line_id)

    def near(self, day: date, days: int = INFLUENCE_DAYS) -> tuple[HistoryEntry, ...]:
        """Entries whose date of service is within ``days`` of ``day``."""
        span = timedelta(days=days)
        return tuple(e for e in self.entries if abs(e.service_date - day) <= span)

    def upsert(self, entry: HistoryEntry) -> PatientHistory:
        """The history with this entry added, or replacing the entry of the same line id."""
        kept = [e for e in self.entries if e.line_id != entry.line_id]
        kept.append(entry)
        kept.sort(key=lambda e: (e.service_date, e.line_id))
        return replace(self, entries=tuple(kept))

    def prune(self, lateness_days: int = DEFAULT_LATENESS_DAYS) -> PatientHistory:
        """Drop lines too old to influence or be influenced by any line still accepted."""
        if not self.entries:
            return self
        newest = max(e.service_date for e in self.entries)
        horizon = newest - timedelta(days=lateness_days + INFLUENCE_DAYS)
        kept = tuple(e for e in self.entries if e.service_date >= horizon)
        return self if len(kept) == len(self.entries) else replace(self, entries=kept)

    def to_bytes(self) -> bytes:
        """Compact JSON for the table store and its changelog."""
        doc: dict[str, Any] = {
            "f": _FORMAT,
            "m": self.member_id,
            "e": [
                {
                    "l": e.line.model_dump(mode="json"),
                    "c": e.content,
                    "r": e.revision,
                    "v": e.verdict,
                }
                for e in self.entries
            ],
        }
        return orjson.dumps(doc)

    @classmethod
    def from_bytes(cls, data: bytes) -> PatientHistory:
        """Read what ``to_bytes`` wrote (lines were validated before they were stored)."""
        doc = orjson.loads(data)
        if doc.get("f") != _FORMAT:
            raise ValueError(f"unknown patient history format {doc.get('f')!r}")
        entries = tuple(
            HistoryEntry(
                line=ClaimLine.model_validate(e["l"], strict=False),
                content=e["c"],
                revision=int(e["r"]),
                verdict=e["v"],
            )
            for e in doc["e"]
        )
        return cls(member_id=doc["m"], entries=entries)
