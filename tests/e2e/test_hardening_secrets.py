"""Hardening over real sockets: secrets stay out of logs and answers, the tokens file's mode is
checked, and an unexpected server error is a bare INTERNAL with its traceback in the log.

The server of this module reads a copy of the session's tokens file made readable by others
(mode 0644), on a database of its own. The one way found to make the server fail unexpectedly
over its sockets is data it cannot read back: a row whose create_time_us no datetime can hold
(the schema's CHECK constraints do not bound timestamps), written into the SQLite file by
another process while the server runs, as a stray writer or a bad restore would.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from tests.e2e import (
    Bridge,
    GrpcServer,
    Process,
    Tokens,
    bearer,
    http_client,
    start_bridge,
    start_server,
)

# Look like real tokens, but are in no tokens file.
FAKE_TOKENS = ("ckpt_fakeTOKENvalue0123456789abcdefABCDEF_-xyz", "ckpt_another-FAKE+token/==")
UNREADABLE_TIME_US = 2**62
LOG_WAIT = 5.0


@dataclass(frozen=True)
class SecretsEnv:
    tokens_file: Path
    db_file: Path
    server: GrpcServer
    bridge: Bridge


@pytest.fixture(scope="module")
def secrets_env(
    tmp_path_factory: pytest.TempPathFactory, e2e_tokens: Tokens
) -> Iterator[SecretsEnv]:
    """A server reading a mode-0644 copy of the session's tokens file, and a bridge in front."""
    work: Path = tmp_path_factory.mktemp("hardening-secrets")
    tokens_file = work / "shared-tokens.json"
    shutil.copyfile(e2e_tokens.path, tokens_file)
    tokens_file.chmod(0o644)
    db_file = work / "secrets.db"
    server = start_server(
        "secrets-server", work, f"sqlite:///{db_file}", tokens_file, ["--rate-limit", "0"]
    )
    try:
        bridge = start_bridge("secrets-bridge", work, server.address)
        try:
            yield SecretsEnv(tokens_file, db_file, server, bridge)
        finally:
            bridge.process.stop()
    finally:
        server.process.stop()


def _full_log(process: Process) -> str:
    return process.stdout.read_text(encoding="utf-8", errors="replace") + process.stderr.read_text(
        encoding="utf-8", errors="replace"
    )


def _wait_for_log(process: Process, text: str) -> str:
    deadline = time.monotonic() + LOG_WAIT
    while True:
        log = _full_log(process)
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def _create(client: httpx.Client, token: str, name: str) -> httpx.Response:
    body = {
        "display_name": name,
        "resources": {"limits": {"memory_mib": 64}, "requests": {"memory_mib": 32, "vcpus": 1}},
    }
    return client.post("/v1/checkpoints", json=body, headers=bearer(token))


def _corrupt(env: SecretsEnv, client: httpx.Client, token: str, name: str) -> None:
    """Create checkpoint name, then give it a timestamp no datetime can hold, behind the
    server's back."""
    assert _create(client, token, name).status_code == 200
    with sqlite3.connect(env.db_file, timeout=10) as conn:
        changed = conn.execute(
            "UPDATE checkpoints SET create_time_us = ? WHERE display_name = ?",
            (UNREADABLE_TIME_US, name),
        ).rowcount
    conn.close()
    assert changed == 1


