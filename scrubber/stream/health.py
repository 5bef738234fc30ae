"""What the worker says about itself: the reasons it is not ready, and its consumer lag.

Owns the readiness rule (/readyz, the ``scrubber_ready`` metric, the heartbeat) and the lag
computation (``scrubber_consumer_lag``). Both read the running Faust app; they are kept out of
stream/app.py, which only wires them to the web views and timers, so they can be tested with a
stand-in for the app. Faust's private state (the producer's connection, the table recovery) is
read through stream/faust_internals.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from scrubber.refdata.holder import ReferenceHolder
from scrubber.stream.faust_internals import in_table_recovery, producer_connected

#: The readiness reason while patient histories are recovered from the changelog.
RECOVERING = "recovering patient histories from the changelog"


def readiness_reasons(app: Any, holder: ReferenceHolder) -> list[str]:
    """Reasons the worker is not ready; empty when it is."""
    reasons = []
    if holder.snapshot is None:
        reasons.append(holder.last_error or "reference data not loaded yet")
    try:
        assigned = app.consumer.assignment()
    except Exception:  # the consumer does not exist before the worker starts
        assigned = set()
    if not assigned:
        reasons.append("no partitions assigned")
    if not producer_connected(app):
        reasons.append("producer not connected")
    # After a rebalance the worker answers nothing until its histories are read back.
    if in_table_recovery(app):
        reasons.append(RECOVERING)
    return reasons


async def input_lag(app: Any, topic: str, last_offsets: Mapping[int, int]) -> dict[int, int]:
    """Lag per assigned partition of ``topic``: the high watermark minus the next offset to handle.

    ``last_offsets`` holds the last offset handled per partition; before this worker has handled
    a record of a partition, the next offset is the consumer's position there. Partitions the
    consumer knows no high watermark or position of yet are left out; no consumer yet: empty.
    """
    try:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == topic]
    except Exception:  # no consumer before the worker has started
        return {}
    lags: dict[int, int] = {}
    for tp in assigned:
        with contextlib.suppress(Exception):  # no metadata for the partition yet: skip it
            high = app.consumer.highwater(tp)
            done = last_offsets.get(tp.partition)
            nxt = done + 1 if done is not None else await app.consumer.position(tp)
            if high is not None and nxt is not None:
                lags[tp.partition] = max(0, high - nxt)
    return lags
