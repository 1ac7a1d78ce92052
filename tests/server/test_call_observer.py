"""x-request-id for gRPC callers and the server's access line (server.call_observer).

One CallGuard serves a real grpc.aio server on 127.0.0.1:0 and a LocalChannel; every check runs
through both doors, which must behave the same: the id comes back in the initial metadata (the
caller's when sane, else a new one), also on errors, and the access line names it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from opentelemetry import trace

from server.auth import Authenticator
from server.call_observer import _Call, _current, _parent, call_metadata
from server.guard import CallGuard
from server.local_channel import LocalChannel
from server.tokens import READ_SCOPE, TokenRecord, hash_token
from tests.server.test_guard import Limiter, Servicer

pytestmark = pytest.mark.anyio

TOKEN = "observer_reader_token"
READ = (("authorization", f"Bearer {TOKEN}"),)
GET = "/checkpoint.v1.CheckpointService/GetCheckpoint"
DOORS = ("port", "inprocess")
PEERS = {"port": "ipv4:127.0.0.1:", "inprocess": "inprocess"}


@pytest.fixture
async def stubs() -> AsyncIterator[dict[str, svc_grpc.CheckpointServiceAsyncStub]]:
    """A stub per door: the gRPC port and the in-process channel, behind one guard."""
    record = TokenRecord("reader", hash_token(TOKEN), frozenset({READ_SCOPE}))
    guard = CallGuard(Authenticator({record.sha256: record}), Limiter())
    servicer = Servicer()
    server = grpc.aio.server(interceptors=[guard])
    svc_grpc.add_CheckpointServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    local = LocalChannel([guard])
    svc_grpc.add_CheckpointServiceServicer_to_server(servicer, local.as_server())
    network = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield {
            "port": svc_grpc.CheckpointServiceStub(network),
            "inprocess": svc_grpc.CheckpointServiceStub(local),
        }
    finally:
        await network.close(None)
        await server.stop(None)


def _request_id(metadata: Any) -> str:
    found = [str(v) for k, v in metadata or () if k == "x-request-id"]
    assert len(found) == 1, metadata
    return found[0]


def _access(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if r.name == "checkpoint.access"]  # type: ignore[attr-defined]


async def _access_soon(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access lines, once there is one (within 2 s): a refused call's status is sent by
    `abort`, before the observer writes the line, so the caller can see the status first."""
    for _ in range(200):
        lines = _access(caplog)
        if lines:
            return lines
        await asyncio.sleep(0.01)
    return _access(caplog)


