"""Command-line options as data: each flag, the environment variable it also reads, its default.

Both console scripts declare their flags as Option rows, so "a flag given on the command line
wins, else the environment, else the default" is written once. It lives in the bridge because
both entry points may import the bridge (the server's entry composes it for `--rest-listen`),
while the bridge may not import the server.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rest_bridge.config import (
    DEFAULT_HEARTBEAT,
    DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TIMEOUT,
    DEFAULT_UPSTREAM,
    DEFAULT_UPSTREAM_CONNECTIONS,
)
from rest_bridge.cors import OriginsAction, parse_origins
from rest_bridge.descriptor_set import DEFAULT_SERVICES


@dataclass(frozen=True, slots=True)
class Option:
    """One flag. A string default (or the environment's text) goes through `type`, as argparse
    does for string defaults, so a bad environment value is a usage error naming the flag."""

    flag: str
    help: str
    env: str | None = None
    default: Any = None
    type: Callable[[str], Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Other add_argument keywords: action, choices, dest, required."""


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    options: Iterable[Option],
    environ: Mapping[str, str] | None = None,
) -> None:
    """Add each option to parser, its default taken from the environment when set there."""
    env = os.environ if environ is None else environ
    for option in options:
        default = option.default
        if option.env is not None and option.env in env:
            default = env[option.env]
        elif default is not None and option.type is not None and not isinstance(default, str):
            default = str(default)
        text = f"{option.help} [{option.env}]" if option.env else option.help
        kwargs: dict[str, Any] = {"default": default, "help": text, **option.extra}
        if option.type is not None:
            kwargs["type"] = option.type
        parser.add_argument(option.flag, **kwargs)


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


_SWITCH = {"1": True, "true": True, "yes": True, "on": True}
_SWITCH.update({"0": False, "false": False, "no": False, "off": False, "": False})


def switch(text: str) -> bool:
    """An on/off flag's value from the environment (1/0, true/false, yes/no, on/off).

    Raises:
        argparse.ArgumentTypeError: none of these.
    """
    try:
        return _SWITCH[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected 1 or 0, got {text!r}") from None


CORS_ORIGIN = Option(
    "--cors-origin",
    "an origin (scheme://host[:port]) whose browser pages may call the API, or * for any; "
    "repeat for several (the environment takes a comma-separated list); none turns CORS off",
    env="CHECKPOINT_REST_CORS_ORIGINS",
    default="",
    type=parse_origins,
    extra={"action": OriginsAction, "dest": "cors_origins", "metavar": "ORIGIN"},
)
"""Shared by both REST doors: the bridge and `checkpoint-server serve --rest-listen`."""

BRIDGE_OPTIONS: tuple[Option, ...] = (
    Option(
        "--listen",
        "HOST:PORT to serve HTTP on",
        env="CHECKPOINT_REST_LISTEN",
        default=DEFAULT_LISTEN,
    ),
    Option(
        "--upstream",
        "HOST:PORT of the gRPC server",
        env="CHECKPOINT_UPSTREAM",
        default=DEFAULT_UPSTREAM,
    ),
    Option(
        "--upstream-connections",
        "TCP connections of each worker to the gRPC server, each call sent over the one with "
        "the fewest calls open (a server with --workers gives each connection to one worker); "
        f"0: {DEFAULT_UPSTREAM_CONNECTIONS}, or 1 with --reflect",
        env="CHECKPOINT_REST_UPSTREAM_CONNECTIONS",
        default=0,
        type=int,
    ),
    Option(
        "--timeout",
        "deadline of each gRPC call in seconds; Grpc-Timeout may shorten it",
        env="CHECKPOINT_REST_TIMEOUT",
        default=DEFAULT_TIMEOUT,
        type=float,
    ),
    Option(
        "--max-body-bytes",
        "largest request body accepted; larger is 413",
        env="CHECKPOINT_REST_MAX_BODY_BYTES",
        default=DEFAULT_MAX_BODY_BYTES,
        type=int,
    ),
    Option(
        "--max-in-flight",
        "requests handled at once; more are shed with 503",
        env="CHECKPOINT_REST_MAX_IN_FLIGHT",
        default=DEFAULT_MAX_IN_FLIGHT,
        type=int,
    ),
    Option(
        "--descriptor-set",
        "FileDescriptorSet (protoc --include_imports --include_source_info) of the services; "
        "default: the checkpoint.v1 set shipped with the package",
        env="CHECKPOINT_REST_DESCRIPTOR_SET",
        default="",
        type=_optional_path,
    ),
    Option(
        "--workers",
        "bridge processes serving the same port, restarted when they die; 0 for one per core",
        env="CHECKPOINT_REST_WORKERS",
        default=1,
        type=int,
    ),
    Option(
        "--metrics-listen",
        "HOST:PORT serving Prometheus metrics at /metrics (its own port, never the API's); "
        "empty for none",
        env="CHECKPOINT_REST_METRICS_LISTEN",
        default="",
    ),
    Option(
        "--heartbeat",
        "seconds between heartbeat comments on an idle Server-Sent Events stream; 0 for none",
        env="CHECKPOINT_REST_HEARTBEAT_SECONDS",
        default=DEFAULT_HEARTBEAT,
        type=float,
    ),
    Option(
        "--service",
        "full name of a service to expose; repeat for several "
        f"(default: {', '.join(DEFAULT_SERVICES)}; with --reflect, every service with an "
        "HTTP rule)",
        extra={"action": "append", "dest": "services"},
    ),
    Option(
        "--reflect",
        "take the services from the upstream's server reflection instead of a descriptor set, "
        "and follow them as they change",
        env="CHECKPOINT_REST_REFLECT",
        default="0",
        type=switch,
        extra={"nargs": "?", "const": True, "metavar": "1|0"},
    ),
    Option(
        "--reflect-interval",
        "with --reflect, also fetch the schema every SECONDS (0: only on reconnect and SIGHUP)",
        env="CHECKPOINT_REST_REFLECT_INTERVAL",
        default=0.0,
        type=float,
    ),
    CORS_ORIGIN,
)
