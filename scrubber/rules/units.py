"""Units of service against the NCCI medically unlikely edits (MUE).

An MUE is the most units of a code a provider would report for one patient under most
circumstances. Its adjudication indicator (MAI) says how it is counted: 1 per claim line; 2 per
date of service, all the patient's lines of the code summed, an absolute policy limit; 3 per date
of service, summed, a clinical limit that can be appealed with documentation. A value of 0 means
the code is not payable in any number of units. No finding when the code, the value or the
indicator is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Gate, Hit, LineContext, Rule, rule, same_day_same_code
from scrubber.standards import MUE_DATE_INDICATORS as DATE_INDICATORS
from scrubber.standards import MUE_LINE_INDICATOR as LINE_INDICATOR

SOURCE = "CMS NCCI medically unlikely edits, practitioner services table (MUE value, MAI columns)"


def _units(value: float) -> str:
    """Units as a biller writes them: 2, not 2.0."""
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def _limit(value: int) -> str:
    if value == 0:
        return "MUE value 0 (not payable in any number of units)"
    return f"MUE value {value}"


@rule(
    "units.mue_line",
    category=Category.UNITS,
    severity=Severity.ERROR,
    description="Units on the line exceed the code's MUE value (adjudication indicator 1).",
    source=SOURCE,
    carc="151",
    requires=Gate.KNOWN | Gate.MUE_LINE,
    medicare_policy=True,
)
def mue_line(ctx: LineContext) -> Iterator[Hit]:
    """MAI 1 is a claim line edit: the units of this line alone are compared (CARC 151)."""
    ref = ctx.ref
    if ref is None or ref.mue_value is None or ref.mue_indicator != LINE_INDICATOR:
        return
    if ctx.line.units > ref.mue_value:
        yield Hit(
            f"{_units(ctx.line.units)} units of {ref.code} on this line exceed "
            f"{_limit(ref.mue_value)}, adjudication indicator 1 (line edit).",
            "units",
        )


@rule(
    "units.mue_date_of_service",
    category=Category.UNITS,
    severity=Severity.ERROR,
    description="Units of the code on one date of service, summed over the patient's lines, "
    "exceed the MUE value (adjudication indicator 2 or 3).",
    source=SOURCE,
    carc="151",
    requires=Gate.KNOWN | Gate.MUE_DATE,
    affects=same_day_same_code,
    medicare_policy=True,
)
def mue_date_of_service(ctx: LineContext) -> Iterator[Hit]:
    """MAI 2 and 3 count every line of the patient with this code on this date (CARC 151).

    The sum runs over this line and ``ctx.others`` with the same code and date of service, so
    every contributing line gets the same verdict whatever order the lines arrived in; ``fsum``
    makes the float sum itself independent of that order. A single line over the value is
    flagged the same way. Indicator 3 is a clinical edit the provider can appeal, which the
    message says; both are errors because the units over the value are denied until then.
    """
    ref = ctx.ref
    if ref is None or ref.mue_value is None or ref.mue_indicator not in DATE_INDICATORS:
        return
    line = ctx.line
    code = line.procedure_code
    same = [o.units for o in ctx.same_day() if o.procedure_code == code]
    total = math.fsum([line.units, *same])
    if total > ref.mue_value:
        lines = f"over {len(same) + 1} lines" if same else "on this line"
        yield Hit(
            f"{_units(total)} units of {ref.code} on {line.service_date.isoformat()} {lines} "
            f"exceed {_limit(ref.mue_value)}, adjudication indicator {ref.mue_indicator} "
            f"({DATE_INDICATORS[ref.mue_indicator]}).",
            "units",
        )


#: The rules of this module.
RULES: tuple[Rule, ...] = (mue_line, mue_date_of_service)
