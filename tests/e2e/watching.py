"""Helpers for the WatchCheckpoints tests: a private server, a stream reader, checkpoint bodies."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc

EVENT_NAMES = {
    svc.WATCH_EVENT_TYPE_EXISTING: "existing",
    svc.WATCH_EVENT_TYPE_SYNCED: "synced",
    svc.WATCH_EVENT_TYPE_CREATED: "created",
    svc.WATCH_EVENT_TYPE_UPDATED: "updated",
    svc.WATCH_EVENT_TYPE_DELETED: "deleted",
}
WAIT = 10.0
"""Seconds a test waits for one event before failing."""


def new_checkpoint(name: str) -> pb.Checkpoint:
    return pb.Checkpoint(
        display_name=name,
        resources=pb.Resources(
            limits=pb.ResourceLimits(memory_mib=2048),
            requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
        ),
    )


def import_entry(name: str) -> dict[str, Any]:
    """A checkpoint in the REST data shape, for `checkpoint-server import`."""
    return {
        "display_name": name,
        "resources": {"limits": {"memory_mib": 2048}, "requests": {"memory_mib": 1024, "vcpus": 2}},
    }


@dataclass
class Stream:
    """A gRPC watch read by a thread into a queue, so a test can wait for each event bounded."""

    call: Any
    events: queue.Queue[svc.WatchCheckpointsResponse | grpc.RpcError] = field(
        default_factory=queue.Queue
    )

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.call:
                self.events.put(event)
        except grpc.RpcError as exc:
            self.events.put(exc)

    def next(self, timeout: float = WAIT) -> svc.WatchCheckpointsResponse:
        """The next event; raises the stream's RpcError when it ended with one."""
        item = self.events.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def error(self, timeout: float = WAIT) -> grpc.RpcError:
        """The error the stream ends with (events before it are dropped)."""
        while True:
            item = self.events.get(timeout=timeout)
            if isinstance(item, grpc.RpcError):
                return item

    def take(self, count: int) -> list[tuple[str, str]]:
        """The next count events as (type, display name)."""
        return [(EVENT_NAMES[e.type], e.checkpoint.display_name) for e in self.iter(count)]

    def iter(self, count: int) -> Iterator[svc.WatchCheckpointsResponse]:
        for _ in range(count):
            yield self.next()

    def idle(self, seconds: float) -> bool:
        """True when no event arrives for seconds."""
        try:
            self.events.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@dataclass
class Event:
    """One Server-Sent Event (or NDJSON line, with only data) as the client parsed it."""

    data: dict[str, Any]
    event: str = ""
    id: str = ""


def sse_events(lines: Iterator[str], comments: list[str] | None = None) -> Iterator[Event]:
    """Parse SSE lines into events; comment lines go to comments when given."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            if comments is not None:
                comments.append(line)
            continue
        if not line:
            if "data" in fields:
                yield Event(
                    json.loads(fields["data"]), fields.get("event", ""), fields.get("id", "")
                )
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
