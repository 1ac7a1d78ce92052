"""A raw HTTP/2 client (the h2 package) over a blocking socket, for frames grpcio never sends.

The tests of the gRPC port's limits need what a well-behaved gRPC client will not do: ping in a
loop, open more streams than the server allows, keep a call open without sending its message.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

import h2.config
import h2.connection
import h2.events
from h2.settings import SettingCodes

Event = h2.events.Event | str
EOF = "EOF"
"""The event recorded when the server closes the connection."""


class RawH2:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.closed = False
        self.goaway = False
        self.buffer = b""
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def read(self, seconds: float, until: type[h2.events.Event] | str | None = None) -> list[Event]:
        """Events for up to `seconds`, stopping early at EOF or at the first event of `until`."""
        events: list[Event] = []
        deadline = time.monotonic() + seconds
        while not self.closed and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                events.append(EOF)
                break
            received = self._receive(data)
            events.extend(received)
            self.flush()
            if until is not None and any(_is(e, until) for e in received):
                break
        return events

    def _receive(self, data: bytes) -> list[Event]:
        """Feed h2 one whole frame at a time: after GOAWAY h2 refuses any further frame, and
        only EOF matters then, but the GOAWAY itself must not be lost with its neighbours."""
        self.buffer += data
        received: list[Event] = []
        while len(self.buffer) >= 9:
            size = 9 + int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < size:
                break
            frame, self.buffer = self.buffer[:size], self.buffer[size:]
            if not self.goaway:
                events = self.conn.receive_data(frame)
                self.goaway = terminated(events) is not None
                received.extend(events)
        return received

    def open_call(
        self, stream_id: int, path: str, metadata: Sequence[tuple[str, str]] = ()
    ) -> None:
        """A gRPC call's headers without its message: the call stays open on the server."""
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *metadata,
        ]
        self.conn.send_headers(stream_id, headers)
        self.flush()

    def ignore_stream_limit(self) -> None:
        """Forget the server's SETTINGS_MAX_CONCURRENT_STREAMS, so h2 opens more streams."""
        self.conn.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 1 << 20
        self.conn.remote_settings.acknowledge()

    def close(self) -> None:
        self.sock.close()


def _is(event: Event, kind: type[h2.events.Event] | str) -> bool:
    return event == kind if isinstance(kind, str) else isinstance(event, kind)


def terminated(events: Sequence[Event]) -> h2.events.ConnectionTerminated | None:
    """The GOAWAY among events, if any."""
    for event in events:
        if isinstance(event, h2.events.ConnectionTerminated):
            return event
    return None


def server_settings(events: Sequence[Event]) -> dict[int, int]:
    """The settings the server announced, by setting code."""
    found: dict[int, int] = {}
    for event in events:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            found.update({code: s.new_value for code, s in event.changed_settings.items()})
    return found
