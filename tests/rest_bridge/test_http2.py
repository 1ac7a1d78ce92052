"""rest_bridge.http2 in memory: an `h2` client talks to the protocol through a fake transport,
for what a well-behaved curl never does (bad paths, resets, tiny windows, shutdown, garbage).

The socket-level HTTP/2 tests (curl, httpx, TLS with ALPN) are in tests/e2e/test_edge.py and
test_tls.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from uvicorn.server import ServerState

from rest_bridge.edge_io import EdgeLimits, Gate
from rest_bridge.http2 import Http2Protocol
from tests.http2_wire import Transport, read_body

pytestmark = pytest.mark.anyio


class Peer:
    """An h2 client wired to one Http2Protocol."""

    def __init__(self, app: Any, limits: EdgeLimits | None = None) -> None:
        self.state = ServerState()
        self.gate = Gate(10)
        slot = self.gate.take()
        assert slot is not None
        loop = asyncio.get_running_loop()
        limits = limits or EdgeLimits()
        self.protocol = Http2Protocol(app, self.state, limits, slot, loop.time() + 5)
        self.transport = Transport()
        self.protocol.connection_made(self.transport)
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        self.client.initiate_connection()
        self.events: list[h2.events.Event] = []
        self.pump()

    def pump(self) -> None:
        outgoing = self.client.data_to_send()
        if outgoing:
            self.protocol.data_received(outgoing)
        incoming = bytes(self.transport.written)
        self.transport.written.clear()
        if incoming:
            self.events += self.client.receive_data(incoming)
            extra = self.client.data_to_send()
            if extra:
                self.protocol.data_received(extra)

    def request(self, path: bytes, body: bytes = b"", method: bytes = b"GET") -> int:
        stream = self.client.get_next_available_stream_id()
        headers = [(b":method", method), (b":path", path), (b":scheme", b"http")]
        headers.append((b":authority", b"x"))
        self.client.send_headers(stream, headers, end_stream=not body)
        if body:
            self.client.send_data(stream, body, end_stream=True)
        self.pump()
        return stream

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
            self.pump()

    def answer(self, stream: int) -> tuple[int, bytes]:
        status, body = 0, b""
        for event in self.events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                status = int(dict(event.headers or [])[b":status"])
            if isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                body += event.data or b""
        return status, body


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers the request's path and body as JSON."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = json.dumps(
        {"path": scope["path"], "raw": scope["raw_path"].decode(), "body": body.decode()}
    )
    await send({"type": "http.response.start", "status": 200, "headers": [(b"connection", b"x")]})
    await send({"type": "http.response.body", "body": payload.encode()})


async def test_a_body_in_several_frames_reaches_the_app_and_paths_decode_once() -> None:
    """A POST body sent in pieces arrives whole; %20 is decoded in path, kept in raw_path;
    connection-specific response headers are dropped."""
    peer = Peer(echo)
    stream = peer.client.get_next_available_stream_id()
    peer.client.send_headers(
        stream,
        [
            (b":method", b"POST"),
            (b":path", b"/a%20b?x=1"),
            (b":scheme", b"http"),
            (b":authority", b"x"),
        ],
    )
    for piece in (b"he", b"ll", b"o"):
        peer.client.send_data(stream, piece)
        peer.pump()
        await peer.settle()
    peer.client.end_stream(stream)
    peer.pump()
    await peer.settle()
    status, body = peer.answer(stream)
    assert status == 200
    assert json.loads(body) == {"path": "/a b", "raw": "/a%20b", "body": "hello"}
    headers = [e.headers for e in peer.events if isinstance(e, h2.events.ResponseReceived)]
    assert all(name != b"connection" for name, _ in headers[0] or [])


@pytest.mark.parametrize("path", [b"no-slash", b"/caf\xc3\xa9"])
async def test_a_path_that_is_not_an_ascii_absolute_path_is_400(path: bytes) -> None:
    """A :path without a leading slash or with raw non-ASCII bytes is 400 in the envelope."""
    peer = Peer(echo)
    stream = peer.request(path)
    await peer.settle()
    status, body = peer.answer(stream)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_argument"


async def test_an_app_failure_is_500_internal_in_the_envelope() -> None:
    """An app that raises before answering gets the envelope's internal error on its stream."""

    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    peer = Peer(broken)
    stream = peer.request(b"/x")
    await peer.settle()
    status, body = peer.answer(stream)
    assert status == 500
    assert json.loads(body)["error"]["code"] == "internal"


