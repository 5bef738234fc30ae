"""Checks of the diagnosis codes on a line."""

from __future__ import annotations

from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Hit, LineContext, Rule, rule
from scrubber.standards import ICD10CM_SHAPE


@rule(
    "diagnosis.malformed",
    category=Category.DIAGNOSIS,
    severity=Severity.ERROR,
    description="A diagnosis code does not have the ICD-10-CM shape.",
    source="ICD-10-CM Official Guidelines (code structure); X12 837P HI segment",
    carc="146",
)
def malformed_diagnosis(ctx: LineContext) -> Iterator[Hit]:
    """A diagnosis that is not shaped like an ICD-10-CM code cannot be valid (CARC 146).

    This is a shape check only: whether the code exists in the code set for the date of service
    needs the ICD-10-CM tabular list, which the reference data does not carry yet.
    """
    for index, code in enumerate(ctx.line.diagnosis_codes):
        if ICD10CM_SHAPE.fullmatch(code):
            continue
        if code != code.upper() and ICD10CM_SHAPE.fullmatch(code.upper()):
            why = "is in lower case; X12 carries diagnosis codes in upper case"
        else:
            why = (
                "is not an ICD-10-CM code: 3 to 7 characters, a letter, a digit, then letters "
                "or digits, with a dot only after the third character"
            )
        yield Hit(
            f"Diagnosis code {code!r} at position {index + 1} {why}.",
            f"diagnosis_codes[{index}]",
        )


#: The rules of this module.
RULES: tuple[Rule, ...] = (malformed_diagnosis,)
