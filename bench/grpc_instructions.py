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

With --handler the figure is our own code alone: each tree's guarded GetCheckpoint handler (the
one server.app registers: observer, access line, guard, servicer, traced SQLite store) driven in
one process with a stand-in context and no grpc (`_DRIVE`), --requests calls after 200 to warm
up, against the same store and token. No network or event-loop wake-ups, so it repeats to within
~1 % and shows what a change to server/ saves; the no-op has no such figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import REPO, procs
from bench.grpc_ab import h2load, prepare
from bench.seed import ab_setup

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


_DRIVE = """
import asyncio, json, os, subprocess, sys
from pathlib import Path
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from rest_bridge.access_log import line_writer, start_access_lines
from rest_bridge.logs import setup_logging
from rest_bridge.tracing import setup_tracing
import server.access_log as access
from server.access_log import EVENT, use_writer
from server.auth import Authenticator
from server.guard import CallGuard
from server.paging import PageTokens
from server.ratelimit import open_rate_limiter
from server.servicer import CheckpointServicer
from server.store import open_store
from server.tokens import load_tokens
from server.traced_store import traced_store

url, tokens, token, sample, count = json.loads(sys.argv[1])

class Context:
    def __init__(self, metadata): self._metadata = metadata
    def invocation_metadata(self): return tuple(self._metadata)
    async def send_initial_metadata(self, metadata): pass
    def peer(self): return "ipv4:127.0.0.1:50000"
    def code(self): return None

class Registry:
    def add_generic_rpc_handlers(self, handlers): pass
    def add_registered_method_handlers(self, service, handlers): self.handlers = handlers

def toggle(state):
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], capture_output=True)

async def drive():
    store = open_store(url)
    guard = CallGuard(Authenticator(load_tokens(Path(tokens))), open_rate_limiter(0, 1, None))
    servicer = CheckpointServicer(traced_store(store, url), PageTokens(bytes(32)), None)
    registry = Registry()
    svc_grpc.add_CheckpointServiceServicer_to_server(servicer, registry)
    method = "/checkpoint.v1.CheckpointService/GetCheckpoint"
    handler = guard.wrap(method, registry.handlers["GetCheckpoint"])
    parse, run = handler.request_deserializer, handler.unary_unary
    write = handler.response_serializer
    raw = svc.GetCheckpointRequest(checkpoint_id=sample).SerializeToString()
    metadata = (("authorization", f"Bearer {token}"), ("user-agent", "h2load"))
    for number in range(200 + count):
        if number == 200:
            toggle("on")
        write(await run(parse(raw), Context(metadata)))
    toggle("off")
    print(f"driven {count}", flush=True)

setup_logging("json", "info")
start_access_lines()
fields = getattr(access, "FIELDS", None)  # a tree from before writers took each line's dict
use_writer(line_writer(EVENT) if fields is None else line_writer(EVENT, fields))
setup_tracing("checkpoint-server")
asyncio.run(drive())
"""
"""The --handler driver, run with a tree first on PYTHONPATH (so in its own code, not ours)."""


def handler_only(work: Path, trees: Sequence[str], requests: int) -> dict[str, float]:
    """Instructions per call of each tree's guarded handler alone (--handler)."""
    store, tokens, token = ab_setup(work)
    spec = json.dumps([store.url, str(tokens), token, store.sample_id, requests])
    per_call: dict[str, float] = {}
    for name, _, tree in (t.partition("=") for t in trees):
        out = work / f"{name}.handler.callgrind"
        out.unlink(missing_ok=True)
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command = [*valgrind, f"--callgrind-out-file={out}", sys.executable, "-P", "-c", _DRIVE]
        root = Path(tree).resolve()
        env = {**os.environ, "PYTHONPATH": f"{root}:{root}/protos"}
        done = subprocess.run(
            [*command, spec], env=env, capture_output=True, text=True, timeout=900, check=False
        )
        if f"driven {requests}" not in done.stdout:
            raise RuntimeError(f"{name}: the driver failed:\n{done.stderr[-3000:]}")
        per_call[name] = instructions(out) / requests
        print(f"{name}: {per_call[name]:.0f} instructions/call (handler only)", flush=True)
    return per_call


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    default_work = REPO / "bench" / "results" / "grpc_instructions"
    parser.add_argument("--work-dir", type=Path, default=default_work)
    parser.add_argument("--handler", action="store_true", help="our handler alone, no grpc")
    parser.add_argument("trees", nargs="+", metavar="NAME=TREE")
    args = parser.parse_args(argv)
    work: Path = args.work_dir
    if args.handler:
        handler_only(work, args.trees, args.requests)
        return 0
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
