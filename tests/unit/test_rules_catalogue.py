"""The catalogue: docs/rules.md is generated from it, and every entry is complete."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scrubber.contracts import Category, Severity
from scrubber.rules.catalogue import CARC_MEANINGS, catalogue, render_markdown
from scrubber.rules.engine import CATALOGUE, RULE_MODULES

REPO = Path(__file__).resolve().parents[2]

#: The order rule modules register in, by category.
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


def test_catalogue_lists_the_engine_modules_rules_in_registration_order() -> None:
    modules = {m.__name__ for m in RULE_MODULES}
    registered = [r.rule_id for r in CATALOGUE.values() if r.check.__module__ in modules]
    assert [e["rule_id"] for e in catalogue()] == registered
    assert len(registered) >= 30


def test_registration_follows_the_category_order() -> None:
    seen = [Category(e["category"]) for e in catalogue() if e["category"] in CATEGORY_ORDER]
    positions = [CATEGORY_ORDER.index(c) for c in seen]
    assert positions == sorted(positions)


def test_import_order_cannot_change_the_catalogue_order() -> None:
    """Importing one rule module first still registers every module in the engine's order."""
    script = (
        "import scrubber.rules.add_on\n"
        "from scrubber.rules.base import CATALOGUE\n"
        "print('\\n'.join(CATALOGUE))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.split() == [e["rule_id"] for e in catalogue()]


def test_markdown_table_has_one_row_per_rule() -> None:
    text = render_markdown()
    assert "scrubber rules --markdown" in text
    for entry in catalogue():
        assert f"| `{entry['rule_id']}` | {entry['category']} | {entry['severity']} |" in text