async def test_a_large_answer_waits_for_the_client_window() -> None:
    """An answer larger than the client's window is sent as the window opens, in full."""
    size = 200_000

    async def big(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"z" * size})

    peer = Peer(big)
    stream = peer.request(b"/big")
    await peer.settle()
    received = 0
    for _ in range(50):
        for event in peer.events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                received += len(event.data or b"")
                peer.client.acknowledge_received_data(event.flow_controlled_length or 0, stream)
        peer.events = [e for e in peer.events if not isinstance(e, h2.events.DataReceived)]
        peer.pump()
        await peer.settle()
        if received >= size:
            break
    assert received == size


async def test_a_reset_stream_disconnects_the_app() -> None:
    """When the client resets its stream, the app's receive() says http.disconnect."""
    seen: list[str] = []

    async def waits(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect":
                return

    peer = Peer(waits)
    stream = peer.client.get_next_available_stream_id()
    peer.client.send_headers(
        stream,
        [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")],
    )
    peer.pump()
    await peer.settle()
    peer.client.reset_stream(stream)
    peer.pump()
    await peer.settle()
    assert seen == ["http.disconnect"]


async def test_shutdown_sends_goaway_and_closes_when_idle() -> None:
    """uvicorn's graceful shutdown sends GOAWAY and closes a connection without streams; the
    connection's slot is released when it is lost."""
    peer = Peer(echo)
    peer.protocol.shutdown()
    peer.pump()
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in peer.events)
    assert peer.transport.closed
    peer.protocol.connection_lost(None)
    assert peer.gate.open == 0
    assert not peer.state.connections


async def test_garbage_closes_the_connection() -> None:
    """A frame HTTP/2 forbids (DATA on stream 0) after the preface closes the connection."""
    peer = Peer(echo)
    peer.protocol.data_received(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
    assert peer.transport.closed


async def test_an_idle_connection_gets_goaway_after_the_keep_alive_time() -> None:
    """With no streams left, the connection is closed after EdgeLimits.keep_alive."""
    peer = Peer(echo, EdgeLimits(keep_alive=0.05))
    stream = peer.request(b"/x")
    await peer.settle()
    assert peer.answer(stream)[0] == 200
    await asyncio.sleep(0.1)
    assert peer.transport.closed


async def test_a_streamed_answer_and_backpressure_complete_the_stream() -> None:
    """An answer in two body messages (the last one empty) ends its stream; the protocol waits
    while the transport asks it to pause and carries on when it resumes."""

    async def streamed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"ignored before start"})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    peer = Peer(streamed)
    peer.protocol.pause_writing()
    stream = peer.request(b"/s")
    await peer.settle()
    assert peer.answer(stream) == (200, b"part")
    assert not any(isinstance(e, h2.events.StreamEnded) for e in peer.events)
    peer.protocol.resume_writing()
    await peer.settle()
    assert any(isinstance(e, h2.events.StreamEnded) for e in peer.events)


async def test_an_app_that_never_answers_gets_its_stream_reset() -> None:
    """An app returning without a response resets the stream instead of leaving it open."""

    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return

    peer = Peer(silent)
    stream = peer.request(b"/x")
    await peer.settle()
    assert any(isinstance(e, h2.events.StreamReset) and e.stream_id == stream for e in peer.events)


async def test_goaway_from_the_client_closes_the_connection() -> None:
    """A client's GOAWAY closes the connection."""
    peer = Peer(echo)
    peer.client.close_connection()
    peer.pump()
    assert peer.transport.closed


