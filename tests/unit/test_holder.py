"""The reference holder keeps a good snapshot when a new version cannot be indexed."""

from __future__ import annotations

from datetime import date

from scrubber.metrics import Metrics
from scrubber.refdata.holder import ReferenceHolder
from scrubber.refdata.icd10cm import Icd10CodeSet
from scrubber.refdata.model import Bundle


class _Store:
    """A stand-in for the Redis store: a current version and the bundles it can fetch."""

    def __init__(self, bundles: dict[str, Bundle], current: str) -> None:
        self.bundles = bundles
        self.current = current

    async def current_version(self) -> str:
        return self.current

    async def fetch(self, version: str) -> Bundle:
        return self.bundles[version]


def _set(name: str) -> Icd10CodeSet:
    return Icd10CodeSet(
        name=name,
        fiscal_year=2026,
        effective_from=date(2025, 10, 1),
        billable="E119",
        headers="E11",
        manifestation="",
    )


async def test_a_version_that_cannot_be_indexed_is_rejected_and_the_old_one_kept() -> None:
    good = Bundle().with_version()
    # Two code sets starting on the same day: the bundle reads, but cannot be indexed.
    bad = Bundle(icd10cm=(_set("a.txt"), _set("b.txt"))).with_version()
    store = _Store({good.version: good, bad.version: bad}, good.version)
    holder = ReferenceHolder(store, Metrics(), poll_seconds=60)  # type: ignore[arg-type]
    assert await holder.refresh()
    assert holder.snapshot is not None and holder.snapshot.version == good.version
    store.current = bad.version
    assert not await holder.refresh()  # rejected, and no exception escapes the poll loop
    assert holder.snapshot.version == good.version
    assert holder.last_error is not None and bad.version in holder.last_error
