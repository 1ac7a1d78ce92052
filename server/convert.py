"""Between checkpoint.v1 messages and domain values; no rules here, only shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from checkpoint.v1 import checkpoint_pb2 as pb
from google.protobuf import timestamp_pb2

from server.domain import Checkpoint, Resources, State

STATE_TO_PROTO: dict[State, pb.CheckpointState.ValueType] = {
    State.CREATING: pb.CHECKPOINT_STATE_CREATING,
    State.READY: pb.CHECKPOINT_STATE_READY,
    State.FAILED: pb.CHECKPOINT_STATE_FAILED,
    State.DELETING: pb.CHECKPOINT_STATE_DELETING,
}
PROTO_TO_STATE: dict[int, State] = {number: state for state, number in STATE_TO_PROTO.items()}


def checkpoint_to_proto(c: Checkpoint, out: pb.Checkpoint | None = None) -> pb.Checkpoint:
    """Fill out (or a new message) from a domain checkpoint."""
    msg = pb.Checkpoint() if out is None else out
    msg.id = c.id
    msg.display_name = c.display_name
    msg.resources.limits.memory_mib = c.resources.limit_memory_mib
    msg.resources.requests.memory_mib = c.resources.request_memory_mib
    msg.resources.requests.vcpus = c.resources.request_vcpus
    msg.state = STATE_TO_PROTO[c.state]
    _set_timestamp(msg.create_time, c.create_time)
    _set_timestamp(msg.update_time, c.update_time)
    msg.etag = c.etag
    return msg


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _set_timestamp(out: timestamp_pb2.Timestamp, when: datetime) -> None:
    # Timestamp.FromDatetime goes through time tuples; timedelta arithmetic is several times
    # faster, and this runs twice per checkpoint on every read (see bench/ profiles).
    micros = (when - _EPOCH) // _MICROSECOND
    out.seconds, remainder = divmod(micros, 1_000_000)
    out.nanos = remainder * 1000


def resources_from_proto(r: pb.Resources) -> Resources:
    return Resources(
        limit_memory_mib=r.limits.memory_mib,
        request_memory_mib=r.requests.memory_mib,
        request_vcpus=r.requests.vcpus,
    )


def timestamp_or(msg: pb.Checkpoint, field: str, default: datetime) -> datetime:
    """A Timestamp field as an aware UTC datetime, or default when it is unset."""
    if not msg.HasField(field):  # type: ignore[arg-type]
        return default
    value: datetime = getattr(msg, field).ToDatetime(tzinfo=default.tzinfo)
    return value
