"""The engine's shortcuts give the verdicts of the plain engine, and history bytes are unchanged.

``Engine.evaluate`` skips the rules whose required line facts are false and shares per-line
facts between rules; ``evaluate_every_rule`` (here) calls every check. For any lines the
contract accepts they must agree exactly. The history writes each entry's JSON once and reuses
it; the bytes must be what encoding the whole document at once gives.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber import history as history_module
from scrubber.contracts import ClaimLine
from scrubber.history import HistoryEntry, PatientHistory, content_digest
from scrubber.refdata.model import ReferenceSnapshot
from scrubber.rules.base import Gate, LineContext
from scrubber.rules.catalogue import engine_rules
from scrubber.rules.engine import Engine, Evaluation, clamped, outcome_of
from scrubber.rules.library import default_engine, default_rules

from .test_rules_properties import AS_OF, SNAP, line_sets

ENGINE = default_engine()
evaluate = ENGINE.evaluate


def evaluate_every_rule(
    line: ClaimLine,
    snapshot: ReferenceSnapshot,
    as_of: Any,
    others: tuple[ClaimLine, ...] = (),
    history_lost: bool = False,
) -> Evaluation:
    """The reference: every rule of the engine called, in order, with no plan and no cache;
    the payer profile's disables and severities applied to the findings afterwards."""
    ref = snapshot.code(line.procedure_code)
    ctx = LineContext(
        line=line,
        ref=ref,
        snapshot=snapshot,
        as_of=as_of,
        others=others,
        history_lost=history_lost,
    )
    profile = ENGINE.profile_for(snapshot, line.payer_id)
    findings = []
    for r in ENGINE.rules:
        if profile is not None and r.rule_id in profile.disabled:
            continue
        for f in r.findings(ctx):
            if profile is not None and r.rule_id in profile.severity:
                f = f.model_copy(update={"severity": profile.severity[r.rule_id]})
            findings.append(f)
    found = tuple(findings)
    return Evaluation(
        outcome=outcome_of(found),
        findings=found,
        reference=ref.engine_view() if ref is not None else None,
        profile=profile.name if profile is not None else None,
    )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=line_sets)
def test_planned_engine_equals_calling_every_rule(lines: list[ClaimLine]) -> None:
    for index, line in enumerate(lines):
        others = tuple(o for i, o in enumerate(lines) if i != index)
        assert evaluate(line, SNAP, AS_OF, others=others) == evaluate_every_rule(
            line, SNAP, AS_OF, others=others
        )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_planned_engine_equals_every_rule_with_the_edit_library(seed: int) -> None:
    """NCCI pairs, add-on code edits, code sets and payer profiles: same findings either way."""
    from scrubber.examples import Mix, generate

    from .edit_library import edit_library_snapshot

    snap = edit_library_snapshot()
    raws = generate(snap.bundle, 40, seed=seed, patients=2, mix=Mix(0.1, 0))
    lines = [ClaimLine.model_validate_json(raw) for raw in raws]
    for index, line in enumerate(lines):
        others = tuple(o for i, o in enumerate(lines) if i != index and o.patient == line.patient)
        assert evaluate(line, snap, AS_OF, others=others) == evaluate_every_rule(
            line, snap, AS_OF, others=others
        )
        lost = index % 2 == 0  # the history of a patient set aside: only later lines seen
        assert evaluate(line, snap, AS_OF, others=others, history_lost=lost) == (
            evaluate_every_rule(line, snap, AS_OF, others=others, history_lost=lost)
        )


def test_engine_rules_declare_only_known_facts() -> None:
    every = Gate(0)
    for gate in Gate:
        every |= gate
    for rule in engine_rules():
        assert isinstance(rule.requires, Gate)
        assert rule.requires & ~every == 0, rule.rule_id


def test_an_engine_runs_exactly_the_rules_it_is_given_in_their_order(line, snapshot) -> None:
    """A test builds the engine it needs: an extra rule is called where the list puts it."""
    from scrubber.contracts import Category, Severity
    from scrubber.rules.base import Hit, Rule

    def always(ctx: Any) -> Any:
        yield Hit("seen", None)

    extra = Rule("code.test_always", Category.CODE, Severity.INFO, "t", "t", None, always)
    before = evaluate(line(), snapshot, AS_OF)
    last = Engine([*default_rules(), extra]).evaluate(line(), snapshot, AS_OF)
    assert [f.rule_id for f in last.findings] == [
        *[f.rule_id for f in before.findings],
        "code.test_always",
    ]
    first = Engine([extra, *default_rules()]).evaluate(line(), snapshot, AS_OF)
    assert first.findings[0].rule_id == "code.test_always"
    assert default_engine().evaluate(line(), snapshot, AS_OF) == before


