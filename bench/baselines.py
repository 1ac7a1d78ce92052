"""The two baselines the figures are divided by, each a process of its own.

    python -m bench.baselines grpc --listen 127.0.0.1:0 [--reuse-port]
        A no-op CheckpointService: GetCheckpoint answers a fixed checkpoint, with no auth, no
        store and no interceptor, on a grpc.aio server built with the same options as
        server.app.create_server. It is what grpcio itself costs per call. With --reuse-port it
        binds with SO_REUSEPORT, as `serve --workers N` does, so N of them can share one port.

    python -m bench.baselines json --listen 127.0.0.1:PORT
        A Starlette app answering every GET with constant JSON bytes (a GetCheckpoint envelope),
        under uvicorn with the bridge's own settings (rest_bridge.serving.uvicorn_config). It is
        what the ASGI server and Starlette cost per request.

Each prints `bench-baseline: serving ... on HOST:PORT` once it listens, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
import uvicorn
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rest_bridge.serving import uvicorn_config
from server.config import ServerConfig
from server.convert import checkpoint_to_proto
from server.domain import Checkpoint, Resources, State

FIXED_TIME = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
FIXED = Checkpoint(
    id="3f2b9c1e-8a4d-4c7b-9e21-5d6f7a8b9c01",
    display_name="bench-0000500",
    resources=Resources(limit_memory_mib=2048, request_memory_mib=1024, request_vcpus=2),
    state=State.READY,
    create_time=FIXED_TIME,
    update_time=FIXED_TIME,
    version=1,
)


def fixed_json() -> bytes:
    """FIXED as the bridge renders a GetCheckpoint answer (same keys, same separators)."""
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {
        "id": FIXED.id,
        "display_name": FIXED.display_name,
        "resources": {
            "limits": {"memory_mib": FIXED.resources.limit_memory_mib},
            "requests": {
                "memory_mib": FIXED.resources.request_memory_mib,
                "vcpus": FIXED.resources.request_vcpus,
            },
        },
        "state": FIXED.state.value,
        "create_time": stamp,
        "update_time": stamp,
        "etag": FIXED.etag,
    }
    return json.dumps({"data": data}, separators=(",", ":")).encode()


class NoopServicer(svc_grpc.CheckpointServiceServicer):
    """GetCheckpoint answers the same prebuilt message to everyone; nothing else is served."""

    def __init__(self) -> None:
        self._response = svc.GetCheckpointResponse()
        checkpoint_to_proto(FIXED, self._response.checkpoint)

    async def GetCheckpoint(
        self,
        request: svc.GetCheckpointRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> svc.GetCheckpointResponse:
        return self._response


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_grpc(listen: str, reuse_port: bool = False) -> None:
    config = ServerConfig(listen=listen)
    server = grpc.aio.server(
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        options=[
            *config.limits.channel_options(),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
    )
    # Only GetCheckpoint is measured; the other methods answer UNIMPLEMENTED, as generated.
    svc_grpc.add_CheckpointServiceServicer_to_server(NoopServicer(), server)  # type: ignore[abstract]
    port = server.add_insecure_port(listen)
    await server.start()
    print(f"bench-baseline: serving gRPC on 127.0.0.1:{port}", flush=True)
    await _until_signalled()
    await server.stop(1)


def json_app() -> Starlette:
    body = fixed_json()

    async def constant(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", constant, methods=["GET"])])


async def serve_json(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    server = uvicorn.Server(uvicorn_config(json_app(), host, int(port)))
    print(f"bench-baseline: serving HTTP on {host}:{port}", flush=True)
    await server.serve()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__)
    parser.add_argument("kind", choices=["grpc", "json"])
    parser.add_argument("--listen", required=True, help="HOST:PORT (gRPC: port 0 picks one)")
    parser.add_argument(
        "--reuse-port", action="store_true", help="gRPC: bind with SO_REUSEPORT (N processes)"
    )
    args = parser.parse_args(argv)
    asyncio.run(
        serve_grpc(args.listen, args.reuse_port) if args.kind == "grpc" else serve_json(args.listen)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
