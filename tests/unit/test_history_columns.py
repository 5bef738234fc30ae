"""The history's columns answer what a plain list of entries answers.

``PatientHistory`` keeps its lines as columns and finds dates by bisection; these tests hold
every operation to a reference that keeps a sorted list of entries and scans it, on random
histories with repeated dates, replaced lines, lines on the first day of the calendar and
lines whose stored head has no procedure code; and the stored form: damaged heads, rows out
of order, lines written back as runs of the bytes read, and those bytes let go.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber import history as history_module
from scrubber.contracts import ClaimLine
from scrubber.history import HistoryEntry, PatientHistory, content_digest
from scrubber.revisions import visible
from scrubber.rules.base import INFLUENCE_DAYS
from scrubber.rules.engine import clamped

from ..conftest import BASE_LINE

CODES = ("99213", "27447", "11042", "20610")
SURGICAL = frozenset({"27447", "11042"})
BASE_DAY = date(2025, 3, 1)


def _line(claim: int, number: int, day: date, code: str) -> ClaimLine:
    doc: dict[str, Any] = {
        **BASE_LINE,
        "claim_id": f"C{claim}",
        "line_number": number,
        "service_date": day.isoformat(),
        "procedure_code": code,
    }
    return ClaimLine.model_validate(doc, strict=False)


def _entry(line: ClaimLine, revision: int = 1) -> HistoryEntry:
    return HistoryEntry(line, content_digest(line), revision, f"v{revision}", cause=line.line_id)


class _Reference:
    """A history as a list of entries kept sorted and scanned: what the columns must answer."""

    def __init__(self) -> None:
        self.entries: list[HistoryEntry] = []

    def upsert(self, entry: HistoryEntry) -> None:
        self.entries = [e for e in self.entries if e.line_id != entry.line_id] + [entry]
        self.entries.sort(key=lambda e: e.order)

    def prune(self, keep_days: int) -> None:
        if self.entries:
            horizon = max(e.service_date for e in self.entries) - timedelta(days=keep_days)
            self.entries = [e for e in self.entries if e.service_date >= horizon]

    def between(self, first: date, last: date) -> list[str]:
        return [e.line_id for e in self.entries if first <= e.service_date <= last]

    def visible(self, line_id: str, day: date) -> list[str]:
        first, last = clamped(day, -INFLUENCE_DAYS), clamped(day, INFLUENCE_DAYS)
        return [
            e.line_id
            for e in self.entries
            if e.line_id != line_id
            and (
                e.service_date == day
                or (first <= e.service_date <= last and e.procedure_code in SURGICAL)
                or e.service_date == date.min
            )
        ]


def _day(rng: random.Random) -> date:
    if rng.random() < 0.05:
        return date.min + timedelta(days=rng.randrange(3))
    return BASE_DAY + timedelta(days=rng.randrange(-200, 200))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 60))
def test_the_columns_answer_what_a_sorted_list_answers(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    history, reference = PatientHistory.empty("M1"), _Reference()
    for _ in range(steps):
        claim, number = rng.randrange(12), rng.randrange(1, 4)
        line = _line(claim, number, _day(rng), rng.choice(CODES))
        entry = _entry(line, rng.randrange(1, 4))
        history = history.upsert(entry)
        reference.upsert(entry)
        if rng.random() < 0.1:
            keep = rng.randrange(30, 400)
            try:
                reference.prune(keep)
            except OverflowError:  # newest line near the calendar's start: fails either way
                with pytest.raises(OverflowError):
                    history.prune(keep)
            else:
                history = history.prune(keep)
        if rng.random() < 0.3:  # through the stored form: read back without the decoded cache
            data = history.to_bytes()
            history_module._DECODED.clear()
            history = PatientHistory.from_bytes(data)
        assert [e.line_id for e in history.entries] == [e.line_id for e in reference.entries]
        assert history == PatientHistory("M1", reference.entries)
        # A history read back writes what one made from its entries writes.
        assert history.to_bytes() == PatientHistory("M1", reference.entries).to_bytes()
        probe = _day(rng)
        first, last = sorted((probe, _day(rng)))
        assert [e.line_id for e in history.between(first, last)] == reference.between(first, last)
        for e in reference.entries:
            assert history.get(e.line_id) == e
            got = [o.line_id for o in visible(history, e.line_id, e.service_date, SURGICAL)]
            assert got == reference.visible(e.line_id, e.service_date)
        assert [o.line_id for o in visible(history, "none", probe, SURGICAL)] == (
            reference.visible("none", probe)
        )
    assert history.get("C99:9") is None


def _format_3(rows: list[list[Any]], blobs: list[bytes]) -> bytes:
    """A format-3 history of these head rows and stored lines, as given (damaged or not)."""
    return b"".join((b"H3", orjson.dumps({"f": 3, "m": "M1", "e": rows}), b"\n", *blobs))


def _stored(rows: list[list[Any]], lines: list[ClaimLine]) -> bytes:
    """A format-3 history of these rows (each given its line's size) and lines."""
    blobs = [history_module.line_json(line) for line in lines]
    for row, blob in zip(rows, blobs, strict=True):
        row.append(len(blob))
    return _format_3(rows, blobs)


@pytest.mark.parametrize("order", ["as_stored", "reversed", "same_day_swapped"])
@pytest.mark.parametrize("code", ["stored", "missing"])
def test_rows_in_any_order_or_without_a_code_read_as_the_lines_say(order: str, code: str) -> None:
    one = _line(1, 1, BASE_DAY, "99213")
    two = _line(2, 1, BASE_DAY, "27447")  # the same date: ordered by line id
    three = _line(3, 1, BASE_DAY + timedelta(days=4), "11042")
    lines = [one, two, three]
    rows = [
        [x.line_id, x.service_date.isoformat(), x.procedure_code, "c", 1, "v", None] for x in lines
    ]
    if code == "missing":
        rows[1][2] = None
    if order == "reversed":
        rows, lines = rows[::-1], lines[::-1]
    elif order == "same_day_swapped":  # dates in order, line ids of one date not
        rows, lines = [rows[1], rows[0], rows[2]], [two, one, three]
    history_module._DECODED.clear()
    history = PatientHistory.from_bytes(_stored(rows, lines))
    assert [e.line_id for e in history.entries] == ["C1:1", "C2:1", "C3:1"]
    assert history.procedure_codes == ["99213", "27447", "11042"]
    grown = history.upsert(_entry(_line(0, 1, BASE_DAY, "99213")))
    assert [e.line_id for e in grown.entries] == ["C0:1", "C1:1", "C2:1", "C3:1"]
    assert [e.line for e in history.entries] == [one, two, three]
    assert [o.line_id for o in visible(history, "C3:1", three.service_date, SURGICAL)] == ["C2:1"]


def test_a_line_id_stored_twice_is_replaced_whole() -> None:
    first = _line(1, 1, BASE_DAY, "99213")
    moved = _line(1, 1, BASE_DAY + timedelta(days=3), "99213")
    other = _line(2, 1, BASE_DAY + timedelta(days=3), "99213")
    rows = [
        [x.line_id, x.service_date.isoformat(), x.procedure_code, "c", 1, "v", None]
        for x in (first, moved, other)
    ]
    history_module._DECODED.clear()
    history = PatientHistory.from_bytes(_stored(rows, [first, moved, other]))
    corrected = history.upsert(_entry(_line(1, 1, BASE_DAY + timedelta(days=9), "99213")))
    assert [(e.line_id, e.service_date.day) for e in corrected.entries] == [
        ("C2:1", 4),
        ("C1:1", 10),
    ]


def test_the_line_judged_is_never_read_for_its_own_window() -> None:
    """A stored copy of the line itself, with no code and JSON that no longer validates, on
    another date in the window: judging the line leaves it alone (it is not another line)."""
    own = _line(1, 1, BASE_DAY + timedelta(days=5), "27447")
    other = _line(2, 1, BASE_DAY, "99213")
    blobs = [history_module.line_json(other), b'{"claim_id":"C1"}']
    rows = [
        [other.line_id, BASE_DAY.isoformat(), "99213", "c", 1, "v", None, len(blobs[0])],
        [own.line_id, own.service_date.isoformat(), None, "c", 1, "v", None, len(blobs[1])],
    ]
    data = _format_3(rows, blobs)
    history_module._DECODED.clear()
    history = PatientHistory.from_bytes(data)
    assert visible(history, own.line_id, BASE_DAY, SURGICAL) == (other,)


def test_a_window_at_the_end_of_the_calendar() -> None:
    last = _line(1, 1, date.max, "27447")
    before = _line(2, 1, date.max - timedelta(days=30), "27447")
    history = PatientHistory("M1", [_entry(last), _entry(before)])
    assert visible(history, last.line_id, date.max, SURGICAL) == (before,)
    assert history.between(date.max, date.max) == (history.get(last.line_id),)


def test_a_code_missing_from_the_head_is_kept_through_a_write() -> None:
    late = _line(1, 1, BASE_DAY + timedelta(days=5), "27447")
    early = _line(2, 1, BASE_DAY, "99213")
    rows = [
        [late.line_id, late.service_date.isoformat(), None, "c1", 1, "v", None],
        [early.line_id, early.service_date.isoformat(), "99213", "c2", 2, "v", None],
    ]
    history_module._DECODED.clear()
    history = PatientHistory.from_bytes(_stored(rows, [late, early]))
    assert [e.line_id for e in history.entries] == [early.line_id, late.line_id]
    assert history.procedure_codes == ["99213", "27447"]  # the missing code read from the line
    assert [e.line for e in history.entries] == [early, late]
    again = PatientHistory.from_bytes(history.to_bytes())
    assert again == history and again.procedure_codes == ["99213", "27447"]
    # The window sees the surgery whose head had no code.
    assert [o.line_id for o in visible(history, early.line_id, BASE_DAY, SURGICAL)] == [
        late.line_id
    ]


@pytest.mark.parametrize(
    "damage",
    [
        lambda rows: rows[0].__setitem__(4, "1"),  # a revision that is not a number
        lambda rows: rows[0].__setitem__(7, 10**6),  # a size beyond the bytes
        lambda rows: rows[0].__setitem__(1, "2025-02-30"),  # not a date
        lambda rows: rows[0].pop(),  # a short row
        lambda rows: rows[0].__setitem__(7, -1),  # a negative size
        lambda rows: rows[0].__setitem__(7, True),  # a size that is a boolean
    ],
    ids=["revision-text", "size-too-big", "bad-date", "short-row", "negative-size", "bool-size"],
)
def test_a_damaged_head_row_makes_the_history_unreadable(damage: Any) -> None:
    line = _line(1, 1, BASE_DAY, "99213")
    blob = history_module.line_json(line)
    rows = [[line.line_id, BASE_DAY.isoformat(), "99213", "c", 1, "v", None, len(blob)]]
    damage(rows)
    data = _format_3(rows, [blob])
    history_module._DECODED.clear()
    with pytest.raises(history_module.UnreadableHistory):
        history_module.read_stored(data)


def test_a_history_cannot_be_changed_in_place() -> None:
    history = PatientHistory.empty("M1").upsert(_entry(_line(1, 1, BASE_DAY, "99213")))
    with pytest.raises(AttributeError):
        history.member_id = "M2"
    with pytest.raises(AttributeError):
        del history.prunes
    grown = history.upsert(_entry(_line(2, 1, BASE_DAY, "99213")))
    assert len(history.entries) == 1 and len(grown.entries) == 2


@pytest.mark.parametrize(
    "head",
    [b"[]", b'{"f":3,"m":"M1"}', b'{"f":3,"m":"M1","e":{}}', b'{"f":3,"m":"M1","e":[[]]}'],
)
def test_a_head_that_is_not_a_history_makes_it_unreadable(head: bytes) -> None:
    history_module._DECODED.clear()
    with pytest.raises(history_module.UnreadableHistory):
        history_module.read_stored(b"H3" + head + b"\n")


def _read_back(history: PatientHistory) -> PatientHistory:
    data = history.to_bytes()
    history_module._DECODED.clear()
    return PatientHistory.from_bytes(data)


def test_lines_kept_from_a_read_are_written_as_runs_of_it() -> None:
    lines = [_line(n, 1, BASE_DAY + timedelta(days=n), "99213") for n in range(1, 6)]
    read = _read_back(PatientHistory("M1", [_entry(x) for x in lines]))
    assert len(read._stored_lines()) == 1  # one slice of the bytes read
    replaced = read.upsert(_entry(lines[2], revision=2))
    assert len(replaced._stored_lines()) == 3  # before, the new line, after
    assert (
        replaced.to_bytes()
        == PatientHistory(
            "M1", [*(_entry(x) for x in lines[:2]), _entry(lines[2], 2), *map(_entry, lines[3:])]
        ).to_bytes()
    )


def test_the_bytes_read_are_let_go_once_no_line_points_into_them() -> None:
    lines = [_line(n, 1, BASE_DAY + timedelta(days=n), "99213") for n in range(1, 4)]
    read = _read_back(PatientHistory("M1", [_entry(x) for x in lines]))
    assert read._base
    history = read
    for x in lines:
        history = history.upsert(_entry(x, revision=2))
    assert history._base == b""
    later = _line(9, 1, BASE_DAY + timedelta(days=400), "99213")
    pruned = read.upsert(_entry(later)).prune(100)
    assert [e.line_id for e in pruned.entries] == [later.line_id] and pruned._base == b""


def test_entries_of_other_histories_and_other_kinds_of_bytes_write_alike() -> None:
    first = _read_back(PatientHistory("M1", [_entry(_line(1, 1, BASE_DAY, "99213"))]))
    second = _read_back(PatientHistory("M1", [_entry(_line(2, 1, BASE_DAY, "27447"))]))
    mixed = first.upsert(second.at(0))
    both = PatientHistory("M1", [*first.entries, *second.entries])
    line = _line(3, 1, BASE_DAY, "11042")
    from_bytearray = HistoryEntry(
        line,
        content_digest(line),
        1,
        "v1",
        cause=line.line_id,
        blob=bytearray(history_module.line_json(line)),
    )
    eager = PatientHistory(
        "M1", [_entry(_line(n, 1, BASE_DAY, c)) for n, c in ((1, "99213"), (2, "27447"))]
    )
    assert mixed.to_bytes() == both.to_bytes() == eager.to_bytes()
    assert mixed.upsert(from_bytearray).to_bytes() == eager.upsert(_entry(line)).to_bytes()
