"""Process logging for both commands: one format (json or text) and one level for every logger.

`checkpoint-rest-bridge` and `checkpoint-server serve` call `setup_logging` once, before anything
logs; uvicorn's and grpc's loggers propagate to the same root handler, so start-up, shutdown,
errors and access lines share the format. It lives in the bridge for the reason options.py does:
both entry points may import the bridge, the bridge may not import the server.

A record may carry structured fields as `extra={"fields": {...}}` (the access-line writers of
both sides do); json puts them in the object, text appends them as key=value. Every emitted line
passes `redact`, a last guard against a bearer token reaching a log by some path nobody meant.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from math import floor
from typing import Any, TextIO

import orjson
from opentelemetry import trace

from checkpoint_tracing.ids import CURRENT
from rest_bridge.batched_handler import BatchedStreamHandler
from rest_bridge.options import Option

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("json", "text")
FRAMEWORK_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "grpc")
"""Loggers that would otherwise keep handlers or levels of their own."""

# Authorization schemes followed by a credential, and the service's own token prefix.
_SECRETS = re.compile(
    r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/]{8,}=*|\bckpt_[A-Za-z0-9\-._~+/]+=*"
)


def _choice(kind: str, allowed: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse type accepting one of allowed: unlike `choices`, it also checks a default
    taken from the environment, so a bad CHECKPOINT_LOG_* value is a usage error too."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise argparse.ArgumentTypeError(
                f"{kind} must be one of {', '.join(allowed)}, got {text!r}"
            )
        return value

    parse.__name__ = kind  # argparse names the type in its error message
    return parse


LOG_OPTIONS: tuple[Option, ...] = (
    Option(
        "--log-format",
        "json (one object per line) or text; default: text when stderr is a terminal, else json",
        env="CHECKPOINT_LOG_FORMAT",
        default=None,
        type=_choice("log format", FORMATS),
    ),
    Option(
        "--log-level",
        "debug, info, warning or error; access lines are info",
        env="CHECKPOINT_LOG_LEVEL",
        default="info",
        type=_choice("log level", tuple(LEVELS)),
    ),
)


def redact(line: str) -> str:
    """line with any bearer/basic credential or ckpt_ token replaced by [redacted]."""
    lowered = line.lower()  # a plain substring test first: the regex runs on few lines
    if "bearer" not in lowered and "basic" not in lowered and "ckpt_" not in lowered:
        return line
    return _SECRETS.sub(_mask, line)


def _mask(found: re.Match[str]) -> str:
    if found.group(1):
        return f"{found.group(1)}{found.group(2)}[redacted]"
    return "ckpt_[redacted]"


_second: list[tuple[float, str]] = [(-1.0, "")]
"""The last whole second formatted, reused by the lines of the same second."""
_MILLIS = tuple(f".{n:03d}Z" for n in range(1001))
"""Each millisecond's tail, as `:03d` writes it (1000 too, should a fraction round up)."""


def rfc3339(created: float) -> str:
    """A record's time as RFC 3339 UTC with milliseconds, e.g. 2026-12-01T09:15:00.123Z."""
    fraction = created % 1.0  # created - int(created), exactly: int() of a float costs 3x more
    seconds = created - fraction
    cached, prefix = _second[0]
    if cached != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second[0] = (seconds, prefix)
    return prefix + _MILLIS[floor(fraction * 1000)]


def _trace_ids() -> dict[str, str]:
    """The current span's ids, or the bridge request's when nothing records (a log line written
    during a request names its trace)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
    plain = CURRENT.get()
    return {} if plain is None else {"trace_id": plain.trace_id, "span_id": plain.span_id}


_fallback = json.JSONEncoder(separators=(",", ":"), default=str).encode
"""For what orjson refuses (a lone surrogate, an integer past 64 bits): the same compact form,
with non-ASCII escaped so such a line stays valid UTF-8."""


def json_line(obj: dict[str, Any]) -> str:
    """obj as one compact JSON line, by orjson (a grpc_call access line: 43 000 instructions
    against 51 000 with json's encoder, callgrind); anything orjson cannot write, json writes."""
    try:
        return orjson.dumps(obj, default=str).decode()
    except TypeError:  # orjson.JSONEncodeError
        return _fallback(obj)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, then the record's fields or its message."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        out: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if fields:
            out.update(fields)
        else:
            out["message"] = record.getMessage()
            out.update(_trace_ids())
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return redact(json_line(out))


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger: message key=value ...`, for a person reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{rfc3339(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        pairs = fields if fields else _trace_ids()
        if pairs:
            head += " " + " ".join(f"{k}={text_value(v)}" for k, v in pairs.items() if k != "event")
        if record.exc_info:
            head += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            head += "\n" + self.formatStack(record.stack_info)
        return redact(head)


def text_value(value: object) -> str:
    """A value as key=value text shows it: None as -, quoted when empty or holding ' "='."""
    text = "-" if value is None else str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


def resolve_format(chosen: str | None, stream: TextIO) -> str:
    """The format asked for, else text on a terminal and json otherwise."""
    if chosen:
        return chosen
    return "text" if stream.isatty() else "json"


_installed: list[tuple[BatchedStreamHandler, str] | None] = [None]
"""The root handler setup_logging installed and its format (rest_bridge.access_lines writes
access lines to it directly)."""


def installed_output() -> tuple[BatchedStreamHandler, str] | None:
    """The handler setup_logging gave the root logger and its format; None before set-up."""
    return _installed[0]


def setup_logging(log_format: str | None, level: str, stream: TextIO | None = None) -> str:
    """Send every logger's records to stream (stderr) in one format at one level; the format."""
    out = sys.stderr if stream is None else stream
    chosen = resolve_format(log_format, out)
    handler = BatchedStreamHandler(out)
    handler.setFormatter(FORMATTERS[chosen]())
    _installed[0] = (handler, chosen)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    for name in FRAMEWORK_LOGGERS:
        framework = logging.getLogger(name)
        framework.handlers.clear()
        framework.propagate = True
        framework.setLevel(logging.NOTSET)
    logging.captureWarnings(True)
    # What no line shows, not gathered per record (the logging HOWTO's "Optimization").
    logging._srcfile = None  # no caller frame lookup
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    return chosen
