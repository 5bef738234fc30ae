"""Checks of the diagnosis codes on a line."""

from __future__ import annotations

import re
from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Hit, LineContext, Rule, rule

#: ICD-10-CM code shape: 3 to 7 characters, a letter, a digit, then letters or digits; a dot is
#: allowed only after the third character (X12 HI segments carry none, many producers add it).
#: Upper case only: X12 carries diagnosis codes in upper case. The first character may be any
#: letter: U is reserved by WHO for emergency use, but ICD-10-CM assigns codes in it (U07.1).
ICD10CM_SHAPE = re.compile(r"[A-Z][0-9][A-Z0-9](?:\.?[A-Z0-9]{1,4})?")


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
