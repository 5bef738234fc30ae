"""Identifier arithmetic shared by the rules and the synthetic data generator."""

from __future__ import annotations

from functools import lru_cache

#: The NPI check digit is a Luhn digit computed as if the NPI were prefixed by 80840, the
#: health-industry card issuer prefix (45 CFR 162.406; CMS NPI check digit specification).
NPI_PREFIX = "80840"


def luhn_check_digit(digits: str) -> int:
    """The Luhn digit that makes ``digits + check`` valid."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # every second digit from the right, starting with the rightmost
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


@lru_cache(maxsize=8192)
def npi_is_valid(npi: str) -> bool:
    """Ten ASCII digits, first digit 1 or 2, and a correct check digit.

    Cached: a stream repeats the same few thousand provider NPIs on every line. Least recently
    used first out past 8,192 (about 1.6 MB; 65,536 held about 13 MB once a long run had seen
    that many NPIs, and checking one afresh costs a few microseconds).
    """
    if len(npi) != 10 or not npi.isascii() or not npi.isdigit() or npi[0] not in "12":
        return False
    return luhn_check_digit(NPI_PREFIX + npi[:9]) == int(npi[9])


def make_npi(first_nine: str) -> str:
    """A valid NPI from its first nine digits."""
    return first_nine + str(luhn_check_digit(NPI_PREFIX + first_nine))
