"""A gRPC server for any descriptor set that echoes each unary request back (test-only).

A server-streaming method answers `count` messages numbered after its `resume_token` (a
number), each echoing `name`, with `type` 1; a `name` ending in "refuse" fails before any
message, one ending in "fail" after the first. With `hold` the stream stays open; when its
caller goes away the server prints "cancelled NAME", so tests can see that a disconnect reached
it.

Usage: python tests/transcoding/echo_server.py DESCRIPTOR_SET SERVICE [--port N] [--reflection]
[--max-connection-age-ms MS];
prints "port N" when ready. --reflection adds server reflection (grpcio-reflection's v1alpha only,
as many grpcio servers have it) and health; SIGTERM stops it gracefully (calls in flight finish).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


def _handlers(
    pool: descriptor_pool.DescriptorPool, service_name: str
) -> grpc.GenericRpcHandler[Any, Any]:
    service = pool.FindServiceByName(service_name)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)

        async def echo(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if request.DESCRIPTOR.fields_by_name.get("name") and request.name == "fail":
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
            return request

        if method.server_streaming:
            response_class = message_factory.GetMessageClass(method.output_type)
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _repeater(response_class),
                request_deserializer=request_class.FromString,
                response_serializer=response_class.SerializeToString,
            )
            continue
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            echo,
            request_deserializer=request_class.FromString,
            response_serializer=request_class.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _repeater(response_class: Any) -> Any:
    async def repeat(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        last = request.name.rsplit("/", 1)[-1]
        if last == "refuse":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "asked to refuse")
        start = int(request.resume_token) if request.resume_token.isdigit() else 0
        finished = False
        try:
            for index in range(start + 1, start + 1 + request.count):
                yield response_class(
                    name=request.name, index=index, resume_token=str(index), type=1
                )
                if last == "fail":
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
            if request.hold:
                await asyncio.sleep(3600)
            finished = True
        finally:
            if not finished:  # cancelled (at a yield or while holding), or aborted
                print(f"cancelled {request.name}", flush=True)

    return repeat


async def main(args: argparse.Namespace) -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(args.descriptors.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    options = []
    if args.max_connection_age_ms:
        # Each connection is closed gracefully (GOAWAY) at this age: clients move on losslessly.
        options += [("grpc.max_connection_age_ms", args.max_connection_age_ms)]
        options += [("grpc.max_connection_age_grace_ms", 5000)]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((_handlers(pool, args.service),))
    if args.reflection:
        names = [args.service, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, server, pool=pool)
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)  # type: ignore[attr-defined,no-untyped-call]
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    loop.add_signal_handler(
        signal.SIGTERM, lambda: stopping.append(asyncio.create_task(server.stop(args.grace)))
    )
    print(f"port {port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("descriptors", type=Path)
    parser.add_argument("service")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reflection", action="store_true")
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument("--max-connection-age-ms", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