def test_an_engine_refuses_a_rule_id_twice() -> None:
    rules = default_rules()
    with pytest.raises(ValueError, match="twice"):
        Engine([*rules, rules[0]])


def _plain_bytes(history: PatientHistory, version: int = 3) -> bytes:
    """The history encoded in one go, field by field as format 3 (or 2) defines it.

    A line's JSON leaves out the fields added to contract v1 later while they are absent.
    Format 2 is format 3 without each entry's procedure code.
    """
    added = ("claim_line_count", "x12")
    blobs = [
        e.line.model_dump_json(exclude={f for f in added if getattr(e.line, f) is None}).encode()
        for e in history.entries
    ]
    heads = [
        [
            e.line_id,
            e.service_date.isoformat(),
            *([e.line.procedure_code] if version == 3 else []),
            e.content,
            e.revision,
            e.verdict,
            e.cause,
            len(b),
        ]
        for e, b in zip(history.entries, blobs, strict=True)
    ]
    head = orjson.dumps({"f": version, "m": history.member_id, "e": heads})
    return f"H{version}".encode() + head + b"\n" + b"".join(blobs)


def _format_1_bytes(history: PatientHistory) -> bytes:
    """The same history as format 1 stored it: one JSON document."""
    return orjson.dumps(
        {
            "f": 1,
            "m": history.member_id,
            "e": [
                {
                    "l": e.line.model_dump(mode="json"),
                    "c": e.content,
                    "r": e.revision,
                    "v": e.verdict,
                    "b": e.cause,
                }
                for e in history.entries
            ],
        }
    )


@settings(max_examples=100, deadline=None)
@given(lines=line_sets, revisions=st.lists(st.integers(1, 9), min_size=5, max_size=5))
def test_history_bytes_are_the_plain_encoding(lines: list[ClaimLine], revisions) -> None:
    history = PatientHistory.empty("M1")
    for line, revision in zip(lines, revisions, strict=False):
        cause = line.line_id if revision % 2 else None  # a known cause, or an older entry's none
        entry = HistoryEntry(line, content_digest(line), revision, "v", cause=cause)
        history = history.upsert(entry)
    data = history.to_bytes()
    assert data == _plain_bytes(history)
    assert history.to_bytes(2) == _plain_bytes(history, version=2)  # for a rolling upgrade
    assert PatientHistory.from_bytes(data) is history  # what was just written, not decoded
    history_module._DECODED.clear()
    for older in (_format_1_bytes(history), _plain_bytes(history, version=2)):
        legacy = PatientHistory.from_bytes(older)
        assert [e.procedure_code for e in legacy.entries] == [
            e.line.procedure_code for e in history.entries
        ]
        assert legacy == history
        assert legacy.to_bytes().startswith(b'H3{"f":3,')  # rewritten as format 3
        history_module._DECODED.clear()
    assert legacy.to_bytes() == data  # format 2 keeps each line's JSON: only the head grows
    assert PatientHistory.from_bytes(legacy.to_bytes()) == history
    history_module._DECODED.clear()
    decoded = PatientHistory.from_bytes(data)
    # Date and code come from the head: no line is validated to know them.
    assert [(e.service_date, e.procedure_code) for e in decoded.entries] == [
        (e.line.service_date, e.line.procedure_code) for e in history.entries
    ]
    assert all(e._line is None for e in decoded.entries)
    for entry in decoded.entries:  # built through the slots, then made immutable
        assert type(entry) is HistoryEntry
        with pytest.raises(AttributeError, match="immutable"):
            entry.revision = 99  # type: ignore[misc]
    assert decoded == history and decoded is not history
    assert decoded.to_bytes() == data


def test_a_span_beyond_the_calendar_is_held_at_its_edge() -> None:
    day = date(2025, 3, 1)
    assert clamped(day, 10**9) == date.max
    assert clamped(day, -(10**9)) == date.min
    assert clamped(date.max, 1) == date.max and clamped(date.min, -1) == date.min
    assert clamped(day, 91) == day + timedelta(days=91) == clamped(day, 91)  # made, then kept
