"""The bridge's channel to its gRPC upstream, made again on SIGHUP when its TLS files change.

grpc reads a channel's certificates once, when the channel is made, so rotating the bridge's
client certificate (--upstream-cert/--upstream-key) or the CA it trusts (--upstream-ca) takes a
new channel. UpstreamChannel stands in for the grpc.aio.Channel the app calls through: each
multicallable it hands out calls through whichever channel is current when a call starts, so
calls started after a reload open new connections with the new files, while calls already under
way (long watch streams too) finish on the channel they started on. A replaced channel is closed
once its last call has ended, or after RETIRE_GRACE seconds at the latest. Files that cannot be
used keep the channel in use, as the listener's own reload keeps its certificate.

The channel is `connections` grpc channels, each its own TCP connection, with each call sent
over the one with the fewest calls open (rest_bridge.upstream_lanes); a reload replaces them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, cast

import grpc

from rest_bridge.tls import UpstreamFiles
from rest_bridge.upstream_lanes import LOCAL_POOL, Lanes

RETIRE_GRACE = 3600.0
"""Seconds a replaced channel's calls may still run (a watch stream can last hours); calls still
open then are cancelled, and the client resumes as after any broken stream."""

Options = Sequence[tuple[str, Any]]


class UpstreamChannel(grpc.aio.Channel):
    """A channel to target that can be replaced under the calls (see the module docstring)."""

    def __init__(
        self,
        target: str,
        files: UpstreamFiles | None,
        options: Options = (),
        connections: int = 1,
    ) -> None:
        """Raises CertificateError when a TLS file cannot be used, ValueError when connections
        is under 1."""
        self._target, self._files, self._options = target, files, (*options, LOCAL_POOL)
        self._connections = connections
        self._pem = files.read() if files is not None else None
        self.current = Lanes(self._open, connections)
        self._retiring: dict[Lanes, asyncio.Task[None]] = {}
        """Replaced channels still closing (waiting for their calls), with their closing task."""
        self._replaced = asyncio.Event()
        """Set, and replaced by a fresh one, each time the current channel changes."""

    def _open(self) -> grpc.aio.Channel:
        if self._pem is None:
            return grpc.aio.insecure_channel(self._target, options=self._options)
        roots, key, chain = self._pem
        credentials = grpc.ssl_channel_credentials(roots, key, chain)
        return grpc.aio.secure_channel(self._target, credentials, options=self._options)

    def reload(self) -> bool:
        """Read the TLS files again; if they changed, new calls go through a new channel.

        True when the channel was replaced (False without TLS, or with the same files).

        Raises:
            CertificateError: a file cannot be used; the channel in use stays.
        """
        if self._files is None:
            return False
        pem = self._files.read()
        if pem == self._pem:
            return False
        self._pem = pem
        old, self.current = self.current, Lanes(self._open, self._connections)
        replaced, self._replaced = self._replaced, asyncio.Event()
        replaced.set()
        task = asyncio.get_running_loop().create_task(old.close(RETIRE_GRACE))
        self._retiring[old] = task
        task.add_done_callback(lambda _: self._retiring.pop(old, None))
        return True

    # calls: each multicallable follows the current channel

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        follow = _Following(self, "unary_unary", method, request_serializer, response_deserializer)
        return cast(grpc.aio.UnaryUnaryMultiCallable[Any, Any], follow)

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        follow = _Following(self, "unary_stream", method, request_serializer, response_deserializer)
        return cast(grpc.aio.UnaryStreamMultiCallable[Any, Any], follow)

    def stream_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamUnaryMultiCallable[Any, Any]:
        follow = _Following(self, "stream_unary", method, request_serializer, response_deserializer)
        return cast(grpc.aio.StreamUnaryMultiCallable[Any, Any], follow)

    def stream_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.StreamStreamMultiCallable[Any, Any]:
        follow = _Following(
            self, "stream_stream", method, request_serializer, response_deserializer
        )
        return cast(grpc.aio.StreamStreamMultiCallable[Any, Any], follow)

    # connectivity: the current lanes' (READY while any of them is)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        """Until a current lane's state changes from what get_state saw, or the lanes are
        replaced (new lanes' state is a change too)."""
        replaced = asyncio.ensure_future(self._replaced.wait())
        changed = asyncio.ensure_future(self.current.wait_for_state_change())
        try:
            await asyncio.wait((replaced, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (replaced, changed):
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.UsageError):
                    await waiter

    async def channel_ready(self) -> None:
        await self.current.channel_ready()

    # life

    async def close(self, grace: float | None = None) -> None:
        """Close the current channel and every replaced one still open (their calls get grace)."""
        retiring, self._retiring = self._retiring, {}
        for task in retiring.values():
            task.cancel()
        await asyncio.gather(*retiring.values(), return_exceptions=True)
        await asyncio.gather(*(old.close(grace) for old in retiring), self.current.close(grace))

    async def __aenter__(self) -> UpstreamChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _Following:
    """A multicallable of whichever lanes are current when a call starts, over the lane they
    pick (the lanes' multicallables are made once per set of lanes)."""

    __slots__ = ("_calls", "_kind", "_lanes", "_method", "_request", "_response", "_upstream")

    def __init__(
        self,
        upstream: UpstreamChannel,
        kind: str,
        method: str,
        request: Callable[[Any], bytes] | None,
        response: Callable[[bytes], Any] | None,
    ) -> None:
        self._upstream, self._kind, self._method = upstream, kind, method
        self._request, self._response = request, response
        self._lanes: Lanes | None = None
        self._calls: tuple[Any, ...] = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        lanes = self._upstream.current
        if lanes is not self._lanes:
            self._calls = tuple(
                getattr(channel, self._kind)(
                    self._method,
                    request_serializer=self._request,
                    response_deserializer=self._response,
                )
                for channel in lanes.channels
            )
            self._lanes = lanes
        calls = self._calls
        if len(calls) == 1:
            return calls[0](*args, **kwargs)
        index = lanes.pick()
        try:
            call = calls[index](*args, **kwargs)
        except BaseException:
            lanes.release(index)
            raise
        call.add_done_callback(lanes.done[index])
        return call
