"""Which HTTP server runs the bridge: uvicorn, hypercorn or granian, measured in one run.

`python -m bench.server_choice` starts a real checkpoint-server (rate limit off, the bench's
store of 10^3), then, one at a time, a process serving the bridge app (rest_bridge.app.create_app)
under each server, and loads it with wrk (HTTP/1.1, 64 connections) and, where the server speaks
it, h2load (h2c with prior knowledge, 4 connections x 16 streams). Two paths: GET /healthz (the
app alone: the server's own cost shows most) and GetCheckpoint through the upstream. It prints
requests/s and the bridge process's CPU per request, as ratios to uvicorn in the same run.
`python -m bench.server_choice serve SERVER UPSTREAM PORT` is the served process itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from bench import REPO, loads, procs
from bench.seed import seeded_store
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from server.tokens import READ_SCOPE, create_token

SERVERS = ("uvicorn", "hypercorn", "granian")
H2C = frozenset({"hypercorn", "granian"})


async def _serve(name: str, upstream: str, port: int) -> None:
    schema = load_schema(default_descriptor_set(), BridgeConfig().services)
    async with grpc.aio.insecure_channel(upstream) as channel:
        app: Any = create_app(BridgeConfig(), channel, schema)
        print(f"serving on {port}", flush=True)
        if name == "uvicorn":
            import uvicorn

            from rest_bridge.serving import uvicorn_config

            await uvicorn.Server(uvicorn_config(app, "127.0.0.1", port)).serve()
        elif name == "hypercorn":
            from hypercorn.asyncio import serve
            from hypercorn.config import Config

            config = Config()
            config.bind = [f"127.0.0.1:{port}"]
            config.accesslog = None
            await serve(app, config)
        else:
            from granian.server.embed import Server

            await Server(app, port=port, interface="asgi", log_access=False).serve()  # type: ignore[arg-type]


def _h2load(url: str, seconds: float, token: str) -> tuple[int, float]:
    args = ["h2load", "-c", "4", "-m", "16", "-t", "1", "-D", f"{round(seconds * 1000)}ms"]
    args += ["-H", f"authorization: Bearer {token}", url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30, check=True)
    found = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out.stdout)
    finished = re.search(r"finished in ([0-9.]+)(m?s)", out.stdout)
    # Streams still open when the duration ends count as failed: at most the 64 in flight.
    if found is None or finished is None or int(found.group(1)) - int(found.group(2)) > 64:
        raise RuntimeError(f"h2load failed:\n{out.stdout[-1500:]}")
    elapsed = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return int(found.group(2)), elapsed


def measure(seconds: float, work_dir: Path) -> dict[str, dict[str, float]]:
    """{"server/protocol/path": {"rps", "cpu_us"}} for every server, protocol and path."""
    work_dir.mkdir(parents=True, exist_ok=True)
    store = seeded_store(REPO / "bench" / "results" / "cache", 10**3)
    tokens = work_dir / "tokens.json"
    tokens.unlink(missing_ok=True)
    token = create_token(tokens, "bench", [READ_SCOPE])
    args = [procs.script("checkpoint-server"), "serve", "--listen", "127.0.0.1:0"]
    args += ["--database", store.url, "--tokens", str(tokens), "--rate-limit", "0"]
    upstream = procs.start("choice-server", args, work_dir)
    results: dict[str, dict[str, float]] = {}
    try:
        address = upstream.wait_for(r"serving gRPC on (\S+:\d+)").group(1)
        for name in SERVERS:
            port = procs.free_port()
            served = procs.start(
                f"choice-{name}",
                [sys.executable, "-m", "bench.server_choice", "serve", name, address, str(port)],
                work_dir,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                served.wait_http(base + "/readyz")
                for path in ("/healthz", f"/v1/checkpoints/{store.sample_id}"):
                    label = "healthz" if path == "/healthz" else "get"
                    auth = {"Authorization": f"Bearer {token}"}
                    loads.wrk(
                        base + path, concurrency=16, seconds=1, headers=auth, work_dir=work_dir
                    )
                    before = served.cpu_seconds()
                    result = loads.wrk(
                        base + path,
                        concurrency=64,
                        seconds=seconds,
                        headers=auth,
                        work_dir=work_dir,
                    )
                    cpu = (served.cpu_seconds() - before) * 1e6 / result.requests
                    results[f"{name}/http1.1/{label}"] = {"rps": result.rps, "cpu_us": cpu}
                    if name in H2C:
                        time.sleep(0.5)
                        before = served.cpu_seconds()
                        done, elapsed = _h2load(base + path, seconds, token)
                        cpu = (served.cpu_seconds() - before) * 1e6 / done
                        results[f"{name}/h2c/{label}"] = {"rps": done / elapsed, "cpu_us": cpu}
                    time.sleep(0.5)
            finally:
                served.stop()
    finally:
        upstream.stop()
    return results


def render(results: dict[str, dict[str, float]]) -> str:
    lines = ["| server / protocol / path | req/s | vs uvicorn | CPU µs/req | vs uvicorn |"]
    lines.append("|---|---:|---:|---:|---:|")
    for key, value in results.items():
        base = results[f"uvicorn/http1.1/{key.rsplit('/', 1)[1]}"]
        lines.append(
            f"| {key} | {value['rps']:.0f} | {value['rps'] / base['rps']:.2f} | "
            f"{value['cpu_us']:.0f} | {value['cpu_us'] / base['cpu_us']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_choice")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("rest", nargs="*", help="serve SERVER UPSTREAM PORT (internal)")
    args = parser.parse_args(argv)
    if args.rest:
        _, name, upstream, port = args.rest
        asyncio.run(_serve(name, upstream, int(port)))
        return 0
    results = measure(args.seconds, REPO / "bench" / "results" / "server-choice")
    print(render(results))
    out = REPO / "bench" / "results" / "server-choice.json"
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
