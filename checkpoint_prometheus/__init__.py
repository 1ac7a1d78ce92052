"""Prometheus conventions both halves share, and the /metrics endpoint each process serves.

A leaf library: it imports neither `server` nor `rest_bridge`, so both may import it. The names
follow the ecosystem's (go-grpc-prometheus for gRPC, OpenTelemetry's semantic conventions for
HTTP), so dashboards and alerts written for those work here unchanged.
"""

from __future__ import annotations

from checkpoint_prometheus.calls import CallSeries
from checkpoint_prometheus.conventions import (
    GO_BUCKETS,
    GRPC_LABELS,
    SERVER_STREAM,
    UNARY,
    code_name,
    split_method,
)
from checkpoint_prometheus.endpoint import MetricsEndpoint, new_registry, serve_metrics

__all__ = [
    "GO_BUCKETS",
    "GRPC_LABELS",
    "SERVER_STREAM",
    "UNARY",
    "CallSeries",
    "MetricsEndpoint",
    "code_name",
    "new_registry",
    "serve_metrics",
    "split_method",
]
