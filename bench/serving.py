"""The service's processes as the rows start them, and the one real call each row makes first:
a load generator sees statuses only, so every row checks a real answer before it is loaded."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import grpc
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from bench import loads, procs

GRPC_PATH = "/checkpoint.v1.CheckpointService/GetCheckpoint"


def grpc_frame(work_dir: Path, name: str, checkpoint_id: str) -> Path:
    """A file holding one framed GetCheckpointRequest, for h2load -d."""
    message = svc.GetCheckpointRequest(checkpoint_id=checkpoint_id).SerializeToString()
    path = work_dir / f"frame-{name}.bin"
    path.write_bytes(loads.grpc_frame(message))
    return path


def check_grpc(address: str, token: str, checkpoint_id: str) -> int:
    """One real call, which must succeed; the size of its framed response.

    Raises:
        RuntimeError: the call failed (h2load would not notice: it sees HTTP statuses only).
    """
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        try:
            reply = stub.GetCheckpoint(
                svc.GetCheckpointRequest(checkpoint_id=checkpoint_id),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )
        except grpc.RpcError as exc:
            raise RuntimeError(
                f"GetCheckpoint({checkpoint_id!r}) on {address} failed: {exc}"
            ) from exc
    return 5 + reply.ByteSize()


def get(url: str, token: str) -> bytes:
    """GET url with the token (which must answer 200): the body.

    Raises:
        RuntimeError: the answer was not 200 (urllib raises HTTPError itself for most).
    """
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (http://127.0.0.1)
        body: bytes = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"GET {url} answered {reply.status}: {body[:200]!r}")
        return body


def check_checkpoint(url: str, token: str, checkpoint_id: str, envelope: str = "data") -> None:
    """GET url must answer 200 with the checkpoint checkpoint_id (under envelope, when set).

    Raises:
        RuntimeError: another status, or a body that is not that checkpoint.
    """
    body = get(url, token)
    try:
        data = json.loads(body)
        found = data[envelope] if envelope else data
        ok = isinstance(found, dict) and found.get("id") == checkpoint_id
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise RuntimeError(f"GET {url} did not answer checkpoint {checkpoint_id}: {body[:300]!r}")


def serve(
    name: str,
    database: str,
    tokens: Path,
    work_dir: Path,
    rest: bool,
    *,
    extra: Sequence[str] = (),
    workers: int = 1,
) -> tuple[procs.Proc, str, str]:
    """checkpoint-server on database (--rate-limit 0): the process, gRPC address, REST address.

    With workers > 1 the process is the supervisor; its workers print the same addresses, and
    the rows count their CPU with it (procs.Proc.cpu_seconds). Returns once every worker serves.
    """
    args = [procs.script("checkpoint-server"), "serve", "--listen", "127.0.0.1:0", *extra]
    args += ["--database", database, "--tokens", str(tokens), "--rate-limit", "0"]
    if rest:
        args += ["--rest-listen", "127.0.0.1:0"]
    if workers != 1:
        args += ["--workers", str(workers)]
    server = procs.start(name, args, work_dir)
    pattern = r"serving gRPC on (\S+:\d+)"
    address = server.wait_for(pattern).group(1)
    rest_address = server.wait_for(r"serving REST on (\S+:\d+)").group(1) if rest else ""
    if workers > 1:
        server.wait_count(r"serving REST on" if rest else pattern, workers)
    return server, address, rest_address


def start_bridge(
    name: str, upstream: str, work_dir: Path, *, extra: Sequence[str] = (), workers: int = 1
) -> tuple[procs.Proc, int]:
    """checkpoint-rest-bridge in front of upstream, ready (/readyz: every worker serves)."""
    port = procs.free_port()
    args = [procs.script("checkpoint-rest-bridge"), "--listen", f"127.0.0.1:{port}"]
    args += ["--upstream", upstream, *extra]
    if workers != 1:
        args += ["--workers", str(workers)]
    bridge = procs.start(name, args, work_dir)
    bridge.wait_http(f"http://127.0.0.1:{port}/readyz")
    return bridge, port
