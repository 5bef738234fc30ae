"""Patient history and revisions: a line's verdict follows the set of lines, not their order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber import history as history_module
from scrubber.contracts import Category, ClaimLine, ScrubResult, Severity
from scrubber.history import HistoryEntry, PatientHistory, content_digest
from scrubber.processor import LineProcessor, MemoryHistoryStore, SourcePosition
from scrubber.revisions import visible
from scrubber.rules.base import INFLUENCE_DAYS, Gate, Hit, LineContext, Rule
from scrubber.rules.engine import Engine
from scrubber.rules.library import default_engine, default_rules

from .edit_library import edit_library_snapshot

NOW = datetime(2026, 1, 1, tzinfo=UTC)
evaluate = default_engine().evaluate


def _same_day_same_code(ctx: LineContext) -> Iterator[Hit]:
    """A symmetric cross-line rule: flags every line that shares code and date with another."""
    for other in ctx.others:
        if (other.procedure_code, other.service_date) == (
            ctx.line.procedure_code,
            ctx.line.service_date,
        ):
            yield Hit(f"shares code and date with {other.line_id}", "procedure_code")
            return


@pytest.fixture
def pair_rule() -> Engine:
    """The product's rules and a symmetric cross-line rule that declares nothing but reading
    other lines: the engine's conservative reach has to cover it."""
    pair = Rule(
        "duplicate.test_pair",
        Category.DUPLICATE,
        Severity.ERROR,
        "test",
        "test",
        None,
        _same_day_same_code,
        requires=Gate.OTHERS,
    )
    return Engine([*default_rules(), pair])


def _entry(line: ClaimLine, revision: int = 1) -> HistoryEntry:
    return HistoryEntry(line, content_digest(line), revision, "v")


def test_upsert_replaces_by_line_id_and_keeps_date_order(line) -> None:
    a = line(claim_id="A", service_date="2025-03-10")
    b = line(claim_id="B", service_date="2025-03-01")
    h = PatientHistory.empty("M1").upsert(_entry(a)).upsert(_entry(b))
    assert [e.line_id for e in h.entries] == ["B:1", "A:1"]
    a2 = line(claim_id="A", service_date="2025-02-01")
    h = h.upsert(_entry(a2, 2))
    assert [e.line_id for e in h.entries] == ["A:1", "B:1"]
    assert h.get("A:1").revision == 2  # type: ignore[union-attr]
    # B is of another date: handed to the rules only when its code is one they read there.
    assert [x.line_id for x in visible(h, "A:1", a2.service_date, {"11960"})] == ["B:1"]
    assert visible(h, "A:1", a2.service_date, set()) == ()
    assert [x.line_id for x in visible(h, "A:1", b.service_date, set())] == ["B:1"]


def _format_3(head_entry: list, blob: bytes) -> bytes:
    head = orjson.dumps({"f": 3, "m": "M1", "e": [[*head_entry, len(blob)]]})
    return b"H3" + head + b"\n" + blob


@pytest.mark.parametrize("day", ["2025-02-30", "20250105", "2025-1-05", 20250105, None])
def test_a_stored_date_that_is_not_a_date_is_refused(line, day) -> None:
    blob = line().model_dump_json().encode()
    with pytest.raises(ValueError):  # the reader sets such a history aside (read_stored)
        PatientHistory.from_bytes(_format_3(["C1:1", day, "11960", "c", 1, "v", None], blob))
    assert not [text for text in history_module._DAYS if text == day]


def test_a_format_3_head_without_a_code_takes_it_from_the_line(line) -> None:
    stored = line(procedure_code="99213")
    blob = stored.model_dump_json().encode()
    history = PatientHistory.from_bytes(
        _format_3(["C1:1", "2025-03-01", None, "c", 1, "v", None], blob)
    )
    assert history.entries[0].procedure_code == "99213"
    with pytest.raises(ValueError, match="malformed"):  # a code, when there is one, is text
        PatientHistory.from_bytes(_format_3(["C1:1", "2025-03-01", 11960, "c", 1, "v", None], blob))


def test_writing_a_format_2_history_validates_none_of_its_lines(line) -> None:
    """Its lines' codes come from their JSON: a stored line the contract no longer accepts
    must not stop the write (it happens after the batch was judged)."""
    kept = line(claim_id="K", procedure_code="99213").model_dump_json().encode()
    stale = kept.replace(b'"claim_id":"K"', b'"claim_id":"S"').replace(b'"units":1.0', b'"units":0')
    assert b'"units":0' in stale
    heads = [
        [f"{cid}:1", "2025-03-01", "c", 1, "v", None, len(blob)]
        for cid, blob in (("K", kept), ("S", stale))
    ]
    data = b"H2" + orjson.dumps({"f": 2, "m": "M1", "e": heads}) + b"\n" + kept + stale
    history = PatientHistory.from_bytes(data)
    rewritten = history.to_bytes()
    assert rewritten.startswith(b'H3{"f":3,')
    history_module._DECODED.clear()  # read the head written, not the history in memory
    assert [e.procedure_code for e in PatientHistory.from_bytes(rewritten).entries] == [
        "99213",
        "99213",
    ]
    assert all(e._line is None for e in history.entries)
    with pytest.raises(ValueError):  # the stale line itself still fails when it is judged
        history.entries[1].line  # noqa: B018
    with pytest.raises(ValueError, match="format 4"):
        history.to_bytes(4)


