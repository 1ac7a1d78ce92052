"""Logs and traces of the real processes: one REST call is one trace and one request id in both.

A `checkpoint-server serve --rest-listen` and a `checkpoint-rest-bridge` in front of its gRPC port
export spans over OTLP/HTTP to a receiver in this test (tests.otlp_receiver, decoding the real
protobuf export requests) and log JSON at debug level. The session's own processes, which export
nothing, show that the ids are there without an exporter too. The last test stops this module's
processes and reads their whole output for the canary token.
"""

from __future__ import annotations

import json
import re
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
    EXAMPLE_ID,
    READ_SCOPE,
    SEED,
    WRITE_SCOPE,
    Bridge,
    GrpcServer,
    Process,
    Tokens,
    bearer,
    create_token,
    http_client,
    import_checkpoints,
    start_bridge,
    start_server,
)
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

SERVER_KIND, CLIENT_KIND, INTERNAL_KIND = 2, 3, 1
STATUS_ERROR = 2
LOG_WAIT = 5.0
UNKNOWN_CANARY = "ckpt_canaryUNKNOWNtoken0123456789abcdef"
BODY_CANARY = "body-canary-5f1e2d"
_REST_LISTEN = re.compile(r"serving REST on (\S+:\d+)")
HTTP_FIELDS = {"method", "route", "status", "grpc_code", "bytes_out", "client"}
GRPC_FIELDS = {"grpc_method", "grpc_code", "peer", "token_name"}
COMMON_FIELDS = {"time", "level", "event", "request_id", "trace_id", "span_id", "duration_ms"}


@dataclass(frozen=True)
class Observed:
    receiver: OtlpReceiver
    server: GrpcServer
    bridge: Bridge
    inprocess_url: str
    token: str


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """Server (with --rest-listen) and bridge at debug level, exporting to a test receiver."""
    work = tmp_path_factory.mktemp("observability")
    token = create_token(work / "tokens.json", "otel-canary", [READ_SCOPE, WRITE_SCOPE])
    database = f"sqlite:///{work / 'checkpoints.db'}"
    import_checkpoints(database, SEED, work / "seed.json")
    receiver = OtlpReceiver()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    logs = ["--log-level", "debug", "--log-format", "json"]
    extra = ["--rate-limit", "0", "--rest-listen", "127.0.0.1:0", *logs]
    server = start_server("otel-server", work, database, work / "tokens.json", extra, env=env)
    try:
        found = _REST_LISTEN.search(server.process.wait_for_output(_REST_LISTEN))
        assert found is not None
        bridge = start_bridge("otel-bridge", work, server.address, logs, env=env)
        try:
            yield Observed(receiver, server, bridge, f"http://{found.group(1)}", token)
        finally:
            bridge.process.stop()
    finally:
        server.process.stop()
        receiver.stop()


def _lines(process: Process) -> list[dict[str, Any]]:
    """The log lines the process wrote to stderr, each parsed as one JSON object (grpc's C core
    may add lines of its own, which are not the service's log)."""
    text = process.stderr.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _access(process: Process, rid: str) -> list[dict[str, Any]]:
    return [line for line in _lines(process) if line.get("request_id") == rid]


def _wait_access(process: Process, rid: str, events: set[str]) -> list[dict[str, Any]]:
    """The access lines of rid, once one of each event is there (written after the answer)."""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        found = _access(process, rid)
        if events <= {line["event"] for line in found} or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _trace_of(spans: list[ReceivedSpan], rid: str) -> list[ReceivedSpan]:
    """The spans of the trace whose bridge request span answered X-Request-Id rid."""
    roots = [
        s
        for s in spans
        if s.kind == SERVER_KIND and s.attributes.get("http.response.header.x-request-id") == (rid,)
    ]
    if len(roots) != 1:
        return []
    return [s for s in spans if s.trace_id == roots[0].trace_id]


def _one(spans: list[ReceivedSpan], **want: Any) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in want.items())]
    assert len(found) == 1, (want, spans)
    return found[0]


