"""The load generators: wrk for HTTP/1.1 (REST rows) and h2load for gRPC over HTTP/2.

Both run for a fixed duration at a fixed concurrency, against 127.0.0.1 only, under a hard
subprocess timeout. wrk reports through a small Lua `done` hook (exact percentiles, error counts);
h2load writes one line per request (--log-file), from which the percentiles are computed.

Concurrency means requests in flight: wrk keeps N connections each with one request outstanding;
h2load opens N HTTP/2 connections each with one stream outstanding (-c N -m 1), the same shape,
so REST and gRPC rows compare like for like.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import struct
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

GRACE = 30.0
"""Seconds a load generator may run past its duration before it is killed."""

WRK_SCRIPT = """\
-- Written by bench/loads.py: report the run as one JSON line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


class LoadError(RuntimeError):
    """A load generator failed, timed out, or saw errors in the answers."""


@dataclass(frozen=True)
class LoadResult:
    tool: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def combine(rounds: Sequence[LoadResult]) -> LoadResult:
    """Rounds of one load as one result: counts and time summed, so requests/s is over all of
    them; each percentile the median of the rounds' (per-request latencies are not kept across
    rounds), the maximum the largest.

    Raises:
        LoadError: no rounds.
    """
    if not rounds:
        raise LoadError("no rounds to combine")
    if len(rounds) == 1:
        return rounds[0]  # the tool's own figures, its measured rate included
    seconds = sum(r.seconds for r in rounds)
    requests = sum(r.requests for r in rounds)
    return LoadResult(
        tool=rounds[0].tool,
        concurrency=rounds[0].concurrency,
        seconds=seconds,
        requests=requests,
        errors=sum(r.errors for r in rounds),
        rps=requests / seconds if seconds else 0.0,
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p90_ms=statistics.median(r.p90_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        max_ms=max(r.max_ms for r in rounds),
    )


def _check_local(url: str) -> None:
    host = urlsplit(url).hostname
    if host != "127.0.0.1":
        raise LoadError(f"load is only ever sent to 127.0.0.1, not to {host!r}")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise LoadError(f"{name} is not installed: run scripts/ensure_bench_tools.sh")
    return found


def _run(args: list[str], seconds: float) -> str:
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=seconds + GRACE,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"{args[0]} ran past {seconds + GRACE:.0f} s and was killed") from exc
    if done.returncode != 0:
        command = re.sub(r"Bearer \S+", "Bearer ***", " ".join(args))
        raise LoadError(f"{command} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def wrk(
    url: str,
    *,
    concurrency: int,
    seconds: float,
    headers: Mapping[str, str],
    work_dir: Path,
) -> LoadResult:
    """GET url with wrk for seconds at concurrency connections (one thread).

    Raises:
        LoadError: wrk failed, or any answer was an error (socket error, non-2xx, timeout).
    """
    _check_local(url)
    script = work_dir / "report.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    whole = max(1, round(seconds))  # wrk takes whole seconds
    args = [_tool("wrk"), "-t", "1", "-c", str(concurrency), "-d", f"{whole}s"]
    args += ["--timeout", "10s", "-s", str(script)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = _run([*args, url], seconds)
    found = re.search(r"^WRK_JSON (\{.*\})$", out, re.MULTILINE)
    if found is None:
        raise LoadError(f"wrk printed no report:\n{out[-2000:]}")
    report: dict[str, float] = json.loads(found.group(1))
    errors = int(sum(report[k] for k in ("connect", "read", "write", "status", "timeout")))
    requests = int(report["requests"])
    elapsed = report["duration_us"] / 1e6
    if errors:
        raise LoadError(f"wrk saw {errors} errors in {requests} requests to {url}: {report}")
    return LoadResult(
        tool="wrk",
        concurrency=concurrency,
        seconds=elapsed,
        requests=requests,
        errors=errors,
        rps=requests / elapsed,
        p50_ms=report["p50_us"] / 1000,
        p90_ms=report["p90_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        max_ms=report["max_us"] / 1000,
    )


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: no compression flag, 4-byte big-endian length, bytes."""
    return struct.pack(">BI", 0, len(message)) + message


def h2load(
    url: str,
    *,
    concurrency: int,
    seconds: float,
    frame_file: Path,
    response_bytes: int,
    headers: Mapping[str, str],
    work_dir: Path,
) -> LoadResult:
    """POST frame_file as a unary gRPC call to url, -c concurrency -m 1, for seconds.

    h2load sees HTTP statuses only, not grpc-status; an error status has no message, so the
    DATA bytes received must average response_bytes (the framed response) per request.

    Raises:
        LoadError: h2load failed, any request failed, errored or timed out, or the answers
            carried fewer bytes than a response (an error status).
    """
    _check_local(url)
    log = work_dir / "h2load-requests.tsv"
    log.unlink(missing_ok=True)
    args = [_tool("h2load"), "-c", str(concurrency), "-m", "1", "-t", "1"]
    args += ["-D", f"{round(seconds * 1000)}ms", "-d", str(frame_file), f"--log-file={log}"]
    args += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    for name, value in headers.items():
        args += ["-H", f"{name.lower()}: {value}"]
    out = _run([*args, url], seconds)
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    finished = re.search(r"finished in ([0-9.]+)(m?s)", out)
    if counts is None or finished is None:
        raise LoadError(f"h2load printed no summary:\n{out[-2000:]}")
    failed, errored, timed_out = (int(counts.group(i)) for i in (5, 6, 7))
    if failed or errored or timed_out:
        raise LoadError(f"h2load saw failures against {url}:\n{out[-2000:]}")
    data = re.search(r"\((\d+)\) data", out)
    done = int(counts.group(3))
    if data is None or done == 0 or int(data.group(1)) < 0.95 * response_bytes * done:
        raise LoadError(
            f"h2load got fewer response bytes than {done} answers of {response_bytes} bytes "
            f"(error statuses?) from {url}:\n{out[-2000:]}"
        )
    latencies = sorted(
        int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip()
    )
    return _h2load_result(out, concurrency, latencies, finished)


def _h2load_result(
    out: str, concurrency: int, latencies: list[int], finished: re.Match[str]
) -> LoadResult:
    """An h2load run's figures from its sorted per-request latencies (µs) and its summary."""
    if not latencies:
        raise LoadError(f"h2load logged no request:\n{out[-2000:]}")
    elapsed = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    return LoadResult(
        tool="h2load",
        concurrency=concurrency,
        seconds=elapsed,
        requests=len(latencies),
        errors=0,
        rps=len(latencies) / elapsed,
        p50_ms=_percentile(latencies, 50) / 1000,
        p90_ms=_percentile(latencies, 90) / 1000,
        p99_ms=_percentile(latencies, 99) / 1000,
        max_ms=latencies[-1] / 1000,
    )


def _percentile(ordered: list[int], percent: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def h2load_rest(
    url: str,
    *,
    concurrency: int,
    seconds: float,
    headers: Mapping[str, str],
    work_dir: Path,
    streams: int = 1,
) -> LoadResult:
    """GET url over h2c with prior knowledge (or h2 by ALPN for https), concurrency requests
    in flight: concurrency / streams connections with streams each (-c, -m).

    Raises:
        LoadError: h2load failed, or any request failed, errored, timed out or was not 2xx.
    """
    _check_local(url)
    log = work_dir / "h2load-rest.tsv"
    log.unlink(missing_ok=True)
    streams = max(1, min(streams, concurrency))
    connections = max(1, concurrency // streams)
    args = [_tool("h2load"), "-c", str(connections), "-m", str(streams), "-t", "1"]
    args += ["-D", f"{round(seconds * 1000)}ms", f"--log-file={log}"]
    for name, value in headers.items():
        args += ["-H", f"{name.lower()}: {value}"]
    out = _run([*args, url], seconds)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    statuses = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    finished = re.search(r"finished in ([0-9.]+)(m?s)", out)
    if counts is None or statuses is None or finished is None:
        raise LoadError(f"h2load printed no summary:\n{out[-2000:]}")
    # Streams still open when the duration ends count as failed: at most `streams` per connection.
    if int(counts.group(1)) - int(counts.group(2)) > concurrency or any(
        int(statuses.group(i)) for i in (2, 3, 4)
    ):
        raise LoadError(f"h2load saw failures against {url}:\n{out[-2000:]}")
    latencies = sorted(
        int(line.split("\t")[2])
        for line in log.read_text().splitlines()
        if line.strip() and line.split("\t")[1] == "200"
    )
    return _h2load_result(out, concurrency, latencies, finished)
