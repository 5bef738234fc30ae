"""Benchmark case (b): a bare Faust passthrough agent on raw bytes, as its own process.

``python -m scrubber.bench.faust_passthrough`` reads its topics from the environment
(``BENCH_INPUT``, ``BENCH_OUTPUT``, ``BENCH_APP_ID``, ``BENCH_BOOTSTRAP``, ``BENCH_DATADIR``)
and runs one agent that sends every record's key and value, unchanged, to the output topic with
the scrubber's source headers. It is configured like the scrubber's app (raw serializers,
concurrency 1, acks -1, the same producer linger and batch size, earliest offset reset, memory
store) minus everything the scrubber does: no table, no decoding, no rules, no metrics. The
difference between this and the worker is what the scrubber itself costs; the difference
between this and case (a) is what Faust costs.
"""

from __future__ import annotations

import os
from typing import Any

import faust

from scrubber.contracts import HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC
from scrubber.stream.app import PRODUCER_LINGER_SECONDS, PRODUCER_MAX_BATCH_BYTES


def build_app() -> tuple[Any, Any]:
    """The Faust app and its agent, from the ``BENCH_*`` environment variables."""
    env = os.environ
    bootstrap = env.get("BENCH_BOOTSTRAP", "127.0.0.1:19092")
    app = faust.App(
        env["BENCH_APP_ID"],
        broker=[f"kafka://{b.strip()}" for b in bootstrap.split(",")],
        store="memory://",
        datadir=env.get("BENCH_DATADIR", ".bench-faust-data"),
        topic_partitions=int(env.get("BENCH_PARTITIONS", "4")),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=PRODUCER_LINGER_SECONDS,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        web_enabled=False,
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    source = app.topic(env["BENCH_INPUT"], **raw)
    target = app.topic(env["BENCH_OUTPUT"], **raw)
    topic_header = (HEADER_SOURCE_TOPIC, env["BENCH_INPUT"].encode())

    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            await target.send(
                key=m.key,
                value=m.value,
                headers=[
                    topic_header,
                    (HEADER_SOURCE_PARTITION, str(m.partition).encode()),
                    (HEADER_SOURCE_OFFSET, str(m.offset).encode()),
                ],
            )

    # Faust's decorators are untyped: applied by a call, not with @, for mypy's strict mode.
    agent = app.agent(source, concurrency=1, name="passthrough")(passthrough)
    return app, agent


def main() -> None:
    """Run the passthrough worker until SIGTERM."""
    from faust.worker import Worker as FaustWorker

    app, _agent = build_app()
    FaustWorker(app, loglevel="WARNING", redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
