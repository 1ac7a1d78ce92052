"""What writing one OTLP export request costs per span: rest_bridge.otlp_wire against the SDK's
own encoder, on a batch shaped like the service's spans (the reason otlp_wire exists; a figure
of `make bench`, never a timed test)."""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rest_bridge import otlp_wire

SPANS = 512
"""One batch of the BatchSpanProcessor at its default size."""


def encoding_cost(rounds: int = 20) -> dict[str, float]:
    """CPU microseconds per span to write a batch of SPANS: ours, the SDK's, best of rounds."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("rest_bridge")
    for i in range(SPANS):
        attributes = {"rpc.system": "grpc", "rpc.service": "checkpoint.v1.CheckpointService"}
        with tracer.start_span(
            "GET /v1/checkpoints/{checkpoint_id}", attributes=attributes
        ) as span:
            span.set_attributes({"http.response.status_code": 200, "request_id": f"r{i}"})
    spans = list(exporter.get_finished_spans())
    timed: dict[str, Callable[[], bytes]] = {
        "wire_us_per_span": lambda: otlp_wire.encode_spans(spans),
        "sdk_us_per_span": lambda: sdk_encode(spans).SerializePartialToString(),
    }
    cost = {}
    for name, encode in timed.items():
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            encode()
            best = min(best, time.process_time() - started)
        cost[name] = best * 1e6 / len(spans)
    provider.shutdown()
    return cost


if __name__ == "__main__":
    figures = encoding_cost()
    print(
        f"OTLP encoding, µs per span: otlp_wire {figures['wire_us_per_span']:.1f}, "
        f"SDK {figures['sdk_us_per_span']:.1f} "
        f"({figures['sdk_us_per_span'] / figures['wire_us_per_span']:.1f}x)"
    )