def test_one_rest_call_is_one_trace_across_both_processes(observed: Observed) -> None:
    """GET through the bridge exports four spans of one trace: the HTTP request, its upstream
    call, the server's call and the store's get, each the child of the one before."""
    rid = "otel-trace-get"
    with http_client(observed.bridge.base_url) as client:
        response = client.get(
            f"/v1/checkpoints/{EXAMPLE_ID}", headers={**bearer(observed.token), "X-Request-Id": rid}
        )
    assert response.status_code == 200, response.text
    spans = observed.receiver.wait_for(lambda got: len(_trace_of(got, rid)) >= 4)
    trace = _trace_of(spans, rid)
    assert len(trace) == 4, trace
    http = _one(trace, kind=SERVER_KIND, service="checkpoint-rest-bridge")
    upstream = _one(trace, kind=CLIENT_KIND, service="checkpoint-rest-bridge")
    call = _one(trace, kind=SERVER_KIND, service="checkpoint-server")
    store = _one(trace, kind=INTERNAL_KIND, service="checkpoint-server")
    assert http.parent_span_id == ""
    assert upstream.parent_span_id == http.span_id
    assert call.parent_span_id == upstream.span_id
    assert store.parent_span_id == call.span_id
    assert http.name == "GET /v1/checkpoints/{checkpoint_id}"
    assert http.attributes["http.route"] == "/v1/checkpoints/{checkpoint_id}"
    assert http.attributes["http.request.method"] == "GET"
    assert http.attributes["http.response.status_code"] == 200
    assert upstream.name == call.name == "checkpoint.v1.CheckpointService/GetCheckpoint"
    assert upstream.attributes["rpc.grpc.status_code"] == call.attributes["rpc.grpc.status_code"]
    assert call.attributes["rpc.method"] == "GetCheckpoint"
    assert (store.name, store.attributes["db.system.name"]) == ("store get", "sqlite")


def test_an_in_process_rest_call_is_one_trace_without_a_client_span(observed: Observed) -> None:
    """GET through `serve --rest-listen` exports three spans of one trace: the HTTP request, the
    server's call as its child (no client span: the call has no network hop) and the store's
    get; a caller's traceparent is continued, a server-side error is recorded on the store's."""
    trace_id, parent = "5cf92f3577b34da6a3ce929d0e0e4737", "10f067aa0ba902b8"
    rid = "otel-trace-inprocess"
    with http_client(observed.inprocess_url) as client:
        response = client.get(
            f"/v1/checkpoints/{EXAMPLE_ID}",
            headers={
                **bearer(observed.token),
                "X-Request-Id": rid,
                "traceparent": f"00-{trace_id}-{parent}-01",
            },
        )
        missing = client.get(
            "/v1/checkpoints/absent-inprocess",
            headers={**bearer(observed.token), "X-Request-Id": f"{rid}-404"},
        )
    assert (response.status_code, missing.status_code) == (200, 404)
    spans = observed.receiver.wait_for(
        lambda got: len(_trace_of(got, rid)) >= 3 and len(_trace_of(got, f"{rid}-404")) >= 3
    )
    trace = _trace_of(spans, rid)
    assert len(trace) == 3, trace
    assert {s.service for s in trace} == {"checkpoint-server"}
    http = _one(trace, kind=SERVER_KIND, parent_span_id=parent)
    call = _one(trace, kind=SERVER_KIND, parent_span_id=http.span_id)
    store = _one(trace, kind=INTERNAL_KIND, parent_span_id=call.span_id)
    assert http.trace_id == trace_id
    assert http.name == "GET /v1/checkpoints/{checkpoint_id}"
    assert http.attributes["http.response.status_code"] == 200
    assert call.name == "checkpoint.v1.CheckpointService/GetCheckpoint"
    assert call.attributes["rpc.grpc.status_code"] == 0
    assert (store.name, store.attributes["db.system.name"]) == ("store get", "sqlite")
    failed = _one(_trace_of(spans, f"{rid}-404"), kind=INTERNAL_KIND)
    assert failed.status_code == STATUS_ERROR
    assert "exception" in failed.events


