"""checkpoint_prometheus.families: lock-free children, exposed in prometheus-client's format."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from checkpoint_prometheus.families import Counter, Gauge, Histogram


def test_histogram_buckets_are_inclusive_cumulative_and_count_matches_inf() -> None:
    """A value on a bound falls in that bucket (le is <=), buckets accumulate, and _count
    equals the +Inf bucket."""
    registry = CollectorRegistry()
    child = Histogram("t_seconds", "doc", ("op",), registry, buckets=(0.1, 1.0)).labels("get")
    for value in (0.1, 0.5, 1.0, 7.0):
        child.observe(value)
    sample = registry.get_sample_value
    assert sample("t_seconds_bucket", {"op": "get", "le": "0.1"}) == 1
    assert sample("t_seconds_bucket", {"op": "get", "le": "1.0"}) == 3
    assert sample("t_seconds_bucket", {"op": "get", "le": "+Inf"}) == 4
    assert sample("t_seconds_count", {"op": "get"}) == 4
    assert sample("t_seconds_sum", {"op": "get"}) == pytest.approx(8.6)


def test_counters_and_gauges_expose_as_the_library_does() -> None:
    """The text parses back with the library's types and values, counters with _total."""
    registry = CollectorRegistry()
    Counter("calls", "doc", ("code",), registry).labels("OK").inc(3)
    gauge = Gauge("active", "doc", ("method",), registry).labels("GET")
    gauge.inc()
    gauge.inc()
    gauge.dec()
    parsed = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert parsed["calls"].type == "counter"
    assert [(s.name, s.value) for s in parsed["calls"].samples] == [("calls_total", 3.0)]
    assert [(s.labels, s.value) for s in parsed["active"].samples] == [({"method": "GET"}, 1.0)]


def test_wrong_number_of_label_values_is_refused() -> None:
    """labels() with a value missing raises instead of making a series with fewer labels."""
    family = Counter("calls", "doc", ("code", "method"), CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        family.labels("OK")
    assert family.labels("OK", "Get") is family.labels("OK", "Get")
