"""rest_bridge.tracing: when spans are exported, and the ids-only spans used when they are not."""

from __future__ import annotations

import random
import re

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from checkpoint_tracing import ids as ids_module
from checkpoint_tracing.ids import continue_trace
from rest_bridge.tracing import IdsOnlyTracerProvider, build_provider, exporter_configured

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("environ", "configured"),
    [
        ({}, False),
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_an_exporter_is_configured_only_by_an_endpoint(
    environ: dict[str, str], configured: bool
) -> None:
    """Only an OTLP endpoint turns export on, and none/disabled turn it off."""
    assert exporter_configured(environ) is configured


def test_without_an_exporter_spans_are_ids_that_continue_the_parent() -> None:
    """Ids-only spans record nothing, get fresh ids at a root, and keep a parent's trace id,
    sampled flag and its own new span id below one."""
    tracer = IdsOnlyTracerProvider().get_tracer("t")
    root = tracer.start_span("root")
    assert not root.is_recording()
    assert root.get_span_context().is_valid
    parent = SpanContext(0xABC, 0xDEF, True, TraceFlags(TraceFlags.SAMPLED))
    child = tracer.start_span("child", trace.set_span_in_context(NonRecordingSpan(parent)))
    ids = child.get_span_context()
    assert (ids.trace_id, ids.trace_flags.sampled) == (0xABC, True)
    assert ids.span_id not in (0, 0xDEF)
    with tracer.start_as_current_span("current") as current:
        assert trace.get_current_span() is current


def test_with_an_exporter_the_sdk_is_named_after_the_service() -> None:
    """An endpoint gives the SDK's provider, service.name defaulting to the command's name
    unless OTEL_SERVICE_NAME names another."""
    provider, shutdown = build_provider("checkpoint-server", ENDPOINT)
    try:
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "checkpoint-server"
    finally:
        shutdown()
    provider, shutdown = build_provider("x", {**ENDPOINT, "OTEL_SERVICE_NAME": "mine"})
    shutdown()
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] != "x"


@pytest.mark.parametrize(
    ("traceparent", "tracestate"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "k=v,a=b"),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
        ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later", None),
        ("garbage", "k=v"),
        (None, None),
    ],
)
def test_plain_ids_continue_what_the_propagator_continues(
    traceparent: str | None, tracestate: str | None
) -> None:
    """Without spans (nothing records) a request keeps the trace id, flags and trace state
    the W3C propagator reads from the same headers, or starts a new trace where it finds none;
    its span id is always new, and its traceparent is what a span's would be."""
    carrier = {k: v for k, v in (("traceparent", traceparent), ("tracestate", tracestate)) if v}
    parent = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier))
    want = parent.get_span_context()
    ids = continue_trace(traceparent, tracestate)
    assert re.fullmatch(r"[0-9a-f]{32}", ids.trace_id)
    assert re.fullmatch(r"[0-9a-f]{16}", ids.span_id)
    assert ids.trace_id != "0" * 32
    assert ids.span_id != "0" * 16
    if want.is_valid:
        assert (ids.trace_id, ids.flags) == (f"{want.trace_id:032x}", f"{want.trace_flags:02x}")
        assert ids.state == want.trace_state.to_header()
        assert ids.span_id != f"{want.span_id:016x}"
    else:
        assert (ids.flags, ids.state) == ("00", "")
        assert continue_trace(traceparent, tracestate).trace_id != ids.trace_id
    assert ids.traceparent == f"00-{ids.trace_id}-{ids.span_id}-{ids.flags}"


def test_the_ids_only_provider_says_it_records_nothing() -> None:
    """Both halves tell from the API alone that nothing records: the provider is a no-op one."""
    assert isinstance(IdsOnlyTracerProvider(), trace.NoOpTracerProvider)
    assert not isinstance(TracerProvider(), trace.NoOpTracerProvider)


@pytest.mark.parametrize("drawn", [0, 1, 0xABC, 2**64 - 1])
def test_new_ids_are_zero_padded_lowercase_hex_and_never_zero(
    monkeypatch: pytest.MonkeyPatch, drawn: int
) -> None:
    """Small random draws keep their leading zeros; a zero draw becomes 1 in a trace or span id,
    as in the SDK."""
    monkeypatch.setattr(random, "getrandbits", lambda bits: drawn % (1 << bits))
    want = drawn or 1
    assert ids_module.new_span_id() == f"{want:016x}"
    assert ids_module.new_trace_id() == f"{want:032x}"
    assert ids_module.new_request_id() == f"{drawn:032x}"  # any 32 digits, zero included
