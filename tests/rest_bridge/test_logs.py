"""rest_bridge.logs: the two formats, the masking of credentials, and the flags' validation."""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time

import pytest

from rest_bridge.logs import (
    LOG_OPTIONS,
    JsonFormatter,
    TextFormatter,
    redact,
    rfc3339,
    setup_logging,
)
from rest_bridge.options import add_options


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    given = args if args or "%s" not in message else ("x",)
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, message, given, None)
    record.created = 1764580500.25
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_is_one_object_with_time_level_logger_and_message() -> None:
    """A plain record is an object with RFC 3339 UTC time, lowercase level and its message."""
    line = JsonFormatter().format(_record())
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2025-12-01T09:15:00.250Z",
        "level": "warning",
        "logger": "t",
        "message": "hello x",
    }


def test_json_puts_a_records_fields_in_the_object() -> None:
    """Structured fields (the access lines') become keys of the object, not a message."""
    fields = {"event": "grpc_call", "request_id": "r", "token_name": None}
    out = json.loads(JsonFormatter().format(_record(fields=fields)))
    assert {k: out[k] for k in fields} == fields
    assert "message" not in out


def test_json_writes_what_orjson_refuses_as_valid_utf8_json() -> None:
    """A lone surrogate (a message built from undecodable bytes) and an integer past 64 bits
    still make one line of JSON, encodable as UTF-8, that reads back to the same values."""
    fields = {"event": "http_request", "note": "bad \udcff end", "big": 2**70, "nan": "ok"}
    line = JsonFormatter().format(_record(fields=fields))
    line.encode("utf-8")  # raises on an unescaped surrogate
    out = json.loads(line)
    assert (out["note"], out["big"], out["level"]) == ("bad \udcff end", 2**70, "warning")
    assert "\n" not in line


def test_json_lines_are_compact() -> None:
    """One object without spaces between tokens, as orjson writes it (the access lines too)."""
    line = JsonFormatter().format(_record(fields={"event": "grpc_call", "a b": "c d"}))
    assert line.startswith('{"time":"2025-12-01T09:15:00.250Z","level":"warning","logger":"t",')
    assert line.endswith('"event":"grpc_call","a b":"c d"}')


def test_text_appends_fields_as_key_value() -> None:
    """Text is `TIME LEVEL logger: message key=value`, quoting values with spaces."""
    fields = {"event": "http_request", "route": "/v1/x", "client": None, "note": "a b"}
    line = TextFormatter().format(_record("http_request", fields=fields))
    assert line == (
        '2025-12-01T09:15:00.250Z WARNING t: http_request route=/v1/x client=- note="a b"'
    )


def test_a_traceback_stays_inside_the_json_line() -> None:
    """An exception's traceback is a field of the one JSON line."""
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1
    assert "ValueError: boom" in json.loads(line)["exc_info"]


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("Authorization: Bearer abcdefgh1234", "Authorization: Bearer [redacted]"),
        ("basic  dXNlcjpwYXNzd29yZA==", "basic  [redacted]"),
        ("token ckpt_AbC-123_x/y+z== seen", "token ckpt_[redacted] seen"),
        ("missing bearer token: send it", "missing bearer token: send it"),
    ],
)
def test_credentials_are_masked(line: str, masked: str) -> None:
    """Bearer/Basic credentials and ckpt_ tokens are masked; prose about them is left alone."""
    assert redact(line) == masked


def test_every_emitted_line_is_masked() -> None:
    """The formatters mask what a careless message would leak."""
    record = _record("got %s", "Bearer ckpt_secretsecret")
    assert "secretsecret" not in JsonFormatter().format(record)
    assert "secretsecret" not in TextFormatter().format(record)


def _parse(argv: list[str], environ: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, LOG_OPTIONS, environ)
    return parser.parse_args(argv)


def test_the_flags_read_the_environment_and_refuse_bad_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CHECKPOINT_LOG_FORMAT/LEVEL are read; a bad value, flag or environment, is a usage error."""
    args = _parse([], {"CHECKPOINT_LOG_FORMAT": "TEXT", "CHECKPOINT_LOG_LEVEL": "debug"})
    assert (args.log_format, args.log_level) == ("text", "debug")
    assert (_parse([], {}).log_format, _parse([], {}).log_level) == (None, "info")
    for argv, environ in (([], {"CHECKPOINT_LOG_LEVEL": "loud"}), (["--log-format", "xml"], {})):
        with pytest.raises(SystemExit):
            _parse(argv, environ)
    assert "must be one of" in capsys.readouterr().err


@pytest.mark.usefixtures("restore_root")
def test_setup_sends_uvicorn_through_the_one_handler_at_the_chosen_level() -> None:
    """After setup, uvicorn's logger writes JSON through the root handler; debug is filtered
    at info, and a stream that is no terminal gets json by default."""
    stream = io.StringIO()
    assert setup_logging(None, "info", stream) == "json"
    logging.getLogger("uvicorn.error").info("Started server process [1]")
    logging.getLogger("uvicorn.error").debug("hidden")
    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "Started server process [1]"


def test_rfc3339_is_the_plain_format_across_seconds() -> None:
    """The cached second and the millisecond table write what strftime and :03d write, whichever
    second came before (forwards, backwards, the same one again, near a second's end)."""
    base = 1_796_000_000.0
    times = [base + d for d in (0.0, 0.0004, 0.9995, 0.999999, 1.0, 1.001, 0.5, 86_400.25, 0.0)]
    for created in times:
        whole = int(created)
        plain = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        assert rfc3339(created) == f"{plain}.{int((created - whole) * 1000):03d}Z"
