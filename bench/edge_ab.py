"""CPU per request through the bridge, this tree against a git ref, HTTP/1.1 and h2c, interleaved.

`.venv/bin/python -m bench.edge_ab --baseline REF [--rounds 5] [--seconds 3]`: one
checkpoint-server (plaintext gRPC, seeded store of 1000) and two bridges in front of it, one
running this work tree's code and one running REF's (`git archive REF` into the work directory,
started without the editable install so that REF's packages are the ones imported; in
--work-dir, outside the repository by default). Each round
loads each bridge with wrk (HTTP/1.1), h2load (h2c, -m 1) and h2load multiplexed (-m 8 over 8
connections) at concurrency 64, in turn, and reads the
CPU each process spent (/proc) per request served. On a shared machine wall-clock requests/s
are mostly noise; CPU per request, interleaved in one run, is what compares. Prints each run and
the medians over the rounds.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import REPO, loads, procs
from bench.edge_rows import MUX_STREAMS
from bench.rows import cpu_per_request
from bench.seed import ab_setup
from bench.serving import serve

CONCURRENCY = 64
PROTOCOLS: dict[str, Callable[..., loads.LoadResult]] = {
    "http1.1": loads.wrk,
    "h2c": loads.h2load_rest,
    "h2c-mux": functools.partial(loads.h2load_rest, streams=MUX_STREAMS),
}
"""How each bridge is loaded in a round: wrk, h2load -m 1, h2load multiplexed (edge_rows)."""
LAUNCHER = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path[:0] = [{tree!r}, {protos!r}]
from rest_bridge.__main__ import main
sys.exit(main())
"""
"""Runs REF's bridge: the editable install's finder, which maps the packages to this tree, is
dropped, so imports come from REF's files."""


def _baseline_bridge(ref: str, work: Path) -> list[str]:
    tree = work / f"tree-{ref.replace('/', '_')}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = work / "tree.tar"
        subprocess.run(
            ["git", "-C", str(REPO), "archive", "-o", str(archive), ref], check=True, timeout=60
        )
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
    launcher = work / "baseline_bridge.py"
    launcher.write_text(LAUNCHER.format(tree=str(tree), protos=str(tree / "protos")))
    return [sys.executable, str(launcher)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.edge_ab")
    parser.add_argument("--baseline", required=True, help="git ref whose bridge is compared")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    # Outside the repository: REF's tree must not be linted or collected as tests.
    default_work = Path(tempfile.gettempdir()) / "checkpoint-edge-ab"
    parser.add_argument("--work-dir", type=Path, default=default_work)
    args = parser.parse_args()
    work: Path = args.work_dir
    small, tokens, token = ab_setup(work)
    auth = {"Authorization": f"Bearer {token}"}
    server, address, _ = serve("server-ab", small.url, tokens, work, rest=False)
    commands = {"tree": [procs.script("checkpoint-rest-bridge")]}
    commands[args.baseline] = _baseline_bridge(args.baseline, work)
    bridges: dict[str, tuple[procs.Proc, str]] = {}
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        for name, command in commands.items():
            port = procs.free_port()
            listen = ["--listen", f"127.0.0.1:{port}", "--upstream", address]
            bridge = procs.start(f"bridge-{name.replace('/', '_')}", [*command, *listen], work)
            bridges[name] = (bridge, f"http://127.0.0.1:{port}")
            bridge.wait_http(f"http://127.0.0.1:{port}/readyz")
        path = f"/v1/checkpoints/{small.sample_id}"
        for round_ in range(args.rounds):
            for name, (bridge, base) in bridges.items():
                for protocol, load in PROTOCOLS.items():
                    done, spent = cpu_per_request(
                        (bridge, server),
                        functools.partial(
                            load,
                            base + path,
                            concurrency=CONCURRENCY,
                            seconds=args.seconds,
                            headers=auth,
                            work_dir=work,
                        ),
                    )
                    results.setdefault(f"{name} {protocol}", []).append((spent[0], spent[1]))
                    print(
                        f"round {round_} {name} {protocol}: bridge {spent[0]:.0f} µs, server "
                        f"{spent[1]:.0f} µs per request, {done.rps:.0f} req/s",
                        flush=True,
                    )
    finally:
        for bridge, _ in bridges.values():
            bridge.stop()
        server.stop()
    print(f"median CPU per request over {args.rounds} rounds, c={CONCURRENCY}:")
    for key, runs in results.items():
        bridge_us = statistics.median(b for b, _ in runs)
        server_us = statistics.median(s for _, s in runs)
        print(f"  {key}: bridge {bridge_us:.0f} µs, server {server_us:.0f} µs")


if __name__ == "__main__":
    main()
