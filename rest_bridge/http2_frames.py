"""A response's HEADERS and DATA frames serialized here, with h2's state moved as h2 moves it.

h2's send_headers and send_data build frame objects, log at debug level, re-encode and scan the
header list and join serialized frames: about a quarter of an h2c request's CPU on the bridge.
These functions make the same transitions of h2's connection and stream state machines (so an
illegal send raises the same h2 errors, before anything is encoded) and the same flow-control
accounting, then write the frames' bytes directly (RFC 9113 section 4.1: 24-bit length, type,
flags, 31-bit stream id). The caller sends the bytes after whatever h2 has queued before them.
Inputs h2's tables say change nothing are not made (rest_bridge.http2_moves).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import h2.connection
import h2.exceptions
import h2.stream

from rest_bridge.http2_moves import (
    SEND_DATA,
    SEND_DATA_STAYS,
    SEND_HEADERS,
    SEND_HEADERS_STAYS,
    SERVER_OPEN,
    STREAM_DATA_STAYS,
    STREAM_SEND_DATA,
    STREAM_SEND_END,
    STREAM_SEND_HEADERS,
)

_HEADER = struct.Struct(">LBL")
"""A frame header: length << 8 | type, flags, stream id."""
DATA, HEADERS, CONTINUATION = 0x0, 0x1, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4


def _stream(conn: h2.connection.H2Connection, stream_id: int) -> h2.stream.H2Stream:
    stream = conn.streams.get(stream_id)
    if stream is None:  # closed and forgotten by h2: it would refuse the send too
        raise h2.exceptions.StreamClosedError(stream_id)
    return stream


def response_headers(
    conn: h2.connection.H2Connection,
    stream_id: int,
    headers: Iterable[tuple[bytes, bytes]],
    end_stream: bool,
) -> bytes:
    """The HEADERS frame (and CONTINUATION frames past the peer's frame size) of a final
    response head (no 1xx status: h2 sends those), headers already lowercase and valid."""
    if conn.state_machine.state is not SERVER_OPEN or not SEND_HEADERS_STAYS:
        conn.state_machine.process_input(SEND_HEADERS)
    stream = _stream(conn, stream_id)
    stream.state_machine.process_input(STREAM_SEND_HEADERS)
    if end_stream:
        stream.state_machine.process_input(STREAM_SEND_END)
    block = conn.encoder.encode(headers)
    size = conn.max_outbound_frame_size
    flags = END_STREAM if end_stream else 0
    if len(block) <= size:
        return _HEADER.pack(len(block) << 8 | HEADERS, flags | END_HEADERS, stream_id) + block
    parts = [block[i : i + size] for i in range(0, len(block), size)]
    frames = [_HEADER.pack(len(parts[0]) << 8 | HEADERS, flags, stream_id), parts[0]]
    for part in parts[1:-1]:
        frames += (_HEADER.pack(len(part) << 8 | CONTINUATION, 0, stream_id), part)
    last = parts[-1]
    frames += (_HEADER.pack(len(last) << 8 | CONTINUATION, END_HEADERS, stream_id), last)
    return b"".join(frames)


def window(conn: h2.connection.H2Connection, stream_id: int, size: int) -> int:
    """How many of size bytes one DATA frame on the stream may carry now: both flow-control
    windows and the peer's frame size (h2's local_flow_control_window, capped).

    Raises:
        h2.exceptions.StreamClosedError: the stream is closed and forgotten.
    """
    stream = _stream(conn, stream_id)
    window = min(conn.outbound_flow_control_window, stream.outbound_flow_control_window)
    return min(window, size, conn.max_outbound_frame_size)


def data(conn: h2.connection.H2Connection, stream_id: int, chunk: bytes, end_stream: bool) -> bytes:
    """One DATA frame of chunk, taken from both flow-control windows.

    Raises:
        h2.exceptions.FlowControlError: chunk exceeds a window.
        h2.exceptions.FrameTooLargeError: chunk exceeds the peer's frame size.
    """
    stream = _stream(conn, stream_id)
    size = len(chunk)
    if size > min(conn.outbound_flow_control_window, stream.outbound_flow_control_window):
        raise h2.exceptions.FlowControlError(f"cannot send {size} bytes on stream {stream_id}")
    if size > conn.max_outbound_frame_size:
        raise h2.exceptions.FrameTooLargeError(f"cannot send a frame of {size} bytes")
    if conn.state_machine.state is not SERVER_OPEN or not SEND_DATA_STAYS:
        conn.state_machine.process_input(SEND_DATA)
    if stream.state_machine.state not in STREAM_DATA_STAYS:
        stream.state_machine.process_input(STREAM_SEND_DATA)
    if end_stream:
        stream.state_machine.process_input(STREAM_SEND_END)
    stream.outbound_flow_control_window -= size
    conn.outbound_flow_control_window -= size
    return _HEADER.pack(size << 8 | DATA, END_STREAM if end_stream else 0, stream_id) + chunk
