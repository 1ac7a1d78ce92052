"""Access lines written straight to the log stream, without a `logging.LogRecord` per request.

A record, its handler chain and the JSON encoder cost 20-30 µs per line; a request through the
bridge writes two. `line_writer` builds, once per kind of line, a function that formats the line
(json: the keys zipped with the values, written by orjson, as the JSON formatter writes its
records; text: a template made at start) and hands it to the handler `setup_logging` gave the
root logger, which writes access lines in batches (rest_bridge.batched_handler: a write per
line cost more than making it). The line is the one the formatters of rest_bridge.logs would
write for the same record, key for key (a test holds them equal), and it passes `redact` as
every line does. Written by orjson, the two lines of a request cost 23 000 instructions less
than with json's string encoder per value (bench.inprocess_cost under callgrind).

It writes only while that handler is the root logger's only one: anyone who adds a handler (a
test's log capture, an application embedding the service) gets real records again, through
`logging`, so every handler sees every line. The writer answers False then, and the caller logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from rest_bridge.logs import installed_output, json_line, redact, rfc3339, text_value

LineWriter = Callable[..., bool]
"""Writes one line of the values given in its keys' order; False when it wrote nothing."""

ACCESS_LOGGER = "checkpoint.access"


def line_writer(event: str, keys: Sequence[str]) -> LineWriter | None:
    """A writer of `event` lines with these fields after `event`, or None before set-up."""
    output = installed_output()
    if output is None:
        return None
    root = logging.getLogger()
    handler, log_format = output
    only = [handler]
    end = handler.terminator
    if log_format == "json":
        names = ("time", "level", "logger", "event", *keys)
        fixed = ("info", ACCESS_LOGGER, event)

        def write_json(*values: object) -> bool:
            if root.handlers != only:
                return False
            line = json_line(dict(zip(names, (rfc3339(time.time()), *fixed, *values), strict=True)))
            handler.write_soon(redact(line) + end)
            return True

        return write_json
    pairs = "".join(f" {key}=%s" for key in keys)
    template = f" INFO {ACCESS_LOGGER}: {event}{pairs}"

    def write_text(*values: object) -> bool:
        if root.handlers != only:
            return False
        body = template % tuple(map(text_value, values))
        handler.write_soon(redact(f"{rfc3339(time.time())}{body}") + end)
        return True

    return write_text