def test_an_incoming_traceparent_is_continued_and_errors_are_recorded(observed: Observed) -> None:
    """A caller's traceparent is the parent of the bridge's span; a missing checkpoint (404)
    leaves NOT_FOUND on the server's span and the store's exception on the store's span."""
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    rid = "otel-trace-404"
    with http_client(observed.bridge.base_url) as client:
        response = client.get(
            "/v1/checkpoints/absent-one",
            headers={
                **bearer(observed.token),
                "X-Request-Id": rid,
                "traceparent": f"00-{trace_id}-{parent}-01",
            },
        )
    assert response.status_code == 404
    spans = observed.receiver.wait_for(lambda got: len(_trace_of(got, rid)) >= 4)
    trace = _trace_of(spans, rid)
    http = _one(trace, kind=SERVER_KIND, service="checkpoint-rest-bridge")
    call = _one(trace, kind=SERVER_KIND, service="checkpoint-server")
    store = _one(trace, kind=INTERNAL_KIND, service="checkpoint-server")
    assert (http.trace_id, http.parent_span_id) == (trace_id, parent)
    assert http.attributes["http.response.status_code"] == 404
    assert call.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert store.status_code == STATUS_ERROR
    assert "exception" in store.events


@pytest.mark.parametrize("door", ["bridge", "inprocess"])
def test_the_log_lines_of_one_rest_call_share_its_ids(observed: Observed, door: str) -> None:
    """The http_request line and the server's grpc_call line of one REST call carry the same
    request_id and trace_id, the trace the spans were exported under, and every field."""
    rid = f"otel-logs-{door}"
    base = observed.bridge.base_url if door == "bridge" else observed.inprocess_url
    with http_client(base) as client:
        response = client.get(
            f"/v1/checkpoints/{EXAMPLE_ID}", headers={**bearer(observed.token), "X-Request-Id": rid}
        )
    assert response.status_code == 200
    http_process = observed.bridge.process if door == "bridge" else observed.server.process
    [http] = [
        line
        for line in _wait_access(http_process, rid, {"http_request"})
        if line["event"] == "http_request"
    ]
    [call] = [
        line
        for line in _wait_access(observed.server.process, rid, {"grpc_call"})
        if line["event"] == "grpc_call"
    ]
    assert set(http) >= COMMON_FIELDS | HTTP_FIELDS
    assert set(call) >= COMMON_FIELDS | GRPC_FIELDS
    assert http["trace_id"] == call["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", http["trace_id"])
    assert http["span_id"] != call["span_id"]
    assert (http["route"], http["status"], http["grpc_code"]) == (
        "/v1/checkpoints/{checkpoint_id}",
        200,
        "OK",
    )
    assert http["bytes_out"] == len(response.content)
    assert (call["grpc_method"], call["token_name"]) == (
        "/checkpoint.v1.CheckpointService/GetCheckpoint",
        "otel-canary",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", http["time"])
    expected = 4 if door == "bridge" else 3  # in-process: no client span
    spans = observed.receiver.wait_for(lambda got: len(_trace_of(got, rid)) >= expected)
    assert len(_trace_of(spans, rid)) == expected
    assert {s.trace_id for s in _trace_of(spans, rid)} == {http["trace_id"]}


def test_without_an_exporter_the_lines_still_share_a_trace_id(
    bridge: Bridge, grpc_server: GrpcServer, http: httpx.Client, e2e_tokens: Any
) -> None:
    """The session's processes export nothing, yet both lines of one call name one trace."""
    rid = "no-exporter-logs"
    response = http.get(
        f"/v1/checkpoints/{EXAMPLE_ID}", headers={**bearer(e2e_tokens.read), "X-Request-Id": rid}
    )
    assert response.status_code == 200
    [http_line] = _wait_access(bridge.process, rid, {"http_request"})
    [call_line] = _wait_access(grpc_server.process, rid, {"grpc_call"})
    assert http_line["trace_id"] == call_line["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", http_line["trace_id"])
    assert call_line["token_name"] == "e2e-read"


def test_grpc_callers_get_the_request_id_of_their_access_line(observed: Observed) -> None:
    """Over the gRPC port, the x-request-id in the initial metadata is the access line's."""
    with grpc.insecure_channel(observed.server.address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        _, call = stub.GetCheckpoint.with_call(
            svc.GetCheckpointRequest(checkpoint_id=EXAMPLE_ID),
            metadata=(("authorization", f"Bearer {observed.token}"),),
            timeout=10,
        )
    [rid] = [str(v) for k, v in call.initial_metadata() if k == "x-request-id"]
    [line] = _wait_access(observed.server.process, rid, {"grpc_call"})
    assert (line["grpc_code"], line["token_name"]) == ("OK", "otel-canary")


def _canary_calls(client: httpx.Client, token: str) -> set[int]:
    statuses: set[int] = set()
    for secret in (token, UNKNOWN_CANARY):
        for authorization in (f"Bearer {secret}", f"Basic {secret}", secret):
            for path in (f"/v1/checkpoints/{EXAMPLE_ID}", "/v1/checkpoints/absent", "/v1/x"):
                statuses.add(client.get(path, headers={"Authorization": authorization}).status_code)
        body = {"display_name": BODY_CANARY, "resources": {"limits": {"memory_mib": -1}}}
        statuses.add(client.post("/v1/checkpoints", json=body, headers=bearer(secret)).status_code)
        statuses.add(
            client.post("/v1/checkpoints", content=BODY_CANARY, headers=bearer(secret)).status_code
        )
    return statuses


def test_no_token_or_body_reaches_a_log_at_debug_level(observed: Observed) -> None:
    """After REST calls through both doors and gRPC calls with the canary token (valid and
    unknown, as Bearer, Basic and bare) and a canary body, neither process's whole output
    holds them, though both logged at debug level. Stops this module's processes."""
    statuses: set[int] = set()
    for base in (observed.bridge.base_url, observed.inprocess_url):
        with http_client(base) as client:
            statuses |= _canary_calls(client, observed.token)
    codes: set[grpc.StatusCode] = set()
    with grpc.insecure_channel(observed.server.address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        for secret in (observed.token, UNKNOWN_CANARY):
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetCheckpoint(
                    svc.GetCheckpointRequest(checkpoint_id=BODY_CANARY),
                    metadata=(("authorization", f"Bearer {secret}"),),
                    timeout=10,
                )
            codes.add(caught.value.code())
    assert {200, 401, 404, 422} <= statuses, statuses
    assert codes == {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED}
    assert observed.bridge.process.stop() == 0
    assert observed.server.process.stop() == 0
    for process in (observed.server.process, observed.bridge.process):
        output = _whole(process.stdout) + _whole(process.stderr)
        assert '"level":"debug"' in output, process.name
        for secret in (observed.token, observed.token.removeprefix("ckpt_"), UNKNOWN_CANARY):
            assert secret not in output, f"{process.name} logged a token"
        assert BODY_CANARY not in output, f"{process.name} logged a request body"


def _whole(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def test_every_access_line_is_written_soon_and_none_is_lost_at_shutdown(
    e2e_dir: Path, e2e_tokens: Tokens, e2e_database: str
) -> None:
    """Access lines go out in batches: each call's line is in the log within a second of its
    answer, and after SIGTERM every call has its line (none is left in the batch)."""
    server = start_server(
        "batched-lines", e2e_dir, e2e_database, e2e_tokens.path, extra=["--rate-limit", "0"]
    )
    try:
        metadata = (("authorization", f"Bearer {e2e_tokens.read}"),)
        with grpc.insecure_channel(server.address) as channel:
            stub = svc_grpc.CheckpointServiceStub(channel)
            request = svc.GetCheckpointRequest(checkpoint_id=EXAMPLE_ID)
            stub.GetCheckpoint(request, metadata=(*metadata, ("x-request-id", "soon-1")))
            answered = time.monotonic()
            while not _access(server.process, "soon-1"):
                assert time.monotonic() - answered < 1.0, "the access line was held too long"
                time.sleep(0.02)
            for i in range(40):
                rid = ("x-request-id", f"held-{i}")
                stub.GetCheckpoint(request, metadata=(*metadata, rid))
        assert server.process.stop() == 0
    finally:
        server.process.stop()
    held = {
        line["request_id"] for line in _lines(server.process) if line.get("event") == "grpc_call"
    }
    assert {f"held-{i}" for i in range(40)} <= held
