"""`make bench`'s route build from reflection: a generated 50-method service with an HTTP rule
per method, served with grpcio-reflection by a process of its own, fetched and built by the
bridge's code (rest_bridge.reflection.fetch_schema, then live_schema.build_served) on one channel.

`python -m bench.reflect serve FILE SERVICE` is that server; route_build() starts it, and times
the first fetch (connection included, as at start-up) and the median of further ones (a
refetch), each with the build of routes, calls and OpenAPI.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import grpc
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection

from bench import procs
from rest_bridge.live_schema import build_served
from rest_bridge.reflection import fetch_schema

SERVICE = "benchwide.v1.WideService"
F = descriptor_pb2.FieldDescriptorProto


def wide_files(methods: int) -> descriptor_pb2.FileDescriptorSet:
    """benchwide/v1/wide.proto (methods RPCs, each GET /v1/thingsN/{name}) and its imports."""
    wide = descriptor_pb2.FileDescriptorProto(
        name="benchwide/v1/wide.proto",
        package="benchwide.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    for name in ("Req", "Resp"):
        message = wide.message_type.add(name=name)
        for number, field in enumerate(("name", "title", "note"), 1):
            message.field.add(name=field, number=number, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    service = wide.service.add(name="WideService")
    for index in range(methods):
        method = service.method.add(
            name=f"Get{index}", input_type=".benchwide.v1.Req", output_type=".benchwide.v1.Resp"
        )
        rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]  # type: ignore[index]
        rule.get = f"/v1/things{index}/{{name}}"
    files: list[descriptor_pb2.FileDescriptorProto] = []
    _with_imports(annotations_pb2.DESCRIPTOR, files, set())
    return descriptor_pb2.FileDescriptorSet(file=[*files, wide])


def _with_imports(
    file: descriptor.FileDescriptor, out: list[descriptor_pb2.FileDescriptorProto], seen: set[str]
) -> None:
    if file.name in seen:
        return
    seen.add(file.name)
    for dependency in file.dependencies:
        _with_imports(dependency, out, seen)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    out.append(proto)


async def _serve(raw: bytes, service: str) -> None:
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
        pool.Add(file_proto)
    server = grpc.aio.server()
    reflection.enable_server_reflection([service, reflection.SERVICE_NAME], server, pool=pool)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"serving gRPC on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


async def _time_builds(address: str, rounds: int) -> list[float]:
    seconds: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        for _ in range(rounds):
            started = time.perf_counter()
            served = build_served(await fetch_schema(channel, ()), channel)
            seconds.append(time.perf_counter() - started)
            if len(served.table.routes) == 0:
                raise RuntimeError("the reflected service has no routes")
    return seconds


def route_build(work_dir: Path, methods: int = 50, rounds: int = 7) -> dict[str, float]:
    """Seconds to fetch a methods-method service by reflection and build its routes."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "wide.binpb"
    path.write_bytes(wide_files(methods).SerializeToString())
    server = procs.start(
        "reflect-server",
        [sys.executable, "-m", "bench.reflect", "serve", str(path), SERVICE],
        work_dir,
    )
    try:
        address = server.wait_for(r"serving gRPC on (\S+:\d+)").group(1)
        seconds = asyncio.run(_time_builds(address, rounds))
    finally:
        server.stop()
    return {
        "methods": methods,
        "first_s": round(seconds[0], 4),
        "median_refetch_s": round(statistics.median(seconds[1:]), 4),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(_serve(Path(sys.argv[2]).read_bytes(), sys.argv[3]))
    else:
        print(
            route_build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results/reflect"))
        )
