"""Following the upstream's schema: load again on SIGHUP, when the upstream connection comes
back, and every --reflect-interval seconds, one load at a time.

Each load goes through LiveSchema.offer, which swaps a changed schema in atomically or keeps the
served one when the new one does not build. While no schema is loaded at all (the bridge started
before its upstream), loading is retried every RETRY_SECONDS as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc

from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import Schema, SchemaError, default_descriptor_set, load_schema
from rest_bridge.live_schema import LiveSchema
from rest_bridge.reflection import fetch_schema

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
"""How often loading is retried while the bridge has no schema at all."""

Loader = Callable[[], Awaitable[Schema]]


def schema_loader(config: BridgeConfig, channel: grpc.aio.Channel) -> tuple[Loader, str]:
    """How this bridge loads its schema (reflection over channel, or the descriptor set file),
    and a name for that source in the log and /readyz (no address: clients see it)."""
    if config.reflect:

        async def reflect() -> Schema:
            return await fetch_schema(channel, config.services, config.timeout)

        return reflect, "the upstream's reflection"
    path = config.descriptor_set or default_descriptor_set()

    async def read_file() -> Schema:
        return await asyncio.to_thread(load_schema, path, config.services)

    return read_file, f"descriptor set {path.name}"


class SchemaFollower:
    """Runs the loads a trigger asks for, one at a time, into live."""

    def __init__(
        self,
        live: LiveSchema,
        load: Loader,
        source: str,
        *,
        channel: grpc.aio.Channel | None = None,
        interval: float = 0.0,
    ) -> None:
        self._live, self._load, self._source = live, load, source
        self._channel, self._interval = channel, interval
        self._wake = asyncio.Event()
        self._reason = ""

    def trigger(self, reason: str) -> None:
        """Ask for a load soon (several triggers before it starts make one load)."""
        self._reason = self._reason or reason
        self._wake.set()

    async def refresh(self, reason: str) -> None:
        """Load now and offer the result to live; a failure is recorded, never raised."""
        try:
            schema = await self._load()
            self._live.offer(schema, f"{self._source} ({reason})")
        except SchemaError as exc:
            self._live.failed(f"cannot load the schema from {self._source}: {exc}")
        except Exception:
            # A schema no rule foresaw must not end the following: keep serving, say so.
            log.exception("unexpected error loading the schema from %s", self._source)
            self._live.failed(f"cannot load the schema from {self._source}: unexpected error")

    async def run(self) -> None:
        """Follow until cancelled (loading first when nothing is loaded yet)."""
        if self._live.current is None:
            self.trigger("start-up")
        tasks = [asyncio.create_task(self._loads())]
        if self._channel is not None:
            tasks.append(asyncio.create_task(self._watch(self._channel)))
        if self._interval > 0:
            tasks.append(asyncio.create_task(self._tick(self._interval)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _loads(self) -> None:
        while True:
            if self._live.current is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)
            else:
                await self._wake.wait()
            self._wake.clear()
            reason, self._reason = self._reason or "retry", ""
            await self.refresh(reason)

    async def _watch(self, channel: grpc.aio.Channel) -> None:
        """Trigger a load each time the connection becomes READY (after a loss, or at first)."""
        state = channel.get_state(try_to_connect=True)
        while True:
            await channel.wait_for_state_change(state)
            # Asking to connect again keeps an IDLE channel (after GOAWAY) from waiting for
            # the next request before it reconnects.
            state = channel.get_state(try_to_connect=True)
            if state == grpc.ChannelConnectivity.READY:
                self.trigger("upstream connection ready")

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.trigger(f"every {interval:g} s")
