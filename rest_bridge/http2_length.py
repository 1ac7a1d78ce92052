"""Request body lengths on HTTP/2 held to content-length per stream, not per connection.

h2 checks a request's DATA against its content-length itself, and a mismatch (or a
content-length that is not a number, or two that differ) raises out of `receive_data`, where h2
has already sent GOAWAY: every other request on the connection died with the one malformed
(RFC 9113 section 8.1.1 makes it a stream error). `LenientConnection` makes h2's streams leave
the length alone; the header check (http2_scope) refuses a bad or conflicting content-length
and rest_bridge.http2 compares the body with it (`BodyLength`), answering 400 in the envelope on
that stream only. The same subclass holds two shortcuts of the bridge's fast paths (making a
request's stream, reading h2's queue), each doing what h2's own call does.
"""

from __future__ import annotations

from typing import Any

import h2.connection
import h2.stream
from h2.settings import SettingCodes

INITIAL_WINDOW_SIZE = SettingCodes.INITIAL_WINDOW_SIZE


class _LengthFreeStream(h2.stream.H2Stream):
    """An h2 stream that leaves content-length to the protocol above it."""

    def _initialize_content_length(self, headers: Any) -> None:
        self._expected_content_length = None

    def _track_content_length(self, length: int, end_stream: bool) -> None:
        return None


class LenientConnection(h2.connection.H2Connection):
    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream.__class__ = _LengthFreeStream  # the same object, only the two checks differ
        return stream

    def take_queued(self) -> bytes:
        """data_to_send(): without its two allocations when nothing is queued (most calls; h2's
        private buffer `_data_to_send` read)."""
        return self.data_to_send() if self._data_to_send else b""

    def open_request_stream(self, stream_id: int) -> h2.stream.H2Stream:
        """The stream `_begin_new_stream` makes for a client's id above the highest so far
        (rest_bridge.http2_inbound has checked both), without its debug logging, checks and
        class swap (~2 µs of a request): windows from both sides' settings, the peer's frame
        size, the id recorded as the highest inbound one."""
        stream = _LengthFreeStream(
            stream_id,
            config=self.config,
            inbound_window_size=self.local_settings[INITIAL_WINDOW_SIZE],
            outbound_window_size=self.remote_settings[INITIAL_WINDOW_SIZE],
        )
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        self.streams[stream_id] = stream
        self.highest_inbound_stream_id = stream_id
        return stream


class BodyLength:
    """A request body's bytes so far against its declared content-length (None: undeclared)."""

    __slots__ = ("declared", "received")

    def __init__(self, declared: int | None) -> None:
        self.declared, self.received = declared, 0

    def add(self, size: int) -> bool:
        """Count size more bytes; False once they exceed the declared length."""
        self.received += size
        return self.declared is None or self.received <= self.declared

    def complete(self) -> bool:
        """At the end of the body: whether it has the declared length."""
        return self.declared is None or self.received == self.declared
