"""rest_bridge.http2_inbound against h2 itself: the same bytes in give the same bytes out.

Each case feeds one byte sequence, cut into chunks, to two Http2Protocols, one reading request
HEADERS frames on its fast path and one leaving every frame to h2, and compares everything
observable: the bytes written back, whether the connection closed, and the requests the app saw.
One difference is allowed (tests/http2_wire.py, `differences`). Hypothesis draws frame
sequences (requests with and without bodies, header blocks split into CONTINUATION, padded and
prioritised HEADERS, stream ids out of order, pings, resets, window updates, raw garbage) and
cuts them at arbitrary points.
"""

from __future__ import annotations

import asyncio
import itertools
import struct

import h2.config
import h2.connection
import h2.settings
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rest_bridge import http2, http2_inbound, http2_length
from tests.http2_wire import Blocks, both, client_start, differences, frame, serve

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def test_requests_in_one_chunk_and_split_anywhere_match_h2() -> None:
    blocks = Blocks()
    wire = b""
    for stream_id in (1, 3, 5):
        wire += frame(0x1, 0x5, stream_id, blocks.request(f"/r{stream_id}"))
    assert both([wire]) == 3
    both([wire[i : i + 7] for i in range(0, len(wire), 7)])  # each frame split: h2 reads all


def test_the_fast_path_reads_the_frames_it_is_meant_for() -> None:
    blocks = Blocks()
    conn = http2_length.LenientConnection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    conn.receive_data(client_start())
    got: list[tuple[int, bool]] = []
    wire = frame(0x1, 0x5, 1, blocks.request("/a")) + frame(0x1, 0x4, 3, blocks.request("/b"))
    taken = http2_inbound.take_headers(
        conn, wire + frame(0x6, 0, 0, bytes(8)), lambda i, _, e: got.append((i, e))
    )
    assert taken == len(wire)
    assert got == [(1, True), (3, False)]
    assert conn.highest_inbound_stream_id == 3


@pytest.mark.parametrize(
    "case",
    [
        *("lower id", "even id", "reused id", "bad hpack", "padded", "priority"),
        *("continuation", "too large", "too many"),
    ],
)
def test_headers_the_fast_path_leaves_to_h2_get_h2s_answer(case: str) -> None:
    blocks = Blocks()
    wire = frame(0x1, 0x5, 5, blocks.request("/first"))
    # Encoded only where it is sent: a block the server never reads would desynchronize HPACK.
    block = b"" if case == "too many" else blocks.request("/second")
    wire += {
        "lower id": frame(0x1, 0x5, 3, block),
        "even id": frame(0x1, 0x5, 6, block),
        "reused id": frame(0x1, 0x5, 5, block),
        "bad hpack": frame(0x1, 0x5, 7, b"\xff\xff\xff\xff\xff"),
        "padded": frame(0x1, 0x5 | 0x8, 7, b"\x02" + block + b"\0\0"),
        "priority": frame(0x1, 0x5 | 0x20, 7, bytes([0, 0, 0, 0, 15]) + block),
        "continuation": frame(0x1, 0x1, 7, block[:3]) + frame(0x9, 0x4, 7, block[3:]),
        "too large": frame(0x1, 0x5, 7, block + bytes(1 << 14)),
        # Streams left open (no END_STREAM), past SETTINGS_MAX_CONCURRENT_STREAMS.
        "too many": b"".join(
            frame(0x1, 0x4, 7 + 2 * i, blocks.request(f"/open{i}", "POST"))
            for i in range(http2.MAX_STREAMS + 1)
        ),
    }[case]
    wire += frame(0x1, 0x5, 9, blocks.request("/third"))
    assert both([wire]) > 0  # /first, before the fast path stops


