"""Reference data in Redis: immutable versions and one atomically switched pointer.

Layout (``<p>`` is the configured prefix):
    <p>:refdata:bundle:<version>   the bundle's canonical JSON, written once, never changed
    <p>:refdata:meta:<version>     hash: loaded_at, codes, modifiers (for ``refdata status``)
    <p>:refdata:current            the version workers must use
    <p>:refdata:previous           the version ``refdata rollback`` returns to
    <p>:refdata:versions           every version ever made current, newest first
    <p>:workers:<id>               each running worker's heartbeat and loaded version (TTL)

A version is written completely before the pointer moves, and the pointer moves in one Lua
script, so a worker polling the pointer can never see a version that is not fully there. Redis is
never on the hot path: workers read the pointer on a timer and keep the snapshot in memory.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from scrubber.config import Settings
from scrubber.refdata.model import Bundle

# Make ``version`` current, remembering the old current as previous, in one atomic step.
_SWITCH = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return cur end
if cur then redis.call('SET', KEYS[2], cur) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
return cur
"""

# Swap current and previous, in one atomic step; refuses when there is no previous version.
_ROLLBACK = """
local cur = redis.call('GET', KEYS[1])
local prev = redis.call('GET', KEYS[2])
if not prev then return nil end
redis.call('SET', KEYS[1], prev)
if cur then redis.call('SET', KEYS[2], cur) end
return prev
"""


def connect(
    settings: Settings, *, connect_timeout: float = 5.0, socket_timeout: float | None = None
) -> Redis:
    """The one way to open Redis from settings: URL (user, password, ``rediss://``) and CA.

    The URL is a secret and is never logged; a TLS URL is verified against
    ``redis_tls_cafile`` when set, else against the system's CAs.
    """
    url = settings.redis_url.get_secret_value()
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
    }
    if url.startswith("rediss://") and settings.redis_tls_cafile:
        kwargs["ssl_ca_certs"] = settings.redis_tls_cafile
    return Redis.from_url(url, **kwargs)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What ``refdata status`` shows about one stored version."""

    version: str
    loaded_at: float | None
    codes: int | None
    modifiers: int | None
    contents: dict[str, Any] | None = None
    """``Bundle.contents``: NCCI edits, AOC rows, payer profiles, ICD-10-CM sets (their dates)."""


class RefdataStore:
    """Reads and writes reference data versions in Redis."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def current_key(self) -> str:
        """The key of the current-version pointer."""
        return self._key("refdata", "current")

    async def load(self, bundle: Bundle, *, make_current: bool = True) -> str | None:
        """Store a bundle under its version, then switch the pointer; returns the old version."""
        if not bundle.version or bundle.version != bundle.content_hash():
            raise ValueError("bundle has no valid version; build it with `scrubber refdata build`")
        data = bundle.to_json()
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._key("refdata", "bundle", bundle.version), data)
        pipe.hset(
            self._key("refdata", "meta", bundle.version),
            mapping={
                "loaded_at": str(time.time()),
                "codes": str(len(bundle.codes)),
                "modifiers": str(len(bundle.modifiers)),
                "contents": orjson.dumps(bundle.contents()).decode(),
            },
        )
        await pipe.execute()
        if not make_current:
            return None
        old = await self.redis.eval(
            _SWITCH,
            3,
            self.current_key,
            self._key("refdata", "previous"),
            self._key("refdata", "versions"),
            bundle.version,
        )
        return _text(old)

    async def rollback(self) -> str | None:
        """Make the previous version current again; None when there is none."""
        restored = await self.redis.eval(
            _ROLLBACK, 2, self.current_key, self._key("refdata", "previous")
        )
        return _text(restored)

    async def current_version(self) -> str | None:
        """The version workers must use, or None when nothing was ever loaded."""
        return _text(await self.redis.get(self.current_key))

    async def previous_version(self) -> str | None:
        """The version a rollback would restore."""
        return _text(await self.redis.get(self._key("refdata", "previous")))

    async def fetch(self, version: str) -> Bundle:
        """Read one stored version and check it against its content hash.

        Decoding and hashing a full bundle (the whole fee schedule, MUE and NCCI tables, code
        sets: tens of MB of JSON) takes a second or more of CPU, so it runs in a thread: the
        worker's event loop, and with it consumption, goes on meanwhile.
        """
        data = await self.redis.get(self._key("refdata", "bundle", version))
        if data is None:
            raise LookupError(f"reference data version {version} is not in Redis")
        bundle = await asyncio.to_thread(Bundle.from_json, cast(bytes, data))
        if bundle.version != version:
            raise ValueError(f"Redis key for {version} holds version {bundle.version}")
        return bundle

    async def versions(self) -> list[VersionInfo]:
        """Every version that was ever current, newest first, with its counts."""
        names = [_text(v) for v in await self.redis.lrange(self._key("refdata", "versions"), 0, -1)]
        infos = []
        for name in names:
            if name is None:
                continue
            raw = await self.redis.hgetall(self._key("refdata", "meta", name))
            meta = {_text(k): _text(v) or "" for k, v in raw.items()}
            infos.append(
                VersionInfo(
                    version=name,
                    loaded_at=float(meta["loaded_at"]) if meta.get("loaded_at") else None,
                    codes=int(meta["codes"]) if meta.get("codes") else None,
                    modifiers=int(meta["modifiers"]) if meta.get("modifiers") else None,
                    contents=orjson.loads(meta["contents"]) if meta.get("contents") else None,
                )
            )
        return infos

    async def heartbeat(self, worker_id: str, info: dict[str, Any], ttl_seconds: int) -> None:
        """Record that a worker is alive and which version it uses (expires on its own)."""
        await self.redis.set(self._key("workers", worker_id), orjson.dumps(info), ex=ttl_seconds)

    async def workers(self) -> dict[str, dict[str, Any]]:
        """The workers that sent a heartbeat within their TTL."""
        out: dict[str, dict[str, Any]] = {}
        async for key in self.redis.scan_iter(match=self._key("workers", "*"), count=100):
            raw = await self.redis.get(key)
            if raw is not None:
                name = _text(key) or ""
                out[name.rsplit(":", 1)[-1]] = orjson.loads(raw)
        return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
