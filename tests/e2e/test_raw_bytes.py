"""Raw bytes over a socket to both REST doors: any path, query, header or body bytes get a 2xx
or 4xx in the envelope, never a 5xx, the processes survive, and the data is unchanged.

A request is written byte for byte (no HTTP client normalises it): the request target may hold
any bytes but space, CR and LF (those end the request line; a few cases send them anyway),
header values any bytes but CR and LF. The token is read-only, so a request that the bridge
mistakenly let through still could not write: "changes nothing" is checked by listing the
checkpoints before and after.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e import ERROR_CODES, READ_SCOPE, Process, create_token, import_checkpoints
from tests.e2e.doors import serving_pair

SEED = [
    {
        "id": "2c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f",
        "display_name": "raw-bytes",
        "resources": {"limits": {"memory_mib": 64}, "requests": {"memory_mib": 32, "vcpus": 1}},
        "state": "ready",
    }
]
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
LIST = b"GET /v1/checkpoints HTTP/1.1\r\n"


@dataclass(frozen=True)
class Doors:
    addresses: tuple[tuple[str, int], ...]
    """The in-process REST port and the separate bridge."""
    token: str
    processes: tuple[Process, ...]


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    """A server with --rest-listen and a bridge in front of its gRPC port, a read-only token."""
    work: Path = tmp_path_factory.mktemp("raw-bytes")
    tokens = work / "tokens.json"
    token = create_token(tokens, "raw", [READ_SCOPE])
    database = f"sqlite:///{work / 'raw.db'}"
    import_checkpoints(database, SEED, work / "seed.json")
    flags = ["--rate-limit", "0"]
    with serving_pair(
        work, database, work / "tokens.json", server_flags=flags, prefix="raw-"
    ) as pair:
        addresses = (_host_port(pair.rest_address), _host_port(pair.bridge_address))
        yield Doors(addresses, token, (pair.server, pair.bridge))


def _exchange(address: tuple[str, int], raw: bytes) -> tuple[int, bytes]:
    """Send raw, read until the server closes (Connection: close), return status and body."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    found = _STATUS.match(answer)
    assert found is not None, answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return int(found.group(1)), body


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        length = int(size.split(b";")[0], 16)
        if length == 0:
            break
        out, body = out + rest[:length], rest[length + 2 :]
    return out


def _check(status: int, body: bytes, request: bytes) -> None:
    assert 200 <= status < 500, (status, request[:300], body[:300])
    envelope = json.loads(body)
    if status >= 400:
        assert set(envelope) == {"error"}, body[:300]
        assert envelope["error"]["code"] in ERROR_CODES
    else:
        assert "data" in envelope or "openapi" in envelope, body[:300]


_TARGET_BYTES = st.binary(max_size=60).map(
    lambda raw: raw.replace(b" ", b"").replace(b"\r", b"").replace(b"\n", b"")
)
_PATHS = st.sampled_from(
    [b"/v1/checkpoints/", b"/v1/checkpoints", b"/v1/", b"/", b"/healthz", b"/readyz", b""]
)
_HEADER_NAME = st.sampled_from(
    [b"authorization", b"x-request-id", b"grpc-timeout", b"content-type", b"x-custom", b"accept"]
) | st.from_regex(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}", fullmatch=True)
_HEADER_VALUE = st.binary(max_size=80).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
_METHOD = st.sampled_from([b"GET", b"POST", b"PATCH", b"DELETE", b"PUT", b"HEAD", b"OPTIONS"])
_BODY = st.binary(max_size=200) | st.sampled_from(
    [b'{"display_name": "x\\ud800"}', b'{"a": 1, "a": 2}', b"1e400", b'{"state": NaN}']
)