def test_prune_is_relative_to_the_newest_date_not_the_clock(line) -> None:
    newest = date(2025, 12, 31)
    keep = newest - timedelta(days=30 + INFLUENCE_DAYS)
    drop = keep - timedelta(days=1)
    h = PatientHistory.empty("M1")
    for cid, day in (("N", newest), ("K", keep), ("D", drop)):
        h = h.upsert(_entry(line(claim_id=cid, service_date=day.isoformat())))
    assert {e.line.claim_id for e in h.prune(keep_days=30 + INFLUENCE_DAYS).entries} == {"N", "K"}
    assert h.prune(keep_days=3650 + INFLUENCE_DAYS) is h


def test_bytes_round_trip(line) -> None:
    h = PatientHistory.empty("M1").upsert(_entry(line(modifiers=["LT"]), 3))
    data = h.to_bytes()
    again = PatientHistory.from_bytes(data.replace(b'"e":[', b'"e": ['))  # not from memory
    assert again == h
    assert again.to_bytes() == data
    with pytest.raises(ValueError, match="format"):
        PatientHistory.from_bytes(orjson.dumps({"f": 99}))
    with pytest.raises(ValueError, match="format"):
        PatientHistory.from_bytes(data.replace(b'"f":3', b'"f":4'))
    with pytest.raises(ValueError, match="format"):  # a format-2 magic over a format-3 head
        PatientHistory.from_bytes(b"H2" + data[2:])
    with pytest.raises(ValueError, match="entry"):  # format 2's fields under format 3's name
        PatientHistory.from_bytes(b"H2" + data[2:].replace(b'"f":3', b'"f":2'))
    for broken in (data[:-1], data + b" ", data.replace(b'"e":[[', b'"e":[["x",')):
        with pytest.raises(ValueError):
            PatientHistory.from_bytes(broken)


def test_between_selects_by_date_of_service(line) -> None:
    d = date(2025, 6, 1)
    h = PatientHistory.empty("M1")
    for cid, offset in (("in-", -INFLUENCE_DAYS), ("in+", INFLUENCE_DAYS), ("out", 92)):
        h = h.upsert(_entry(line(claim_id=cid, service_date=(d + timedelta(offset)).isoformat())))
    window = (d - timedelta(INFLUENCE_DAYS), d + timedelta(INFLUENCE_DAYS))
    assert {e.line.claim_id for e in h.between(*window)} == {"in-", "in+"}


def _run(processor, store, snapshot, raws):
    out = []
    for n, raw in enumerate(raws):
        out.extend(
            processor.process(raw, None, SourcePosition("f", 0, n), snapshot, store, NOW).emissions
        )
    return out


def test_a_later_line_revises_an_earlier_verdict(pair_rule, line_bytes, snapshot) -> None:
    store = MemoryHistoryStore()
    p = LineProcessor(pair_rule, require_key=False)
    first = _run(p, store, snapshot, [line_bytes(claim_id="A")])
    assert [(e.result.line_id, e.result.revision, e.kind) for e in first] == [
        ("A:1", 1, "accepted")
    ]
    second = _run(p, store, snapshot, [line_bytes(claim_id="B")])
    assert [(e.result.line_id, e.result.revision, e.kind) for e in second] == [
        ("B:1", 1, "flagged"),
        ("A:1", 2, "flagged"),
    ]
    revised = ScrubResult.model_validate_json(second[1].value)
    assert revised.line.claim_id == "A" and revised.findings[0].rule_id == "duplicate.test_pair"


