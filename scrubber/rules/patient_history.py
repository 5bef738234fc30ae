"""What the scrubber could not consider: a patient history that no longer decodes.

A stored history can become unreadable (a bug, a format change, a damaged store). The worker
sets its bytes aside and judges the line without the patient's earlier lines rather than
dead-lettering every later line of the patient; the cross-line checks (global periods, add-on
primaries, NCCI pairs, units per day, duplicates) could then miss something, so the line is
flagged for a look, and the note says why.
"""

from __future__ import annotations

from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Gate, Hit, LineContext, Rule, rule


@rule(
    "history.unreadable",
    category=Category.HISTORY,
    severity=Severity.WARNING,
    description="The patient's stored history could not be read: the line was judged without "
    "the patient's earlier lines.",
    source="claim-scrubber patient history (README, Reliability)",
    requires=Gate.HISTORY_LOST,
)
def unreadable_history(ctx: LineContext) -> Iterator[Hit]:
    """A warning, not an error: nothing is known to be wrong with the line itself."""
    if ctx.history_lost:
        yield Hit(
            "The patient's earlier lines could not be considered: their stored history did "
            "not decode and was set aside. Cross-line checks (global periods, add-on primaries, "
            "NCCI pairs, units per day, duplicates) saw only the lines that follow.",
            None,
        )


#: The rules of this module.
RULES: tuple[Rule, ...] = (unreadable_history,)
