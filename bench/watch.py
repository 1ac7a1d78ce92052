"""The watch rows of `make bench`: many watchers, a steady write rate, commit -> event latency.

`python -m bench.watch [--watchers 200] [--rate 50] [--seconds 10] [--postgres URL]` starts
checkpoint-server on a fresh SQLite database (and, with --postgres, two replicas on a fresh
database of that server), opens the watchers (gRPC, spread over a few channels, across the
replicas), measures the server's resident memory before and after they are open and idle, then
creates checkpoints at --rate per second through one server and records, for every watcher and
every write, the time from the write's start (an upper bound of its commit) to the event's arrival.
It checks that every watcher saw every write once, and prints p50/p99/max latency and the memory
per idle watcher. A benchmark, not a test: the figures are this machine's, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import psycopg
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from bench import procs
from server.tokens import READ_SCOPE, WRITE_SCOPE, create_token

CHANNELS_PER_SERVER = 4
LOCAL_SUBCHANNELS = [("grpc.use_local_subchannel_pool", 1)]
"""Each channel its own connection: grpcio otherwise shares one between channels with the same
target, and the server refuses (REFUSED_STREAM) streams past its max_concurrent_streams (100,
server/grpc_limits.py) on one connection: 200 watchers on one connection never all synced."""
SETTLE_SECONDS = 2.0


def _serve(
    name: str, database: str, tokens: Path, work: Path, extra: Sequence[str] = ()
) -> tuple[procs.Proc, str]:
    args = [procs.script("checkpoint-server"), "serve", "--listen", "127.0.0.1:0"]
    args += ["--database", database, "--tokens", str(tokens), "--rate-limit", "0", *extra]
    server = procs.start(name, args, work)
    return server, server.wait_for(r"serving gRPC on (\S+:\d+)").group(1)


async def _watch(  # noqa: PLR0917
    stub: Any,
    metadata: Any,
    synced: asyncio.Event,
    arrivals: dict[str, float],
    done: asyncio.Event,
    expected: int,
) -> None:
    call = stub.WatchCheckpoints(svc.WatchCheckpointsRequest(), metadata=metadata)
    try:
        async for event in call:
            if event.type == svc.WATCH_EVENT_TYPE_SYNCED:
                synced.set()
            elif event.type == svc.WATCH_EVENT_TYPE_CREATED:
                name = event.checkpoint.display_name
                if name in arrivals:
                    arrivals[f"duplicate {name}"] = 0.0
                arrivals[name] = time.monotonic()
                if len(arrivals) >= expected:
                    done.set()
    finally:
        call.cancel()


async def measure(  # noqa: PLR0917
    addresses: list[str],
    token: str,
    watchers: int,
    rate: float,
    seconds: float,
    servers: list[procs.Proc],
) -> dict[str, Any]:
    """Open watchers across addresses, write through the first, report latency and memory."""
    metadata = (("authorization", f"Bearer {token}"),)
    channels = [
        grpc.aio.insecure_channel(address, options=LOCAL_SUBCHANNELS)
        for address in addresses
        for _ in range(CHANNELS_PER_SERVER)
    ]
    stubs = [svc_grpc.CheckpointServiceStub(ch) for ch in channels]
    writer = svc_grpc.CheckpointServiceStub(grpc.aio.insecure_channel(addresses[0]))
    writes = int(rate * seconds)
    # One watcher first, so the feed and its listener exist before memory is measured.
    warm = asyncio.Event()
    warm_task = asyncio.create_task(_watch(stubs[0], metadata, warm, {}, asyncio.Event(), 10**9))
    await asyncio.wait_for(warm.wait(), 10)
    await asyncio.sleep(SETTLE_SECONDS)
    before = [s.memory_kib()["VmRSS"] for s in servers]
    synced = [asyncio.Event() for _ in range(watchers)]
    arrivals: list[dict[str, float]] = [{} for _ in range(watchers)]
    done = [asyncio.Event() for _ in range(watchers)]
    tasks = [
        asyncio.create_task(
            _watch(stubs[i % len(stubs)], metadata, synced[i], arrivals[i], done[i], writes)
        )
        for i in range(watchers)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in synced)), 60)
    await asyncio.sleep(SETTLE_SECONDS)
    after = [s.memory_kib()["VmRSS"] for s in servers]
    cpu_before = [s.cpu_seconds() for s in servers]
    client_cpu = time.process_time()
    started: dict[str, float] = {}
    run = uuid.uuid4().hex[:6]
    begin = time.monotonic()
    pending: list[asyncio.Task[Any]] = []
    for i in range(writes):
        name = f"bench-{run}-{i}"
        await asyncio.sleep(max(0.0, begin + i / rate - time.monotonic()))
        started[name] = time.monotonic()
        # On schedule, not after the previous write answered: the rate is the offered load.
        pending.append(asyncio.create_task(_create(writer, metadata, name)))
    await asyncio.gather(*pending)
    write_seconds = time.monotonic() - begin
    with contextlib.suppress(TimeoutError):  # what is missing shows in the counts
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done)), 30)
    cpu = [s.cpu_seconds() - c for s, c in zip(servers, cpu_before, strict=True)]
    client_cpu = time.process_time() - client_cpu
    for task in [*tasks, warm_task]:
        task.cancel()
    await asyncio.gather(*tasks, warm_task, return_exceptions=True)
    for ch in channels:
        await ch.close(None)
    latencies = sorted(
        (seen[name] - started[name]) * 1000 for seen in arrivals for name in started if name in seen
    )
    complete = sum(1 for seen in arrivals if all(n in seen for n in started))
    duplicates = sum(1 for seen in arrivals for n in seen if n.startswith("duplicate"))
    return {
        "watchers": watchers,
        "writes": writes,
        "writes_per_second": round(writes / write_seconds, 1),
        "watchers_seeing_every_write": complete,
        "duplicates": duplicates,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
            "max": round(latencies[-1], 1),
        },
        "rss_kib_before": before,
        "rss_kib_after": after,
        "kib_per_idle_watcher": round((sum(after) - sum(before)) / watchers, 1),
        "server_cpu_seconds": [round(c, 2) for c in cpu],
        "client_cpu_seconds": round(client_cpu, 2),
    }


async def _create(writer: Any, metadata: Any, name: str) -> None:
    resources = pb.Resources(
        limits=pb.ResourceLimits(memory_mib=2),
        requests=pb.ResourceRequests(memory_mib=1, vcpus=1),
    )
    request = svc.CreateCheckpointRequest(
        checkpoint=pb.Checkpoint(display_name=name, resources=resources)
    )
    await writer.CreateCheckpoint(request, metadata=metadata, timeout=10)


def _fresh_postgres(url: str) -> str:
    name = f"bench_watch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watch", description=__doc__)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of writing")
    parser.add_argument(
        "--postgres", default="", help="postgresql://USER@HOST/DB to create a database on"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    tokens = work / "tokens.json"
    token = create_token(tokens, "bench-watch", [READ_SCOPE, WRITE_SCOPE])
    rows: dict[str, Any] = {}
    baseline = procs.start("watch-baseline", [sys.executable, "-m", "bench.watch_baseline"], work)
    try:
        address = baseline.wait_for(r"serving gRPC on (\S+:\d+)").group(1)
        rows["baseline: grpcio fan-out, no service"] = asyncio.run(
            measure([address], token, args.watchers, args.rate, args.seconds, [baseline])
        )
    finally:
        baseline.stop()
    extra = ["--max-watchers", str(args.watchers + 10)]
    server, address = _serve("watch-sqlite", f"sqlite:///{work / 'w.db'}", tokens, work, extra)
    try:
        rows["sqlite, one process"] = asyncio.run(
            measure([address], token, args.watchers, args.rate, args.seconds, [server])
        )
    finally:
        server.stop()
    if args.postgres:
        database = _fresh_postgres(args.postgres)
        started = [
            _serve(f"watch-pg-{i}", database, tokens, work, [*extra, "--db-pool-size", "4"])
            for i in range(2)
        ]
        try:
            rows["postgresql, two replicas (watchers split, writes through one)"] = asyncio.run(
                measure(
                    [a for _, a in started],
                    token,
                    args.watchers,
                    args.rate,
                    args.seconds,
                    [s for s, _ in started],
                )
            )
        finally:
            for s, _ in started:
                s.stop()
    text = json.dumps(rows, indent=2)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "watch.json").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