async def test_data_for_a_finished_stream_is_acknowledged_and_dropped() -> None:
    """Body bytes arriving after the app answered are acknowledged (the window stays open)."""

    async def early(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too big"})

    peer = Peer(early)
    stream = peer.client.get_next_available_stream_id()
    peer.client.send_headers(
        stream,
        [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")],
    )
    peer.pump()
    await peer.settle()
    window = peer.client.outbound_flow_control_window
    for _ in range(3):
        peer.client.send_data(stream, b"x" * 15_000)
    peer.pump()
    await peer.settle()
    assert peer.answer(stream)[0] == 413
    assert peer.client.outbound_flow_control_window == window


MALFORMED_HEADERS = {
    "uppercase-name": [(b"X-Upper", b"1")],
    "connection-header": [(b"connection", b"close")],
    "te-not-trailers": [(b"te", b"gzip")],
    "newline-in-value": [(b"x-a", b"1\n2")],
    "space-around-value": [(b"x-a", b" 1")],
    "host-not-authority": [(b"host", b"other")],
    "pseudo-after-regular": [(b"x-a", b"1"), (b":authority", b"y")],
    "unknown-pseudo": [(b":protocol", b"websocket")],
    "content-length-not-digits": [(b"content-length", b"5x")],
    "content-length-negative": [(b"content-length", b"-1")],
    "content-lengths-differ": [(b"content-length", b"0"), (b"content-length", b"1")],
}


@pytest.mark.parametrize("extra", MALFORMED_HEADERS.values(), ids=MALFORMED_HEADERS.keys())
async def test_a_malformed_header_list_is_400_and_the_connection_stays(
    extra: list[tuple[bytes, bytes]],
) -> None:
    """The protocol's own header checks (h2's are off): a malformed list is 400 in the
    envelope on its stream, and the next request on the connection is served."""
    peer = Peer(echo)
    loose = h2.config.H2Configuration(
        header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    peer.client.config = loose
    stream = peer.client.get_next_available_stream_id()
    headers = [(b":method", b"GET"), (b":path", b"/x"), (b":scheme", b"http")]
    peer.client.send_headers(stream, [*headers, (b":authority", b"x"), *extra], end_stream=True)
    peer.pump()
    await peer.settle()
    status, body = peer.answer(stream)
    assert status == 400, body
    assert json.loads(body)["error"]["code"] == "invalid_argument"
    good = peer.request(b"/y")
    await peer.settle()
    assert peer.answer(good)[0] == 200


async def test_a_refused_head_request_gets_headers_only() -> None:
    """A HEAD request whose header list is refused (here :path twice) is answered 400 with the
    envelope's length but no body, as the app answers HEAD: a body there breaks the client's
    framing (h2 raises InvalidBodyLengthError), which a fuzzer sending raw header lists found."""
    peer = Peer(echo)
    peer.client.config = h2.config.H2Configuration(
        header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    stream = peer.client.get_next_available_stream_id()
    headers = [(b":method", b"HEAD"), (b":path", b"/x"), (b":path", b"/y"), (b":scheme", b"http")]
    peer.client.send_headers(stream, [*headers, (b":authority", b"x")], end_stream=True)
    peer.pump()
    await peer.settle()
    status, body = peer.answer(stream)
    assert status == 400
    assert body == b""
    assert not any(isinstance(event, h2.events.ConnectionTerminated) for event in peer.events)


async def test_a_head_larger_than_a_frame_goes_out_in_continuation_frames() -> None:
    """A response head over the client's SETTINGS_MAX_FRAME_SIZE (16 KiB) is one HEADERS and
    CONTINUATION frames, which the client reads back as one header list; the body follows."""
    big = b"v" * 40_000

    async def tall(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-big", big)]})
        await send({"type": "http.response.body", "body": b"ok"})

    peer = Peer(tall)
    stream = peer.request(b"/tall")
    await peer.settle()
    heads = [e for e in peer.events if isinstance(e, h2.events.ResponseReceived)]
    assert len(heads) == 1
    assert dict(heads[0].headers or [])[b"x-big"] == big
    assert peer.answer(stream) == (200, b"ok")
    assert any(isinstance(e, h2.events.StreamEnded) for e in peer.events)


async def test_repeated_requests_on_one_connection_each_get_their_own_answer() -> None:
    """The same header block again and again (served from the decoder's and the scope's kept
    lists), then another path: every stream gets its own answer, ended, and the connection
    windows account for every body sent."""
    peer = Peer(echo)
    window = peer.protocol.conn.outbound_flow_control_window
    sent = 0
    for path in [b"/a"] * 5 + [b"/b%20c"] + [b"/a"] * 2:
        stream = peer.request(path)
        await peer.settle()
        status, body = peer.answer(stream)
        assert status == 200
        assert json.loads(body)["raw"] == path.decode()
        sent += len(body)
    ended = [e for e in peer.events if isinstance(e, h2.events.StreamEnded)]
    assert len(ended) == 8
    assert peer.protocol.conn.outbound_flow_control_window == window - sent
    assert not peer.transport.closed


async def test_an_answer_without_a_body_ends_the_stream_on_its_headers() -> None:
    """A 204 with an empty body is one HEADERS frame carrying END_STREAM, no DATA frame."""

    async def empty(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    peer = Peer(empty)
    stream = peer.request(b"/none")
    await peer.settle()
    ended = [e for e in peer.events if isinstance(e, h2.events.StreamEnded)]
    assert [e.stream_id for e in ended] == [stream]
    assert not [e for e in peer.events if isinstance(e, h2.events.DataReceived)]
    assert peer.answer(stream) == (204, b"")


@pytest.mark.parametrize(("declared", "body"), [(b"3", b"hello"), (b"10", b"hello")])
async def test_a_body_not_of_its_content_length_is_400_on_its_stream_alone(
    declared: bytes, body: bytes
) -> None:
    """A body longer or shorter than its content-length (a stream error, RFC 9113 8.1.1) is
    400 in the envelope on its stream, the app never gets it whole, and a request open on the
    same connection at the time is still answered (h2 itself would have ended the connection)."""
    whole: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got = await read_body(receive)
        if got is None:
            return
        whole.append(got)
        await echo_answer(send, got)

    peer = Peer(app)
    head = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x")]
    other = peer.client.get_next_available_stream_id()
    peer.client.send_headers(other, [*head, (b":path", b"/other")])
    bad = peer.client.get_next_available_stream_id()
    peer.client.send_headers(bad, [*head, (b":path", b"/bad"), (b"content-length", declared)])
    peer.client.send_data(bad, body, end_stream=True)
    peer.pump()
    await peer.settle()
    status, answer = peer.answer(bad)
    assert status == 400, answer
    assert json.loads(answer)["error"] == {
        "code": "invalid_argument",
        "message": "malformed HTTP request",
    }
    peer.client.send_data(other, b"ok", end_stream=True)
    peer.pump()
    await peer.settle()
    assert peer.answer(other) == (200, b"ok")
    assert whole == [b"ok"]


async def test_a_body_past_its_content_length_mid_stream_is_400_and_the_rest_is_refused() -> None:
    """More DATA than declared, before the client ends its side: 400 at once, then RST_STREAM
    NO_ERROR so the client stops sending (RFC 9113 8.1), and the connection serves on."""
    peer = Peer(echo)
    stream = peer.client.get_next_available_stream_id()
    peer.client.send_headers(
        stream,
        [
            *((b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http")),
            *((b":authority", b"x"), (b"content-length", b"2")),
        ],
    )
    peer.client.send_data(stream, b"toolong")
    peer.pump()
    await peer.settle()
    assert peer.answer(stream)[0] == 400
    resets = [e for e in peer.events if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [(stream, 0)]
    good = peer.request(b"/y")
    await peer.settle()
    assert peer.answer(good)[0] == 200


async def echo_answer(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_a_short_body_after_a_whole_answer_leaves_the_connection_serving() -> None:
    """The app answered before the body ended; a body then shorter than its content-length has
    nothing left to refuse on its stream (no error escapes, the next request is served)."""

    async def early(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await echo_answer(send, b"early")

    peer = Peer(early)
    stream = peer.client.get_next_available_stream_id()
    peer.client.send_headers(
        stream,
        [
            *((b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http")),
            *((b":authority", b"x"), (b"content-length", b"10")),
        ],
    )
    peer.pump()
    await peer.settle()
    assert peer.answer(stream) == (200, b"early")
    peer.client.send_data(stream, b"abc", end_stream=True)
    peer.pump()
    await peer.settle()
    good = peer.request(b"/y")
    await peer.settle()
    assert peer.answer(good) == (200, b"early")
    assert not peer.transport.closed
