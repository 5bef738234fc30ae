"""Duplicate lines: the same service billed twice on different claim lines.

The same patient, procedure code, date of service, modifiers and rendering NPI on two different
claim lines is a likely duplicate (payers deny it with CARC 18). The same claim line delivered
twice is one line, not a duplicate: the processor recognises a redelivery by its line id.

Which of two duplicates is "the duplicate" must not depend on which arrived first, or the final
verdicts would depend on arrival order; the line with the smallest (claim id, line number) is
taken as the original and every other line of the group is flagged.
"""

from __future__ import annotations

from collections.abc import Iterator

from scrubber.contracts import Category, ClaimLine, Severity
from scrubber.rules.base import Gate, Hit, LineContext, Rule, rule, same_day_same_code


def _signature(line: ClaimLine) -> tuple[object, ...]:
    return (
        line.procedure_code,
        line.service_date,
        tuple(sorted(line.modifiers)),
        line.rendering_provider.npi,
    )


def _order(line: ClaimLine) -> tuple[str, int]:
    return (line.claim_id, line.line_number)


@rule(
    "duplicate.line",
    category=Category.DUPLICATE,
    severity=Severity.ERROR,
    description="Same patient, code, date of service, modifiers and rendering NPI as another line.",
    source="CMS Claims Processing Manual ch. 1 §120 (duplicate claims); X12 CARC 18",
    carc="18",
    requires=Gate.OTHERS,
    affects=same_day_same_code,
)
def duplicate_line(ctx: LineContext) -> Iterator[Hit]:
    """Flag every line of a duplicate group except the one that sorts first.

    Candidates are the other lines of the same date with the same code and rendering NPI (cheap
    comparisons); only those are compared by full signature (which sorts the modifiers).
    """
    line = ctx.line
    code, npi, order = line.procedure_code, line.rendering_provider.npi, _order(line)
    signature = None
    earlier = []
    for o in ctx.same_day():
        if o.procedure_code != code or o.rendering_provider.npi != npi:
            continue
        if signature is None:
            signature = _signature(line)
        if _signature(o) == signature and _order(o) < order:
            earlier.append(o)
    if earlier:
        original = min(earlier, key=_order)
        yield Hit(
            f"Likely duplicate of line {original.line_id}: same code, date of service, "
            "modifiers and rendering NPI for the same patient.",
            "procedure_code",
        )


#: The rules of this module.
RULES: tuple[Rule, ...] = (duplicate_line,)
