"""The modifier rules, each on its flagging and its passing side.

Every case builds a snapshot with exactly the indicators it needs (all others unknown) and the
master modifier list, and asserts the findings of one rule: fields, severity, CARC.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from scrubber.contracts import Category, Finding, Severity
from scrubber.refdata.build import read_master_modifiers
from scrubber.refdata.model import Bundle, CodeReference, ModifierReference, ReferenceSnapshot
from scrubber.rules.library import default_engine

evaluate = default_engine().evaluate

TODAY = date(2025, 6, 1)
MASTER = read_master_modifiers()

SPEC = {
    "modifier.unknown": (Severity.ERROR, "182"),
    "modifier.too_many": (Severity.ERROR, "16"),
    "modifier.pricing_not_first": (Severity.WARNING, None),
    "modifier.conflict": (Severity.ERROR, "4"),
    "modifier.em_only": (Severity.ERROR, "4"),
    "modifier.global_split_not_applicable": (Severity.ERROR, "4"),
    "modifier.multiple_on_add_on": (Severity.ERROR, "4"),
    "modifier.bilateral_not_allowed": (Severity.ERROR, "4"),
    "modifier.pctc_not_allowed": (Severity.ERROR, "4"),
    "modifier.assistant_not_allowed": (Severity.ERROR, "54"),
    "modifier.assistant_documentation": (Severity.WARNING, "252"),
    "modifier.co_surgeons": (Severity.ERROR, "54"),
    "modifier.co_surgeons_documentation": (Severity.WARNING, "252"),
    "modifier.team_surgery": (Severity.ERROR, "54"),
    "modifier.team_surgery_documentation": (Severity.WARNING, "252"),
}


def _snapshot(code: str = "11960", modifiers: Any = None, **indicators: Any) -> ReferenceSnapshot:
    mods = MASTER if modifiers is None else modifiers
    bundle = Bundle(
        codes={code: CodeReference(code=code, **indicators)}, modifiers=mods
    ).with_version()
    return ReferenceSnapshot(bundle)


def _hits(rule_id: str, line, snapshot: ReferenceSnapshot) -> list[Finding]:
    verdict = evaluate(line, snapshot, TODAY)
    found = [f for f in verdict.findings if f.rule_id == rule_id]
    severity, carc = SPEC[rule_id]
    for f in found:
        assert f.category is Category.MODIFIER
        assert f.severity is severity, f
        assert f.carc == carc, f
    return found


def _fields(rule_id: str, line, snapshot: ReferenceSnapshot) -> list[str | None]:
    return [f.field for f in _hits(rule_id, line, snapshot)]


# ------------------------------------------------------------------------------ shape and order
@pytest.mark.parametrize(
    ("modifiers", "positions"),
    [
        ([], []),
        (["LT", "RT", "59"], []),
        (["ZZ"], [0]),
        (["LT", "ZZ", "lt", "Q9"], [1, 3]),  # lt is malformed, not unknown
        (["00", "11"], [0, 1]),  # the seeds' placeholders are not modifiers
    ],
)
def test_unknown_modifier(line, modifiers, positions) -> None:
    small = {m: ModifierReference(code=m, description=m) for m in ("LT", "RT", "59")}
    snap = _snapshot(modifiers=small)
    found = _hits("modifier.unknown", line(modifiers=modifiers), snap)
    assert [f.field for f in found] == [f"modifiers[{i}]" for i in positions]
    assert all(snap.version in f.message for f in found)


@pytest.mark.parametrize(
    ("modifiers", "flagged"),
    [
        ([], False),
        (["22", "59", "LT", "GA"], False),
        (["22", "59", "LT", "GA", "KX"], True),
        (["LT"] * 12, True),
    ],
)
def test_too_many_modifiers(line, modifiers, flagged) -> None:
    found = _hits("modifier.too_many", line(modifiers=modifiers), _snapshot())
    assert [f.field for f in found] == (["modifiers"] if flagged else [])
    if flagged:
        assert str(len(modifiers)) in found[0].message


@pytest.mark.parametrize(
    ("modifiers", "positions"),
    [
        (["26", "LT"], []),
        (["26", "50", "GA"], []),
        (["22", "59", "XS", "RT"], []),
        (["QK", "GC"], []),
        (["LT", "26"], [1]),
        (["GA", "26", "LT", "50"], [1, 3]),
        (["59", "XS", "RT", "22"], [3]),
        (["58", "80"], [1]),
        (["ZZ", "26"], []),  # an unknown modifier has its own finding, not an order one
        (["lt", "26"], []),  # likewise a malformed one
    ],
)
def test_pricing_not_first(line, modifiers, positions) -> None:
    found = _hits("modifier.pricing_not_first", line(modifiers=modifiers), _snapshot())
    assert [f.field for f in found] == [f"modifiers[{i}]" for i in positions]


# ------------------------------------------------------------------------------------ conflicts
@pytest.mark.parametrize(
    ("modifiers", "pairs"),
    [
        (["50"], []),
        (["LT", "RT"], []),
        (["58", "59"], []),
        (["52", "22"], []),
        (["50", "LT"], [("50", "LT")]),
        (["RT", "50"], [("50", "RT")]),
        (["50", "LT", "RT"], [("50", "LT"), ("50", "RT")]),
        (["53", "52"], [("52", "53")]),
        (["TC", "26"], [("26", "TC")]),
        (["58", "78", "79"], [("58", "78"), ("58", "79"), ("78", "79")]),
        (["79", "GA", "58"], [("58", "79")]),
    ],
)
def test_conflicting_modifiers(line, modifiers, pairs) -> None:
    found = _hits("modifier.conflict", line(modifiers=modifiers), _snapshot())
    assert [f.field for f in found] == ["modifiers"] * len(pairs)
    for f, (a, b) in zip(found, pairs, strict=True):
        assert f"Modifiers {a} and {b}" in f.message


# -------------------------------------------------------------------------------- E/M only
@pytest.mark.parametrize(
    ("code", "modifiers", "positions"),
    [
        ("99213", ["25"], []),
        ("99202", ["57", "FT"], []),
        ("99499", ["24"], []),
        ("11960", ["59"], []),
        ("11960", ["25"], [0]),
        ("11960", ["LT", "57", "24", "FT"], [1, 2, 3]),
        ("99201", ["25"], [0]),  # deleted 2021: outside the E/M range
        ("99500", ["25"], [0]),
        ("G0463", ["25"], [0]),
    ],
)
def test_em_only_modifiers(line, code, modifiers, positions) -> None:
    found = _hits(
        "modifier.em_only", line(procedure_code=code, modifiers=modifiers), _snapshot(code)
    )
    assert [f.field for f in found] == [f"modifiers[{i}]" for i in positions]


def test_em_only_is_silent_on_an_unknown_code(line) -> None:
    snap = _snapshot("11960")
    assert _fields("modifier.em_only", line(procedure_code="11961", modifiers=["25"]), snap) == []


# ------------------------------------------------------------------------ split global care
@pytest.mark.parametrize(
    ("global_days", "modifiers", "positions"),
    [
        ("090", ["54"], []),
        ("010", ["55", "56"], []),
        (None, ["54"], []),
        ("000", ["LT"], []),
        ("000", ["54"], [0]),
        ("XXX", ["55"], [0]),
        ("ZZZ", ["LT", "56"], [1]),
        ("YYY", ["54", "55"], [0, 1]),
        ("MMM", ["54"], [0]),
    ],
)
def test_global_split_not_applicable(line, global_days, modifiers, positions) -> None:
    snap = _snapshot(global_days=global_days)
    found = _hits("modifier.global_split_not_applicable", line(modifiers=modifiers), snap)
    assert [f.field for f in found] == [f"modifiers[{i}]" for i in positions]
    assert all(f"global days {global_days}" in f.message for f in found)


# ------------------------------------------------------------------------------ 51 on add-on
@pytest.mark.parametrize(
    ("indicators", "modifiers", "positions"),
    [
        ({"global_days": "ZZZ", "mult_proc": "0"}, ["51"], [0]),
        ({"global_days": "ZZZ"}, ["59", "51"], [1]),
        ({"global_days": "ZZZ", "mult_proc": "0"}, ["59"], []),
        ({"global_days": "090", "mult_proc": "2"}, ["51"], []),
        # mult_proc 0 alone is not an add-on: E/M codes and some primaries carry it too.
        ({"global_days": "000", "mult_proc": "0"}, ["51"], []),
        ({}, ["51"], []),
    ],
)
def test_multiple_procedure_modifier_on_add_on(line, indicators, modifiers, positions) -> None:
    snap = _snapshot(**indicators)
    found = _hits("modifier.multiple_on_add_on", line(modifiers=modifiers), snap)
    assert [f.field for f in found] == [f"modifiers[{i}]" for i in positions]


# ---------------------------------------------------------------------------- indicator rules
@pytest.mark.parametrize(
    ("indicator", "flagged"),
    [("0", True), ("2", True), ("3", True), ("9", True), ("1", False), (None, False), ("7", False)],
)
def test_bilateral_not_allowed(line, indicator, flagged) -> None:
    snap = _snapshot(bilateral=indicator)
    found = _hits("modifier.bilateral_not_allowed", line(modifiers=["LT", "50"]), snap)
    assert [f.field for f in found] == (["modifiers[1]"] if flagged else [])
    if flagged:
        assert f"bilateral surgery indicator {indicator}" in found[0].message


def test_bilateral_without_50_is_silent(line) -> None:
    snap = _snapshot(bilateral="0")
    assert _fields("modifier.bilateral_not_allowed", line(modifiers=["LT"]), snap) == []


@pytest.mark.parametrize(
    ("pctc", "bad"),
    [
        ("0", {"26", "TC"}),
        ("1", set()),
        ("2", {"26", "TC"}),
        ("3", {"26", "TC"}),
        ("4", {"26", "TC"}),
        ("5", {"26", "TC"}),
        ("6", {"TC"}),
        ("7", {"26", "TC"}),
        ("8", {"26", "TC"}),
        ("9", {"26", "TC"}),
        (None, set()),
        ("X", set()),
    ],
)
@pytest.mark.parametrize("modifier", ["26", "TC"])
def test_pctc_not_allowed(line, pctc, bad, modifier) -> None:
    snap = _snapshot(pctc=pctc)
    found = _hits("modifier.pctc_not_allowed", line(modifiers=["GA", modifier]), snap)
    assert [f.field for f in found] == (["modifiers[1]"] if modifier in bad else [])
    if found:
        assert f"PC/TC indicator {pctc}" in found[0].message


SURGERY_SCALES = [
    # (indicator field, modifiers, error rule, warning rule, error values, warning value)
    (
        "assistant",
        ["80", "81", "82", "AS"],
        "modifier.assistant_not_allowed",
        "modifier.assistant_documentation",
        {"1", "9"},
        "0",
    ),
    (
        "co_surgeons",
        ["62"],
        "modifier.co_surgeons",
        "modifier.co_surgeons_documentation",
        {"0", "9"},
        "1",
    ),
    (
        "team_surgery",
        ["66"],
        "modifier.team_surgery",
        "modifier.team_surgery_documentation",
        {"0", "9"},
        "1",
    ),
]


@pytest.mark.parametrize(
    ("field", "modifiers", "error_rule", "warning_rule", "errors", "warning"), SURGERY_SCALES
)
@pytest.mark.parametrize("indicator", ["0", "1", "2", "9", None, "5"])
def test_surgery_indicator_scales(
    line, field, modifiers, error_rule, warning_rule, errors, warning, indicator
) -> None:
    for modifier in modifiers:
        doc = line(modifiers=["LT", modifier])
        snap = _snapshot(**{field: indicator})
        error_fields = _fields(error_rule, doc, snap)
        warning_fields = _fields(warning_rule, doc, snap)
        assert error_fields == (["modifiers[1]"] if indicator in errors else [])
        assert warning_fields == (["modifiers[1]"] if indicator == warning else [])


def test_surgery_indicator_without_modifier_is_silent(line) -> None:
    snap = _snapshot(assistant="1", co_surgeons="0", team_surgery="0")
    verdict = evaluate(line(modifiers=["LT"]), snap, TODAY)
    assert verdict.findings == ()


def test_each_assistant_modifier_is_named_once(line) -> None:
    snap = _snapshot(assistant="1")
    found = _hits("modifier.assistant_not_allowed", line(modifiers=["80", "AS", "80"]), snap)
    assert [f.field for f in found] == ["modifiers[0]", "modifiers[1]"]
    assert "assistant at surgery indicator 1" in found[0].message


def test_indicator_rules_are_silent_on_an_unknown_code(line) -> None:
    """No finding is built on missing data: code.unknown is the only word on such a line."""
    snap = _snapshot(
        "11960",
        global_days="ZZZ",
        pctc="0",
        bilateral="0",
        assistant="1",
        co_surgeons="0",
        team_surgery="0",
    )
    doc = line(procedure_code="11961", modifiers=["50", "26", "80", "62"])
    ids = [f.rule_id for f in evaluate(doc, snap, TODAY).findings]
    assert ids == ["code.unknown"]
