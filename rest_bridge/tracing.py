"""Tracing for both commands: OpenTelemetry, configured by the standard OTEL_* variables.

`setup_tracing` installs the process's tracer provider once, at start. With an OTLP endpoint
configured (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, and
OTEL_TRACES_EXPORTER not "none") it is the SDK's, sampling by OTEL_TRACES_SAMPLER and exporting
over OTLP/HTTP in batches. Without one it is `IdsOnlyTracerProvider`: spans record nothing and no
processor runs, yet each has real ids (continuing an incoming traceparent, keeping its sampled
flag), so access lines carry the trace id and the next hop continues the same trace. The request
and call observers of both halves see that provider and skip spans altogether, keeping the ids
as strings (checkpoint_tracing.ids, server.call_observer).

Instrumented code uses only the OpenTelemetry API (trace.get_tracer), so the server's modules
need nothing from here; it lives in the bridge because both entry points may import the bridge.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def exporter_configured(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for spans to be exported over OTLP."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter in ("none", ""):
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


class IdsOnlyTracer(trace.Tracer):
    """Spans that are ids only: a child keeps its parent's trace id, flags and trace state."""

    def start_span(  # noqa: PLR0917 (the API's signature)
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        parent = trace.get_current_span(context).get_span_context()
        # random, as the SDK's RandomIdGenerator: ids need to be unique, not secret.
        span_id = random.getrandbits(64) or 1
        if parent.is_valid:
            ids = SpanContext(
                parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state
            )
        else:
            ids = SpanContext(random.getrandbits(128) or 1, span_id, False, _UNSAMPLED)
        return NonRecordingSpan(ids)

    @_agnosticcontextmanager  # the API's own NoOpTracer uses it too
    def start_as_current_span(  # noqa: PLR0917 (the API's signature)
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        span = self.start_span(name, context, kind, attributes)
        with trace.use_span(span, end_on_exit=end_on_exit) as current:
            yield current


class IdsOnlyTracerProvider(trace.NoOpTracerProvider):
    """The provider when nothing exports: one IdsOnlyTracer for every instrumentation scope.

    A NoOpTracerProvider, so instrumented code of both halves can tell, through the API alone,
    that nothing records and keep plain ids instead of spans (checkpoint_tracing.ids).
    """

    def __init__(self) -> None:
        self._tracer = IdsOnlyTracer()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace.Tracer:
        return self._tracer


def build_provider(
    service_name: str, environ: Mapping[str, str] | None = None
) -> tuple[trace.TracerProvider, Callable[[], None]]:
    """The tracer provider the environment asks for, and how to flush and stop it.

    OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) overrides service_name.
    """
    env = os.environ if environ is None else environ
    if not exporter_configured(env):
        return IdsOnlyTracerProvider(), _nothing
    # Imported only when spans are exported: a process that exports nothing never loads the SDK.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from rest_bridge.otlp_exporter import WireSpanExporter

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; attributes given
    # to it would win over them, so the default name is given only when they name none.
    named = "service.name" in _resource_keys(env)
    made = Resource.create() if named else Resource.create({"service.name": service_name})
    resource = _hashed_once(Resource)(made.attributes, made.schema_url)
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER(_ARG)
    provider.add_span_processor(BatchSpanProcessor(WireSpanExporter()))
    return provider, provider.shutdown


def _hashed_once(base: type[Any]) -> type[Any]:
    """base (the SDK's Resource) with its hash computed once: the OTLP encoder groups every
    exported span by its resource, and Resource hashes by JSON-encoding its attributes, about
    a tenth of the encoding's cost. A resource never changes, so neither does its hash."""

    class HashedOnce(base):  # type: ignore[misc]  # base is only known at run time
        def __init__(self, attributes: Attributes, schema_url: str | None = None) -> None:
            super().__init__(attributes, schema_url)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash  # type: ignore[no-any-return]  # an int, set above

    return HashedOnce


def _resource_keys(env: Mapping[str, str]) -> Sequence[str]:
    pairs = env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    keys = [pair.split("=", 1)[0].strip() for pair in pairs]
    if env.get("OTEL_SERVICE_NAME", "").strip():
        keys.append("service.name")
    return keys


def _nothing() -> None:
    return None


def setup_tracing(service_name: str) -> Callable[[], None]:
    """Install the process's tracer provider (once, at start); returns its shutdown (flush)."""
    provider, shutdown = build_provider(service_name)
    trace.set_tracer_provider(provider)
    return shutdown
