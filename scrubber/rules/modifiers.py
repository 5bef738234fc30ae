"""Checks of the modifiers on a line."""

from __future__ import annotations

import re
from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Hit, LineContext, rule

#: A CPT or HCPCS level II modifier is exactly two characters, digits or upper-case letters
#: (837P SV101-3..6). Lower case is malformed: X12 modifiers are upper case.
MODIFIER_SHAPE = re.compile(r"[0-9A-Z]{2}")


@rule(
    "modifier.malformed",
    category=Category.MODIFIER,
    severity=Severity.ERROR,
    description="A modifier is not two upper-case letters or digits.",
    source="X12 837P SV101-3..6; CPT Appendix A",
    carc="182",
)
def malformed_modifier(ctx: LineContext) -> Iterator[Hit]:
    """A modifier of the wrong shape cannot be read by a payer's adjudication system."""
    for index, modifier in enumerate(ctx.line.modifiers):
        if not MODIFIER_SHAPE.fullmatch(modifier):
            yield Hit(
                f"Modifier {modifier!r} at position {index + 1} is not two upper-case "
                "letters or digits.",
                f"modifiers[{index}]",
            )
