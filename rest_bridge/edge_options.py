"""The flags of the listening edge and of TLS, shared by both REST doors as Option rows.

`checkpoint-rest-bridge` reads them from CHECKPOINT_REST_*; `checkpoint-server serve` applies the
same flags to its --rest-listen port and reads CHECKPOINT_INPROCESS_REST_* (its TLS flags cover
the gRPC port too, see server/__main__.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rest_bridge.config import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
    KEEP_ALIVE_SECONDS,
)
from rest_bridge.edge_io import EdgeLimits
from rest_bridge.options import Option


def optional_path(text: str) -> Path | None:
    """A file flag: empty means not given."""
    return Path(text) if text else None


def edge_options(env_prefix: str, port: str = "the HTTP port") -> tuple[Option, ...]:
    """--max-header-bytes, --header-timeout and --max-connections, reading env_prefix + NAME."""
    return (
        Option(
            "--max-header-bytes",
            f"largest request head (request line and headers) on {port}; larger is 431",
            env=f"{env_prefix}MAX_HEADER_BYTES",
            default=DEFAULT_MAX_HEADER_BYTES,
            type=int,
        ),
        Option(
            "--header-timeout",
            f"seconds a connection to {port} may take to send a complete request head before "
            f"it is closed (idle keep-alive connections close after {KEEP_ALIVE_SECONDS:g} s)",
            env=f"{env_prefix}HEADER_TIMEOUT",
            default=DEFAULT_HEADER_TIMEOUT,
            type=float,
        ),
        Option(
            "--max-connections",
            f"connections {port} keeps open at once; more are refused at once (503)",
            env=f"{env_prefix}MAX_CONNECTIONS",
            default=DEFAULT_MAX_CONNECTIONS,
            type=int,
        ),
    )


def tls_options(env_prefix: str, what: str) -> tuple[Option, ...]:
    """--tls-cert and --tls-key (PEM files), reading env_prefix + TLS_CERT / TLS_KEY."""
    return (
        Option(
            "--tls-cert",
            f"PEM certificate chain (leaf first) to serve {what} with TLS; re-read on SIGHUP",
            env=f"{env_prefix}TLS_CERT",
            default="",
            type=optional_path,
        ),
        Option(
            "--tls-key",
            "PEM private key (unencrypted) of --tls-cert; re-read on SIGHUP",
            env=f"{env_prefix}TLS_KEY",
            default="",
            type=optional_path,
        ),
    )


UPSTREAM_TLS_OPTIONS: tuple[Option, ...] = (
    Option(
        "--upstream-ca",
        "PEM CA certificate(s) of the gRPC server: turns TLS on towards it; re-read on SIGHUP",
        env="CHECKPOINT_UPSTREAM_CA",
        default="",
        type=optional_path,
    ),
    Option(
        "--upstream-cert",
        "PEM client certificate presented to the gRPC server (mTLS); needs --upstream-ca; "
        "re-read on SIGHUP",
        env="CHECKPOINT_UPSTREAM_CERT",
        default="",
        type=optional_path,
    ),
    Option(
        "--upstream-key",
        "PEM private key of --upstream-cert; re-read on SIGHUP",
        env="CHECKPOINT_UPSTREAM_KEY",
        default="",
        type=optional_path,
    ),
)


def edge_limits(args: argparse.Namespace) -> EdgeLimits:
    """The EdgeLimits the parsed flags ask for.

    Raises:
        ValueError: a limit out of range; the message names the flag.
    """
    return EdgeLimits(
        max_header_bytes=args.max_header_bytes,
        header_timeout=args.header_timeout,
        max_connections=args.max_connections,
    )
