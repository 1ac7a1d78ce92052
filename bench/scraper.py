"""A stand-in Prometheus for the metrics rows: GET each /metrics URL every interval.

The cost of metrics includes being scraped (the exposition runs in the measured process), so
the rows with --metrics-listen are loaded while this polls, as a real Prometheus would.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def scraping(urls: Sequence[str], interval: float) -> Iterator[list[int]]:
    """Scrape urls every interval seconds until the block ends; yields the count of scrapes.

    Raises:
        RuntimeError: a scrape failed (the block's figures would not include its cost).
    """
    stop = threading.Event()
    done: list[int] = [0]
    failures: list[str] = []

    def poll() -> None:
        while not stop.wait(interval):
            for url in urls:
                try:
                    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (127.0.0.1)
                        reply.read()
                    done[0] += 1
                except OSError as exc:
                    failures.append(f"{url}: {exc}")

    thread = threading.Thread(target=poll, name="bench-scraper", daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=10)
    if failures:
        raise RuntimeError(f"scraping /metrics failed: {failures[0]}")
