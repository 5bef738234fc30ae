"""Payer profiles: loading and validation (errors name file:line), matching and resolution.

The rule ids here are a fixed list, not the live catalogue: the catalogue is still growing, and
the shipped default.yaml must keep loading against the ids the engine has now plus the ones it
is about to get. A rule renamed in the engine shows up as a failure here, in the file's test.
"""

from __future__ import annotations

import importlib.resources
import textwrap
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scrubber.contracts import Severity
from scrubber.refdata.payers import PayerProfile, PayerProfiles, ProfileMatcher, resolve
from scrubber.refdata.payers_file import (
    DEFAULT_PAYERS,
    PayerProfileError,
    load_payer_profiles,
    parse_payer_profiles,
)

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

#: (rule id, category, catalogued severity): `scrubber rules --json` when this was written, plus
#: the NCCI PTP, diagnosis and add-on rules the engine is getting.
RULES: tuple[tuple[str, str, Severity], ...] = (
    ("code.unknown", "code", E),
    ("code.not_payable.invalid", "code", E),
    ("code.not_payable.non_covered", "code", E),
    ("code.not_payable.bundled", "code", E),
    ("code.reporting_only", "code", INFO),
    ("code.carrier_priced", "code", INFO),
    ("code.outside_fee_schedule", "code", INFO),
    ("modifier.malformed", "modifier", E),
    ("modifier.unknown", "modifier", E),
    ("modifier.too_many", "modifier", E),
    ("modifier.pricing_not_first", "modifier", W),
    ("modifier.conflict", "modifier", E),
    ("modifier.em_only", "modifier", E),
    ("modifier.global_split_not_applicable", "modifier", E),
    ("modifier.multiple_on_add_on", "modifier", E),
    ("modifier.bilateral_not_allowed", "modifier", E),
    ("modifier.pctc_not_allowed", "modifier", E),
    ("modifier.assistant_not_allowed", "modifier", E),
    ("modifier.assistant_documentation", "modifier", W),
    ("modifier.co_surgeons", "modifier", E),
    ("modifier.co_surgeons_documentation", "modifier", W),
    ("modifier.team_surgery", "modifier", E),
    ("modifier.team_surgery_documentation", "modifier", W),
    ("units.mue_line", "units", E),
    ("units.mue_date_of_service", "units", E),
    ("diagnosis.malformed", "diagnosis", E),
    ("provider.npi_invalid", "provider", E),
    ("provider.taxonomy_malformed", "provider", E),
    ("date.future_service", "date", E),
    ("add_on.no_primary", "add_on", E),
    ("global_period.em_decision_without_57", "global_period", E),
    ("global_period.em_same_day_without_25", "global_period", E),
    ("global_period.em_postop_without_24", "global_period", E),
    ("global_period.procedure_postop_without_modifier", "global_period", E),
    ("global_period.return_without_surgery", "global_period", INFO),
    ("duplicate.line", "duplicate", E),
    # to be added
    ("ncci_ptp.edit", "ncci_ptp", E),
    ("ncci_ptp.bypassed", "ncci_ptp", INFO),
    ("diagnosis.invalid_for_date", "diagnosis", E),
    ("diagnosis.header_code", "diagnosis", E),
    ("diagnosis.external_cause_first", "diagnosis", E),
    ("diagnosis.manifestation_first", "diagnosis", E),
    ("diagnosis.no_code_set", "diagnosis", INFO),
    ("add_on.primary_not_listed", "add_on", E),
    ("add_on.primary_not_listed_warning", "add_on", W),
)
RULE_IDS = frozenset(r for r, _, _ in RULES)
CATEGORIES = frozenset(c for _, c, _ in RULES)
RULE_CATEGORIES = {r: c for r, c, _ in RULES}
CATALOGUED = {r: s for r, _, s in RULES}
#: The Medicare policy rules as the engine marks them (``Rule.medicare_policy``), plus NCCI PTP.
MEDICARE_POLICY = frozenset(
    r
    for r, c, _ in RULES
    if c in {"units", "global_period", "ncci_ptp"}
    or (c == "code" and r != "code.unknown")
    or r
    in {
        "modifier.global_split_not_applicable",
        "modifier.bilateral_not_allowed",
        "modifier.pctc_not_allowed",
        "modifier.assistant_not_allowed",
        "modifier.assistant_documentation",
        "modifier.co_surgeons",
        "modifier.co_surgeons_documentation",
        "modifier.team_surgery",
        "modifier.team_surgery_documentation",
    }
)
GROUPS = {
    "medicare_policy": MEDICARE_POLICY,
    "pair": frozenset({"modifier.conflict", "duplicate.line"}),
}


