"""h2's state-machine inputs for the fast paths (rest_bridge.http2_inbound, http2_frames), at
less CPU: enum members bound once, and inputs h2's own tables say change nothing not made.

On Python 3.11 reading an enum member off its class (`ConnectionInputs.SEND_DATA`) runs a
Python-level descriptor and hashing a plain Enum member runs `Enum.__hash__` in Python: each
`process_input` of h2's connection state machine (a dict keyed by (state, input)) cost ~0.55 µs,
eight inputs per request. Members are bound here once. And where h2's transition table maps
(state, input) to "no function, the same state", `process_input` does nothing but assign that
same state: the connection's RECV_HEADERS, SEND_HEADERS and SEND_DATA in SERVER_OPEN (the
state of a server connection from its first request on) and a stream's SEND_DATA in OPEN or
HALF_CLOSED_REMOTE. Those sets are read from h2's tables at import (its private
`H2ConnectionStateMachine._transitions` and `h2.stream._transitions`), so an h2 whose tables
differ makes the calls again; every other input is still h2's `process_input`.
"""

from __future__ import annotations

import h2.stream
from h2.connection import ConnectionInputs, ConnectionState
from h2.connection import H2ConnectionStateMachine as _ConnectionMachine
from h2.stream import StreamInputs, StreamState

IDLE, SERVER_OPEN = ConnectionState.IDLE, ConnectionState.SERVER_OPEN
RECV_HEADERS, SEND_HEADERS = ConnectionInputs.RECV_HEADERS, ConnectionInputs.SEND_HEADERS
SEND_DATA = ConnectionInputs.SEND_DATA
STREAM_RECV_HEADERS, STREAM_SEND_HEADERS = StreamInputs.RECV_HEADERS, StreamInputs.SEND_HEADERS
STREAM_RECV_END, STREAM_SEND_END = StreamInputs.RECV_END_STREAM, StreamInputs.SEND_END_STREAM
STREAM_SEND_DATA = StreamInputs.SEND_DATA


def _open_stays(input_: ConnectionInputs) -> bool:
    """Whether h2 takes input_ in SERVER_OPEN with no function and no change of state."""
    return _ConnectionMachine._transitions.get((SERVER_OPEN, input_)) == (None, SERVER_OPEN)


RECV_HEADERS_STAYS = _open_stays(RECV_HEADERS)
"""A connection in SERVER_OPEN needs no call for RECV_HEADERS (likewise the two below)."""
SEND_HEADERS_STAYS = _open_stays(SEND_HEADERS)
SEND_DATA_STAYS = _open_stays(SEND_DATA)
STREAM_DATA_STAYS = frozenset(
    state
    for state in StreamState
    if h2.stream._transitions.get((state, STREAM_SEND_DATA)) == (None, state)
)
"""Stream states in which h2 takes SEND_DATA with no function and no change of state."""
