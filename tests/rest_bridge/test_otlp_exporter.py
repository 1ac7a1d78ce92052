"""rest_bridge.otlp_exporter: the SDK's OTLP/HTTP exporter, configured by OTEL_* as before,
sending the bytes rest_bridge.otlp_wire writes (to a real HTTP receiver on 127.0.0.1)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rest_bridge import otlp_wire
from rest_bridge.otlp_exporter import WireSpanExporter


class _Receiver:
    """Keeps each POST's path, headers and body; answers 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                posts.append((self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    got = _Receiver()
    yield got
    got.server.shutdown()
    got.server.server_close()


def _spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "exporter-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("rest_bridge")
    with (
        tracer.start_as_current_span("GET /v1/checkpoints/{id}", attributes={"n": 1}),
        tracer.start_as_current_span("upstream", attributes={"rpc.system": "grpc"}),
    ):
        pass
    return list(memory.get_finished_spans())


def test_the_sdk_exporter_sends_the_wire_encoding_as_configured(
    receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoint, headers and compression come from OTEL_*; the body is otlp_wire's."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-collector-key=secret-1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    spans = _spans()
    exporter = WireSpanExporter()
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
    [(path, headers, body)] = receiver.posts
    assert path == "/v1/traces"
    assert headers["x-collector-key"] == "secret-1"
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == otlp_wire.encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(gzip.decompress(body)) == sdk_encode(spans)


def test_an_unreachable_collector_fails_the_export_as_the_sdk_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    exporter = WireSpanExporter()
    try:
        assert exporter.export(_spans()) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
