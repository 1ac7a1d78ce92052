"""Instructions per gRPC GetCheckpoint under callgrind: the no-op servicer and servers from trees.

    python -m bench.grpc_instructions [--requests 2000] NAME=TREE [NAME=TREE ...]

The same processes as bench.grpc_ab (the no-op servicer, each tree's checkpoint-server on the
bench's store of 10^3 with --rate-limit 0, the same request and authorization header), each in
turn alone under `valgrind --tool=callgrind --instr-atstart=no`: 500 calls to warm up, then
instrumentation on for --requests calls (h2load -c 64 -m 1), off, and the process stopped. The
figure is callgrind's total (user space, every thread) over the calls, and the no-op's over it.
Unlike CPU time on a shared machine it repeats to within ~2 %; it leaves out the kernel's time
(system calls), so read it beside grpc_ab's CPU figures. valgrind runs ~50x slower: a process
takes a minute or two.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import REPO, procs
from bench.grpc_ab import h2load, prepare

_TOTALS = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)
START_TIMEOUT = 300.0
"""Seconds a process may take to listen under valgrind."""


def instructions(out: Path) -> int:
    """The instruction total a callgrind output file records."""
    found = _TOTALS.findall(out.read_text())
    if not found:
        raise RuntimeError(f"no totals in {out}")
    return max(int(total) for total in found)


def _control(proc: procs.Proc, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(proc.pid)], check=True, capture_output=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    default_work = REPO / "bench" / "results" / "grpc_instructions"
    parser.add_argument("--work-dir", type=Path, default=default_work)
    parser.add_argument("trees", nargs="+", metavar="NAME=TREE")
    args = parser.parse_args(argv)
    work: Path = args.work_dir
    commands, frame, auth = prepare(work, args.trees)
    per_call: dict[str, float] = {}
    for name, command, tree in commands:
        out = work / f"{name}.callgrind"
        out.unlink(missing_ok=True)
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        valgrind.append(f"--callgrind-out-file={out}")
        env = {"PYTHONPATH": f"{tree}:{tree}/protos"}
        proc = procs.start(name, [*valgrind, *command], work, env=env)
        try:
            address = proc.wait_for(r"serving gRPC on (\S+:\d+)", START_TIMEOUT).group(1)
            h2load(address, frame, 500, auth)
            _control(proc, "-i", "on")
            done = h2load(address, frame, args.requests, auth)
            _control(proc, "-i", "off")
        finally:
            proc.stop()
        per_call[name] = instructions(out) / done
        print(f"{name}: {per_call[name]:.0f} instructions/call", flush=True)
    print("name            instructions/call  noop/this")
    for name, figure in per_call.items():
        print(f"{name:15s} {figure:12.0f}       {per_call['noop'] / figure:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
