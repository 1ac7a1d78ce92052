"""What choosing the upstream connection costs a call: `python -m bench.lanes_cost`.

Two figures, in µs per call. The rule alone: Lanes.pick() and the lane's done-callback, as
UpstreamChannel runs them around each call. And the whole path A/B: empty unary calls through
UpstreamChannel with one connection (no choice is made) and with four, against a grpc.aio server
in this process, in interleaved rounds, as CPU time of this process per call (the server's
work is the same in both, so the difference is the choosing and the done-callback).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import grpc

from rest_bridge.upstream_channel import UpstreamChannel
from rest_bridge.upstream_lanes import Lanes

PICKS = 200_000
CALLS = 2_000
ROUNDS = 5
METHOD = "/bench.Echo/Echo"
IN_FLIGHT = 16
"""Calls open at once in the A/B, so the lanes' counts differ and the rule has work to do."""


async def rule_cost(count: int = 4) -> float:
    """µs of one pick() and its done-callback."""
    lanes = Lanes(lambda: grpc.aio.insecure_channel("127.0.0.1:9"), count)
    try:
        start = time.perf_counter()
        pick, done = lanes.pick, lanes.done
        for _ in range(PICKS):
            done[pick()](None)
        return (time.perf_counter() - start) / PICKS * 1e6
    finally:
        await lanes.close()


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def _calls(address: str, connections: int) -> float:
    """CPU µs of this process per call through UpstreamChannel(connections)."""
    async with UpstreamChannel(address, None, connections=connections) as channel:
        echo = channel.unary_unary(METHOD)
        for _ in range(100):  # every lane connected and warm
            await echo(b"x", timeout=5)

        async def worker(count: int) -> None:
            for _ in range(count):
                await echo(b"x", timeout=5)

        start = time.process_time()
        await asyncio.gather(*(worker(CALLS // IN_FLIGHT) for _ in range(IN_FLIGHT)))
        return (time.process_time() - start) / CALLS * 1e6


async def main() -> int:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        rule = statistics.median([await rule_cost() for _ in range(ROUNDS)])
        print(f"pick + done-callback, 4 lanes: {rule:.3f} µs", flush=True)
        one, four = [], []
        for _ in range(ROUNDS):
            one.append(await _calls(f"127.0.0.1:{port}", 1))
            four.append(await _calls(f"127.0.0.1:{port}", 4))
        a, b = statistics.median(one), statistics.median(four)
        print(f"unary call, CPU of client and server per call: 1 connection {a:.1f} µs,")
        print(f"4 connections {b:.1f} µs, difference {b - a:+.1f} µs")
        print(f"rounds: {[round(x) for x in one]} / {[round(x) for x in four]}")
    finally:
        await server.stop(None)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
