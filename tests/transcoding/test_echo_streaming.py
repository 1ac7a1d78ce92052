"""Server streaming through the bridge for a service it has never seen: SSE and NDJSON.

EchoService.Repeat (tests/transcoding/echo_server.py) streams numbered messages; the bridge knows
it only from its descriptors and its google.api.http rule. Each test crosses real sockets: httpx
to the bridge process, the bridge to the echo server process.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e import Process, start, start_bridge
from tests.e2e.watching import sse_events
from tests.transcoding.conftest import HERE, SERVICE

SSE = {"Accept": "text/event-stream"}


@dataclass(frozen=True)
class Echo:
    server: Process
    client: httpx.Client


@pytest.fixture(scope="module")
def echo(echo_descriptors: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Echo]:
    """An echo server of its own (its output shows cancellations) and a bridge with a 0.3 s
    heartbeat and a 1 s unary timeout."""
    logs = tmp_path_factory.mktemp("echo-stream")
    args = [sys.executable, str(HERE / "echo_server.py"), str(echo_descriptors), SERVICE]
    server = start("echo-stream-server", args, logs)
    try:
        line = server.wait_for_output(re.compile(r"port \d+"))
        extra = ["--descriptor-set", str(echo_descriptors), "--service", SERVICE]
        extra += ["--timeout", "1", "--heartbeat", "0.3"]
        upstream = f"127.0.0.1:{line.split()[1]}"
        bridge = start_bridge("echo-stream-bridge", logs, upstream, extra, "/healthz")
        try:
            with httpx.Client(base_url=bridge.base_url, timeout=5) as client:
                yield Echo(server, client)
        finally:
            bridge.process.stop()
    finally:
        server.stop()


def _tick(name: str, index: int) -> dict[str, object]:
    return {"name": name, "index": index, "resume_token": str(index), "type": "tick"}


def test_ndjson_is_the_default(echo: Echo) -> None:
    """Without Accept: text/event-stream, one {"data": ...} per line, in the JSON mapping."""
    response = echo.client.get("/v1/streams/s1:repeat", params={"count": 3})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines == [{"data": _tick("streams/s1", i)} for i in (1, 2, 3)]
    empty = echo.client.get("/v1/streams/s0:repeat", params={"count": 0})
    assert (empty.status_code, empty.text) == (200, "")  # a stream with no message


def test_sse_frames_carry_id_event_and_data(echo: Echo) -> None:
    """SSE: id is the message's resume_token, event its type's JSON name, data the envelope."""
    with echo.client.stream("GET", "/v1/streams/s2:repeat?count=2", headers=SSE) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response.iter_lines()))
    assert [(e.id, e.event, e.data) for e in events] == [
        ("1", "tick", {"data": _tick("streams/s2", 1)}),
        ("2", "tick", {"data": _tick("streams/s2", 2)}),
    ]


def test_last_event_id_becomes_the_resume_token(echo: Echo) -> None:
    """A reconnect with Last-Event-ID continues after it."""
    headers = {**SSE, "Last-Event-ID": "5"}
    with echo.client.stream("GET", "/v1/streams/s3:repeat?count=2", headers=headers) as response:
        ids = [e.id for e in sse_events(response.iter_lines())]
    assert ids == ["6", "7"]


def test_an_error_before_the_first_message_is_the_http_error(echo: Echo) -> None:
    """Refused before any message: the status table's HTTP status and the envelope."""
    response = echo.client.get("/v1/streams/refuse:repeat", params={"count": 1}, headers=SSE)
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "permission_denied", "message": "asked to refuse"}}


def test_an_error_after_the_first_message_is_a_last_event(echo: Echo) -> None:
    """After a message, the error is the stream's last SSE event (or NDJSON line)."""
    with echo.client.stream("GET", "/v1/streams/fail:repeat?count=3", headers=SSE) as response:
        events = list(sse_events(response.iter_lines()))
    assert [e.event for e in events] == ["tick", "error"]
    assert events[1].data["error"]["code"] == "failed_precondition"
    lines = echo.client.get("/v1/streams/fail:repeat?count=3").text.splitlines()
    assert [next(iter(json.loads(line))) for line in lines] == ["data", "error"]


def test_heartbeats_flow_and_the_unary_timeout_does_not_apply(echo: Echo) -> None:
    """An idle SSE stream gets comment heartbeats and outlives the bridge's 1 s --timeout."""
    comments: list[str] = []
    url = "/v1/streams/idle:repeat?count=1&hold=true"
    started = time.monotonic()
    with echo.client.stream("GET", url, headers=SSE) as response:
        lines = response.iter_lines()
        events = sse_events(lines, comments)
        assert next(events).id == "1"
        for line in lines:
            if line.startswith(":"):
                comments.append(line)
            if time.monotonic() - started > 1.6:
                break
    assert len(comments) >= 3
    assert comments[0] == ": heartbeat"


def test_grpc_timeout_bounds_a_stream(echo: Echo) -> None:
    """Grpc-Timeout, when sent, is the stream's deadline: it ends with deadline_exceeded."""
    headers = {**SSE, "Grpc-Timeout": "400m"}
    url = "/v1/streams/bounded:repeat?count=1&hold=true"
    with echo.client.stream("GET", url, headers=headers) as response:
        events = list(sse_events(response.iter_lines()))
    assert [e.event for e in events] == ["tick", "error"]
    assert events[1].data["error"]["code"] == "deadline_exceeded"


def test_a_client_that_goes_away_cancels_the_upstream_call(echo: Echo) -> None:
    """Closing the HTTP stream cancels the gRPC call at once (the echo server sees it)."""
    name = f"gone-{uuid.uuid4().hex[:8]}"
    with echo.client.stream("GET", f"/v1/streams/{name}:repeat?count=1&hold=true") as response:
        assert json.loads(next(response.iter_lines()))["data"]["index"] == 1
    echo.server.wait_for_output(re.compile(f"cancelled streams/{name}"), timeout=3)


def test_a_client_that_reads_too_slowly_is_cut_off(echo: Echo) -> None:
    """A client that stops reading gets its upstream call cancelled once the bridge's bounded
    buffer is full, and a last resource_exhausted line when it reads again."""
    name = f"slow-{uuid.uuid4().hex[:8]}-{'x' * 2000}"  # big messages fill the buffers sooner
    host, port = echo.client.base_url.host, echo.client.base_url.port or 80
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.settimeout(10)
        sock.connect((host, port))
        request = f"GET /v1/streams/{name}:repeat?count=200000&hold=true HTTP/1.1\r\n"
        sock.sendall(f"{request}Host: {host}\r\n\r\n".encode())
        echo.server.wait_for_output(re.compile(f"cancelled streams/{name}"), timeout=30)
        received = b""
        while b'"resource_exhausted"' not in received and len(received) < 64 << 20:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            received += chunk
    assert b'{"error":{"code":"resource_exhausted"' in received
    assert received.count(b'"index"') < 200000
