"""`make bench` rows with traces exported: an OTLP/HTTP collector configured, sampling at 100 %.

The server and the bridge run as in the REST rows, with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a
stand-in collector in the benchmark's own process (it reads each export request and answers 200,
as a collector does, without decoding it) and OTEL_TRACES_SAMPLER=always_on, so every request
records and exports its four spans. Each row runs in turn with a twin without a collector (the
-untraced rows); together they show what tracing costs when it is on (the issue's target: at most
25 % of throughput).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import procs

if TYPE_CHECKING:  # bench.__main__ imports this module
    from bench.rows import Bench, Target
    from bench.seed import SeededStore


class Collector:
    """Accepts OTLP/HTTP export requests on 127.0.0.1 and counts them."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector: one connection each

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.requests += 1
                collector.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


SETUPS = {
    "-untraced": "no collector",
    "-traced": "collector configured, sampling 100 %",
}
"""The two set-ups, each its own server and bridge, whose rows are measured in turn."""


def traced_rows(bench: Bench, small: SeededStore, tokens: Path, target: type[Target]) -> None:
    """REST by id through the bridge and in-process, exporting every span to a collector, each
    row measured in alternating rounds with its twin that has no collector (the same processes
    otherwise, started side by side: Bench.measure_interleaved)."""
    s = bench.settings
    collector = Collector()
    exported = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    started: list[procs.Proc] = []
    twins: tuple[list[tuple[str, str, str, Target]], ...] = ([], [])
    try:
        for suffix, what in SETUPS.items():
            env = exported if suffix == "-traced" else None
            args = [procs.script("checkpoint-server"), "serve", "--listen", "127.0.0.1:0"]
            args += ["--database", small.url, "--tokens", str(tokens), "--rate-limit", "0"]
            args += ["--rest-listen", "127.0.0.1:0"]
            server = procs.start(f"server{suffix}", args, s.work_dir, env)
            started.append(server)
            address = server.wait_for(r"serving gRPC on (\S+:\d+)").group(1)
            inprocess = server.wait_for(r"serving REST on (\S+:\d+)").group(1)
            port = procs.free_port()
            bridge = procs.start(
                f"bridge{suffix}",
                [
                    procs.script("checkpoint-rest-bridge"),
                    *("--listen", f"127.0.0.1:{port}", "--upstream", address),
                ],
                s.work_dir,
                env,
            )
            started.append(bridge)
            bridge.wait_http(f"http://127.0.0.1:{port}/readyz")
            path = f"/v1/checkpoints/{small.sample_id}"
            twins[0].append(
                (
                    f"rest-bridge-id{suffix}",
                    f"REST by id, bridge -> server, {what}",
                    "rest",
                    target(f"http://127.0.0.1:{port}{path}", [server, bridge]),
                )
            )
            twins[1].append(
                (
                    f"rest-inprocess-id{suffix}",
                    f"REST by id, in-process, {what}",
                    "rest",
                    target(f"http://{inprocess}{path}", [server]),
                )
            )
        for rows in twins:
            bench.measure_interleaved(rows)
    finally:
        for process in reversed(started):
            process.stop()
        collector.stop()
    bench.notes.append(
        f"traced rows: the collector received {collector.requests} export requests "
        f"({collector.bytes / 1e6:.1f} MB)"
    )
