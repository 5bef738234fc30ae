"""Diagnosis, provider and date-of-service rules: formats a payer's front end rejects."""

from __future__ import annotations

from datetime import date

import pytest

from scrubber.contracts import Category, Finding, Severity
from scrubber.identifiers import make_npi
from scrubber.rules.library import default_engine

evaluate = default_engine().evaluate

TODAY = date(2025, 6, 1)


def _hits(rule_id: str, line, snapshot, as_of: date = TODAY) -> list[Finding]:
    return [f for f in evaluate(line, snapshot, as_of).findings if f.rule_id == rule_id]


# ------------------------------------------------------------------------------------ diagnosis
@pytest.mark.parametrize(
    ("codes", "bad"),
    [
        (["S81.811A"], []),
        (["S81811A", "A00", "U07.1", "Z48.817", "C44.311", "T81.4XXA", "M79.604"], []),
        (["A0"], [0]),  # too short
        (["S81.811AB"], [0]),  # eight characters
        (["S8.1811"], [0]),  # dot after the second character
        (["S818.11"], [0]),  # dot after the fourth character
        (["S81..81"], [0]),
        (["S81."], [0]),  # a dot with nothing after it
        (["181.8"], [0]),  # first character a digit
        (["QA0.0101", "QA00101"], []),  # a letter second: category QA0 (FY2026 April)
        (["SA.18"], [0]),  # dot after the second character
        (["S81-811A"], [0]),
        ([""], [0]),
        ([" S81"], [0]),
        (["s81.811a"], [0]),  # lower case: X12 is upper case
        (["S81.811A", "bad", "Z48.817", "Ä00"], [1, 3]),
    ],
)
def test_malformed_diagnosis(line, snapshot, codes, bad) -> None:
    found = _hits("diagnosis.malformed", line(diagnosis_codes=codes), snapshot)
    assert [f.field for f in found] == [f"diagnosis_codes[{i}]" for i in bad]
    for f in found:
        assert (f.category, f.severity, f.carc) == (Category.DIAGNOSIS, Severity.ERROR, "146")


def test_lower_case_diagnosis_says_so(line, snapshot) -> None:
    (finding,) = _hits("diagnosis.malformed", line(diagnosis_codes=["s81.811a"]), snapshot)
    assert "lower case" in finding.message


# ------------------------------------------------------------------------------------------ NPI
VALID_NPI = "1234567893"
VALID_BILLING = "1245319599"


@pytest.mark.parametrize(
    ("rendering", "billing", "bad"),
    [
        (VALID_NPI, VALID_BILLING, []),
        (make_npi("298765432"), make_npi("100000000"), []),
        ("1234567890", VALID_BILLING, ["rendering_provider.npi"]),  # check digit
        (VALID_NPI, "1245319598", ["billing_provider.npi"]),
        ("323456789" + "3", VALID_BILLING, ["rendering_provider.npi"]),  # first digit 3
        ("123456789", "12453195999", ["rendering_provider.npi", "billing_provider.npi"]),
        ("123456789X", VALID_BILLING, ["rendering_provider.npi"]),
        ("1²34567893", VALID_BILLING, ["rendering_provider.npi"]),  # int() refuses '²'
        ("1٢٣٤٥٦٧٨٩٣", VALID_BILLING, ["rendering_provider.npi"]),  # Luhn-valid, not ASCII
        (" 1234567893", VALID_BILLING, ["rendering_provider.npi"]),
    ],
)
def test_invalid_npi(line, snapshot, rendering, billing, bad) -> None:
    doc = line(
        rendering_provider={"npi": rendering, "taxonomy": "208200000X"},
        billing_provider={"npi": billing, "tax_id": "123456789"},
    )
    found = _hits("provider.npi_invalid", doc, snapshot)
    assert [f.field for f in found] == bad
    for f in found:
        assert (f.category, f.severity, f.carc) == (Category.PROVIDER, Severity.ERROR, "207")
        assert rendering not in f.message and billing not in f.message


# ------------------------------------------------------------------------------------- taxonomy
@pytest.mark.parametrize(
    ("taxonomy", "flagged"),
    [
        ("207X00000X", False),
        ("2086S0122X", False),
        ("363LF0000X", False),
        (None, False),
        ("", False),  # an empty element is an absent taxonomy
        ("207x00000x", True),
        ("207X00000", True),
        ("207X00000Y", True),
        ("2O7X00000X", True),
        ("207X000000X", True),
        ("207X-0000X", True),
    ],
)
def test_malformed_taxonomy(line, snapshot, taxonomy, flagged) -> None:
    doc = line(rendering_provider={"npi": VALID_NPI, "taxonomy": taxonomy})
    found = _hits("provider.taxonomy_malformed", doc, snapshot)
    assert [f.field for f in found] == (["rendering_provider.taxonomy"] if flagged else [])
    for f in found:
        assert (f.category, f.severity, f.carc) == (Category.PROVIDER, Severity.ERROR, "16")


# --------------------------------------------------------------------------------- service date
@pytest.mark.parametrize(
    ("service_date", "flagged"),
    [("2025-06-02", True), ("2026-01-01", True), ("2025-06-01", False), ("2024-12-31", False)],
)
def test_future_service(line, snapshot, service_date, flagged) -> None:
    found = _hits("date.future_service", line(service_date=service_date), snapshot)
    assert [f.field for f in found] == (["service_date"] if flagged else [])
    for f in found:
        assert (f.category, f.severity, f.carc) == (Category.DATE, Severity.ERROR, "110")
        assert service_date in f.message and TODAY.isoformat() in f.message


def test_future_is_relative_to_as_of_not_the_clock(line, snapshot) -> None:
    doc = line(service_date="2025-03-14")
    assert _hits("date.future_service", doc, snapshot, as_of=date(2025, 3, 13))
    assert not _hits("date.future_service", doc, snapshot, as_of=date(2025, 3, 14))
