"""A normal client in its own process: GETs on one kept-alive connection, each timed.

`python -m tests.e2e.steady_client HOST PORT PATH TOKEN`: connects, GETs /healthz, prints
`ready`, then reads a monotonic deadline from stdin, GETs PATH until then and prints one JSON
line, [[seconds, status], ...]. Its own process, so what a test does meanwhile (1000 sockets
polled by a thread, the test process's garbage collections) is not counted against the door.
"""

from __future__ import annotations

import http.client
import json
import sys
import time


def main(host: str, port: str, path: str, token: str) -> None:
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", "/healthz")
    connection.getresponse().read()
    print("ready", flush=True)
    until = float(sys.stdin.readline())
    timed: list[tuple[float, int]] = []
    while time.monotonic() < until:
        started = time.perf_counter()
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        timed.append((time.perf_counter() - started, response.status))
    print(json.dumps(timed), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
