"""rest_bridge.tracing: when spans are exported, and the ids-only spans used when they are not."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

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
