"""The SDK's OTLP/HTTP span exporter, with its request bytes written by rest_bridge.otlp_wire.

`WireSpanExporter` is the SDK's `OTLPSpanExporter` in all but one step: its `export` is the
SDK's own code (endpoint, headers, compression, timeout, size limit, retries, its metrics: all
from the OTEL_* variables as before) run with `encode_spans` bound to a stand-in whose
`SerializePartialToString` is otlp_wire's encoding. The SDK's module is left as it is: only this
class's copy of `export` sees the stand-in. Should a later SDK build its request otherwise, the
copy runs the SDK's encoder unchanged (tests/rest_bridge/test_otlp_exporter.py would say so).
"""

from __future__ import annotations

import types
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http import trace_exporter
from opentelemetry.sdk.trace import ReadableSpan

from rest_bridge.otlp_wire import encode_spans


class _Request:
    """What the SDK's export asks of the ExportTraceServiceRequest it builds: its bytes."""

    __slots__ = ("_spans",)

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self._spans = spans

    def SerializePartialToString(self) -> bytes:  # protobuf's name, which the SDK calls
        return encode_spans(self._spans)


def _export_with(encoder: object) -> types.FunctionType:
    """The SDK exporter's export, its module's globals but `encode_spans` = encoder."""
    sdk = trace_exporter.OTLPSpanExporter.export
    scope = {**sdk.__globals__, "encode_spans": encoder}
    export = types.FunctionType(
        sdk.__code__, scope, sdk.__name__, sdk.__defaults__, sdk.__closure__
    )
    export.__qualname__ = sdk.__qualname__
    return export


class WireSpanExporter(trace_exporter.OTLPSpanExporter):
    """OTLPSpanExporter writing its requests with rest_bridge.otlp_wire."""

    export = _export_with(_Request)
