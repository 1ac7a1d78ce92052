"""CPU per gRPC GetCheckpoint, A/B: the no-op servicer and checkpoint-server from several trees.

    python -m bench.grpc_ab [--rounds 8] [--requests 5000] NAME=TREE [NAME=TREE ...]

Each NAME=TREE is a checkout of this project (`git archive COMMIT | tar -x -C TREE`); its server
runs with TREE first on PYTHONPATH (before the editable install), on the bench's store of 10^3,
with --rate-limit 0 as in `make bench`. Every process runs at once; each round loads each of them
in turn with h2load (-n N -c 64 -m 1, the same authorization header for all, the no-op servicer
included), in reverse order every other round, so the machine's load is shared alike. The figure
is the process's CPU (utime + stime, /proc) over the calls it answered, and the ratio of the
no-op's figure to it in the same round (the throughput ratio at equal CPU), median over rounds.
On a shared machine wall-clock rates are noise; paired per-round ratios are the figure to read.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from checkpoint.v1 import checkpoint_service_pb2 as svc

from bench import REPO, loads, procs
from bench.seed import ab_setup

GRPC_PATH = "/checkpoint.v1.CheckpointService/GetCheckpoint"
SERVE = "import sys; from server.__main__ import main; sys.exit(main())"
_COUNTS = re.compile(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed")


def h2load(address: str, frame: Path, requests: int, headers: Mapping[str, str]) -> int:
    """requests unary calls (-c 64 -m 1) to address; how many succeeded.

    Raises:
        RuntimeError: h2load printed no summary or saw failures.
    """
    args = ["h2load", "-c", "64", "-m", "1", "-t", "1", "-n", str(requests), "-d", str(frame)]
    args += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    url = f"http://{address}{GRPC_PATH}"
    # h2load's status is not enough: its summary line says how many calls failed.
    ran = subprocess.run([*args, url], check=False, capture_output=True, text=True, timeout=300)
    out = ran.stdout
    counts = _COUNTS.search(out)
    if counts is None or int(counts.group(2)) or not int(counts.group(1)):
        raise RuntimeError(f"h2load against {url} failed:\n{out[-2000:]}")
    return int(counts.group(1))


Command = tuple[str, list[str], Path]
"""A process to load: its name, its command line and the tree first on its PYTHONPATH."""


def prepare(work: Path, trees: Sequence[str]) -> tuple[list[Command], Path, dict[str, str]]:
    """The no-op's and each NAME=TREE server's command, the request frame and the headers."""
    store, tokens, token = ab_setup(work)
    auth = {"authorization": f"Bearer {token}"}
    request = svc.GetCheckpointRequest(checkpoint_id=store.sample_id).SerializeToString()
    frame = work / "frame.bin"
    frame.write_bytes(loads.grpc_frame(request))
    python = sys.executable
    noop = [python, "-m", "bench.baselines", "grpc", "--listen", "127.0.0.1:0"]
    commands: list[Command] = [("noop", noop, REPO)]
    for spec in trees:
        name, _, tree = spec.partition("=")
        # -P: not the working directory's checkout first, TREE's (PYTHONPATH).
        serve = [python, "-P", "-c", SERVE, "serve", "--listen", "127.0.0.1:0"]
        serve += ["--database", store.url]
        serve += ["--tokens", str(tokens), "--rate-limit", "0"]
        commands.append((name, serve, Path(tree).resolve()))
    return commands, frame, auth


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_ab", description=__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--work-dir", type=Path, default=REPO / "bench" / "results" / "grpc_ab")
    parser.add_argument("trees", nargs="+", metavar="NAME=TREE")
    args = parser.parse_args(argv)
    work: Path = args.work_dir
    commands, frame, auth = prepare(work, args.trees)
    running: list[tuple[str, procs.Proc, str]] = []
    try:
        for name, command, tree in commands:
            proc = procs.start(name, command, work, env={"PYTHONPATH": f"{tree}:{tree}/protos"})
            running.append((name, proc, proc.wait_for(r"serving gRPC on (\S+:\d+)").group(1)))
        for _, _, address in running:
            h2load(address, frame, 2000, auth)  # warm-up
        cpu: list[dict[str, float]] = []
        for number in range(args.rounds):
            figures: dict[str, float] = {}
            for name, proc, address in running if number % 2 == 0 else running[::-1]:
                time.sleep(0.3)
                before = proc.cpu_seconds()
                done = h2load(address, frame, args.requests, auth)
                time.sleep(0.2)
                figures[name] = (proc.cpu_seconds() - before) / done * 1e6
            cpu.append(figures)
            print(f"round {number}: " + "  ".join(f"{n} {us:.0f}" for n, us in figures.items()))
    finally:
        for _, proc, _ in running:
            proc.stop()
    print("name            CPU us/call (median)  noop/this (median of per-round ratios)")
    for name, _, _ in running:
        median = statistics.median(r[name] for r in cpu)
        ratio = statistics.median(r["noop"] / r[name] for r in cpu)
        print(f"{name:15s} {median:10.1f}            {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
