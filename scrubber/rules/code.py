"""Checks of the procedure code itself against the reference data.

The MPFS status code says whether a code is paid under the physician fee schedule. Statuses A,
R and T are payable and J (anesthesia) is paid by the anesthesia formula: none of them gives a
finding. The others are split by what a payer answers, because a rule carries one CARC: not
valid (181), non-covered (96), bundled (97), and three notes that do not flag the line (C
carrier priced; M reporting only, 246; E and X, paid outside the physician fee schedule). The
``code.not_payable.*`` ids form one family, so a dashboard can count every non-payable code
with one prefix. Every status meaning is RVU25D Attachment A's.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass

from scrubber.contracts import Category, Severity
from scrubber.rules.base import Gate, Hit, LineContext, Rule, rule
from scrubber.standards import STATUS_MEANINGS


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


#: Statuses that are not valid codes for Medicare on the date of service: deleted (D, F), replaced
#: by another code (G, I) or a deleted component (H).
NOT_VALID_STATUSES = frozenset("DFGHI")
#: Services Medicare does not cover.
NON_COVERED_STATUSES = frozenset("N")
#: Services outside the physician fee schedule by statute (X) or by regulation (E): paid, when
#: covered, under another Medicare payment method.
EXCLUDED_STATUSES = frozenset("EX")
#: Services whose payment is always included in another service's payment.
BUNDLED_STATUSES = frozenset("BP")

_STATUS_SOURCE = "MPFS relative value file, STATUS CODE (col. 58; RVU25D layout, Attachment A)"


@dataclass(frozen=True, slots=True)
class _StatusRule:
    """A rule of the status family: one finding when the code's MPFS status is in ``statuses``."""

    rule_id: str
    name: str
    """The check function's name."""
    statuses: frozenset[str]
    severity: Severity
    carc: str | None
    description: str
    consequence: str
    """What the status means for the line, at the end of the message."""
    why: str
    """The check's docstring: why the statuses give this severity and CARC."""


_STATUS_RULES: tuple[_StatusRule, ...] = (
    _StatusRule(
        "code.not_payable.invalid",
        "not_valid_code",
        NOT_VALID_STATUSES,
        Severity.ERROR,
        "181",
        "The procedure code is deleted or not valid for Medicare (status D, F, G, H, I).",
        "bill the code Medicare uses instead",
        """Statuses D, F, G, H and I mean the code cannot be billed to Medicare at all.

        The layout says Medicare "uses another code for reporting of, and payment for, these
        services" (G, I) or that the code or component was deleted (D, F, H). Payers deny such
        lines with CARC 181, "procedure code was invalid on the date of service".
        """,
    ),
    _StatusRule(
        "code.not_payable.non_covered",
        "non_covered_code",
        NON_COVERED_STATUSES,
        Severity.ERROR,
        "96",
        "The procedure code is a service Medicare does not cover (status N).",
        "Medicare does not pay for it",
        'Status N: "these services are not covered by Medicare"; denied with CARC 96 '
        "(non-covered).",
    ),
    _StatusRule(
        "code.outside_fee_schedule",
        "outside_fee_schedule_code",
        EXCLUDED_STATUSES,
        Severity.INFO,
        None,
        "The procedure code is paid outside the physician fee schedule (status E, X).",
        "Medicare pays it, when covered, under another method (clinical laboratory, ambulance "
        "or DMEPOS fee schedule, drug pricing, reasonable charge), not under the MPFS",
        """Status X (statutory exclusion) and E (excluded by regulation) are notes, not errors.

        RVU25D Attachment A: X codes are "not in the statutory definition of physician services
        for fee schedule payment purposes (examples are ambulance services and clinical
        diagnostic laboratory services)"; E codes are excluded "by regulation"; "payment for
        them, when covered, generally continues under reasonable charge procedures". Lab tests,
        drugs and ambulance lines are routinely billed on professional claims and paid under
        those other schedules, so flagging them would hold back most real lab and injection
        lines. The status is recorded on the result so an auditor can see it.
        """,
    ),
    _StatusRule(
        "code.not_payable.bundled",
        "bundled_code",
        BUNDLED_STATUSES,
        Severity.ERROR,
        "97",
        "The procedure code is always bundled into other services (status B, P).",
        "it is never paid separately (included in another service)",
        """Status B and P: never paid separately; CARC 97 (included in another service's payment).

        B: "payment for covered services are always bundled into payment for other services"; P:
        "no separate payment should be made for them under the fee schedule".
        """,
    ),
    _StatusRule(
        "code.reporting_only",
        "reporting_only_code",
        frozenset("M"),
        Severity.INFO,
        "246",
        "The procedure code is a measurement code for reporting only (status M).",
        "expect no payment for this line",
        """Status M codes are billed on purpose (quality reporting) but never paid: a note, not a
        flag.

        Flagging them would hold back claims that carry required quality data; payers process
        them at zero with CARC 246 ("this non-payable code is for required reporting only").
        """,
    ),
    _StatusRule(
        "code.carrier_priced",
        "carrier_priced_code",
        frozenset("C"),
        Severity.INFO,
        None,
        "The procedure code is priced by the contractor (status C).",
        "expect a documentation request before payment",
        """Status C is payable, but the MAC prices it case by case, usually from the operative
        report.

        A note only: the line is not held back, the billing office learns to expect a
        documentation request and a price that is not on the fee schedule.
        """,
    ),
)

#: Every status some code rule speaks about: the engine calls the status rules only for these
#: (``Gate.STATUS_NOTE``); A, R, T and J are payable and give no finding.
NOTED_STATUSES: frozenset[str] = frozenset().union(*(r.statuses for r in _STATUS_RULES))


def _status_rule(spec: _StatusRule) -> Rule:
    """The rule of one row of the status table."""

    def check(ctx: LineContext) -> Iterator[Hit]:
        ref = ctx.ref
        if ref is None or ref.status is None or ref.status not in spec.statuses:
            return
        yield Hit(
            f"Procedure code {ref.code} has MPFS status {ref.status} "
            f"({STATUS_MEANINGS[ref.status]}): {spec.consequence}.",
            "procedure_code",
        )

    check.__name__ = check.__qualname__ = spec.name
    check.__doc__ = inspect.cleandoc(spec.why)
    return rule(
        spec.rule_id,
        category=Category.CODE,
        severity=spec.severity,
        description=spec.description,
        source=_STATUS_SOURCE,
        carc=spec.carc,
        requires=Gate.KNOWN | Gate.STATUS_NOTE,
        medicare_policy=True,
    )(check)


#: The rules of this module.
RULES: tuple[Rule, ...] = (unknown_code, *(_status_rule(spec) for spec in _STATUS_RULES))
