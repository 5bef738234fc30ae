"""Benchmark case (a): a raw aiokafka consume-produce passthrough, as its own process.

``python -m scrubber.bench.passthrough INPUT OUTPUT GROUP`` consumes INPUT in consumer group
GROUP and produces each record's key and value, unchanged, to OUTPUT with the same source
headers the scrubber writes (so the benchmark matches outputs to inputs the same way for every
case). It commits after the producer has flushed, like Faust does, and stops on SIGTERM.

It is the floor of what any Python Kafka worker on this machine can do: no framework, no
decoding, batches of records in, batches out.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from scrubber.contracts import HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC


async def run(bootstrap: str, source: str, target: str, group: str) -> None:
    """Copy records from ``source`` to ``target`` until SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await consumer.start()
    topic_header = (HEADER_SOURCE_TOPIC, source.encode())
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            if not batch:
                continue
            for tp, records in batch.items():
                partition = (HEADER_SOURCE_PARTITION, str(tp.partition).encode())
                for rec in records:
                    await producer.send(
                        target,
                        value=rec.value,
                        key=rec.key,
                        headers=[
                            topic_header,
                            partition,
                            (HEADER_SOURCE_OFFSET, str(rec.offset).encode()),
                        ],
                    )
            await producer.flush()
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str]) -> int:
    """Entry point: ``INPUT OUTPUT GROUP [BOOTSTRAP]``."""
    if len(argv) not in (3, 4):
        print("usage: python -m scrubber.bench.passthrough INPUT OUTPUT GROUP [BOOTSTRAP]")
        return 2
    bootstrap = argv[3] if len(argv) == 4 else "127.0.0.1:19092"
    asyncio.run(run(bootstrap, argv[0], argv[1], argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
