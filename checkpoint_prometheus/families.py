"""Counter, gauge and histogram families that record without locks, exposed by prometheus-client.

prometheus-client's own metrics take a threading lock on every update: 2-3.5 µs per inc or
observe on the bench machine, about 27 µs of each in-process REST request (a tenth of its CPU)
for the eight updates a request makes. Here every update happens on the process's event-loop
thread, so a child is plain attributes (an inc is `value += 1`, an observe a bisect and two
additions); the scrape, on prometheus-client's HTTP thread, only reads them, and a histogram's
count is taken from the same copy of its buckets, so each series is consistent in itself.
The families are prometheus-client collectors: exposition, names and types are the library's.
The hottest callers (checkpoint_prometheus.calls, the bridge's HTTP meter) update a child's
attributes themselves, as its methods would: in CPython a method call costs more than its body.

Only for single-writer use: update from one thread (the event loop), read from any.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class GaugeChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


_Child = TypeVar("_Child", CounterChild, GaugeChild, HistogramChild)


class _Family(Generic[_Child]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._children: dict[tuple[str, ...], _Child] = {}
        registry.register(self)  # a Collector: describe() and collect()

    def labels(self, *values: str) -> _Child:
        """The child of these label values (in labelnames' order), made on first use."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            child = self._children[values] = self._new()
        return child

    # What each kind supplies: a new child, an empty family, and one child's samples.
    def _new(self) -> _Child:
        raise NotImplementedError  # pragma: no cover

    def _family(self) -> Metric:
        raise NotImplementedError  # pragma: no cover

    def _add(self, family: Metric, values: tuple[str, ...], child: _Child) -> None:
        raise NotImplementedError  # pragma: no cover

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in list(self._children.items()):
            self._add(family, values, child)
        yield family


class Counter(_Family[CounterChild]):
    """A counter family; name without `_total` (the exposition adds it)."""

    def _new(self) -> CounterChild:
        return CounterChild()

    def _family(self) -> Metric:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: Metric, values: tuple[str, ...], child: CounterChild) -> None:
        family.add_metric(values, child.value)  # type: ignore[attr-defined]


class Gauge(_Family[GaugeChild]):
    def _new(self) -> GaugeChild:
        return GaugeChild()

    def _family(self) -> Metric:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: Metric, values: tuple[str, ...], child: GaugeChild) -> None:
        family.add_metric(values, child.value)  # type: ignore[attr-defined]


class Histogram(_Family[HistogramChild]):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float],
    ) -> None:
        self.bounds = tuple(sorted(buckets))
        self._les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry)

    def _new(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def _family(self) -> Metric:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def _add(self, family: Metric, values: tuple[str, ...], child: HistogramChild) -> None:
        counts, total = list(child.counts), child.sum
        cumulative, running = [], 0
        for le, count in zip(self._les, counts, strict=True):
            running += count
            cumulative.append((le, float(running)))
        family.add_metric(values, cumulative, total)  # type: ignore[attr-defined]
