"""Figures for the HTTP features: bytes gzip saves on a 1 000-item list, and a 304 round trip
against a 200, through both REST doors.

    .venv/bin/python -m bench.http_figures [--rounds N]

Starts `checkpoint-server serve --rest-listen` and a separate `checkpoint-rest-bridge` on free
127.0.0.1 ports over a fresh SQLite store, creates 1 000 checkpoints over REST, then measures on
one keep-alive connection per door. Every loop is bounded in count; the processes are stopped at
the end. Timings are this machine's: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.procs import free_port, script, start

CHECKPOINTS = 1000
LIST = f"/v1/checkpoints?page_size={CHECKPOINTS}"


def _wire(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """Status and body bytes as they crossed the socket (before any decompression)."""
    with client.stream("GET", path, headers=headers) as reply:
        return reply.status_code, sum(len(chunk) for chunk in reply.iter_raw())


def _round_trips(
    client: httpx.Client, path: str, headers: dict[str, str], rounds: int
) -> tuple[float, float, int]:
    """Median and p90 milliseconds of rounds sequential GETs, and the last status."""
    samples: list[float] = []
    status = 0
    for _ in range(rounds):
        begin = time.perf_counter()
        with client.stream("GET", path, headers=headers) as reply:
            for _chunk in reply.iter_raw():
                pass
            status = reply.status_code
        samples.append((time.perf_counter() - begin) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)], status


def measure(base: str, token: str, rounds: int) -> list[str]:
    """The figure lines for one door."""
    auth = {"Authorization": f"Bearer {token}"}
    lines = []
    with httpx.Client(base_url=base, timeout=30.0, headers=auth) as client:
        _, plain = _wire(client, LIST, {"Accept-Encoding": "identity"})
        _, zipped = _wire(client, LIST, {"Accept-Encoding": "gzip"})
        lines.append(
            f"  list of {CHECKPOINTS}: identity {plain} B, gzip {zipped} B, saved "
            f"{plain - zipped} B ({100 * (plain - zipped) / plain:.1f} %)"
        )
        one = "/v1/checkpoints/bench-0"
        etag = client.get(one).headers["etag"]
        identity = {"Accept-Encoding": "identity"}
        few = max(5, rounds // 10)  # a list answer takes ~50x longer: fewer rounds
        for label, path, headers, count in (
            ("GET one checkpoint -> 200", one, identity, rounds),
            ("GET one, If-None-Match -> 304", one, {**identity, "If-None-Match": etag}, rounds),
            (f"GET list of {CHECKPOINTS} -> 200 identity", LIST, identity, few),
            (f"GET list of {CHECKPOINTS} -> 200 gzip", LIST, {"Accept-Encoding": "gzip"}, few),
        ):
            _round_trips(client, path, headers, max(1, count // 10))  # warm up
            median, p90, status = _round_trips(client, path, headers, count)
            lines.append(
                f"  {label}: median {median:.2f} ms, p90 {p90:.2f} ms "
                f"over {count} (status {status})"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.http_figures", description=__doc__)
    parser.add_argument("--rounds", type=int, default=300, help="requests per timing (<= 5000)")
    args = parser.parse_args(argv)
    rounds = max(10, min(args.rounds, 5000))
    with tempfile.TemporaryDirectory(prefix="http-figures-") as tmp:
        work = Path(tmp)
        tokens = work / "tokens.json"
        token = subprocess.run(
            [
                *(script("checkpoint-server"), "token", "create", "--tokens", str(tokens)),
                *("--name", "bench", "--scope", "checkpoints:read", "--scope", "checkpoints:write"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        server = start(
            "server",
            [
                *(script("checkpoint-server"), "serve", "--listen", "127.0.0.1:0"),
                *("--rest-listen", "127.0.0.1:0", "--database", f"sqlite:///{work / 'db.sqlite'}"),
                *("--tokens", str(tokens), "--rate-limit", "0", "--grace", "1"),
            ],
            work,
        )
        procs = [server]
        try:
            grpc_address = server.wait_for(r"serving gRPC on (\S+:\d+)").group(1)
            inprocess = "http://" + server.wait_for(r"serving REST on (\S+:\d+)").group(1)
            bridge_listen = f"127.0.0.1:{free_port()}"
            procs.append(
                start(
                    "bridge",
                    [
                        *(script("checkpoint-rest-bridge"), "--listen", bridge_listen),
                        *("--upstream", grpc_address),
                    ],
                    work,
                )
            )
            bridge = f"http://{bridge_listen}"
            procs[1].wait_http(f"{bridge}/readyz")
            with httpx.Client(base_url=bridge, timeout=30.0) as client:
                for index in range(CHECKPOINTS):
                    reply = client.post(
                        "/v1/checkpoints",
                        headers={"Authorization": f"Bearer {token}"},
                        json={
                            "display_name": f"bench-{index}",
                            "resources": {
                                "limits": {"memory_mib": 4096},
                                "requests": {"memory_mib": 2048, "vcpus": 2},
                            },
                        },
                    )
                    reply.raise_for_status()
            for label, base in (("separate bridge", bridge), ("in-process", inprocess)):
                print(f"{label} ({base}), {rounds} rounds each:")
                print("\n".join(measure(base, token, rounds)), flush=True)
        finally:
            for proc in reversed(procs):
                proc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