@pytest.mark.parametrize("door", DOORS)
async def test_the_callers_request_id_comes_back_and_is_logged(
    stubs: dict[str, svc_grpc.CheckpointServiceAsyncStub],
    door: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sane x-request-id is echoed in the initial metadata and named by the access line."""
    metadata = (*READ, ("x-request-id", "caller-id-1"))
    with caplog.at_level(logging.INFO, logger="checkpoint.access"):
        call = stubs[door].GetCheckpoint(
            svc.GetCheckpointRequest(checkpoint_id="x"), metadata=metadata
        )
        await call
        initial = await call.initial_metadata()
    assert _request_id(initial) == "caller-id-1"
    [line] = _access(caplog)
    assert line["request_id"] == "caller-id-1"
    assert line["grpc_method"] == GET
    assert line["grpc_code"] == "OK"
    assert line["token_name"] == "reader"
    assert line["peer"].startswith(PEERS[door])
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("given", [None, "has space", "x" * 129])
async def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(
    stubs: dict[str, svc_grpc.CheckpointServiceAsyncStub],
    door: str,
    given: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a sane x-request-id the server makes one, returns it and logs the same."""
    metadata = READ if given is None else (*READ, ("x-request-id", given))
    with caplog.at_level(logging.INFO, logger="checkpoint.access"):
        call = stubs[door].GetCheckpoint(
            svc.GetCheckpointRequest(checkpoint_id="x"), metadata=metadata
        )
        await call
        rid = _request_id(await call.initial_metadata())
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert [line["request_id"] for line in _access(caplog)] == [rid]


@pytest.mark.parametrize("door", DOORS)
async def test_an_error_carries_the_request_id_too(
    stubs: dict[str, svc_grpc.CheckpointServiceAsyncStub],
    door: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused call (no token) still returns the id, and its line says UNAUTHENTICATED."""
    with caplog.at_level(logging.INFO, logger="checkpoint.access"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs[door].GetCheckpoint(
                svc.GetCheckpointRequest(checkpoint_id="x"),
                metadata=(("x-request-id", "refused-1"),),
            )
        lines = await _access_soon(caplog)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert _request_id(caught.value.initial_metadata()) == "refused-1"
    [line] = lines
    assert (line["request_id"], line["grpc_code"], line["token_name"]) == (
        "refused-1",
        "UNAUTHENTICATED",
        None,
    )


@pytest.mark.parametrize(
    ("carrier", "trace_id", "state"),
    [
        (
            {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
            0x0AF7651916CD43DD8448EB211C80319C,
            "",
        ),
        ({"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"}, None, ""),
        (
            {
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "tracestate": "k=v",
            },
            0x0AF7651916CD43DD8448EB211C80319C,
            "k=v",
        ),
        ({"traceparent": "garbage"}, None, ""),
    ],
)
async def test_the_callers_trace_context_is_read_as_the_propagator_would(
    carrier: dict[str, str], trace_id: int | None, state: str
) -> None:
    """A plain traceparent (the fast path), one with tracestate (the propagator) and invalid
    ones (a new trace) give the same parent the W3C propagator gives."""
    parent = _parent(carrier)
    ids = trace.get_current_span(parent).get_span_context()
    assert (ids.trace_id if ids.is_valid else None) == trace_id
    assert ids.trace_state.to_header() == state


@pytest.mark.parametrize("door", DOORS)
async def test_when_nothing_records_the_line_continues_the_callers_trace(
    stubs: dict[str, svc_grpc.CheckpointServiceAsyncStub],
    door: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a provider that records nothing (no exporter) no span is made, yet the access line
    names the caller's trace and a new span id, or a new trace when the caller sent none."""
    monkeypatch.setattr(trace, "get_tracer_provider", trace.NoOpTracerProvider)
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with caplog.at_level(logging.INFO, logger="checkpoint.access"):
        for metadata in ((*READ, ("traceparent", caller)), READ):
            await stubs[door].GetCheckpoint(
                svc.GetCheckpointRequest(checkpoint_id="x"), metadata=metadata
            )
    continued, started = _access(caplog)
    assert continued["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert re.fullmatch(r"[0-9a-f]{32}", started["trace_id"])
    assert started["trace_id"] != continued["trace_id"]
    for line in (continued, started):
        assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"])
        assert line["span_id"] != "b7ad6b7169203331"


class _Context:
    """Just invocation_metadata(), as grpc.aio's context answers it (None for none)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...] | None) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...] | None:
        return self._metadata


def test_call_metadata_is_the_observed_calls_only_for_its_context() -> None:
    """The guard reads the metadata the observer read, but only for the call being observed:
    another context (a stream, a call outside any observed one) answers its own."""
    # Any: stand-ins for grpc.aio's context, which has far more than invocation_metadata.
    observed_context: Any = _Context(READ)
    other: Any = _Context((("x-request-id", "other"),))
    assert call_metadata(_Context(None)) == ()  # type: ignore[arg-type]  # a stand-in
    assert call_metadata(other) == (("x-request-id", "other"),)
    kept = (("authorization", "Bearer kept"),)
    token = _current.set(_Call("rid", observed_context, kept))
    try:
        assert call_metadata(observed_context) is kept
        assert call_metadata(other) == (("x-request-id", "other"),)
    finally:
        _current.reset(token)
