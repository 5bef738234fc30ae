"""The NPI check's cache: bounded, so a long run that meets ever new providers does not grow."""

from __future__ import annotations

from scrubber.identifiers import make_npi, npi_is_valid


def test_the_npi_check_cache_is_bounded_and_answers_the_same() -> None:
    maxsize = npi_is_valid.cache_info().maxsize
    assert maxsize is not None
    npis = [make_npi(f"1{n:08d}") for n in range(maxsize + 500)]
    assert all(npi_is_valid(npi) for npi in npis)
    assert npi_is_valid.cache_info().currsize <= maxsize
    wrong = npis[0][:9] + str((int(npis[0][9]) + 1) % 10)
    assert not npi_is_valid(wrong)
    assert npi_is_valid(npis[0])  # evicted long ago, checked afresh
