"""CPU per in-process REST request (`serve --rest-listen`'s path) without sockets, by tracing mode.

`python -m bench.inprocess_cost --tracing MODE` builds what `serve --rest-listen` builds (the
server on a seeded SQLite store, its in-process channel, the bridge's ASGI app) in this process
and drives GET /v1/checkpoints/{id} through the app as uvicorn would, without HTTP. Modes: `ids`
is no exporter (ids only); `unprocessed` the SDK's tracer provider sampling at 100 % with no span
processor (what making and ending the spans costs); `spans` the same with the SDK's batch
processor handing them to an exporter that drops them; `export` the provider the entry points
build from OTEL_* (rest_bridge.tracing: the SDK's OTLP/HTTP exporter) posting to a stand-in
collector in a child process. `--observed` adds access lines at info (JSON, to a file) and the
metrics, as `serve --metrics-listen` has them, and times a scrape. The figure is process CPU time
(every thread: the batch processor's encoding and posting too, flushed before the clock stops)
per request, best of --repeat runs. On a shared machine the steadier figure is the instruction
count under `valgrind --tool=callgrind` of two runs of different --requests (their difference
over the difference of requests; the README says how).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message

from bench import REPO
from bench.bridge_cost import get_scope
from bench.seed import name_of, seeded_store
from checkpoint_prometheus import new_registry
from rest_bridge.access_log import line_writer, start_access_lines
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.logs import setup_logging
from rest_bridge.metrics import BridgeMetrics
from rest_bridge.tracing import build_provider, setup_tracing
from server.access_log import EVENT, use_writer
from server.app import create_server
from server.config import ServerConfig
from server.domain import ByName
from server.metered_store import MeteredStore, backend_name
from server.metrics import ServerMetrics
from server.store import open_store
from server.tokens import READ_SCOPE, create_token, load_tokens

MODES = ("ids", "unprocessed", "spans", "export")
_COLLECTOR = (
    "import sys; from bench.traced import Collector; c = Collector(); "
    "print(c.endpoint, flush=True); sys.stdin.read()"
)


@dataclass(frozen=True)
class Run:
    mode: str
    requests: int
    repeat: int
    observed: bool
    database: str
    work: Path


def _tracing(mode: str, stack: ExitStack) -> Callable[[], Any] | None:
    """Install mode's tracer provider; returns how to flush it (None: nothing to flush)."""
    if mode == "ids":
        setup_tracing("bench")
        return None
    os.environ["OTEL_TRACES_SAMPLER"] = "always_on"
    if mode == "export":
        child = subprocess.Popen(
            [sys.executable, "-c", _COLLECTOR],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        stack.callback(child.wait, 10)
        stack.callback(child.communicate, "", 10)
        endpoint = child.stdout.readline().strip() if child.stdout is not None else ""
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        provider, _ = build_provider("bench")
    else:
        # Imported here: the SDK is loaded only by the modes that use it, as in the services.
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Dropped(SpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        if mode == "spans":
            provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)
    sdk: Any = provider  # the SDK's TracerProvider: the API's has no force_flush
    flush: Callable[[], Any] = sdk.force_flush
    return flush


def _observe(work: Path) -> CollectorRegistry:
    """Access lines at info (JSON, to a file), as `serve` writes them; the metrics' registry."""
    setup_logging("json", "info", (work / "access.log").open("w", encoding="utf-8"))
    start_access_lines()
    use_writer(line_writer(EVENT))
    return new_registry()


def _request(app: ASGIApp, path: str, token: str, sent: list[Message]) -> Any:
    """One GET of path through app, its messages appended to sent."""
    headers = [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {token}".encode())]
    scope = get_scope(path, headers)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    return app(scope, receive, send)


async def per_request(run: Run) -> float:
    """Best seconds of CPU per request over run.repeat runs."""
    with ExitStack() as stack:
        flush = _tracing(run.mode, stack)
        token = create_token(run.work / "tokens.json", "bench", [READ_SCOPE])
        store = open_store(run.database)
        sample_id = (await store.get(ByName(name_of(500)))).id
        registry = _observe(run.work) if run.observed else None
        server_metrics = bridge_metrics = None
        if registry is not None:
            server_metrics, bridge_metrics = ServerMetrics(registry), BridgeMetrics(registry)
            store = MeteredStore(store, server_metrics, backend_name(run.database))
        config = ServerConfig(listen="127.0.0.1:0", database=run.database, rate_limit=0)
        tokens = load_tokens(run.work / "tokens.json")
        running = await create_server(config, store, tokens, server_metrics)
        schema = load_schema(default_descriptor_set(), ("checkpoint.v1.CheckpointService",))
        channel = running.local_channel()
        app = create_app(BridgeConfig(), channel, schema, metrics=bridge_metrics, in_process=True)
        path, sent = f"/v1/checkpoints/{sample_id}", list[Message]()
        try:
            for _ in range(300):  # compiles the encoders, fills the caches
                await _request(app, path, token, sent)
            best = float("inf")
            for _ in range(run.repeat):
                sent.clear()
                began = time.process_time()
                for _ in range(run.requests):
                    await _request(app, path, token, sent)
                if flush is not None:
                    flush()
                best = min(best, (time.process_time() - began) / run.requests)
            if sent[0]["status"] != 200:
                raise RuntimeError(f"answered {sent[0]['status']}: {sent[1]['body']!r}")
            if registry is not None:
                _time_scrape(registry)
            return best
        finally:
            await running.server.stop(None)
            await store.close()


def _time_scrape(registry: CollectorRegistry) -> None:
    began = time.process_time()
    for _ in range(20):
        size = len(generate_latest(registry))
    took = (time.process_time() - began) / 20
    print(f"a scrape of /metrics: {took * 1e3:.2f} ms of CPU, {size} bytes", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess_cost", description=__doc__)
    parser.add_argument("--tracing", choices=MODES, default="ids")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--observed", action="store_true", help="access lines at info and metrics, as serve has"
    )
    args = parser.parse_args(argv)
    if not (1 <= args.requests <= 100_000 and 1 <= args.repeat <= 50):
        parser.error("--requests 1..100000, --repeat 1..50")
    database = seeded_store(REPO / "bench" / "results" / "cache", 1000).url
    with tempfile.TemporaryDirectory() as work:
        run = Run(args.tracing, args.requests, args.repeat, args.observed, database, Path(work))
        seconds = asyncio.run(per_request(run))
    observed = ", access lines and metrics" if args.observed else ""
    print(
        f"{args.tracing}{observed}: {seconds * 1e6:.1f} us of CPU per in-process request "
        f"(best of {args.repeat} x {args.requests})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
