"""The product's rules and their order: the one place that says which rules run, and when.

Each family module (``code``, ``modifiers``, ...) defines its rules and lists them in ``RULES``;
nothing runs because a module was imported. ``RULE_ORDER`` states the order of every rule the
product applies, which is the order of findings on a result and of docs/rules.md. A rule defined
in a family but missing here, or named here but defined nowhere, stops the import: the list and
the code cannot drift apart.
"""

from __future__ import annotations

from functools import cache

from scrubber.rules import (
    add_on,
    code,
    dates,
    diagnosis,
    duplicates,
    global_period,
    modifiers,
    ncci,
    patient_history,
    provider,
    units,
)
from scrubber.rules.base import Rule
from scrubber.rules.engine import Engine

#: The families whose rules the product applies.
FAMILIES = (
    code,
    modifiers,
    units,
    diagnosis,
    provider,
    dates,
    add_on,
    global_period,
    ncci,
    duplicates,
    patient_history,
)

#: Every rule of the product, in the order findings are listed: the procedure code first, then
#: what is on the line (modifiers, units, diagnoses, providers, dates), then what depends on the
#: patient's other lines (add-on primaries, global periods, NCCI pairs, duplicates).
RULE_ORDER: tuple[str, ...] = (
    "code.unknown",
    "code.not_payable.invalid",
    "code.not_payable.non_covered",
    "code.not_payable.bundled",
    "code.reporting_only",
    "code.carrier_priced",
    "code.outside_fee_schedule",
    "modifier.malformed",
    "modifier.unknown",
    "modifier.too_many",
    "modifier.pricing_not_first",
    "modifier.conflict",
    "modifier.em_only",
    "modifier.global_split_not_applicable",
    "modifier.multiple_on_add_on",
    "modifier.bilateral_not_allowed",
    "modifier.pctc_not_allowed",
    "modifier.assistant_not_allowed",
    "modifier.assistant_documentation",
    "modifier.co_surgeons",
    "modifier.co_surgeons_documentation",
    "modifier.team_surgery",
    "modifier.team_surgery_documentation",
    "units.mue_line",
    "units.mue_date_of_service",
    "diagnosis.malformed",
    "diagnosis.invalid_for_date",
    "diagnosis.unverified_for_date",
    "diagnosis.header_code",
    "diagnosis.no_code_set",
    "diagnosis.external_cause_first",
    "diagnosis.manifestation_first",
    "provider.npi_invalid",
    "provider.taxonomy_malformed",
    "date.future_service",
    "add_on.no_primary",
    "add_on.primary_not_listed",
    "add_on.primary_not_listed_warning",
    "global_period.em_decision_without_57",
    "global_period.em_same_day_without_25",
    "global_period.em_postop_without_24",
    "global_period.procedure_postop_without_modifier",
    "global_period.return_without_surgery",
    "ncci_ptp.edit",
    "ncci_ptp.bypassed",
    "duplicate.line",
    "history.unreadable",
)


def _defined() -> dict[str, Rule]:
    found: dict[str, Rule] = {}
    for family in FAMILIES:
        for r in family.RULES:
            if r.rule_id in found:
                raise RuntimeError(f"rule id {r.rule_id!r} is defined twice")
            found[r.rule_id] = r
    return found


def default_rules() -> tuple[Rule, ...]:
    """The product's rules in ``RULE_ORDER``."""
    defined = _defined()
    missing = [rule_id for rule_id in RULE_ORDER if rule_id not in defined]
    unlisted = sorted(set(defined) - set(RULE_ORDER))
    if missing or unlisted or len(set(RULE_ORDER)) != len(RULE_ORDER):
        raise RuntimeError(
            f"RULE_ORDER is out of step with the rule families: missing {missing}, "
            f"not listed {unlisted}"
        )
    return tuple(defined[rule_id] for rule_id in RULE_ORDER)


@cache
def default_engine() -> Engine:
    """The engine of the product (immutable; built once per process)."""
    return Engine(default_rules())


# Checked at import: a rule defined but not ordered (or the reverse) is a bug, found at once.
default_rules()
