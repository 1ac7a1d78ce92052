"""CPU per request through the bridge by --upstream-connections, interleaved: the default's figure.

`.venv/bin/python -m bench.connections_ab [--workers 2] [--connections 1,2,4,8] [--rounds 5]`:
one checkpoint-server with --workers N (seeded store of 1000) and one bridge with --workers N
per connection count in front of it, all running at once; each round loads each bridge in turn
with wrk at -c 64 and reads the CPU each process tree spent (/proc) per request served, and the
spread of the bridge's connections over the server's workers (not re-rolled: what users get).
Prints each run and the medians over the rounds.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

from bench import loads, procs
from bench.rows import cpu_per_request
from bench.seed import ab_setup
from bench.serving import serve, start_bridge

CONCURRENCY = 64


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.connections_ab")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    default_work = Path(tempfile.gettempdir()) / "checkpoint-connections-ab"
    parser.add_argument("--work-dir", type=Path, default=default_work)
    args = parser.parse_args()
    work: Path = args.work_dir
    small, tokens, token = ab_setup(work)
    auth = {"Authorization": f"Bearer {token}"}
    server, address, _ = serve(
        "server-ab", small.url, tokens, work, rest=False, workers=args.workers
    )
    port = int(address.rsplit(":", 1)[1])
    bridges: dict[int, tuple[procs.Proc, str]] = {}
    results: dict[int, list[tuple[float, float, float]]] = {}
    try:
        for count in (int(text) for text in args.connections.split(",")):
            extra = ("--upstream-connections", str(count))
            bridge, at = start_bridge(
                f"bridge-c{count}", address, work, extra=extra, workers=args.workers
            )
            bridges[count] = (bridge, f"http://127.0.0.1:{at}")
        time.sleep(1.0)
        for count, (bridge, _) in bridges.items():
            print(f"{count} connections: spread {procs.connection_matrix(bridge, server, port)}")
        path = f"/v1/checkpoints/{small.sample_id}"
        for round_ in range(args.rounds):
            for count, (bridge, base) in bridges.items():
                done, (bridge_us, server_us) = cpu_per_request(
                    (bridge, server),
                    functools.partial(
                        loads.wrk,
                        base + path,
                        concurrency=CONCURRENCY,
                        seconds=args.seconds,
                        headers=auth,
                        work_dir=work,
                    ),
                )
                spent = (bridge_us, server_us, done.rps)
                results.setdefault(count, []).append(spent)
                print(
                    f"round {round_} {count} connections: bridge {spent[0]:.0f} µs, server "
                    f"{spent[1]:.0f} µs per request, {done.rps:.0f} req/s",
                    flush=True,
                )
    finally:
        for bridge, _ in bridges.values():
            bridge.stop()
        server.stop()
    print(f"medians over {args.rounds} rounds, c={CONCURRENCY}, {args.workers} workers:")
    for count, runs in results.items():
        bridge_us, server_us, rps = (statistics.median(r[i] for r in runs) for i in range(3))
        print(
            f"  {count} connections: bridge {bridge_us:.0f} µs, server {server_us:.0f} µs, "
            f"{rps:.0f} req/s"
        )


if __name__ == "__main__":
    main()
