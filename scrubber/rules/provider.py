"""Checks of the provider identifiers on a line."""

from __future__ import annotations

from collections.abc import Iterator

from scrubber.contracts import Category, Severity
from scrubber.identifiers import npi_is_valid
from scrubber.rules.base import Hit, LineContext, Rule, rule
from scrubber.standards import TAXONOMY_SHAPE


def _npi_ok(npi: str) -> bool:
    # str.isdigit also accepts non-ASCII digits (superscripts, other scripts) that int() may
    # reject or read: an NPI is ASCII, so anything else is invalid before the check digit.
    return npi.isascii() and npi_is_valid(npi)


@rule(
    "provider.npi_invalid",
    category=Category.PROVIDER,
    severity=Severity.ERROR,
    description="A rendering or billing NPI is not 10 digits starting with 1 or 2 with a valid "
    "check digit.",
    source="45 CFR 162.406; CMS NPI check digit specification (Luhn over 80840 + first 9 digits)",
    carc="207",
)
def invalid_npi(ctx: LineContext) -> Iterator[Hit]:
    """An NPI that fails its own check digit is a typo; payers reject it (CARC 207, invalid NPI)."""
    for field, npi in (
        ("rendering_provider.npi", ctx.line.rendering_provider.npi),
        ("billing_provider.npi", ctx.line.billing_provider.npi),
    ):
        if not _npi_ok(npi):
            who = field.split("_")[0]
            yield Hit(
                f"The {who} provider NPI is not valid: an NPI is 10 digits, starts with 1 or 2 "
                "and ends with a Luhn check digit computed over 80840 and its first 9 digits.",
                field,
            )


@rule(
    "provider.taxonomy_malformed",
    category=Category.PROVIDER,
    severity=Severity.ERROR,
    description="The rendering provider's taxonomy code does not have the NUCC shape.",
    source="NUCC Health Care Provider Taxonomy code set; X12 837P PRV03",
    carc="16",
)
def malformed_taxonomy(ctx: LineContext) -> Iterator[Hit]:
    """A taxonomy of the wrong shape cannot identify a specialty (CARC 16, billing error).

    Checked only when present; an empty string counts as absent (a producer's empty element),
    since a missing taxonomy is not an error on a professional line.
    """
    taxonomy = ctx.line.rendering_provider.taxonomy
    if taxonomy and not TAXONOMY_SHAPE.fullmatch(taxonomy):
        yield Hit(
            f"Rendering provider taxonomy {taxonomy!r} is not a NUCC taxonomy code: 10 "
            "characters, three digits, six letters or digits, and a final X.",
            "rendering_provider.taxonomy",
        )


#: The rules of this module.
RULES: tuple[Rule, ...] = (invalid_npi, malformed_taxonomy)