def _grpc_details(stub: svc_grpc.CheckpointServiceStub, name: str, token: str) -> str:
    """The status message of GetCheckpoint(name) called with token ("" when it succeeds)."""
    try:
        stub.GetCheckpoint(
            svc.GetCheckpointRequest(checkpoint_id=name),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    except grpc.RpcError as exc:
        error: Any = exc
        return str(error.details() or "")
    return ""


def test_tokens_file_made_by_the_cli_is_mode_0600_and_holds_no_token(e2e_tokens: Tokens) -> None:
    """`checkpoint-server token create` writes the tokens file with mode 0600 and only hashes."""
    assert stat.S_IMODE(e2e_tokens.path.stat().st_mode) == 0o600
    text = e2e_tokens.path.read_text(encoding="utf-8")
    for token in (e2e_tokens.read, e2e_tokens.write, e2e_tokens.both):
        assert token not in text
        assert token.removeprefix("ckpt_") not in text
    assert not list(e2e_tokens.path.parent.glob("*.tmp"))


def test_world_readable_tokens_file_is_warned_about_at_start(secrets_env: SecretsEnv) -> None:
    """A tokens file others can read makes the server log a WARNING naming `chmod 600` and it."""
    log = _wait_for_log(secrets_env.server.process, "chmod 600")
    warnings = [line for line in log.splitlines() if "chmod 600" in line]
    assert warnings, log[-2000:]
    line = json.loads(warnings[0])  # stderr is not a terminal: the log is JSON
    assert line["level"] == "warning"
    assert str(secrets_env.tokens_file) in line["message"]


def test_unexpected_server_error_is_internal_and_logged_with_the_request_id(
    secrets_env: SecretsEnv, e2e_tokens: Tokens
) -> None:
    """Reading a row the server cannot convert answers INTERNAL "internal error" over REST (500)
    and gRPC, naming nothing inside; the traceback is logged with each call's request id."""
    with http_client(secrets_env.bridge.base_url) as client:
        _corrupt(secrets_env, client, e2e_tokens.both, "corrupt-1")
        response = client.get(
            "/v1/checkpoints/corrupt-1",
            headers={**bearer(e2e_tokens.read), "X-Request-Id": "hardening-internal-rest"},
        )
        listed = client.get("/v1/checkpoints", headers=bearer(e2e_tokens.read))
        healthy = client.get("/readyz")
    with grpc.insecure_channel(secrets_env.server.address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        metadata = (
            ("authorization", f"Bearer {e2e_tokens.read}"),
            ("x-request-id", "hardening-internal-grpc"),
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetCheckpoint(
                svc.GetCheckpointRequest(checkpoint_id="corrupt-1"), metadata=metadata, timeout=10
            )
    error: Any = caught.value
    assert response.status_code == 500, response.text
    assert response.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert response.headers["X-Request-Id"] == "hardening-internal-rest"
    assert listed.status_code == 500
    assert listed.json()["error"]["message"] == "internal error"
    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details() == "internal error"
    assert healthy.status_code == 200  # one bad row does not make the service unready
    log = _wait_for_log(secrets_env.server.process, "hardening-internal-grpc")
    for rid in ("hardening-internal-rest", "hardening-internal-grpc"):
        lines = [line for line in log.splitlines() if rid in line]
        assert lines, log[-3000:]
        assert "unexpected error in /checkpoint.v1.CheckpointService/GetCheckpoint" in lines[0]
    assert "Traceback (most recent call last)" in log
    assert "OverflowError" in log


def test_no_token_reaches_either_log(secrets_env: SecretsEnv, e2e_tokens: Tokens) -> None:
    """After calls with valid, unknown, malformed and under-scoped tokens over REST and gRPC
    (401, 403, 404, 409, 422, 500 and 200 answers), neither process's output holds a token."""
    real = (e2e_tokens.read, e2e_tokens.write, e2e_tokens.both)
    statuses: set[int] = set()
    with http_client(secrets_env.bridge.base_url) as client:
        _corrupt(secrets_env, client, e2e_tokens.both, "corrupt-2")
        for token in (*real, *FAKE_TOKENS):
            for authorization in (
                f"Bearer {token}",
                f"bearer  {token}",
                f"Basic {token}",
                f"Bearer {token} {token}",
                token,
            ):
                for path in ("/v1/checkpoints/corrupt-2", "/v1/checkpoints/absent", "/v1/x"):
                    headers = {"Authorization": authorization}
                    statuses.add(client.get(path, headers=headers).status_code)
            statuses.add(_create(client, token, "corrupt-2").status_code)
            statuses.add(
                client.post("/v1/checkpoints", content=b"{nope", headers=bearer(token)).status_code
            )
            statuses.add(
                client.get(
                    "/v1/checkpoints/absent",
                    headers=[("Authorization", f"Bearer {token}")] * 2,
                ).status_code
            )
    details: list[str] = []
    with grpc.insecure_channel(secrets_env.server.address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        for token in (*real, *FAKE_TOKENS):
            for name in ("corrupt-2", "absent", ""):
                details.append(_grpc_details(stub, name, token))
    assert not [d for d in details for t in (*real, *FAKE_TOKENS) if t in d]
    assert {401, 403, 404, 409, 422, 500} <= statuses, statuses
    # Stop both, so everything they would write is in their files.
    assert secrets_env.bridge.process.stop() == 0
    assert secrets_env.server.process.stop() == 0
    for process in (secrets_env.server.process, secrets_env.bridge.process):
        log = _full_log(process)
        assert log, process.name
        for token in (*real, *FAKE_TOKENS):
            assert token not in log, f"{process.name} logged a token"
            assert token.removeprefix("ckpt_")[:16] not in log, f"{process.name} logged a token"
