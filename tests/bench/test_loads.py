"""Rounds of one load combined into one result (bench.loads.combine), as the interleaved rows
of `make bench` report them: requests/s over all the rounds' time, percentiles their median."""

from __future__ import annotations

import dataclasses

import pytest

from bench import loads


def _round(seconds: float, requests: int, p99: float, errors: int = 0) -> loads.LoadResult:
    return loads.LoadResult(
        tool="wrk",
        concurrency=16,
        seconds=seconds,
        requests=requests,
        errors=errors,
        rps=requests / seconds,
        p50_ms=p99 / 4,
        p90_ms=p99 / 2,
        p99_ms=p99,
        max_ms=p99 * 2,
    )


def test_rounds_add_up_to_one_load() -> None:
    combined = loads.combine([_round(2.5, 1000, 8.0), _round(2.5, 3000, 2.0, errors=1)])

    assert combined.requests == 4000
    assert combined.seconds == 5.0
    assert combined.errors == 1
    # Over all the time, not the mean of the rounds' rates (which would weigh each round alike).
    assert combined.rps == pytest.approx(800.0)
    assert combined.p99_ms == pytest.approx(5.0)
    assert combined.max_ms == 16.0


def test_median_percentiles_ignore_one_disturbed_round() -> None:
    combined = loads.combine([_round(1, 500, 3.0), _round(1, 500, 90.0), _round(1, 500, 3.2)])

    assert combined.p99_ms == pytest.approx(3.2)
    assert combined.p50_ms == pytest.approx(0.8)


def test_no_rounds_is_an_error() -> None:
    with pytest.raises(loads.LoadError):
        loads.combine([])


def test_one_round_is_the_load_as_its_tool_measured_it() -> None:
    """A row measured alone (Bench.measure) keeps the tool's own rate, not one recomputed."""
    alone = dataclasses.replace(_round(2.0, 1000, 4.0), rps=503.2)
    assert loads.combine([alone]) is alone
