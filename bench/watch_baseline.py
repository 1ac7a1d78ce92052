"""The baseline of the watch rows: grpcio's own cost of fanning one message out to every stream.

    python -m bench.watch_baseline --listen 127.0.0.1:0

A CheckpointService whose WatchCheckpoints sends SYNCED, then one CREATED event per
CreateCheckpoint to every open stream (a list of queues), with no auth, store, history or tokens:
what the watch rows would cost if the service did nothing. Prints
`bench-baseline: serving gRPC on HOST:PORT` and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

TOKEN = "AQAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAA"  # noqa: S105 (a resume position, no secret)
"""A resume token of the real size, so the messages weigh what the service's weigh."""


class FanOut(svc_grpc.CheckpointServiceServicer):
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[svc.WatchCheckpointsResponse]] = set()

    async def CreateCheckpoint(
        self, request: svc.CreateCheckpointRequest, context: Any
    ) -> svc.CreateCheckpointResponse:
        event = svc.WatchCheckpointsResponse(
            type=svc.WATCH_EVENT_TYPE_CREATED, checkpoint=request.checkpoint, resume_token=TOKEN
        )
        for queue in self.queues:
            queue.put_nowait(event)
        return svc.CreateCheckpointResponse(checkpoint=request.checkpoint)

    async def WatchCheckpoints(
        self, request: svc.WatchCheckpointsRequest, context: Any
    ) -> AsyncIterator[svc.WatchCheckpointsResponse]:
        queue: asyncio.Queue[svc.WatchCheckpointsResponse] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield svc.WatchCheckpointsResponse(type=svc.WATCH_EVENT_TYPE_SYNCED, resume_token=TOKEN)
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)

    async def _unused(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the baseline only watches")

    GetCheckpoint = ListCheckpoints = UpdateCheckpoint = DeleteCheckpoint = _unused


async def serve(listen: str) -> None:
    server = grpc.aio.server()
    svc_grpc.add_CheckpointServiceServicer_to_server(FanOut(), server)
    port = server.add_insecure_port(listen)
    await server.start()
    print(f"bench-baseline: serving gRPC on {listen.rsplit(':', 1)[0]}:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watch_baseline")
    parser.add_argument("--listen", default="127.0.0.1:0")
    asyncio.run(serve(parser.parse_args(argv).listen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
