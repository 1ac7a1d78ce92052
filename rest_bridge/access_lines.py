"""Access lines written straight to the log stream, without a `logging.LogRecord` per request.

A record, its handler chain and the JSON encoder cost 20-30 µs per line; a request through the
bridge writes two. `line_writer` builds, once per kind of line, a function that formats the line
from the fields the caller gives as a dict (json: orjson writes the fields, after a head made at
start that holds the time, level, logger and event; text: `key=value` pairs after a head made
at start) and hands it to the handler `setup_logging` gave the root logger, which writes access
lines in batches (rest_bridge.batched_handler: a write per line cost more than making it). The
line is the one the formatters of rest_bridge.logs would write for the same record, key for
key (a test holds them equal), and it passes `redact` as every line does.

It writes only while that handler is the root logger's only one: anyone who adds a handler (a
test's log capture, an application embedding the service) gets real records again, through
`logging`, so every handler sees every line. The writer answers False then, and the caller logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rest_bridge.logs import installed_output, json_line, redact, rfc3339, text_value

LineWriter = Callable[[dict[str, object]], bool]
"""Writes one line of these fields (in their order, after `event`; each caller's dict literal
is its line's schema); False when it wrote nothing."""

ACCESS_LOGGER = "checkpoint.access"


def line_writer(event: str) -> LineWriter | None:
    """A writer of `event` lines, or None before set-up."""
    output = installed_output()
    if output is None:
        return None
    root = logging.getLogger()
    handler, log_format = output
    only = [handler]
    end = handler.terminator
    if log_format == "json":
        # `{"time":"…",` then level, logger and event as json_line writes them, then the fields'
        # object without its `{`: the bytes json_line writes for the whole object. redact reads
        # the fields only: the head holds no credential word and ends in `,`, so no match
        # crosses into it.
        fixed = json_line({"level": "info", "logger": ACCESS_LOGGER, "event": event})[1:-1]
        head = f'",{fixed},'

        def write_json(fields: dict[str, object]) -> bool:
            if root.handlers != only:
                return False
            body = redact(json_line(fields))
            handler.write_soon(f'{{"time":"{rfc3339(time.time())}{head}{body[1:]}{end}')
            return True

        return write_json
    head_text = f" INFO {ACCESS_LOGGER}: {event}"

    def write_text(fields: dict[str, object]) -> bool:
        if root.handlers != only:
            return False
        pairs = "".join([f" {key}={text_value(value)}" for key, value in fields.items()])
        handler.write_soon(redact(f"{rfc3339(time.time())}{head_text}{pairs}") + end)
        return True

    return write_text
