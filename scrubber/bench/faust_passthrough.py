"""Benchmark case (b): a bare Faust passthrough agent on raw bytes, as its own process.

``python -m scrubber.bench.faust_passthrough`` reads its topics from the environment
(``BENCH_INPUT``, ``BENCH_OUTPUT``, ``BENCH_APP_ID``, ``BENCH_BOOTSTRAP``, ``BENCH_DATADIR``)
and runs one agent that sends every record's key and value, unchanged, to the output topic with
the scrubber's source headers. It is configured like the scrubber's app (raw serializers,
concurrency 1, acks -1, earliest offset reset, memory store, the worker's logging, and in both
variants the worker's producer linger and batch size) minus everything the scrubber does: no
table, no decoding, no rules, no metrics. The difference between this and the worker is what
the scrubber itself costs; the difference between this and case (a) is what Faust costs.

It runs two ways, so that the worker is compared with the best Faust can do in the same run:

- ``BENCH_TUNED`` unset: Faust as its documentation shows it, ``stream.events()`` and one
  ``await topic.send`` per record, every other setting at Faust's default.
- ``BENCH_TUNED=1``: everything the worker does to Faust: batches of up to 500 events
  (``take_events``) sent straight to the producer, the worker's fetch wait, the quiet Monitor,
  ``faust_internals.install`` (the fast handoff, the garbage collector's tuning), and a stream
  buffer of 2.5 s of this case's own peak (32,768 records; the worker's default is sized for
  the worker's peak, and would stop this case's fetching about once a second).
"""

from __future__ import annotations

import os
from typing import Any

import faust

from scrubber.config import Settings
from scrubber.contracts import HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC
from scrubber.kafka import compression_type
from scrubber.stream.app import (
    BATCH_MAX_RECORDS,
    BATCH_WAIT_SECONDS,
    PRODUCER_LINGER_SECONDS,
    PRODUCER_MAX_BATCH_BYTES,
)

#: The tuned variant's stream buffer: about 2.5 s of its peak (see the module's docstring).
TUNED_STREAM_BUFFER = 32_768


def tuned() -> bool:
    """Whether this run is the tuned variant (``BENCH_TUNED=1``)."""
    return os.environ.get("BENCH_TUNED", "") == "1"


def build_app() -> tuple[Any, Any]:
    """The Faust app and its agent, from the ``BENCH_*`` environment variables."""
    env = os.environ
    bootstrap = env.get("BENCH_BOOTSTRAP", "127.0.0.1:19092")
    extra: dict[str, Any] = {}
    if tuned():
        from scrubber.stream.monitor import QuietMonitor

        extra = {"stream_buffer_maxsize": TUNED_STREAM_BUFFER, "Monitor": QuietMonitor}
    app = faust.App(
        env["BENCH_APP_ID"],
        broker=[f"kafka://{b.strip()}" for b in bootstrap.split(",")],
        store="memory://",
        datadir=env.get("BENCH_DATADIR", ".bench-faust-data"),
        topic_partitions=int(env.get("BENCH_PARTITIONS", "4")),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_compression_type=compression_type(Settings()),
        producer_linger=PRODUCER_LINGER_SECONDS,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        web_enabled=False,
        **extra,
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    source = app.topic(env["BENCH_INPUT"], **raw)
    target = app.topic(env["BENCH_OUTPUT"], **raw)
    output = env["BENCH_OUTPUT"]
    topic_header = (HEADER_SOURCE_TOPIC, env["BENCH_INPUT"].encode())

    def headers(m: Any) -> list[tuple[str, bytes]]:
        return [
            topic_header,
            (HEADER_SOURCE_PARTITION, str(m.partition).encode()),
            (HEADER_SOURCE_OFFSET, str(m.offset).encode()),
        ]

    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            await target.send(key=m.key, value=m.value, headers=headers(m))

    async def passthrough_tuned(stream: Any) -> None:
        send = app.producer.send
        async for events in stream.take_events(BATCH_MAX_RECORDS, within=BATCH_WAIT_SECONDS):
            for event in events:
                m = event.message
                await send(output, m.key, m.value, None, None, headers(m))

    # Faust's decorators are untyped: applied by a call, not with @, for mypy's strict mode.
    agent = app.agent(source, concurrency=1, name="passthrough")(
        passthrough_tuned if tuned() else passthrough
    )
    if tuned():
        from scrubber.stream.faust_internals import shorten_fetch_wait

        async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
            shorten_fetch_wait(app, Settings.model_fields["kafka_fetch_max_wait_ms"].default)

        app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    return app, agent


def main() -> None:
    """Run the passthrough worker until SIGTERM."""
    from faust.worker import Worker as FaustWorker

    from scrubber.logs import logging_config

    app, _agent = build_app()
    installation = None
    if tuned():
        from scrubber.stream import faust_internals

        installation = faust_internals.install(fast_handoff=True)
    try:
        FaustWorker(
            app,
            loglevel="WARNING",
            logging_config=logging_config("WARNING", "json"),
            redirect_stdouts=False,
        ).execute_from_commandline()
    finally:
        if installation is not None:
            installation.undo()


if __name__ == "__main__":
    main()
