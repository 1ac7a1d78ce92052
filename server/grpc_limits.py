"""The gRPC port's limits: message and metadata size, streams, keepalive, connection idle and age.

One dataclass of settings and one table of flags (data, not code), turned into grpcio channel
arguments in one place. The table carries no argparse types of the bridge's Option (server/ may
not import rest_bridge); server/__main__.py turns each row into an Option.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class GrpcLimits:
    """Every limit of the gRPC port; 0 for idle, age or grace means no limit."""

    max_message_bytes: int = MIB
    """Largest request or response message; larger is RESOURCE_EXHAUSTED."""
    max_metadata_bytes: int = 16 * 1024
    """Largest request metadata (headers, HPACK-decoded); larger is refused before the call."""
    max_concurrent_streams: int = 100
    """Calls open at once on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS)."""
    min_ping_interval_seconds: float = 10.0
    """Pings closer together than this (with no data sent between) count as strikes."""
    max_ping_strikes: int = 2
    """Strikes allowed before the connection gets GOAWAY (ENHANCE_YOUR_CALM, too_many_pings)."""
    permit_keepalive_without_calls: bool = False
    """Whether a client may ping a connection with no call open (else every such ping strikes)."""
    max_connection_idle_seconds: float = 300.0
    """A connection with no call open for this long gets GOAWAY."""
    max_connection_age_seconds: float = 1800.0
    """A connection older than this gets GOAWAY (grpcio adds +-10 % jitter), so clients spread."""
    max_connection_age_grace_seconds: float = 30.0
    """After max age, calls still open get this long to finish before the connection closes."""

    def channel_options(self) -> list[tuple[str, Any]]:
        """The grpcio server arguments for these limits."""
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            # The soft and the hard limit alike: everything above is refused, never sampled.
            ("grpc.max_metadata_size", self.max_metadata_bytes),
            ("grpc.absolute_max_metadata_size", self.max_metadata_bytes),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.http2.min_ping_interval_without_data_ms", _ms(self.min_ping_interval_seconds)),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
            ("grpc.keepalive_permit_without_calls", int(self.permit_keepalive_without_calls)),
        ]
        for key, seconds in (
            ("grpc.max_connection_idle_ms", self.max_connection_idle_seconds),
            ("grpc.max_connection_age_ms", self.max_connection_age_seconds),
            ("grpc.max_connection_age_grace_ms", self.max_connection_age_grace_seconds),
        ):
            if seconds > 0:
                options.append((key, _ms(seconds)))
        return options


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def parse_bool(text: str) -> bool:
    """true/false/1/0/yes/no in any letter case, for a flag or its environment variable.

    Raises:
        ValueError: anything else (argparse reports it as a usage error naming the flag).
    """
    value = _BOOLS.get(text.strip().lower())
    if value is None:
        raise ValueError(f"not a boolean: {text!r}")
    return value


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < 0:
            raise ValueError(f"must not be negative: {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its usage error
    return parse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1: {text!r}")
    return value


_positive_int.__name__ = "int"


@dataclass(frozen=True, slots=True)
class LimitFlag:
    """One flag of `checkpoint-server serve` that sets a GrpcLimits field."""

    field: str
    flag: str
    env: str
    type: Callable[[str], Any]
    help: str

    @property
    def default(self) -> Any:
        return getattr(DEFAULTS, self.field)


DEFAULTS = GrpcLimits()
_SECONDS = _non_negative(float)
LIMIT_FLAGS: tuple[LimitFlag, ...] = (
    LimitFlag(
        "max_message_bytes",
        "--max-message-bytes",
        "CHECKPOINT_MAX_MESSAGE_BYTES",
        _positive_int,
        "largest gRPC message, either way; larger is RESOURCE_EXHAUSTED",
    ),
    LimitFlag(
        "max_metadata_bytes",
        "--max-metadata-bytes",
        "CHECKPOINT_MAX_METADATA_BYTES",
        _positive_int,
        "largest request metadata (all headers); larger is refused before the call runs",
    ),
    LimitFlag(
        "max_concurrent_streams",
        "--max-concurrent-streams",
        "CHECKPOINT_MAX_CONCURRENT_STREAMS",
        _positive_int,
        "calls open at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)",
    ),
    LimitFlag(
        "min_ping_interval_seconds",
        "--keepalive-min-ping-interval",
        "CHECKPOINT_KEEPALIVE_MIN_PING_INTERVAL",
        _SECONDS,
        "seconds a client must leave between pings; closer pings are strikes",
    ),
    LimitFlag(
        "max_ping_strikes",
        "--keepalive-max-ping-strikes",
        "CHECKPOINT_KEEPALIVE_MAX_PING_STRIKES",
        _non_negative(int),
        "strikes before a pinging client gets GOAWAY (too_many_pings); 0 for no limit",
    ),
    LimitFlag(
        "permit_keepalive_without_calls",
        "--keepalive-permit-without-calls",
        "CHECKPOINT_KEEPALIVE_PERMIT_WITHOUT_CALLS",
        parse_bool,
        "true to let clients ping connections with no call open (else each such ping strikes)",
    ),
    LimitFlag(
        "max_connection_idle_seconds",
        "--max-connection-idle",
        "CHECKPOINT_MAX_CONNECTION_IDLE",
        _SECONDS,
        "seconds a connection may stay without calls before GOAWAY; 0 for no limit",
    ),
    LimitFlag(
        "max_connection_age_seconds",
        "--max-connection-age",
        "CHECKPOINT_MAX_CONNECTION_AGE",
        _SECONDS,
        "seconds (+-10 %% jitter) before a connection gets GOAWAY, so clients rebalance; 0 for "
        "no limit",
    ),
    LimitFlag(
        "max_connection_age_grace_seconds",
        "--max-connection-age-grace",
        "CHECKPOINT_MAX_CONNECTION_AGE_GRACE",
        _SECONDS,
        "seconds open calls may finish after the age GOAWAY before the connection closes; "
        "0 for no limit",
    ),
)


def limits_from(values: dict[str, Any]) -> GrpcLimits:
    """GrpcLimits from parsed flag values keyed by field name."""
    return GrpcLimits(**{row.field: values[row.field] for row in LIMIT_FLAGS})
