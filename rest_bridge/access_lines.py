"""Access lines written straight to the log stream, without a `logging.LogRecord` per request.

A record, its handler chain and the JSON encoder cost 20-30 µs per line; a request through the
bridge writes two. `line_writer` builds, once per kind of line, a function that formats the line
from a template made at start (the time, the values, escaped by the C string encoder) and
hands it to the handler `setup_logging` gave the root logger, which writes access lines in
batches (rest_bridge.batched_handler: a write per line cost more than making it). The line
is the one the formatters of rest_bridge.logs would write for the same record, key for key (a
test holds them equal), and it passes `redact` as every line does.

It writes only while that handler is the root logger's only one: anyone who adds a handler (a
test's log capture, an application embedding the service) gets real records again, through
`logging`, so every handler sees every line. The writer answers False then, and the caller logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring

from rest_bridge.logs import installed_output, redact, rfc3339, text_value

LineWriter = Callable[..., bool]
"""Writes one line of the values given in its keys' order; False when it wrote nothing."""

ACCESS_LOGGER = "checkpoint.access"


def _json_value(value: object) -> str:
    """value as the JSON encoder (ensure_ascii off, default=str) writes it."""
    kind = value.__class__
    if kind is str:
        return encode_basestring(value)  # type: ignore[arg-type]  # a str, tested just above
    if value is None:
        return "null"
    if kind is int or kind is float:
        return repr(value)
    if kind is bool:
        return "true" if value else "false"
    return encode_basestring(str(value))


def line_writer(event: str, keys: Sequence[str]) -> LineWriter | None:
    """A writer of `event` lines with these fields after `event`, or None before set-up."""
    output = installed_output()
    if output is None:
        return None
    root = logging.getLogger()
    handler, log_format = output
    only = [handler]
    if log_format == "json":
        head = '{"time": "'
        fields = "".join(f', "{key}": %s' for key in keys)
        template = f'", "level": "info", "logger": "{ACCESS_LOGGER}", "event": "{event}"{fields}}}'
        encode: Callable[[object], str] = _json_value
    else:
        head = ""
        pairs = "".join(f" {key}=%s" for key in keys)
        template = f" INFO {ACCESS_LOGGER}: {event}{pairs}"
        encode = text_value

    def write(*values: object) -> bool:
        if root.handlers != only:
            return False
        body = template % tuple(map(encode, values))
        handler.write_soon(redact(f"{head}{rfc3339(time.time())}{body}") + handler.terminator)
        return True

    return write