@st.composite
def conversations(draw: st.DrawFn) -> list[bytes]:
    blocks = Blocks()
    wire = b""
    next_id = 1
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["get", "post", "split", "ping", "window", "reset", "odd"]))
        stream_id = draw(st.sampled_from([next_id, next_id, next_id, max(1, next_id - 2), 2]))
        if kind in ("get", "post", "split"):
            block = blocks.request(f"/s{stream_id}", "POST" if kind == "post" else "GET")
            if kind == "split":
                wire += frame(0x1, 0x1, stream_id, block[:2])
                wire += frame(0x9, 0x4, stream_id, block[2:])
            else:
                wire += frame(0x1, 0x4 if kind == "post" else 0x5, stream_id, block)
            if kind == "post":
                wire += frame(0x0, 0x1, stream_id, draw(st.binary(max_size=20)))
            next_id += 2
        elif kind == "ping":
            wire += frame(0x6, 0, 0, draw(st.binary(min_size=8, max_size=8)))
        elif kind == "window":
            wire += frame(0x8, 0, draw(st.sampled_from([0, stream_id])), b"\0\0\x01\0")
        elif kind == "reset":
            wire += frame(0x3, 0, stream_id, b"\0\0\0\x08")
        else:
            wire += draw(st.binary(max_size=12))
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    edges = [0, *cuts, len(wire)]
    return [wire[a:b] for a, b in itertools.pairwise(edges) if b > a]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_any_conversation_gets_the_same_answer_with_and_without_the_fast_path(
    chunks: list[bytes],
) -> None:
    both(chunks)


def test_a_preface_split_over_reads_and_requests_after_it_match_h2() -> None:
    blocks = Blocks()
    wire = client_start() + frame(0x1, 0x5, 1, blocks.request("/p"))
    wire += frame(0x1, 0x5, 3, blocks.request("/q"))

    async def run() -> None:
        chunks = [wire[:10], wire[10 : len(PREFACE) + 3], wire[len(PREFACE) + 3 :]]
        (fast, taken), (slow, _) = await serve(chunks, True), await serve(chunks, False)
        assert differences(fast, slow) is None
        assert [path for path, _ in fast[2]] == ["/p", "/q"]
        assert taken == 0  # the preface arrived with the requests: h2 read them all

    asyncio.run(run())


def test_headers_inside_an_unfinished_header_block_are_h2s_to_refuse() -> None:
    opened = frame(0x1, 0x1, 1, Blocks().request("/a")[:3])  # no END_HEADERS: a block begins
    intruder = frame(0x1, 0x5, 3, Blocks().request("/b"))  # decodable: nothing was indexed
    assert both([opened, intruder]) == 0


def test_the_reserved_bit_of_a_stream_id_is_ignored_as_h2_ignores_it() -> None:
    """tests/fuzz/corpus/http2/regression-reserved-bit-in-stream-id: the fuzzer's find; the fast
    path took 0xFFFFFFFD for a stream h2 knows as 0x7FFFFFFD and answered on the wrong id."""
    blocks = Blocks()
    wire = frame(0x1, 0x5, 1, blocks.request("/a"))
    wire += frame(0x1, 0x5, 0x80000003, blocks.request("/b"))
    assert both([wire]) == 2


def test_the_bridge_connection_opens_the_stream_h2_would() -> None:
    """LenientConnection.open_request_stream (the fast path's) makes the stream h2's own
    _begin_new_stream makes on the same connection state, settings of both sides changed."""

    def opened(fast: bool) -> dict[str, object]:
        conn = http2_length.LenientConnection(h2.config.H2Configuration(client_side=False))
        conn.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 5000}
        )
        conn.initiate_connection()
        peer = struct.pack(">HLHL", 0x4, 1000, 0x5, 20000)  # INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE
        conn.receive_data(client_start() + frame(0x4, 0, 0, peer))
        stream = (
            conn.open_request_stream(7)
            if fast
            else conn._begin_new_stream(7, h2.connection.AllowedStreamIDs.ODD)
        )
        assert conn.streams == {7: stream}
        assert conn.highest_inbound_stream_id == 7
        assert stream.config is conn.config
        fields = {k: v for k, v in vars(stream).items() if k != "config"}
        fields["state_machine"] = vars(stream.state_machine)
        fields["_inbound_window_manager"] = vars(stream._inbound_window_manager)
        fields["class"] = type(stream)
        return fields

    assert opened(fast=True) == opened(fast=False)
    assert opened(fast=True)["outbound_flow_control_window"] == 1000
