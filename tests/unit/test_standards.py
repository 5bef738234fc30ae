"""The public standards module: the value sets are the RVU25D layout's, the shapes the code sets'.

The expected value sets below were written from the RVU25D record layout (CY2025 October
release, with its Attachment A) and CMS's MUE practitioner table, not copied from the module: a
value the module adds or drops fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields

import pytest

from scrubber import standards as std
from scrubber.refdata.cms import MpfsRow
from scrubber.refdata.model import CodeReference

#: (meanings table, value set derived from it, the values the layout documents).
VALUE_SETS = [
    (std.STATUS_MEANINGS, std.STATUS_CODES, set("ABCDEFGHIJMNPRTX")),
    (std.PCTC_MEANINGS, std.PCTC_VALUES, set("0123456789")),
    (
        std.GLOBAL_DAYS_MEANINGS,
        std.GLOBAL_DAYS_VALUES,
        {"000", "010", "090", "MMM", "XXX", "YYY", "ZZZ"},
    ),
    (std.MULT_PROC_MEANINGS, std.MULT_PROC_VALUES, set("012345679")),
    (std.BILATERAL_MEANINGS, std.BILATERAL_VALUES, set("01239")),
    (std.ASSISTANT_MEANINGS, std.ASSISTANT_VALUES, set("0129")),
    (std.SURGEONS_MEANINGS, std.SURGEONS_VALUES, set("0129")),
    (std.MUE_INDICATOR_LABELS, std.MUE_INDICATORS, {"1", "2", "3"}),
]


@pytest.mark.parametrize(("meanings", "values", "documented"), VALUE_SETS)
def test_each_value_set_is_its_meanings_table_and_the_layouts(
    meanings: dict[str, str], values: frozenset[str], documented: set[str]
) -> None:
    assert values == frozenset(meanings) == documented
    assert all(text.strip() == text and text for text in meanings.values())


def test_pctc_admits_components_only_where_attachment_a_says_so() -> None:
    assert set(std.PCTC_ALLOWED) == std.PCTC_VALUES
    admitting = {value: sorted(mods) for value, mods in std.PCTC_ALLOWED.items() if mods}
    assert admitting == {"1": ["26", "TC"], "6": ["26"]}


@pytest.mark.parametrize(
    ("not_paid", "documentation", "values"),
    [
        (std.ASSISTANT_NOT_PAID, std.ASSISTANT_DOCUMENTATION, std.ASSISTANT_VALUES),
        (std.SURGEONS_NOT_PERMITTED, std.SURGEONS_DOCUMENTATION, std.SURGEONS_VALUES),
    ],
)
def test_refusing_and_documentation_values_are_values_of_the_scale(
    not_paid: frozenset[str], documentation: str, values: frozenset[str]
) -> None:
    assert not_paid < values
    assert documentation in values
    assert documentation not in not_paid
    assert "2" not in not_paid | {documentation}  # 2: permitted, on both scales


def test_global_days_facts_agree() -> None:
    assert set(std.POSTOP_DAYS) < std.GLOBAL_DAYS_VALUES
    assert std.POSTOP_DAYS == {"000": 0, "010": 10, "090": 90}
    assert {"010", "090"} == std.SPLIT_GLOBAL_DAYS
    assert std.ADD_ON_GLOBAL_DAYS in std.GLOBAL_DAYS_VALUES
    assert std.ADD_ON_GLOBAL_DAYS not in std.POSTOP_DAYS


def test_mue_indicators_split_into_line_and_date_edits() -> None:
    assert {std.MUE_LINE_INDICATOR} | set(std.MUE_DATE_INDICATORS) == std.MUE_INDICATORS
    assert std.MUE_DATE_INDICATORS == {
        "2": "date of service edit: policy, absolute",
        "3": "date of service edit: clinical, appealable",
    }


def test_indicator_columns_are_fields_of_the_cms_row_and_the_bundle() -> None:
    row_fields = {f.name for f in fields(MpfsRow)}
    assert set(std.MPFS_COLUMNS) <= row_fields
    assert set(std.MPFS_COLUMNS) <= set(CodeReference.model_fields)
    assert std.MPFS_COLUMNS["co_surgeons"] == "CO-SURG"


#: (shape, accepted, refused): examples from the code sets and X12 837P.
SHAPES: list[tuple[re.Pattern[str], list[str], list[str]]] = [
    (
        std.HCPCS_CODE_SHAPE,
        ["99213", "0001U", "3008F", "0591T", "G0121", "D0120"],
        ["9921", "992133", "ABCDE", "A12B4", "g0121", "99 13"],
    ),
    (std.CPT_NUMERIC_SHAPE, ["11960", "99499"], ["1196", "0591T", "G0121"]),
    (std.MODIFIER_SHAPE, ["25", "TC", "F1", "XS"], ["2", "tc", "252", "-5"]),
    (
        std.ICD10CM_SHAPE,
        ["L03.115", "L03115", "S51812A", "U07.1", "Z00", "QA00101", "QA0.0101"],
        ["L0", "l03.115", "103.115", "L03.11567", "L031.15"],
    ),
    (std.TAXONOMY_SHAPE, ["207X00000X", "2086S0122X"], ["207X00000", "207x00000X", "A07X00000X"]),
]


@pytest.mark.parametrize(("shape", "accepted", "refused"), SHAPES)
def test_shapes(shape: re.Pattern[str], accepted: list[str], refused: list[str]) -> None:
    assert [c for c in accepted if not shape.fullmatch(c)] == []
    assert [c for c in refused if shape.fullmatch(c)] == []


def test_the_pattern_and_the_shape_are_one() -> None:
    assert std.HCPCS_CODE_SHAPE.pattern == std.HCPCS_CODE_PATTERN


def test_imports_nothing_of_the_package() -> None:
    """The worker imports it through the rules: it must not pull anything in with it."""
    code = "import sys, scrubber.standards; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "scrubber.standards" in loaded
    assert [m for m in loaded if m.startswith("scrubber.") and m != "scrubber.standards"] == []