def test_redelivery_repeats_without_a_new_revision(pair_rule, line_bytes, snapshot) -> None:
    store = MemoryHistoryStore()
    p = LineProcessor(pair_rule, require_key=False)
    _run(p, store, snapshot, [line_bytes(claim_id="A"), line_bytes(claim_id="B")])
    again = p.process(
        line_bytes(claim_id="A"), None, SourcePosition("f", 0, 9), snapshot, store, NOW
    )
    assert again.redelivery is True
    # A's own verdict is re-sent; B's verdict was caused by B, so A's redelivery leaves it.
    assert [(e.result.line_id, e.result.revision, e.repeat) for e in again.emissions] == [
        ("A:1", 2, True),
    ]
    # B caused A's revision 2: B's redelivery re-sends both, in case a crash lost them.
    b_again = p.process(
        line_bytes(claim_id="B"), None, SourcePosition("f", 0, 10), snapshot, store, NOW
    )
    assert b_again.redelivery is True
    assert [(e.result.line_id, e.result.revision, e.repeat) for e in b_again.emissions] == [
        ("B:1", 1, True),
        ("A:1", 2, True),
    ]
    assert {e.line_id: e.cause for e in store.get("M1").entries} == {"A:1": "B:1", "B:1": "B:1"}


def test_the_cause_of_a_revision_survives_the_changelog(pair_rule, line_bytes, snapshot) -> None:
    store = MemoryHistoryStore()
    p = LineProcessor(pair_rule, require_key=False)
    _run(p, store, snapshot, [line_bytes(claim_id="A"), line_bytes(claim_id="B")])
    history = store.get("M1")
    assert {e.line_id: e.cause for e in history.entries} == {"A:1": "B:1", "B:1": "B:1"}
    # Other bytes for the same document, so that it is decoded, not answered from memory.
    restored = PatientHistory.from_bytes(history.to_bytes().replace(b'"e":[', b'"e": ['))
    assert {e.line_id: e.cause for e in restored.entries} == {"A:1": "B:1", "B:1": "B:1"}
    # A history written before causes were kept reads with no cause, and a redelivery then
    # re-sends every neighbour's verdict, as it cannot tell which it caused.
    old = {
        "f": 1,
        "m": "M1",
        "e": [
            {"l": e.line.model_dump(mode="json"), "c": e.content, "r": e.revision, "v": e.verdict}
            for e in history.entries
        ],
    }
    legacy = PatientHistory.from_bytes(orjson.dumps(old))
    assert [e.cause for e in legacy.entries] == [None, None]
    legacy_store = MemoryHistoryStore()
    legacy_store.put("M1", legacy)
    again = p.process(
        line_bytes(claim_id="A"), None, SourcePosition("f", 0, 9), snapshot, legacy_store, NOW
    )
    assert [(e.result.line_id, e.repeat) for e in again.emissions] == [
        ("A:1", True),
        ("B:1", True),
    ]


def test_a_corrected_line_gets_a_new_revision(pair_rule, line_bytes, snapshot) -> None:
    store = MemoryHistoryStore()
    p = LineProcessor(pair_rule, require_key=False)
    _run(p, store, snapshot, [line_bytes(claim_id="A"), line_bytes(claim_id="B")])
    # B is corrected to a date far from A (outside any global period): B is clean (rev 2)
    # and A is no longer paired (rev 3).
    fixed = _run(p, store, snapshot, [line_bytes(claim_id="B", service_date="2025-09-20")])
    assert [(e.result.line_id, e.result.revision, e.kind) for e in fixed] == [
        ("B:1", 2, "accepted"),
        ("A:1", 3, "accepted"),
    ]


def _final(emissions) -> dict[str, tuple[object, ...]]:
    """Per line id, the last verdict: outcome, (rule id, severity) of each finding, profile."""
    final: dict[str, tuple[object, ...]] = {}
    for e in emissions:
        r = e.result
        if r is None:
            continue
        if r.line_id not in final or r.revision >= final[r.line_id][0]:  # type: ignore[operator]
            findings = tuple((f.rule_id, f.severity.value) for f in r.findings)
            final[r.line_id] = (r.revision, r.outcome.value, findings, r.profile)
    return {k: v[1:] for k, v in final.items()}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12))
