"""The edge's rows of `make bench`: the bridge over HTTP/1.1, h2c and HTTPS, side by side.

One server (plaintext gRPC) and two bridges in front of it, one plaintext (loaded with wrk over
HTTP/1.1 and with h2load over h2c with prior knowledge) and one serving HTTPS with a certificate
made by scripts/make_certs.sh (wrk over TLS 1.3, keep-alive). h2c is loaded two ways at the same
concurrency: one request in flight per connection (-m 1, HTTP/1.1's shape: as many connections
as requests) and multiplexed, MUX_STREAMS requests in flight on each of concurrency / MUX_STREAMS
connections, as HTTP/2 clients (browsers, gRPC-style clients, httpx) use it. The four rows are
measured in alternating rounds (Bench.measure_interleaved) on the same processes, so their
ratios compare the HTTP layer alone; the notes give each over HTTP/1.1 at each concurrency.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import REPO, procs
from bench.rows import Bench, Target
from bench.seed import SeededStore
from bench.serving import serve

MUX_STREAMS = 8
"""Requests in flight per connection in the multiplexed h2c row (h2load -m)."""


def _wait_tcp_https(proc: procs.Proc, url: str, ca: Path) -> None:
    """Poll an https url (verified against ca) until it answers 200."""
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + procs.START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as reply:  # noqa: S310
                if reply.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} never answered 200\n{proc.tail()}")
        time.sleep(0.1)


def measure(bench: Bench, small: SeededStore, tokens: Path) -> None:
    """The three rows and their ratios (see the module docstring)."""
    s = bench.settings
    certs = s.work_dir / "certs"
    subprocess.run(
        ["bash", str(REPO / "scripts/make_certs.sh"), str(certs)], check=True, timeout=60
    )
    server, address, _ = serve("server-edge", small.url, tokens, s.work_dir, rest=False)
    plain_port, tls_port = procs.free_port(), procs.free_port()
    bridge = procs.script("checkpoint-rest-bridge")
    plain = procs.start(
        "bridge-plain",
        [bridge, "--listen", f"127.0.0.1:{plain_port}", "--upstream", address],
        s.work_dir,
    )
    tls = procs.start(
        "bridge-tls",
        [
            *(bridge, "--listen", f"127.0.0.1:{tls_port}", "--upstream", address),
            *("--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key")),
        ],
        s.work_dir,
    )
    try:
        plain.wait_http(f"http://127.0.0.1:{plain_port}/readyz")
        _wait_tcp_https(tls, f"https://127.0.0.1:{tls_port}/readyz", certs / "ca.pem")
        path = f"/v1/checkpoints/{small.sample_id}"
        made = bench.measure_interleaved(
            [
                (
                    "edge-http1",
                    "REST by id, bridge, HTTP/1.1 (wrk)",
                    "rest",
                    Target(f"http://127.0.0.1:{plain_port}{path}", [server, plain]),
                ),
                (
                    "edge-h2c",
                    "REST by id, bridge, h2c prior knowledge (h2load -m 1)",
                    "rest",
                    Target(f"http://127.0.0.1:{plain_port}{path}", [server, plain], h2c=True),
                ),
                (
                    "edge-h2c-mux",
                    f"REST by id, bridge, h2c multiplexed (h2load -m {MUX_STREAMS})",
                    "rest",
                    Target(
                        f"http://127.0.0.1:{plain_port}{path}",
                        [server, plain],
                        h2c=True,
                        streams=MUX_STREAMS,
                    ),
                ),
                (
                    "edge-tls",
                    "REST by id, bridge, HTTPS TLS 1.3 (wrk)",
                    "rest",
                    Target(f"https://127.0.0.1:{tls_port}{path}", [server, tls]),
                ),
            ]
        )
        rows = {row.key: row for row in made}
    finally:
        tls.stop()
        plain.stop()
        server.stop()
    base = rows["edge-http1"].results
    for key, what in (
        ("edge-h2c", "h2c (-m 1) / HTTP/1.1"),
        ("edge-h2c-mux", f"h2c multiplexed (-m {MUX_STREAMS}) / HTTP/1.1"),
        ("edge-tls", "HTTPS / HTTP/1.1"),
    ):
        ratios = ", ".join(
            f"c={c}: {result.rps / base[c].rps:.2f}" for c, result in rows[key].results.items()
        )
        bench.notes.append(f"bridge req/s, {what}: {ratios}")
