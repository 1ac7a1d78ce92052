"""A stand-in for grpc.aio.Channel that answers in-process, checking what grpcio would check.

Each call serializes its request with the route's serializer and parses the answer with its
deserializer, as grpcio does, and refuses metadata grpcio could not send (a key or value outside
printable ASCII), so the fuzzed app exercises the whole request and response path at the speed
of a function call. Unary methods whose request and response types are equal echo the request
(the echo service); others answer their empty response; health answers SERVING.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

_KEY = re.compile(r"[0-9a-z_.-]+")
_VALUE = re.compile(r"[\x20-\x7e]*")
HEALTH = "/grpc.health.v1.Health/Check"


class MetadataError(AssertionError):
    """The bridge handed grpcio metadata it would refuse (a bug: it would be a 500)."""


class _Call:
    def __init__(
        self,
        path: str,
        serialize: Callable[[Any], bytes],
        deserialize: Callable[[bytes], Any],
    ) -> None:
        self.path, self.serialize, self.deserialize = path, serialize, deserialize

    async def __call__(self, request: Any, **options: Any) -> Any:
        """The answer; options are grpcio's (timeout, metadata), of which metadata is checked."""
        metadata: Sequence[tuple[str, str]] = options.get("metadata") or ()
        for key, value in metadata:
            if not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
                raise MetadataError(f"grpcio refuses metadata {key!r}: {value!r}")
        if self.path == HEALTH:
            serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
            return self.deserialize(serving.SerializeToString())
        raw = self.serialize(request)
        empty = self.deserialize(b"")
        if type(empty).DESCRIPTOR.full_name == type(request).DESCRIPTOR.full_name:
            return self.deserialize(raw)
        return empty


class StandInChannel:
    """Enough of grpc.aio.Channel for rest_bridge.app.create_app."""

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        **_: Any,
    ) -> _Call:
        if request_serializer is None or response_deserializer is None:
            raise TypeError("the bridge always passes both serializers")
        return _Call(method, request_serializer, response_deserializer)

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        **_: Any,
    ) -> _StreamMultiCallable:
        if response_deserializer is None:
            raise TypeError("the bridge always passes both serializers")
        return _StreamMultiCallable(response_deserializer)


_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # the stubs lack it


class _StreamCall:
    """One server-streaming call: a single empty message, then the end (grpc.aio.EOF)."""

    def __init__(self, message: Any) -> None:
        self._items = [message, _EOF]

    async def read(self) -> Any:
        return self._items.pop(0) if self._items else _EOF

    async def initial_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def cancel(self) -> bool:
        return False


class _StreamMultiCallable:
    def __init__(self, deserialize: Callable[[bytes], Any]) -> None:
        self.deserialize = deserialize

    def __call__(self, request: Any, **options: Any) -> _StreamCall:
        metadata: Sequence[tuple[str, str]] = options.get("metadata") or ()
        for key, value in metadata:
            if not _KEY.fullmatch(key) or not _VALUE.fullmatch(value):
                raise MetadataError(f"grpcio refuses metadata {key!r}: {value!r}")
        return _StreamCall(self.deserialize(b""))
