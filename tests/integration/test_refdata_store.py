"""Reference data versions in the real Redis: load, switch, rollback, refuse corruption."""

from __future__ import annotations

import pytest

from scrubber.metrics import Metrics
from scrubber.refdata.holder import ReferenceHolder
from scrubber.refdata.model import Bundle, CodeReference
from scrubber.refdata.store import RefdataStore, connect

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings):
    redis = connect(settings)
    yield RefdataStore(redis, settings.redis_prefix)
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def _variant(bundle: Bundle, description: str) -> Bundle:
    codes = dict(bundle.codes)
    codes["99213"] = codes["99213"].model_copy(update={"description": description})
    return bundle.model_copy(update={"codes": codes}).with_version()


async def test_load_switch_and_rollback(store, bundle) -> None:
    first, second = bundle, _variant(bundle, "changed")
    assert first.version != second.version
    assert await store.current_version() is None
    assert await store.load(first) is None
    assert await store.current_version() == first.version
    assert await store.load(second) == first.version
    assert await store.current_version() == second.version
    assert await store.previous_version() == first.version
    assert (await store.fetch(second.version)).codes["99213"].description == "changed"

    assert await store.rollback() == first.version
    assert await store.current_version() == first.version
    versions = [v.version for v in await store.versions()]
    assert versions == [second.version, first.version]
    assert (await store.versions())[0].codes == len(second.codes)


async def test_rollback_without_previous_is_refused(store, bundle) -> None:
    assert await store.rollback() is None
    await store.load(bundle)
    assert await store.rollback() is None
    assert await store.current_version() == bundle.version


async def test_tampered_version_is_refused(store, bundle) -> None:
    await store.load(bundle)
    key = f"{store.prefix}:refdata:bundle:{bundle.version}"
    tampered = bundle.model_copy(
        update={"codes": {**bundle.codes, "00000": CodeReference(code="00000")}}
    )
    await store.redis.set(key, tampered.to_json())
    with pytest.raises(ValueError, match="does not match its content"):
        await store.fetch(bundle.version)


async def test_holder_swaps_to_a_new_version_and_keeps_a_good_one(store, bundle) -> None:
    holder = ReferenceHolder(store, Metrics(), poll_seconds=0.1)
    assert await holder.refresh() is False and holder.snapshot is None
    await store.load(bundle)
    assert await holder.refresh() is True
    assert holder.snapshot is not None and holder.snapshot.version == bundle.version
    assert await holder.refresh() is False  # unchanged pointer: no work

    newer = _variant(bundle, "newer")
    await store.load(newer)
    assert await holder.refresh() is True
    assert holder.snapshot.version == newer.version

    # A pointer to a version that is not stored must not replace the snapshot in use.
    await store.redis.set(store.current_key, "0000000000000000")
    assert await holder.refresh() is False
    assert holder.snapshot.version == newer.version
    assert holder.last_error is not None