@st.composite
def _requests(draw: st.DrawFn, token: str) -> bytes:
    method = draw(_METHOD)
    target = draw(_PATHS) + draw(_TARGET_BYTES)
    if draw(st.booleans()):
        target += b"?" + draw(_TARGET_BYTES)
    headers = [(b"Host", b"127.0.0.1"), (b"Connection", b"close")]
    if draw(st.booleans()):
        headers.append((b"Authorization", b"Bearer " + token.encode()))
    headers += draw(st.lists(st.tuples(_HEADER_NAME, _HEADER_VALUE), max_size=4))
    body = draw(_BODY) if method in (b"POST", b"PATCH", b"PUT") else b""
    headers.append((b"Content-Length", str(len(body)).encode()))
    lines = [method + b" " + target + b" HTTP/1.1", *(n + b": " + v for n, v in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _listing(doors: Doors) -> object:
    host, port = doors.addresses[1]
    response = httpx.get(
        f"http://{host}:{port}/v1/checkpoints",
        headers={"Authorization": f"Bearer {doors.token}"},
        timeout=10,
    )
    assert response.status_code == 200
    return response.json()


def test_raw_requests_get_envelopes_and_change_nothing(doors: Doors) -> None:
    """Random request bytes to both doors: 2xx/4xx envelopes only, both processes alive, and
    the store's checkpoints as before."""
    before = _listing(doors)
    statuses: set[int] = set()

    @given(raw=_requests(doors.token), door=st.sampled_from(doors.addresses))
    @settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(raw: bytes, door: tuple[str, int]) -> None:
        status, body = _exchange(door, raw)
        statuses.add(status)
        if raw.startswith(b"HEAD "):
            assert status < 500, (status, raw[:300])
            return
        _check(status, body, raw)

    check()
    assert all(p.popen.poll() is None for p in doors.processes)
    assert _listing(doors) == before
    assert {400, 404} <= statuses or {401, 404} <= statuses, statuses


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GET /v1/checkpoints/\xff\xfe%ff HTTP/1.1\r\n", id="raw-high-bytes-in-path"),
        pytest.param(b"GET /v1/checkpoints?page_size=%zz&\x00 HTTP/1.1\r\n", id="bad-query-escape"),
        pytest.param(b"GET /v1/checkpoints/a b HTTP/1.1\r\n", id="space-in-target"),
        pytest.param(LIST + b"X: \x00\x01\xff\r\n", id="control-bytes"),
        pytest.param(LIST + b"Authorization: Bearer \xe9\r\n", id="latin1-auth"),
        pytest.param(LIST + b"Bad Name: x\r\n", id="space-in-header-name"),
        pytest.param(LIST + b"Content-Length: -1\r\n", id="negative-length"),
        pytest.param(
            b"POST /v1/checkpoints HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n",
            id="length-and-chunked",
        ),
        pytest.param(b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n", id="dot-dot"),
        pytest.param(
            b"GET " + b"/v1/checkpoints/" + b"%41" * 3000 + b" HTTP/1.1\r\n", id="long-path"
        ),
    ],
)
def test_named_raw_requests_get_4xx_envelopes(doors: Doors, raw: bytes) -> None:
    """Hand-picked hostile request heads get a 4xx envelope from both doors."""
    for door in doors.addresses:
        request = raw + b"Host: x\r\nConnection: close\r\n\r\n"
        with socket.create_connection(door, timeout=10) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        answer = b"".join(chunks)
        found = _STATUS.match(answer)
        assert found is not None, answer[:300]
        status = int(found.group(1))
        assert 400 <= status < 500, (door, answer[:300])
        _check(status, answer.partition(b"\r\n\r\n")[2], request)


# HTTP/2 (h2c prior knowledge): header lists no conforming client would send, written by an h2
# client whose own checks are off, so the server's one-pass checks (rest_bridge.http2_scope) meet
# them as they come off the wire.
_H2_NAME = st.sampled_from(
    [
        *(b":path", b":method", b":scheme", b":authority", b":protocol", b"host", b"te", b"Host"),
        *(b"connection", b"content-length", b"authorization", b"accept", b"accept-encoding"),
    ]
) | st.binary(min_size=1, max_size=12)
_H2_VALUE = st.binary(max_size=40) | st.sampled_from(
    [b"gzip", b"*", b'"v1"', b"text/event-stream", b"trailers", b"0", b"127.0.0.1"]
)
_H2_PATH = _PATHS.map(lambda path: path or b"/") | st.binary(max_size=40)


@st.composite
def _h2_requests(draw: st.DrawFn, token: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    method = draw(_METHOD | st.binary(max_size=8))
    headers = [(b":method", method), (b":scheme", b"http"), (b":path", draw(_H2_PATH))]
    headers.append((b":authority", b"127.0.0.1"))
    if draw(st.booleans()):
        headers.append((b"authorization", b"Bearer " + token.encode()))
    for name, value in draw(st.lists(st.tuples(_H2_NAME, _H2_VALUE), max_size=5)):
        headers.insert(draw(st.integers(0, len(headers))), (name, value))
    return headers, draw(_BODY) if draw(st.booleans()) else b""


def _h2_exchange(
    address: tuple[str, int], headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int | None, bytes]:
    """One request on a new h2c connection: its status and body, or (None, b"") when the server
    ended the connection instead (GOAWAY, as HTTP/2 answers a broken frame sequence)."""
    loose = h2.config.H2Configuration(
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(loose)
    status, answer = None, b""
    with socket.create_connection(address, timeout=10) as sock:
        conn.initiate_connection()
        conn.send_headers(1, headers, end_stream=not body)
        if body:
            conn.send_data(1, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        while chunk := sock.recv(65536):
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers or [])[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    answer += event.data or b""
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    return status, answer
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return None, b""
            sock.sendall(conn.data_to_send())
    return status, answer


def test_raw_http2_header_lists_get_envelopes(doors: Doors) -> None:
    """Random HTTP/2 header lists (any bytes, pseudo-headers repeated or out of place, bad
    methods and paths, bodies or none) to both doors over h2c: every stream answered gets a
    2xx-4xx envelope, a HEAD one headers only (a body would break the client's framing: h2
    raises, as a fuzzer of this found), and both processes stay up with the store unchanged."""
    before = _listing(doors)
    statuses: set[int | None] = set()

    @given(request=_h2_requests(doors.token), door=st.sampled_from(doors.addresses))
    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(request: tuple[list[tuple[bytes, bytes]], bytes], door: tuple[str, int]) -> None:
        headers, body = request
        status, answer = _h2_exchange(door, headers, body)
        statuses.add(status)
        if status is None:
            return
        if (b":method", b"HEAD") in headers:
            assert status < 500, (status, headers)
            assert answer == b"", (headers, answer[:200])
            return
        _check(status, answer, repr(headers).encode())

    check()
    assert all(p.popen.poll() is None for p in doors.processes)
    assert _listing(doors) == before
    assert 400 in statuses, statuses