def parse(text: str, *, rule_categories: bool = False) -> PayerProfiles:
    return parse_payer_profiles(
        textwrap.dedent(text),
        "payers.yaml",
        rule_ids=RULE_IDS,
        categories=CATEGORIES,
        groups=GROUPS,
        rule_categories=RULE_CATEGORIES if rule_categories else None,
    )


def one(text: str) -> PayerProfile:
    (profile,) = parse(text).profiles
    return profile


# ------------------------------------------------------------------------------ the shipped file


def load_default(*, rule_categories: bool = False) -> PayerProfiles:
    return load_payer_profiles(
        DEFAULT_PAYERS,
        rule_ids=RULE_IDS,
        categories=CATEGORIES,
        groups=GROUPS,
        rule_categories=RULE_CATEGORIES if rule_categories else None,
    )


#: Every rule id the shipped file names: the engine must keep them (or the file must change).
DEFAULT_NAMES = {
    "code.not_payable.non_covered",
    "code.outside_fee_schedule",
    "code.carrier_priced",
    "code.not_payable.invalid",
    "code.not_payable.bundled",
    "units.mue_line",
    "units.mue_date_of_service",
    "modifier.assistant_not_allowed",
    "modifier.co_surgeons",
    "modifier.team_surgery",
}


def test_the_shipped_file_loads_against_the_catalogue_and_names_these_rules() -> None:
    profiles = load_default(rule_categories=True)
    assert profiles.source == "default.yaml"
    assert profiles.names() == ("medicare", "commercial", "default")
    named = {n for p in profiles.profiles for n in (*p.disable, *p.severity)}
    assert named == DEFAULT_NAMES
    assert load_default() == profiles


def test_the_shipped_file_is_package_data() -> None:
    shipped = importlib.resources.files("scrubber.refdata") / "payers" / "default.yaml"
    assert shipped.is_file()
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    assert '"payers/*.yaml"' in pyproject.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("payer_id", "profile"),
    [
        ("MEDICARE", "medicare"),
        ("MCR-J15", "medicare"),
        ("12502", "medicare"),  # Novitas, Pennsylvania Part B
        ("01112", "medicare"),
        ("15202", "medicare"),
        ("AETNA-60054", "commercial"),
        ("UHC-87726", "commercial"),
        ("BCBS-00590", "commercial"),
        ("60054", "commercial"),
        ("mcr-j15", "default"),  # patterns are case-sensitive
        ("16013", "default"),  # a DME MAC: deliberately not Medicare Part B
        ("99999", "default"),
        ("SOMEONE", "default"),
    ],
)
def test_the_shipped_file_matches(payer_id: str, profile: str) -> None:
    found = load_default().match(payer_id)
    assert found is not None
    assert found.name == profile


def test_the_shipped_commercial_profile_keeps_ncci_and_demotes_mue() -> None:
    profiles = load_default()
    matcher = ProfileMatcher(profiles, RULES, GROUPS)
    commercial = matcher.for_payer("AETNA-60054")
    assert commercial is not None
    assert commercial.disabled == {
        "code.not_payable.non_covered",
        "code.outside_fee_schedule",
        "code.carrier_priced",
    }
    assert dict(commercial.severity) == {
        "code.not_payable.invalid": W,
        "code.not_payable.bundled": W,
        "units.mue_line": W,
        "units.mue_date_of_service": W,
        "modifier.assistant_not_allowed": W,
        "modifier.co_surgeons": W,
        "modifier.team_surgery": W,
    }
    assert "ncci_ptp.edit" not in commercial.disabled
    for name in ("medicare", "default"):
        every_rule = matcher.resolved[name]
        assert (every_rule.disabled, dict(every_rule.severity)) == (frozenset(), {})


