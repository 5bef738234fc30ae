"""A delaying TCP proxy in front of the broker's LATENCY listener: a slow broker, on demand.

The local broker (deploy/local/kafka/server.properties) has a plain listener whose advertised
port is this proxy's, so a client that bootstraps through the proxy reaches the broker only
through it, every connection and every request. Each chunk of bytes, in each direction, is
passed on ``delay`` seconds after it arrived, in order: latency is added without limiting the
bandwidth, the way ``tc netem delay`` does, but without a network namespace or privileges.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Future

#: The broker's LATENCY listener and its advertised port, as deploy/local/stack.sh sets them.
_KAFKA_PORT = int(os.environ.get("KAFKA_PORT", "19092"))
LATENCY_PORT = int(os.environ.get("KAFKA_LATENCY_PORT", str(_KAFKA_PORT + 3)))
PROXY_PORT = int(os.environ.get("KAFKA_LATENCY_PROXY_PORT", str(_KAFKA_PORT + 4)))


class LatencyProxy:
    """Forward 127.0.0.1:``listen`` to 127.0.0.1:``upstream``, each way ``delay`` seconds late."""

    def __init__(
        self, listen: int = PROXY_PORT, upstream: int = LATENCY_PORT, delay: float = 0.0
    ) -> None:
        self.listen = listen
        self.upstream = upstream
        self.delay = delay
        self.connections = 0
        self.bytes = 0
        self._loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(
            target=self._loop.run_forever, name="latency", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Future[None]] = set()

    def __enter__(self) -> LatencyProxy:
        self.loop_thread.start()
        started: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", self.listen), self._loop
        )
        self._server = started.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self.loop_thread.join(10)
        self._loop.close()

    def set_delay(self, seconds: float) -> None:
        """Change the delay of every connection, open ones included, from the next chunk on."""
        self.delay = seconds

    async def _close(self) -> None:
        # Connections first: from Python 3.12 on, wait_closed also waits for open connections.
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            client_w.close()
            return
        self.connections += 1
        task = asyncio.ensure_future(self._connection(client_r, client_w, server_r, server_w))
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)

    async def _connection(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> None:
        """Both directions until each has ended; then the two sockets are closed."""
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            for writer in (client_w, server_w):
                writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy reader to writer, each chunk held until ``delay`` after it arrived.

        The end of the input is passed on in its turn as a half close (``write_eof``), so bytes
        still travelling the other way are delivered.
        """
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            try:
                while data := await reader.read(65536):
                    await queue.put((time.monotonic() + self.delay, data))
            except (ConnectionError, OSError):
                pass
            finally:
                queue.put_nowait((time.monotonic() + self.delay, b""))  # the end, in its turn

        reading = asyncio.ensure_future(read())
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    break
                self.bytes += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            reading.cancel()
