"""Checks of the diagnosis codes on a line: their shape, and the ICD-10-CM code set in force.

The code set of a line is the newest one in force on its date of service (CMS releases a new one
every 1 October, sometimes with an update on 1 April; ``scrubber.refdata.icd10cm``). A code not in
it, or a category that needs more characters (a header), is denied with CARC 146 ("diagnosis
was invalid for the date(s) of service reported"). When the newest set loaded is from an earlier
fiscal year than the date of service, a code it does not know may be new: a warning, not an
error, until the current file is loaded. A date before every set loaded is checked for shape
only, and a note says so. The first-listed diagnosis may not be an external-cause code
(V00-Y99, Official Guidelines I.C.20) or a manifestation code (I.A.13: "in diseases classified
elsewhere" codes follow their underlying condition).
"""

from __future__ import annotations

from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Gate, Hit, LineContext, Rule, rule
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

    A shape check only: whether the code exists on the date of service is the code set rules'.
    """
    for index, code in enumerate(ctx.line.diagnosis_codes):
        if ICD10CM_SHAPE.fullmatch(code):
            continue
        if code != code.upper() and ICD10CM_SHAPE.fullmatch(code.upper()):
            why = "is in lower case; X12 carries diagnosis codes in upper case"
        else:
            why = (
                "is not an ICD-10-CM code: 3 to 7 characters, a letter, then letters or digits, "
                "with a dot only after the third character"
            )
        yield Hit(
            f"Diagnosis code {code!r} at position {index + 1} {why}.",
            f"diagnosis_codes[{index}]",
        )


_SET_SOURCE = (
    "ICD-10-CM code set in force on the date of service (CMS order file, billable flag); "
    "HIPAA code set rules, 45 CFR 162.1002"
)


def _statuses(ctx: LineContext) -> list[tuple[int, str, str]]:
    """(position, code, status) of the line's well-formed codes in the set in force (once).

    Three rules ask; the answer is worked out on the first question and kept in ``ctx.memo``.
    """
    found: list[tuple[int, str, str]] | None = ctx.memo.get("icd10_statuses")
    if found is None:
        index, day = ctx.snapshot.icd10, ctx.line.service_date
        shape = ICD10CM_SHAPE.fullmatch
        found = [
            (position, code, index.status(code, day))
            for position, code in enumerate(ctx.line.diagnosis_codes)
            if shape(code)
        ]
        ctx.memo["icd10_statuses"] = found
    return found


def _codes_with_status(ctx: LineContext, wanted: str) -> Iterator[tuple[int, str]]:
    """(position, code) of the well-formed codes the set in force gives ``wanted`` status."""
    for position, code, status in _statuses(ctx):
        if status == wanted:
            yield position, code


def _set_name(ctx: LineContext) -> str:
    code_set = ctx.snapshot.icd10.set_for(ctx.line.service_date)
    assert code_set is not None  # only asked when a set is in force
    return f"{code_set.name}, FY{code_set.fiscal_year}, in force from {code_set.effective_from}"


@rule(
    "diagnosis.invalid_for_date",
    category=Category.DIAGNOSIS,
    severity=Severity.ERROR,
    description="A diagnosis code is not in the ICD-10-CM code set in force on the date of "
    "service.",
    source=_SET_SOURCE,
    carc="146",
    requires=Gate.CODE_SETS,
)
def invalid_for_date(ctx: LineContext) -> Iterator[Hit]:
    """A code the code set of the date does not have (deleted, not yet valid, or never real)."""
    day = ctx.line.service_date
    if ctx.snapshot.icd10.is_outdated(day):
        return  # ``diagnosis.unverified_for_date`` speaks for a set older than the date
    for position, code in _codes_with_status(ctx, "invalid"):
        yield Hit(
            f"Diagnosis code {code} at position {position + 1} is not in the ICD-10-CM code set "
            f"in force on {day.isoformat()} ({_set_name(ctx)}).",
            f"diagnosis_codes[{position}]",
        )


@rule(
    "diagnosis.unverified_for_date",
    category=Category.DIAGNOSIS,
    severity=Severity.WARNING,
    description="A diagnosis code is not in the newest ICD-10-CM code set loaded, which is from "
    "an earlier fiscal year than the date of service: it may be a code added since.",
    source=_SET_SOURCE,
    carc="146",
    requires=Gate.CODE_SETS,
)
def unverified_for_date(ctx: LineContext) -> Iterator[Hit]:
    """Not an error yet: the fiscal year's own code set, which may have the code, is not loaded."""
    day = ctx.line.service_date
    if not ctx.snapshot.icd10.is_outdated(day):
        return
    for position, code in _codes_with_status(ctx, "invalid"):
        yield Hit(
            f"Diagnosis code {code} at position {position + 1} is not in the newest ICD-10-CM "
            f"code set loaded ({_set_name(ctx)}), which predates the fiscal year of "
            f"{day.isoformat()}: it may be a new code; load CMS's order file for that year.",
            f"diagnosis_codes[{position}]",
        )