# ------------------------------------------------------------------------------------- matching

MATCHING = """
profiles:
  - name: medicare
    payers: ["MEDICARE", "MCR-*"]
  - name: acme
    payers: ["ACME-*", "X?Z", "[AB]1"]
  - name: broad
    payers: ["MCR*", "ACME*"]
"""


@pytest.mark.parametrize(
    ("payer_id", "profile"),
    [
        ("MEDICARE", "medicare"),
        ("MCR-J15", "medicare"),
        ("MCR-", "medicare"),  # * matches nothing too
        ("MCRJ15", "broad"),  # the first profile's pattern needs the dash
        ("ACME-1", "acme"),  # both acme and broad match: the first wins
        ("ACME", "broad"),
        ("XYZ", "acme"),
        ("XZ", None),  # ? is exactly one character
        ("A1", "acme"),
        ("C1", None),
        ("medicare", None),  # case-sensitive
        ("Medicare", None),
        ("MEDICARE ", None),  # no trimming
        ("", None),
    ],
)
def test_the_first_matching_profile_applies(payer_id: str, profile: str | None) -> None:
    profiles = parse(MATCHING)
    found = profiles.match(payer_id)
    assert (found.name if found else None) == profile
    resolved = ProfileMatcher(profiles, RULES, GROUPS).for_payer(payer_id)
    assert (resolved.name if resolved else None) == profile


def test_a_catch_all_matches_every_payer_id() -> None:
    profiles = parse('profiles: [{name: rest, payers: ["*"]}]')
    for payer_id in ("", "x", "MCR-J15", "*", "[a]"):
        found = profiles.match(payer_id)
        assert found is not None
        assert found.name == "rest"


def test_no_profiles_match_nothing() -> None:
    assert PayerProfiles().match("MEDICARE") is None
    assert ProfileMatcher(PayerProfiles(), RULES, GROUPS).for_payer("MEDICARE") is None


# ----------------------------------------------------------------------------------- resolution


def resolved(text: str) -> tuple[frozenset[str], dict[str, Severity]]:
    r = resolve(one(text), RULES, GROUPS)
    return r.disabled, dict(r.severity)


def test_disable_by_rule_id_by_category_and_by_group() -> None:
    disabled, _ = resolved("""
        profiles:
          - name: p
            payers: ["P"]
            disable: ["modifier.co_surgeons", "global_period", "pair"]
        """)
    assert disabled == {
        "modifier.co_surgeons",
        *(r for r, c, _ in RULES if c == "global_period"),
        "modifier.conflict",
        "duplicate.line",
    }


def test_disable_the_medicare_policy_group() -> None:
    disabled, severity = resolved("""
        profiles:
          - name: p
            payers: ["P"]
            disable: ["medicare_policy"]
        """)
    assert disabled == MEDICARE_POLICY
    assert severity == {}


def test_severity_overrides_both_ways_and_a_rule_id_beats_its_category() -> None:
    _, severity = resolved("""
        profiles:
          - name: p
            payers: ["P"]
            severity:
              units: warning                     # error -> warning for both MUE rules ...
              units.mue_date_of_service: error   # ... but this one stays error: no override
              code.carrier_priced: error         # info -> error
              global_period: info                # the info rule of the category is unchanged
              modifier.pricing_not_first: warning  # as catalogued: nothing to override
        """)
    assert severity == {
        "units.mue_line": W,
        "code.carrier_priced": E,
        **{r: INFO for r, c, s in RULES if c == "global_period" and s is not INFO},
    }


def test_a_category_severity_skips_the_rules_disabled_by_id() -> None:
    disabled, severity = resolved("""
        profiles:
          - name: p
            payers: ["P"]
            disable: ["units.mue_line"]
            severity: {units: warning}
        """)
    assert disabled == {"units.mue_line"}
    assert severity == {"units.mue_date_of_service": W}


