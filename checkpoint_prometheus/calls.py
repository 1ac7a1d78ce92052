"""One RPC method's series in go-grpc-prometheus's three families (started, handled by code,
handling time), for the server's calls and the bridge's upstream calls alike."""

from __future__ import annotations

import time
from bisect import bisect_left

from checkpoint_prometheus.conventions import split_method
from checkpoint_prometheus.families import Counter, CounterChild, Histogram, HistogramChild


class CallSeries:
    """The series of one method and grpc_type: `started` to count a call as it begins, and
    `finish` to record its end; the handled series of each code is made on first use."""

    __slots__ = ("_by_code", "_handled", "_handling", "_labels", "started")

    def __init__(
        self, started: Counter, handled: Counter, handling: Histogram, grpc_type: str, method: str
    ) -> None:
        service, name = split_method(method)
        self._labels = (grpc_type, service, name)
        self.started: CounterChild = started.labels(*self._labels)
        self._handling: HistogramChild = handling.labels(*self._labels)
        self._handled = handled
        self._by_code: dict[str, CounterChild] = {}

    def finish(self, code: str, began: float) -> None:
        """One call ended with grpc_code code; began is its time.perf_counter() at the start."""
        elapsed, handling = time.perf_counter() - began, self._handling
        # The children's observe and inc, inline: a method call costs more than its body.
        handling.counts[bisect_left(handling.bounds, elapsed)] += 1
        handling.sum += elapsed
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self._handled.labels(*self._labels, code)
        counter.value += 1.0