@rule(
    "diagnosis.header_code",
    category=Category.DIAGNOSIS,
    severity=Severity.ERROR,
    description="A diagnosis code is a category (header) that needs more characters to be "
    "billable.",
    source=_SET_SOURCE + "; Official Guidelines I.B.2 (code to the highest specificity)",
    carc="146",
    requires=Gate.CODE_SETS,
)
def header_code(ctx: LineContext) -> Iterator[Hit]:
    """A header is valid only as a category: a claim must carry a code under it."""
    index, day = ctx.snapshot.icd10, ctx.line.service_date
    for position, code in _codes_with_status(ctx, "header"):
        examples = index.billable_under(code, day)
        such = f", such as {' or '.join(examples)}" if examples else ""
        yield Hit(
            f"Diagnosis code {code} at position {position + 1} is a category, not a billable "
            f"code, in the ICD-10-CM code set in force on {day.isoformat()}: it needs more "
            f"characters{such}.",
            f"diagnosis_codes[{position}]",
        )


@rule(
    "diagnosis.no_code_set",
    category=Category.DIAGNOSIS,
    severity=Severity.INFO,
    description="No ICD-10-CM code set loaded is in force on the date of service: the "
    "diagnosis codes were checked for shape only.",
    source=_SET_SOURCE,
    requires=Gate.CODE_SETS,
)
def no_code_set(ctx: LineContext) -> Iterator[Hit]:
    """Say so rather than pass the line silently: an auditor must see what was not checked."""
    sets = ctx.snapshot.bundle.icd10cm
    day = ctx.line.service_date
    if not sets or ctx.snapshot.icd10.set_for(day) is not None:
        return
    earliest = min(sets, key=lambda s: s.effective_from)
    yield Hit(
        f"No ICD-10-CM code set loaded is in force on {day.isoformat()} (the earliest, "
        f"{earliest.name}, starts {earliest.effective_from.isoformat()}): the diagnosis codes "
        "were checked for shape only.",
        "diagnosis_codes",
    )


@rule(
    "diagnosis.external_cause_first",
    category=Category.DIAGNOSIS,
    severity=Severity.WARNING,
    description="The first-listed diagnosis is an external-cause code (V00-Y99).",
    source="ICD-10-CM Official Guidelines I.C.20 (external cause codes are never first-listed)",
    carc="146",
)
def external_cause_first(ctx: LineContext) -> Iterator[Hit]:
    """External-cause codes say how an injury happened; the injury itself is listed first."""
    first = ctx.line.diagnosis_codes[0]
    if ICD10CM_SHAPE.fullmatch(first) and ctx.snapshot.icd10.is_external_cause(first):
        yield Hit(
            f"The first-listed diagnosis {first} is an external-cause code (V00-Y99): list "
            "the injury or condition first and the external cause after it.",
            "diagnosis_codes[0]",
        )


@rule(
    "diagnosis.manifestation_first",
    category=Category.DIAGNOSIS,
    severity=Severity.WARNING,
    description='The first-listed diagnosis is a manifestation code ("in diseases classified '
    'elsewhere"), which must follow its underlying condition.',
    source="ICD-10-CM Official Guidelines I.A.13 (etiology/manifestation convention, "
    '"code first" notes)',
    carc="146",
    requires=Gate.CODE_SETS,
)
def manifestation_first(ctx: LineContext) -> Iterator[Hit]:
    """A manifestation code is never first: the underlying condition is coded first."""
    first = ctx.line.diagnosis_codes[0]
    if ICD10CM_SHAPE.fullmatch(first) and ctx.snapshot.icd10.is_manifestation(
        first, ctx.line.service_date
    ):
        yield Hit(
            f'The first-listed diagnosis {first} is a manifestation code ("in diseases '
            'classified elsewhere"): code the underlying condition first.',
            "diagnosis_codes[0]",
        )


#: The rules of this module.
RULES: tuple[Rule, ...] = (
    malformed_diagnosis,
    invalid_for_date,
    unverified_for_date,
    header_code,
    no_code_set,
    external_cause_first,
    manifestation_first,
)
