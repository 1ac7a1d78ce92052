"""The edge's small parts without sockets: limits, connection slots, the refusal bytes, and the
bridge's TLS flag combinations."""

from __future__ import annotations

import asyncio
import json
import ssl

import grpc
import pytest
import uvicorn
from uvicorn.server import ServerState

from rest_bridge.__main__ import build_parser, http_tls, upstream_files
from rest_bridge.certs import CertificateError
from rest_bridge.edge import Acceptor, edge_protocol
from rest_bridge.edge_io import EdgeLimits, Gate, refusal_bytes
from rest_bridge.status import ApiError


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_header_bytes", 100), ("header_timeout", 0.0), ("max_connections", 0)],
)
def test_limits_out_of_range_are_refused(field: str, value: float) -> None:
    """A head limit under 1 KiB, a non-positive timeout or a zero cap is a usage error."""
    values: dict[str, float] = {field: value}
    with pytest.raises(ValueError, match="must be"):
        EdgeLimits(**values)  # type: ignore[arg-type]


def test_a_gate_counts_slots_and_release_is_idempotent() -> None:
    """A gate of two hands out two slots, refuses a third, and takes one back once."""
    gate = Gate(2)
    first, second = gate.take(), gate.take()
    assert first is not None
    assert second is not None
    assert gate.take() is None
    first.release()
    first.release()
    assert gate.open == 1
    assert gate.take() is not None


def test_a_refusal_is_a_whole_response_with_the_envelope() -> None:
    """A refusal carries its status line, Retry-After, Connection: close and the envelope."""
    raw = refusal_bytes(ApiError(grpc.StatusCode.UNAVAILABLE, "too many", retry_after=1.0))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert "retry-after: 1" in [line.lower() for line in lines]
    assert "connection: close" in lines
    assert f"content-length: {len(body)}" in lines
    assert json.loads(body) == {"error": {"code": "unavailable", "message": "too many"}}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--upstream-cert", "c.pem"], "go together"),
        (["--upstream-cert", "c.pem", "--upstream-key", "k.pem"], "needs --upstream-ca"),
    ],
)
def test_upstream_client_certificate_flags_must_be_complete(argv: list[str], message: str) -> None:
    """A client certificate without its key, or without --upstream-ca, is refused."""
    with pytest.raises(CertificateError, match=message):
        upstream_files(build_parser().parse_args(argv))


def test_plaintext_is_the_default_on_both_sides() -> None:
    """Without TLS flags the bridge listens and calls upstream in plaintext."""
    args = build_parser().parse_args([])
    assert upstream_files(args) is None
    assert http_tls(args) is None
    with pytest.raises(CertificateError, match="go together"):
        http_tls(build_parser().parse_args(["--tls-key", "k.pem"]))


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False
        self.written = b""

    def abort(self) -> None:
        self.aborted = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.aborted


def _acceptor(limits: EdgeLimits, tls: ssl.SSLContext | None) -> Acceptor:
    config = uvicorn.Config(app=None)  # type: ignore[arg-type]
    return edge_protocol(limits, tls)(config, ServerState(), {})


@pytest.mark.anyio
async def test_past_the_cap_a_tls_connection_is_dropped_before_its_handshake() -> None:
    """With TLS on, a connection past --max-connections is aborted at once (no plaintext 503
    a TLS client could not read), and the slot of the first one is kept."""
    limits = EdgeLimits(max_connections=1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cls = edge_protocol(limits, context)
    assert cls.gate.take() is not None  # the one connection already open
    second = _Transport()
    cls(uvicorn.Config(app=None), ServerState(), {}).connection_made(second)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert second.aborted
    assert second.written == b""
    assert cls.gate.open == 1


@pytest.mark.anyio
async def test_an_undecided_connection_waits_for_the_whole_preface_then_times_out() -> None:
    """A connection that sent the start of the HTTP/2 preface is still undecided, and is
    dropped at the header timeout with its slot released."""
    acceptor = _acceptor(EdgeLimits(header_timeout=0.05), None)
    transport = _Transport()
    acceptor.connection_made(transport)
    acceptor.data_received(b"PRI * HTTP/2.0\r\n")
    assert acceptor.buffer == b"PRI * HTTP/2.0\r\n"
    await asyncio.sleep(0.1)
    assert transport.aborted
    acceptor.connection_lost(None)
    assert type(acceptor).gate.open == 0
