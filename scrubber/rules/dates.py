"""Checks of the date of service."""

from __future__ import annotations

from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Hit, LineContext, Rule, rule


@rule(
    "date.future_service",
    category=Category.DATE,
    severity=Severity.ERROR,
    description="The date of service is after the day the line is judged.",
    source="X12 837P loop 2400 DTP*472 (service date); CARC 110 definition",
    carc="110",
)
def future_service(ctx: LineContext) -> Iterator[Hit]:
    """A service cannot be billed before it happens (CARC 110, billing date predates service).

    "Today" is ``ctx.as_of``, given by the adapter: the engine never reads the clock, so a
    replay judges the same way.
    """
    if ctx.line.service_date > ctx.as_of:
        yield Hit(
            f"Date of service {ctx.line.service_date.isoformat()} is after "
            f"{ctx.as_of.isoformat()}, the day the line was judged.",
            "service_date",
        )


#: The rules of this module.
RULES: tuple[Rule, ...] = (future_service,)
