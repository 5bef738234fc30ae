"""Readiness reasons and consumer lag, read from a stand-in for the running Faust app."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from scrubber.stream.health import RECOVERING, input_lag, readiness_reasons

TOPIC = "claims.lines.v1"


class _Consumer:
    def __init__(self, assigned: set[TP] | None, high: dict[TP, int], at: dict[TP, int]) -> None:
        self.assigned = assigned
        self.high = high
        self.at = at

    def assignment(self) -> set[TP]:
        if self.assigned is None:
            raise RuntimeError("no consumer yet")
        return self.assigned

    def highwater(self, tp: TP) -> int | None:
        return self.high.get(tp)

    async def position(self, tp: TP) -> int | None:
        if tp not in self.at:
            raise KeyError(tp)
        return self.at[tp]


def _app(
    assigned: set[TP] | None = None,
    *,
    producer: bool = True,
    recovering: bool = False,
    high: dict[TP, int] | None = None,
    at: dict[TP, int] | None = None,
) -> Any:
    return SimpleNamespace(
        consumer=_Consumer(assigned, high or {}, at or {}),
        producer=SimpleNamespace(_producer=object() if producer else None, started=producer),
        in_recovery=recovering,
    )


READY = SimpleNamespace(snapshot=object(), last_error=None)


@pytest.mark.parametrize(
    ("app", "holder", "reasons"),
    [
        (_app({TP(TOPIC, 0)}), READY, []),
        (
            _app({TP(TOPIC, 0)}),
            SimpleNamespace(snapshot=None, last_error=None),
            ["reference data not loaded yet"],
        ),
        (
            _app({TP(TOPIC, 0)}),
            SimpleNamespace(snapshot=None, last_error="redis down"),
            ["redis down"],
        ),
        (_app(set()), READY, ["no partitions assigned"]),
        (_app(None), READY, ["no partitions assigned"]),
        (_app({TP(TOPIC, 0)}, producer=False), READY, ["producer not connected"]),
        (_app({TP(TOPIC, 0)}, recovering=True), READY, [RECOVERING]),
        (
            _app(None, producer=False, recovering=True),
            SimpleNamespace(snapshot=None, last_error=None),
            [
                "reference data not loaded yet",
                "no partitions assigned",
                "producer not connected",
                RECOVERING,
            ],
        ),
    ],
)
def test_readiness_reasons(app: Any, holder: Any, reasons: list[str]) -> None:
    assert readiness_reasons(app, holder) == reasons


def test_lag_is_the_high_watermark_minus_the_next_offset_to_handle() -> None:
    tps = [TP(TOPIC, p) for p in range(4)]
    app = _app(
        {*tps, TP("other", 0)},
        high={tps[0]: 100, tps[1]: 50, tps[2]: 10, TP("other", 0): 7},
        at={tps[1]: 20, tps[2]: 3},
    )
    # Partition 0: handled up to 89 here; 1: nothing handled, at 20; 2: handled past the
    # high watermark known (it moves later); 3: no high watermark yet.
    lags = asyncio.run(input_lag(app, TOPIC, {0: 89, 2: 12, 3: 4}))
    assert lags == {0: 10, 1: 30, 2: 0}


def test_no_consumer_no_lag() -> None:
    assert asyncio.run(input_lag(_app(None), TOPIC, {0: 5})) == {}
