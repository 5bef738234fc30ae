"""The catalogue: docs/rules.md is generated from it, and every entry is complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scrubber.contracts import Category, Severity
from scrubber.rules import library
from scrubber.rules.base import Rule
from scrubber.rules.catalogue import CARC_MEANINGS, catalogue, render_markdown

REPO = Path(__file__).resolve().parents[2]

#: The order of the rule families in the product's list, by category.
CATEGORY_ORDER = [
    Category.CODE,
    Category.MODIFIER,
    Category.UNITS,
    Category.DIAGNOSIS,
    Category.PROVIDER,
    Category.DATE,
    Category.ADD_ON,
]


def test_docs_rules_md_is_generated_from_the_catalogue() -> None:
    written = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    assert written == render_markdown(), (
        "docs/rules.md is stale: regenerate it with `scrubber rules --markdown > docs/rules.md` "
        "(or scrubber.rules.catalogue.render_markdown())"
    )


@pytest.mark.parametrize("entry", catalogue(), ids=lambda e: str(e["rule_id"]))
def test_every_rule_is_complete(entry) -> None:
    assert entry["description"] and entry["source"]
    category = Category(entry["category"])  # the closed set
    Severity(entry["severity"])
    prefix = str(entry["rule_id"]).split(".")[0]
    allowed = {category.value} | ({"global"} if category is Category.GLOBAL_PERIOD else set())
    assert prefix in allowed
    assert entry["carc"] is None or entry["carc"] in CARC_MEANINGS


def test_catalogue_lists_the_product_rules_in_the_stated_order() -> None:
    assert [e["rule_id"] for e in catalogue()] == list(library.RULE_ORDER)
    assert [r.rule_id for r in library.default_engine().rules] == list(library.RULE_ORDER)
    assert len(library.RULE_ORDER) >= 30


def test_every_rule_of_a_family_is_in_the_order_and_nothing_else() -> None:
    defined = {r.rule_id for family in library.FAMILIES for r in family.RULES}
    assert defined == set(library.RULE_ORDER)


def test_a_rule_missing_from_the_order_stops_the_build_of_the_list(monkeypatch) -> None:
    class Family:
        RULES = (Rule("code.test_new", Category.CODE, Severity.INFO, "t", "t", None, lambda c: ()),)

    monkeypatch.setattr(library, "FAMILIES", (*library.FAMILIES, Family))
    with pytest.raises(RuntimeError, match=r"not listed \['code.test_new'\]"):
        library.default_rules()
    monkeypatch.setattr(library, "RULE_ORDER", (*library.RULE_ORDER, "code.test_gone"))
    monkeypatch.setattr(library, "FAMILIES", library.FAMILIES[:-1])
    with pytest.raises(RuntimeError, match=r"missing \['code.test_gone'\]"):
        library.default_rules()


def test_the_order_follows_the_category_order() -> None:
    seen = [Category(e["category"]) for e in catalogue() if e["category"] in CATEGORY_ORDER]
    positions = [CATEGORY_ORDER.index(c) for c in seen]
    assert positions == sorted(positions)


def test_import_order_cannot_change_the_catalogue_order() -> None:
    """Importing one rule module first changes nothing: the order is the library's list."""
    script = (
        "import scrubber.rules.add_on\n"
        "from scrubber.rules.catalogue import catalogue\n"
        "print('\\n'.join(e['rule_id'] for e in catalogue()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.split() == list(library.RULE_ORDER)


def test_markdown_table_has_one_row_per_rule() -> None:
    text = render_markdown()
    assert "scrubber rules --markdown" in text
    for entry in catalogue():
        assert f"| `{entry['rule_id']}` | {entry['category']} | {entry['severity']} |" in text
