"""An output Kafka refused stops the worker at once, without a commit (see stream/app.py)."""

from __future__ import annotations

import subprocess
import sys

from scrubber.stream.app import EXIT_DELIVERY_FAILED

SCRIPT = """
import asyncio
from aiokafka.errors import KafkaTimeoutError
from scrubber.stream.app import _report_failed_delivery

async def main():
    ok = asyncio.get_running_loop().create_future()
    ok.set_result(None)
    _report_failed_delivery(ok)  # a delivered output: nothing happens
    print("delivered", flush=True)
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(KafkaTimeoutError())
    _report_failed_delivery(failed)
    print("still running", flush=True)

asyncio.run(main())
"""


def test_a_failed_delivery_exits_without_going_on() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == EXIT_DELIVERY_FAILED, proc.stderr
    assert "delivered" in proc.stdout
    assert "still running" not in proc.stdout
