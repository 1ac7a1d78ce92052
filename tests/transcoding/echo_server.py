"""A gRPC server for any descriptor set that echoes each unary request back (test-only).

A server-streaming method answers `count` messages numbered after its `resume_token` (a
number), each echoing `name`, with `type` 1; a `name` ending in "refuse" fails before any
message, one ending in "fail" after the first. With `hold` the stream stays open; when its
caller goes away the server prints "cancelled NAME", so tests can see that a disconnect reached
it.

Usage: python tests/transcoding/echo_server.py DESCRIPTOR_SET SERVICE; prints "port N" when ready.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


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


async def main(raw_descriptors: bytes, service_name: str) -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(raw_descriptors)
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handlers(pool, service_name),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"port {port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]).read_bytes(), sys.argv[2]))
