"""rest_bridge.access_lines: access lines written without a log record, as the formatters would.

Each check writes through the real access-line functions of both halves (the bridge's
write_http, the server's write_call with the writer the entry point hands it) into a stream set
up by setup_logging, and compares with what JsonFormatter/TextFormatter write for the record the
fallback path logs: the same line, key for key, but for the time.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from rest_bridge import access_log as bridge_access
from rest_bridge.access_log import line_writer, start_access_lines, write_http
from rest_bridge.logs import JsonFormatter, TextFormatter, setup_logging
from server import access_log as server_access

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
HTTP: dict[str, Any] = {
    "method": "GET",
    "route": "/v1/checkpoints/{checkpoint_id}",
    "status": 200,
    "grpc_code": "OK",
    "bytes_out": 275,
    "client": "127.0.0.1:59560",
    "duration_ms": 11.90349,
    "request_id": 'odd "id" \\ é\n',
    "trace_id": "9f56e0337499286e8eea5928e5426826",
    "span_id": "88db342900f67a84",
}
CALL: dict[str, Any] = {
    "grpc_method": "/checkpoint.v1.CheckpointService/GetCheckpoint",
    "grpc_code": "NOT_FOUND",
    "peer": "ipv6:[::1]:36038",
    "token_name": None,
    "duration_ms": 0.5,
    "request_id": "7f3a9c1e0b2d4e5f8a6b4c3d2e1f0a9b",
    "trace_id": None,
    "span_id": None,
}


@pytest.fixture
def direct(restore_root: None) -> Iterator[None]:
    """After the test: the root logger as it was, and both halves logging through records."""
    yield
    bridge_access._direct[0] = None
    server_access.use_writer(None)


def _set_up(log_format: str, level: str = "info") -> io.StringIO:
    """setup_logging on a fresh stream, and both halves' writers, as the entry points do."""
    stream = io.StringIO()
    setup_logging(log_format, level, stream)
    start_access_lines()
    server_access.use_writer(line_writer(server_access.EVENT))
    return stream


def _write_both() -> None:
    write_http(**HTTP)
    server_access.write_call(**CALL)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _records_of_both() -> list[logging.LogRecord]:
    """The records the fallback path logs for the same two lines (no direct writer)."""
    bridge_access._direct[0] = None
    server_access.use_writer(None)
    capture = _Records()
    root = logging.getLogger()
    root.handlers[:] = [capture]
    root.setLevel(logging.INFO)
    _write_both()
    return capture.records


def _no_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any access record an error: the lines must be written directly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an access line went through logging")

    monkeypatch.setattr(bridge_access.ACCESS, "info", refuse)
    monkeypatch.setattr(server_access.ACCESS, "info", refuse)


@pytest.mark.usefixtures("direct")
def test_json_lines_are_the_formatters_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Direct JSON lines parse to the objects, and are byte for byte the lines, that the JSON
    formatter writes for the same records (odd characters escaped alike), but for the time."""
    stream = _set_up("json")
    with monkeypatch.context() as patched:
        _no_records(patched)
        _write_both()
    lines = stream.getvalue().splitlines()
    expected = [JsonFormatter().format(r) for r in _records_of_both()]
    assert len(lines) == len(expected) == 2
    for line, want in zip(lines, expected, strict=True):
        assert TIME.fullmatch(json.loads(line)["time"])
        assert TIME.sub("T", line) == TIME.sub("T", want)
    http, call = (json.loads(line) for line in lines)
    assert list(http)[:4] == ["time", "level", "logger", "event"]
    assert (http["event"], http["request_id"], http["duration_ms"]) == (
        "http_request",
        HTTP["request_id"],
        11.903,
    )
    assert (call["event"], call["token_name"], call["trace_id"]) == ("grpc_call", None, None)


@pytest.mark.usefixtures("direct")
def test_text_lines_are_the_formatters_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Direct text lines are what the text formatter writes for the same records."""
    stream = _set_up("text")
    with monkeypatch.context() as patched:
        _no_records(patched)
        _write_both()
    lines = stream.getvalue().splitlines()
    expected = [TextFormatter().format(r) for r in _records_of_both()]
    assert [TIME.sub("T", line) for line in lines] == [TIME.sub("T", e) for e in expected]
    assert lines[1].split(" ", 1)[1].startswith("INFO checkpoint.access: grpc_call request_id=")


@pytest.mark.usefixtures("direct")
def test_above_info_no_access_line_is_written() -> None:
    """--log-level warning writes no access line, direct or not."""
    stream = _set_up("json", "warning")
    _write_both()
    assert stream.getvalue() == ""


@pytest.mark.usefixtures("direct")
def test_another_handler_gets_records_again() -> None:
    """With a second handler on the root logger (a capture), lines are records, so that
    handler sees them, and the stream still gets them through the formatter."""
    stream = _set_up("json")
    capture = _Records()
    logging.getLogger().addHandler(capture)
    _write_both()
    assert [r.fields["event"] for r in capture.records] == ["http_request", "grpc_call"]  # type: ignore[attr-defined]
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "http_request",
        "grpc_call",
    ]


@pytest.mark.usefixtures("direct")
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_credential_in_any_value_is_masked(log_format: str) -> None:
    """Whatever a value holds, a bearer credential or a ckpt_ token never reaches the line."""
    stream = _set_up(log_format)
    write_http(**{**HTTP, "request_id": "Bearer sekritsekrit", "client": "ckpt_sekrit2"})
    server_access.write_call(**{**CALL, "token_name": "basic c2Vrcml0c2Vrcml0"})
    text = stream.getvalue()
    assert len(text.splitlines()) == 2
    assert "sekrit" not in text
    assert "c2Vr" not in text
    assert "[redacted]" in text
