"""The common request frame read beside h2: a lone HEADERS frame that opens a stream.

Nearly every request a client sends on an open connection is one HEADERS frame (END_HEADERS,
no padding, no priority) for a new stream id. h2 reads it through its frame buffer, a
hyperframe object, its dispatch, the stream's header checks and two event objects: about a
third of the HTTP/2 layer's work per request. `take_headers` reads such frames itself and moves
h2's state exactly as h2's receive path does (connection and stream state machines, the new
stream, the highest stream id, HPACK decoding through h2's own error mapping), handing each
request's headers straight to the protocol. Anything else (another frame type, other flags, a
stream id h2 would refuse, a full stream table, h2's buffer holding a partial frame or the
preface still unread) stops the fast path: the frame and everything after it go to h2, so h2
sees every byte in order and answers every error itself. The new stream is made by the bridge's
LenientConnection.open_request_stream (what h2's `_begin_new_stream` makes). h2 private names
used: `_decode_headers`, `_terminate_connection`, `_open_streams` (the open
inbound streams' count, as the `open_inbound_streams` property counts them on a server), the
frame buffer's fields; state-machine inputs as in rest_bridge.http2_moves.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import h2.connection
import h2.exceptions

from rest_bridge.http2_length import LenientConnection
from rest_bridge.http2_moves import (
    IDLE,
    RECV_HEADERS,
    RECV_HEADERS_STAYS,
    SERVER_OPEN,
    STREAM_RECV_END,
    STREAM_RECV_HEADERS,
)

HEADERS = 0x1
END_STREAM, END_HEADERS = 0x1, 0x4
_FRAME_HEADER = struct.Struct(">HBBBL")
"""A frame header: 24-bit length (as 16 + 8 bits), type, flags, R bit and 31-bit stream id."""
_STREAM_ID = 0x7FFFFFFF
"""The stream id's bits: the reserved bit above them is ignored on receipt (RFC 9113 4.1)."""
_FRAME_HEADER_SIZE = 9

OnRequest = Callable[[int, list[tuple[bytes, bytes]], bool], None]
"""Called per request read: its stream id, its header list and whether END_STREAM was set."""


def _h2_idle(conn: h2.connection.H2Connection) -> bool:
    """Whether h2 holds no input of its own: preface read, no partial frame or header block."""
    buffer = conn.incoming_buffer
    return not buffer._preamble_len and not buffer._data and not buffer._headers_buffer


def take_headers(conn: LenientConnection, data: bytes, on_request: OnRequest) -> int:
    """Read the request HEADERS frames at the start of data; how many bytes were read.

    The caller passes data[returned:] to h2. h2's own errors (a header block HPACK cannot
    decode) are raised as h2 raises them, after the connection is terminated as h2 would.

    Raises:
        h2.exceptions.ProtocolError: the header block does not decode.
    """
    # IDLE and SERVER_OPEN: h2 takes a request's HEADERS with no effect but the state.
    state = conn.state_machine.state
    if (state is not SERVER_OPEN and state is not IDLE) or not _h2_idle(conn):
        return 0
    offset, size = 0, len(data)
    while size - offset >= _FRAME_HEADER_SIZE:
        high, low, kind, flags, stream_id = _FRAME_HEADER.unpack_from(data, offset)
        length, stream_id = high << 8 | low, stream_id & _STREAM_ID
        end = offset + _FRAME_HEADER_SIZE + length
        if (
            kind != HEADERS
            or flags & ~END_STREAM != END_HEADERS
            or end > size
            or length > conn.max_inbound_frame_size
            or not stream_id & 1
            or stream_id <= conn.highest_inbound_stream_id
            or conn._open_streams(1) >= conn.local_settings.max_concurrent_streams
        ):
            break
        try:
            headers = h2.connection._decode_headers(conn.decoder, data[end - length : end])
        except h2.exceptions.ProtocolError as error:
            conn._terminate_connection(error.error_code)
            raise
        if conn.state_machine.state is not SERVER_OPEN or not RECV_HEADERS_STAYS:
            conn.state_machine.process_input(RECV_HEADERS)
        stream = conn.open_request_stream(stream_id)
        stream.state_machine.process_input(STREAM_RECV_HEADERS)
        ended = bool(flags & END_STREAM)
        if ended:
            stream.state_machine.process_input(STREAM_RECV_END)
        offset = end
        on_request(stream_id, list(headers), ended)
    return offset
