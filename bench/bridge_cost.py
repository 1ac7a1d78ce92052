"""The bridge's own CPU per REST request, without sockets or an upstream.

`python -m bench.bridge_cost` drives the ASGI app of `create_app` as uvicorn would (a scope, a
receive, a send) for GET /v1/checkpoints/{id}, over an in-memory channel that answers at once
with a serialized checkpoint. What it times is only the bridge's Python: the layers, the
transcoder, the codec and the JSON writer (and the observer and tracing wrappers that are always
on). Process CPU time, best of --repeat runs of --requests requests; on a shared machine compare
two trees by running it alternately with each first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from checkpoint.v1 import checkpoint_pb2 as cp
from checkpoint.v1 import checkpoint_service_pb2 as svc
from google.protobuf import timestamp_pb2
from starlette.types import Message

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import default_descriptor_set, load_schema

CHECKPOINT_ID = "d1139c73-0c8a-4e01-8c78-daa4a35ef63a"
REPLY = svc.GetCheckpointResponse(
    checkpoint=cp.Checkpoint(
        id=CHECKPOINT_ID,
        display_name="bench-0000500",
        resources=cp.Resources(
            limits=cp.ResourceLimits(memory_mib=4096),
            requests=cp.ResourceRequests(memory_mib=2048, vcpus=2),
        ),
        state=cp.CheckpointState.CHECKPOINT_STATE_READY,
        create_time=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_000_000),
        update_time=timestamp_pb2.Timestamp(seconds=1_700_000_100),
        etag="W/abc123",
    )
).SerializeToString()


class _Call:
    """An upstream call that is already answered."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.value
        yield  # a generator that returns at once

    async def trailing_metadata(self) -> tuple[()]:
        return ()

    async def initial_metadata(self) -> tuple[()]:
        return ()


class _Multicallable:
    def __init__(self, serialize: Callable[[Any], bytes], deserialize: Callable[[bytes], Any]):
        self.serialize, self.deserialize = serialize, deserialize

    def __call__(self, request: Any, **kwargs: Any) -> _Call:
        self.serialize(request)  # what a real channel does on the way out, and in:
        return _Call(self.deserialize(REPLY))


class InstantChannel:
    """The parts of grpc.aio.Channel the bridge uses; every unary call answers REPLY."""

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        **kwargs: Any,
    ) -> _Multicallable:
        return _Multicallable(
            request_serializer or (lambda message: b""), response_deserializer or (lambda b: b)
        )

    def unary_stream(self, *args: Any, **kwargs: Any) -> _Multicallable:
        return _Multicallable(lambda message: b"", lambda raw: raw)


def get_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope uvicorn builds for a GET of path over HTTP/1.1 on 127.0.0.1:8080."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def per_request(requests: int, repeat: int) -> tuple[float, bytes]:
    """Best seconds of CPU per request over repeat runs, and the last body sent."""
    schema = load_schema(default_descriptor_set(), ("checkpoint.v1.CheckpointService",))
    # InstantChannel has only the methods the bridge calls, not all of grpc.aio.Channel.
    app = create_app(BridgeConfig(), InstantChannel(), schema)  # type: ignore[arg-type]
    path = f"/v1/checkpoints/{CHECKPOINT_ID}"
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"authorization", b"Bearer cmt_abcdefabcdefabcdefabcdef"),
        (b"user-agent", b"wrk"),
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    def scope() -> dict[str, Any]:
        return get_scope(path, headers)

    for _ in range(200):  # compiles the encoders, fills the caches
        await app(scope(), receive, send)
    best = float("inf")
    for _ in range(repeat):
        sent.clear()
        began = time.process_time()
        for _ in range(requests):
            await app(scope(), receive, send)
        best = min(best, (time.process_time() - began) / requests)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"the bridge answered {sent[0]['status']}: {sent[1]['body']!r}")
    return best, sent[-1]["body"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge_cost", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--show", action="store_true", help="print the body too")
    args = parser.parse_args(argv)
    seconds, body = asyncio.run(per_request(args.requests, args.repeat))
    if args.show:
        print(body.decode())
    print(f"{seconds * 1e6:.1f} us of CPU per request (best of {args.repeat} x {args.requests})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