def test_final_verdicts_do_not_depend_on_arrival_order(pair_rule, line_doc, snapshot, seed, n):
    rng = random.Random(seed)
    raws = [
        orjson.dumps(
            line_doc(
                claim_id=f"C{i}",
                service_date=(date(2025, 3, 1) + timedelta(days=rng.randrange(4))).isoformat(),
                procedure_code=rng.choice(("11960", "99213")),
            )
        )
        for i in range(n)
    ]
    shuffled = raws[:]
    rng.shuffle(shuffled)
    p = LineProcessor(pair_rule, require_key=False)
    in_order = _final(_run(p, MemoryHistoryStore(), snapshot, raws))
    other_order = _final(_run(p, MemoryHistoryStore(), snapshot, shuffled))
    with_repeats = _final(_run(p, MemoryHistoryStore(), snapshot, shuffled + raws[: n // 2]))
    assert in_order == other_order == with_repeats
    assert len(in_order) == n


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_real_rules_give_the_same_final_verdicts_in_any_order(seed) -> None:
    """The whole catalogue, on dense multi-claim histories: surgeries, visits, add-ons, repeats,
    NCCI pairs, add-on code edits, code sets and payer profiles."""
    from scrubber.examples import Mix, generate

    snap = edit_library_snapshot()
    raws = generate(snap.bundle, 60, seed=seed, patients=3, mix=Mix(flag_worthy=0.1, malformed=0))
    shuffled = raws[:]
    random.Random(seed).shuffle(shuffled)
    p = LineProcessor(default_engine(), require_key=False)
    assert _final(_run(p, MemoryHistoryStore(), snap, raws)) == _final(
        _run(p, MemoryHistoryStore(), snap, shuffled)
    )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_each_final_verdict_is_the_line_judged_with_all_the_others(seed) -> None:
    """Revisions reach every line whose verdict changed, and only the lines' set decides it.

    The processor re-judges only the earlier lines a new one can change (``Reach.may_change``)
    and judges each line with the lines within reach: the last revision of every line must be
    exactly (outcome, rule ids, messages) what judging it with all the patient's other lines
    gives.
    """
    from scrubber.examples import Mix, generate

    snap = edit_library_snapshot()
    raws = generate(snap.bundle, 80, seed=seed, patients=3, mix=Mix(flag_worthy=0.2, malformed=0))
    random.Random(seed).shuffle(raws)
    final: dict[str, tuple[int, tuple[object, ...]]] = {}
    for e in _run(
        LineProcessor(default_engine(), require_key=False), MemoryHistoryStore(), snap, raws
    ):
        r = e.result
        if r is not None and (r.line_id not in final or r.revision >= final[r.line_id][0]):
            findings = tuple((f.rule_id, f.message, f.field) for f in r.findings)
            final[r.line_id] = (r.revision, (r.outcome.value, findings))
    last: dict[str, dict[str, ClaimLine]] = {}
    for raw in raws:
        line = ClaimLine.model_validate_json(raw)
        last.setdefault(line.patient.member_id, {})[line.line_id] = line
    expected = {}
    for lines in last.values():
        for line_id, line in lines.items():
            others = tuple(o for i, o in lines.items() if i != line_id)
            v = evaluate(line, snap, NOW.date(), others=others)
            findings = tuple((f.rule_id, f.message, f.field) for f in v.findings)
            expected[line_id] = (v.outcome.value, findings)
    assert {k: v[1] for k, v in final.items()} == expected


def test_the_property_tests_see_every_edit_family() -> None:
    """The generated histories of the property tests above do produce each family's findings
    and each payer profile (else the properties would hold vacuously for them)."""
    from scrubber.examples import Mix, generate

    snap = edit_library_snapshot()
    rule_ids: set[str] = set()
    profiles: set[str | None] = set()
    for seed in range(20):
        raws = generate(snap.bundle, 60, seed=seed, patients=3, mix=Mix(0.1, 0))
        p = LineProcessor(default_engine(), require_key=False)
        for r in _final(_run(p, MemoryHistoryStore(), snap, raws)).values():
            rule_ids |= {rule_id for rule_id, _ in r[1]}  # type: ignore[attr-defined]
            profiles.add(r[2])  # type: ignore[arg-type]
    assert {
        "ncci_ptp.edit",
        "ncci_ptp.bypassed",
        "add_on.primary_not_listed",
        "add_on.primary_not_listed_warning",
        "diagnosis.invalid_for_date",
        "diagnosis.unverified_for_date",
        "global_period.procedure_postop_without_modifier",
        "duplicate.line",
    } <= rule_ids
    assert profiles == {"medicare", "commercial", None}


def test_a_reach_spans_the_dates_of_the_lines_it_can_change(line, snapshot) -> None:
    """The reviser reads only the lines between a reach's first and last date."""
    engine = default_engine()
    day = date(2025, 6, 10)
    visit = engine.reach(line(procedure_code="99213", service_date=day.isoformat()), snapshot)
    assert visit.span == (day, day)
    surgery = engine.reach(line(procedure_code="11960", service_date=day.isoformat()), snapshot)
    assert surgery.span == (day - timedelta(days=1), day + timedelta(days=90))
    assert Engine([]).reach(line(), snapshot).span is None


def test_the_parsed_dates_cache_stays_bounded_as_dates_move_forward() -> None:
    """A long stream's dates of service move on: the cache starts afresh, never holds more."""
    from scrubber import history

    start = date(1990, 1, 1)
    for offset in range(history._DAYS_LIMIT * 2 + 10):
        day = start + timedelta(days=offset)
        assert history._day(day.isoformat()) == day
        assert len(history._DAYS) <= history._DAYS_LIMIT
    newest = (start + timedelta(days=history._DAYS_LIMIT * 2 + 9)).isoformat()
    assert history._DAYS[newest] == date.fromisoformat(newest)  # the recent ones are kept
