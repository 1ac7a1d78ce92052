"""A TCP relay on 127.0.0.1 standing in for a load balancer in front of an upstream (test-only).

Each new connection goes to the current target port; connections already open stay where they
are until either side closes. Retargeting it and letting the old upstream's connections age out
(grpc.max_connection_age_ms, a graceful GOAWAY) replaces an upstream without failing a call:
grpcio's own server.stop cancels calls that arrived but were not yet dispatched, so stopping an
upstream that still has a busy connection always fails some, whatever the client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter

CHUNK = 1 << 16


class Relay:
    """Accepts on a free port and relays each connection to `target` as it was when it came."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._open: Counter[int] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._relay, "127.0.0.1", 0), self._loop
        )
        self._server = started.result(timeout=5)
        self.port: int = self._server.sockets[0].getsockname()[1]

    def connections_to(self, port: int) -> int:
        """Connections open right now to upstream port."""
        return self._open[port]

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.target
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        self._open[target] += 1
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._open[target] -= 1
            for task in pipes:
                task.cancel()
            for stream in (writer, up_writer):
                stream.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
