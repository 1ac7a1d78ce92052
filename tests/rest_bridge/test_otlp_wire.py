"""rest_bridge.otlp_wire writes the export request the SDK's encoder would: both parse to the
same ExportTraceServiceRequest, for spans of every shape the SDK makes."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from rest_bridge import otlp_wire

EVERY_TYPE: dict[str, Any] = {
    "str": "value",
    "empty": "",
    "unicode": "é ✓ 𝄞",
    "true": True,
    "false": False,
    "zero": 0,
    "int": 42,
    "negative": -7,
    "int64 max": 2**63 - 1,
    "int64 min": -(2**63),
    "float": 1.5,
    "float zero": 0.0,
    "negative float": -2.25e300,
    "bytes": b"\x00\xff",
    "strs": ("a", "", "c"),
    "ints": (1, -1, 0),
    "bools": (True, False),
    "floats": (0.5, -0.0),
    "empty tuple": (),
    "none": None,
    "map": {"k": "v", "n": 1, "nested": {"deep": (1, 2)}},
}


def _spans(provider: TracerProvider, exporter: InMemorySpanExporter) -> Iterator[ReadableSpan]:
    exporter.clear()
    tracer = provider.get_tracer("test.scope", "1.2.3", schema_url="https://example.com/s/1")
    other = provider.get_tracer("other", attributes={"scope.attr": "x"})
    bare = provider.get_tracer("")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "abc"), ("other", "1")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    links = [
        Link(remote, {"link.attr": 1, "list": ("x",)}),
        Link(SpanContext(1, 2, is_remote=False), None),
    ]
    for kind in SpanKind:
        with tracer.start_as_current_span(f"span {kind.name}", kind=kind) as span:
            span.set_attributes(EVERY_TYPE)
            span.add_event("plain")
            span.add_event("with attributes", {"e": 1, "f": ("a", "b")}, timestamp=12345)
            with other.start_as_current_span("child", attributes={"c": 2.5}, links=links):
                pass
    with tracer.start_span("remote child", context=parent, kind=SpanKind.SERVER) as span:
        span.set_status(Status(StatusCode.ERROR, "went wrong"))
    with tracer.start_span("ok status") as span:
        span.set_status(Status(StatusCode.OK))
    try:
        with bare.start_as_current_span("raises"):
            raise ValueError("boom ✗")
    except ValueError:
        pass
    tracer.start_span("", start_time=1).end(end_time=2)
    with tracer.start_span("too many", attributes={f"a{i}": i for i in range(10)}) as span:
        for i in range(10):
            span.add_event(f"e{i}", {f"x{j}": j for j in range(10)})
    yield from exporter.get_finished_spans()


def _provider(resource: Resource) -> tuple[TracerProvider, InMemorySpanExporter]:
    limits = SpanLimits(max_span_attributes=40, max_events=8, max_event_attributes=4)
    provider = TracerProvider(resource=resource, span_limits=limits)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _both(spans: list[ReadableSpan]) -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest]:
    ours = ExportTraceServiceRequest.FromString(otlp_wire.encode_spans(spans))
    return ours, sdk_encode(spans)


def test_varied_spans_parse_to_what_the_sdk_encodes() -> None:
    first = _provider(Resource.create({"service.name": "one", "n": 3}))
    second = _provider(Resource({"service.name": "two"}, "https://example.com/r/1"))
    spans = [*_spans(*first), *_spans(*second), *_spans(*first)]
    ours, theirs = _both(spans)
    assert len(theirs.resource_spans) == 2
    assert sum(len(s.spans) for r in theirs.resource_spans for s in r.scope_spans) == len(spans)
    assert ours == theirs
    dropped = [s for r in ours.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert any(s.dropped_events_count and s.events[0].dropped_attributes_count for s in dropped)
    assert any(s.flags == 0x300 and s.trace_state for s in dropped)


def test_the_same_pieces_encode_alike_from_the_cache() -> None:
    """Encoding the same spans again (cached pieces) and with a full cache gives the same."""
    provider, exporter = _provider(Resource.create({}))
    spans = list(_spans(provider, exporter))
    once = otlp_wire.encode_spans(spans)
    assert otlp_wire.encode_spans(spans) == once
    otlp_wire._PAIRS.clear()
    assert otlp_wire.encode_spans(spans) == once
    assert ExportTraceServiceRequest.FromString(once) == sdk_encode(spans)


def test_equal_values_of_other_types_or_signs_keep_their_own_encoding() -> None:
    """True == 1 and -0.0 == 0.0 in Python; each still encodes as itself."""
    provider, exporter = _provider(Resource.create({}))
    tracer = provider.get_tracer("t")
    for value in (1, True, 1.0, 0.0, -0.0, 0, False):
        tracer.start_span("v", attributes={"v": value}).end()
    spans = list(exporter.get_finished_spans())
    ours = ExportTraceServiceRequest.FromString(otlp_wire.encode_spans(spans))
    assert ours == sdk_encode(spans)
    values = [s.attributes[0].value for s in ours.resource_spans[0].scope_spans[0].spans]
    assert [v.WhichOneof("value") for v in values] == [
        "int_value",
        "bool_value",
        "double_value",
        "double_value",
        "double_value",
        "int_value",
        "bool_value",
    ]
    assert [math.copysign(1, v.double_value) for v in values[3:5]] == [1, -1]


def test_a_pair_protobuf_refuses_is_left_out_like_the_sdk_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, exporter = _provider(Resource.create({}))
    with provider.get_tracer("t").start_span("big", attributes={"big": 2**64, "ok": 1}):
        pass
    spans = list(exporter.get_finished_spans())
    with caplog.at_level(logging.ERROR):
        ours, theirs = _both(spans)
    assert ours == theirs
    assert [kv.key for kv in ours.resource_spans[0].scope_spans[0].spans[0].attributes] == ["ok"]


def test_varint_matches_protobuf() -> None:
    for number in (0, 1, 127, 128, 300, 16383, 16384, 2**32, 2**63 - 1, 2**63, 2**64 - 1):
        value = AnyValue.FromString(b"\x18" + otlp_wire.varint(number))
        assert value.int_value % 2**64 == number
        assert value.SerializeToString() == b"\x18" + otlp_wire.varint(number)