def test_resolve_reports_names_the_engine_does_not_know_and_never_raises() -> None:
    profile = PayerProfile(
        name="p",
        payers=("P",),
        disable=("gone.rule", "medicare_policy", "units.mue_line"),
        severity={"gone.category": E, "units.mue_line": W},
    )
    engine = tuple(r for r in RULES if r[0] != "ncci_ptp.edit")  # an older engine
    result = resolve(profile, engine, GROUPS)
    assert result.unknown == {"gone.rule", "gone.category", "ncci_ptp.edit"}
    assert result.disabled == MEDICARE_POLICY - {"ncci_ptp.edit"}
    assert dict(result.severity) == {}  # disabling wins over the override


def test_a_resolved_profile_is_read_only_and_hashable() -> None:
    text = 'profiles: [{name: p, payers: ["P"], severity: {units: info}}]'
    r = resolve(one(text), RULES, {})
    with pytest.raises(TypeError):
        r.severity["units.mue_line"] = E  # type: ignore[index]
    again = resolve(one(text), RULES, {})
    assert again == r
    assert hash(again) == hash(r)
    other = resolve(one(text.replace("info", "warning")), RULES, {})
    assert other != r
    assert len({r, again, other}) == 2


# ----------------------------------------------------------------------------------- validation

INVALID = [
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable:
              - modifier.co_surgeon
        """,
        5,
        "disable: 'modifier.co_surgeon' is not a rule id, a category or a group",
        id="unknown-rule-id",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable: [unit]
        """,
        4,
        "did you mean 'units'?",
        id="unknown-category-suggests",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            severity:
              globalperiod: warning
        """,
        5,
        "severity: 'globalperiod' is not a rule id or a category (categories: add_on, code,",
        id="unknown-category-in-severity",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            severity:
              medicare_policy: warning
        """,
        5,
        "'medicare_policy' is a group; a severity applies to a rule id or a category",
        id="group-in-severity",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            severity:
              units.mue_line: warn
        """,
        5,
        "severity of 'units.mue_line' must be one of error, warning, info, found the string 'warn'",
        id="bad-severity",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            severity:
              units.mue_line: [error]
        """,
        5,
        "must be one of error, warning, info, found a list",
        id="severity-not-scalar",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
          - name: other
            payers: ["OTHER-*"]
          - name: acme
            payers: ["ACME2-*"]
        """,
        6,
        "duplicate profile name 'acme' (first at line 2)",
        id="duplicate-name",
    ),
    pytest.param(
        """\
        profiles:
          - name: Acme
            payers: ["ACME-*"]
        """,
        2,
        "profile name 'Acme' must match [a-z0-9][a-z0-9_-]{0,31}",
        id="bad-name-case",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme corp
            payers: ["ACME-*"]
        """,
        2,
        "profile name 'acme corp' must match",
        id="bad-name-space",
    ),
    pytest.param(
        f"""\
        profiles:
          - name: {"a" * 33}
            payers: ["ACME-*"]
        """,
        2,
        "at most 32 characters",
        id="bad-name-long",
    ),
    pytest.param(
        """\
        profiles:
          - name: 7
            payers: ["ACME-*"]
        """,
        2,
        "a profile name must be a string, found '7' (read as int); quote it: '7'",
        id="name-not-string",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
          - name: other
            payers: ["OTHER-*"]
        """,
        2,
        "a profile has no 'payers' (required: name, payers)",
        id="missing-payers",
    ),
    pytest.param(
        """\
        profiles:
          - payers: ["OTHER-*"]
        """,
        2,
        "a profile has no 'name'",
        id="missing-name",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: []
        """,
        3,
        "the payers of 'acme' must not be empty",
        id="empty-payers",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: "ACME-*"
        """,
        3,
        "the payers of 'acme' must be a list, found the string 'ACME-*'",
        id="payers-not-a-list",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers:
              - "ACME-*"
              - ""
        """,
        5,
        "an entry of the payers of 'acme' must not be empty",
        id="empty-pattern",
    ),
    pytest.param(
        """\
        profiles:
          - name: medicare
            payers:
              - "12502"
              - 01112
        """,
        5,
        "must be a string, found '01112' (read as int); quote it: '01112'",
        id="unquoted-payer-id",
    ),
    pytest.param(
        """\
        profiles:
          - name: medicare
            payers:
              - "MCR-*"
              - "MCR-*"
        """,
        5,
        "'MCR-*' is in the payers of 'medicare' twice (first at line 4)",
        id="repeated-pattern",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable: modifier.co_surgeons
        """,
        4,
        "the disable list of 'acme' must be a list",
        id="disable-not-a-list",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable: [units, units]
        """,
        4,
        "'units' is in the disable list of 'acme' twice",
        id="repeated-disable",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            severity: [units]
        """,
        4,
        "the severity mapping of 'acme' must be a mapping, found a list",
        id="severity-not-a-mapping",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disabled: [units]
        """,
        4,
        "unknown key 'disabled' in a profile (allowed: name, payers, disable, severity); "
        "did you mean 'disable'?",
        id="unknown-profile-key",
    ),
    pytest.param(
        """\
        version: 1
        profiles:
          - name: acme
            payers: ["ACME-*"]
        """,
        1,
        "unknown key 'version' in the file (allowed: profiles)",
        id="unknown-top-key",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            name: acme2
        """,
        4,
        "a profile has key 'name' twice (first at line 2)",
        id="repeated-key",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            severity:
              units: info
              units: error
        """,
        6,
        "has 'units' twice (first at line 5)",
        id="repeated-severity-key",
    ),
    pytest.param(
        "profiles: acme\n", 1, "'profiles' must be a list, found the string", id="non-list"
    ),
    pytest.param("profiles: []\n", 1, "'profiles' must not be empty", id="no-profiles"),
    pytest.param(
        """\
        # nothing here yet
        profiles:
        """,
        2,
        "'profiles' must be a list, found nothing (null)",
        id="profiles-null",
    ),
    pytest.param("", 1, "the file is empty", id="empty-file"),
    pytest.param("# only a comment\n\n", 1, "the file is empty", id="comments-only"),
    pytest.param(
        "- name: acme\n", 1, "the file must be a mapping, found a list", id="not-a-mapping"
    ),
    pytest.param("just text\n", 1, "the file must be a mapping, found the string", id="scalar"),
    pytest.param("other: 1\n", 1, "unknown key 'other' in the file", id="no-profiles-key"),
    pytest.param("{}\n", 1, "the file has no 'profiles' list", id="empty-mapping"),
    pytest.param(
        """\
        profiles:
          - acme
        """,
        2,
        "a profile must be a mapping, found the string 'acme'",
        id="profile-not-a-mapping",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"
          - name: other
        """,
        4,
        "YAML syntax error",
        id="yaml-syntax-error",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
             payers: ["ACME-*"]
        """,
        3,
        "YAML syntax error: mapping values are not allowed here",
        id="yaml-bad-indent",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
        ---
        profiles: []
        """,
        4,
        "YAML syntax error: expected a single document in the stream (from line 1), "
        "but found another document",
        id="two-documents",
    ),
    pytest.param("profiles:\n  - name: acme\x00\n", 2, "unreadable character", id="nul"),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable: [units.mue_line]
            severity:
              units.mue_line: warning
        """,
        6,
        "severity of 'units.mue_line' overrides a rule this profile disables "
        "('units.mue_line' in disable, line 4)",
        id="override-of-disabled-rule",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable:
              - modifier.conflict
              - global_period
            severity:
              global_period: info
        """,
        8,
        "severity of 'global_period' overrides a rule this profile disables "
        "('global_period' in disable, line 6)",
        id="override-of-disabled-category",
    ),
    pytest.param(
        """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable: [medicare_policy]
            severity:
              units.mue_line: warning
        """,
        6,
        "('medicare_policy' in disable, line 4)",
        id="override-of-rule-in-disabled-group",
    ),
    pytest.param(
        """\
        profiles:
          - name: everyone
            payers: ["*"]
          - name: acme
            payers: ["ACME-*"]
        """,
        4,
        "profile 'acme' can never apply: profile 'everyone' (line 2) matches every payer id first",
        id="after-catch-all",
    ),
    pytest.param(
        """\
        profiles:
          - name: medicare
            payers: ["MCR-*"]
          - name: jurisdiction
            payers:
              - "MCR-J1*"
              - "MCR-J15"
        """,
        7,
        "payer 'MCR-J15' in 'jurisdiction' never applies: profile 'medicare' (line 2) matches it",
        id="shadowed-payer-id",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), INVALID)
def test_a_bad_file_is_refused_with_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PayerProfileError) as caught:
        parse(text)
    error = caught.value
    assert str(error).startswith(f"payers.yaml:{line}: "), str(error)
    assert message in str(error)
    assert (error.file, error.line) == ("payers.yaml", line)


def test_an_override_of_a_rule_of_a_disabled_category_needs_the_rule_categories() -> None:
    text = """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable: [units]
            severity:
              units.mue_line: warning
        """
    with pytest.raises(PayerProfileError) as caught:
        parse(text, rule_categories=True)
    assert str(caught.value) == (
        "payers.yaml:6: severity of 'units.mue_line' overrides a rule this profile disables "
        "('units' in disable, line 4)"
    )
    # Without them the relation is unknown to the reader; disabling wins at resolution.
    disabled, severity = resolved(text)
    assert "units.mue_line" in disabled
    assert severity == {}


def test_a_category_override_is_refused_when_every_rule_of_it_is_disabled() -> None:
    text = """\
        profiles:
          - name: acme
            payers: ["ACME-*"]
            disable: [units.mue_line, units.mue_date_of_service]
            severity:
              units: warning
        """
    with pytest.raises(PayerProfileError, match=r"^payers.yaml:6: severity of 'units' overrides"):
        parse(text, rule_categories=True)
    partly = text.replace(", units.mue_date_of_service", "")
    assert one(partly).severity == {"units": W}


def test_messages_list_short_vocabularies_and_refer_to_the_catalogue_for_long_ones() -> None:
    with pytest.raises(PayerProfileError) as caught:
        parse('profiles: [{name: a, payers: ["A"], disable: [nope]}]')
    message = str(caught.value)
    assert (
        "categories: add_on, code, date, diagnosis, duplicate, global_period, modifier," in message
    )
    assert "groups: medicare_policy, pair" in message
    assert "rule ids: see `scrubber rules`" in message
    short = parse_payer_profiles
    with pytest.raises(PayerProfileError) as caught:
        short(
            'profiles: [{name: a, payers: ["A"], disable: [b.y]}]',
            "p.yaml",
            rule_ids={"a.x", "b.x"},
            categories={"a", "b"},
            groups={},
        )
    assert str(caught.value) == (
        "p.yaml:1: disable: 'b.y' is not a rule id, a category or a group "
        "(categories: a, b; groups: none; rule ids: a.x, b.x); did you mean 'b.x'?"
    )


def test_a_file_that_is_not_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "payers.yaml"
    path.write_bytes(b"profiles:\n  - name: acme\n    payers: ['\xe9']\n")
    with pytest.raises(PayerProfileError, match=r"^payers.yaml:3: not UTF-8 text$"):
        load_payer_profiles(path, rule_ids=RULE_IDS, categories=CATEGORIES, groups=GROUPS)


def test_a_good_file_reads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        textwrap.dedent("""\
            profiles:
              - name: acme
                payers: ["ACME-*"]
                disable: ["modifier.co_surgeons", "global_period"]
                severity:
                  units.mue_line: warning
              - name: default
                payers: ["*"]
            """),
        encoding="utf-8",
    )
    profiles = load_payer_profiles(path, rule_ids=RULE_IDS, categories=CATEGORIES, groups=GROUPS)
    assert profiles == PayerProfiles(
        profiles=(
            PayerProfile(
                name="acme",
                payers=("ACME-*",),
                disable=("modifier.co_surgeons", "global_period"),
                severity={"units.mue_line": W},
            ),
            PayerProfile(name="default", payers=("*",)),
        ),
        source="mine.yaml",
    )


def test_the_caller_cannot_give_one_name_two_meanings() -> None:
    with pytest.raises(ValueError, match="more than one"):
        parse_payer_profiles(
            "profiles: []", "p.yaml", rule_ids={"x"}, categories={"units"}, groups={"units": {"x"}}
        )


# ------------------------------------------------------------------------------ bundle (JSON)


def test_profiles_survive_a_json_round_trip() -> None:
    profiles = load_default()
    again = PayerProfiles.model_validate_json(profiles.model_dump_json())
    assert again == profiles
    assert again.profiles[1].severity["units.mue_line"] is W


@pytest.mark.parametrize(
    "data",
    [
        {"profiles": [{"name": "Bad", "payers": ["X"]}]},
        {"profiles": [{"name": "ok", "payers": []}]},
        {"profiles": [{"name": "ok", "payers": [""]}]},
        {"profiles": [{"name": "ok", "payers": ["X"], "severity": {"units": "warn"}}]},
        {"profiles": [{"name": "ok", "payers": ["X"], "extra": 1}]},
        {"profiles": [{"name": "ok", "payers": ["X"]}, {"name": "ok", "payers": ["Y"]}]},
    ],
)
def test_a_bundle_cannot_carry_a_profile_the_file_reader_would_refuse(data: object) -> None:
    with pytest.raises(ValidationError):
        PayerProfiles.model_validate(data)


# ------------------------------------------------------------------------------------- matcher


def test_the_matcher_cache_is_bounded_and_evicted_answers_stay_right() -> None:
    matcher = ProfileMatcher(parse(MATCHING), RULES, GROUPS, cache_size=8)
    ids = [f"ACME-{n}" for n in range(100)] + [f"NOBODY-{n}" for n in range(100)]
    for payer_id in ids:
        matcher.for_payer(payer_id)
        assert matcher.cache_size() <= 8
    assert matcher.cache_size() == 8
    first = matcher.for_payer("ACME-0")  # long evicted
    assert first is not None
    assert first is matcher.resolved["acme"]
    assert matcher.for_payer("NOBODY-0") is None


def test_the_matcher_refuses_an_empty_cache() -> None:
    with pytest.raises(ValueError, match="cache_size"):
        ProfileMatcher(PayerProfiles(), RULES, GROUPS, cache_size=0)


def brute_force(
    profiles: PayerProfiles, payer_id: str
) -> tuple[str, frozenset[str], dict[str, Severity]] | None:
    """The profile of a payer id, straight from the definition: no index, no cache."""
    for profile in profiles.profiles:
        if not any(fnmatchcase(payer_id, pattern) for pattern in profile.payers):
            continue
        off = set(profile.disable)
        disabled = frozenset(
            r
            for r, c, _ in RULES
            if r in off or c in off or any(r in GROUPS.get(g, ()) for g in off)
        )
        severity: dict[str, Severity] = {}
        for r, c, catalogued in RULES:
            wanted = profile.severity.get(r, profile.severity.get(c))
            if r not in disabled and wanted is not None and wanted != catalogued:
                severity[r] = wanted
        return profile.name, disabled, severity
    return None


_ALPHABET = "AB1-!["
_names = st.sampled_from(sorted(RULE_IDS | CATEGORIES | GROUPS.keys()))
_severity_keys = st.sampled_from(sorted(RULE_IDS | CATEGORIES))
_profile = st.builds(
    lambda patterns, disable, severity: (patterns, disable, severity),
    st.lists(st.text(_ALPHABET + "*?[]!", min_size=1, max_size=4), min_size=1, max_size=3),
    st.lists(_names, max_size=4, unique=True),
    st.dictionaries(_severity_keys, st.sampled_from(list(Severity)), max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(
    specs=st.lists(_profile, max_size=5),
    payer_ids=st.lists(st.text(_ALPHABET, max_size=5), min_size=1, max_size=30),
    cache_size=st.integers(min_value=1, max_value=4),
)
def test_the_matcher_agrees_with_brute_force(
    specs: list[tuple[list[str], list[str], dict[str, Severity]]],
    payer_ids: list[str],
    cache_size: int,
) -> None:
    profiles = PayerProfiles(
        profiles=tuple(
            PayerProfile(name=f"p{i}", payers=tuple(pats), disable=tuple(off), severity=sev)
            for i, (pats, off, sev) in enumerate(specs)
        )
    )
    matcher = ProfileMatcher(profiles, RULES, GROUPS, cache_size=cache_size)
    for payer_id in payer_ids + payer_ids[::-1]:  # hits, misses and evictions
        got = matcher.for_payer(payer_id)
        actual = None if got is None else (got.name, got.disabled, dict(got.severity))
        assert actual == brute_force(profiles, payer_id)
