"""Checks of the procedure code itself against the reference data."""

from __future__ import annotations

from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Hit, LineContext, rule


@rule(
    "code.unknown",
    category=Category.CODE,
    severity=Severity.ERROR,
    description="The procedure code is not in the reference data.",
    source="CMS Claims Processing Manual ch. 12; MPFS relative value file (HCPCS column)",
    carc="181",
)
def unknown_code(ctx: LineContext) -> Iterator[Hit]:
    """A code the reference data does not know cannot be priced or checked: payers deny it."""
    if ctx.ref is None:
        yield Hit(
            f"Procedure code {ctx.line.procedure_code!r} is not in reference data "
            f"version {ctx.snapshot.version}.",
            "procedure_code",
        )
