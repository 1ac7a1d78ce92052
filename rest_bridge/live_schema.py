"""The schema the bridge serves right now, swappable while requests are in flight.

Everything derived from one schema (route table, one multicallable per route, the OpenAPI
bytes) is built first into one immutable ServedSchema, then published by rebinding a single
reference. A request reads that reference once at its start, so it finishes on the table it
started with even when a reload lands in between; a schema that does not build is refused and
the one being served stays.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from rest_bridge.conditional import EtagPlan, plan_for
from rest_bridge.descriptor_set import Schema
from rest_bridge.http_rule import TemplateError
from rest_bridge.openapi import build_openapi
from rest_bridge.routes import RouteError, RouteTable, build_routes
from rest_bridge.upstream_call import UnaryCall

log = logging.getLogger(__name__)

WrapCall = Callable[[str, UnaryCall, bool], UnaryCall]
"""Decorates the multicallable of a method (its full path; whether it streams its replies),
e.g. to meter upstream calls."""


@dataclass(frozen=True, slots=True)
class ServedSchema:
    """One schema, ready to serve: never changed after it is built."""

    table: RouteTable
    calls: dict[int, UnaryCall]
    """The multicallable of each route, by id(route); made once, not per request."""
    plans: dict[int, EtagPlan]
    """Where each route's resource and request keep an etag (conditional requests)."""
    openapi: bytes
    fingerprint: str
    services: tuple[str, ...]


def build_served(
    schema: Schema, channel: grpc.aio.Channel, wrap_call: WrapCall | None = None
) -> ServedSchema:
    """Routes, calls and OpenAPI of schema, over channel.

    Raises:
        RouteError: the services' HTTP rules are malformed or collide.
    """
    table = build_routes(schema)
    calls: dict[int, UnaryCall] = {}
    for route in table.routes:
        streaming = route.rpc.server_streaming
        call: Any = (channel.unary_stream if streaming else channel.unary_unary)(
            route.grpc_path,
            request_serializer=route.request_class.SerializeToString,
            response_deserializer=route.response_class.FromString,
        )
        if wrap_call is not None:
            call = wrap_call(route.grpc_path, call, streaming)
        calls[id(route)] = call
    openapi = json.dumps(build_openapi(schema, table), ensure_ascii=False).encode()
    return ServedSchema(
        table=table,
        calls=calls,
        plans={id(route): plan_for(route) for route in table.routes},
        openapi=openapi,
        fingerprint=schema.fingerprint,
        services=tuple(service.full_name for service in schema.services),
    )


class LiveSchema:
    """The one reference to the served schema, and why the last attempt to replace it failed."""

    def __init__(self, channel: grpc.aio.Channel, wrap_call: WrapCall | None = None) -> None:
        self._channel, self._wrap_call = channel, wrap_call
        self.current: ServedSchema | None = None
        """None until a schema is loaded: every transcoded route is then 503."""
        self.error: str = ""
        """Why the last load or build failed ("" when it succeeded); /readyz shows it."""

    def load(self, schema: Schema) -> None:
        """Serve schema from now on (requests already running keep theirs).

        Raises:
            RouteError: schema does not build; the schema being served stays.
        """
        self.current = build_served(schema, self._channel, self._wrap_call)
        self.error = ""

    def offer(self, schema: Schema, source: str) -> bool:
        """Swap schema in if it differs from the served one and builds; log what happened.

        True when it was swapped in. A schema that does not build is logged and kept in
        `error`, and the served one stays.
        """
        current = self.current
        if current is not None and current.fingerprint == schema.fingerprint:
            self.error = ""
            return False
        try:
            served = build_served(schema, self._channel, self._wrap_call)
        except (RouteError, TemplateError) as exc:
            self.failed(f"schema refused: {exc}")
            return False
        self.current, self.error = served, ""
        log.info(
            "schema from %s %s: %d routes of %s",
            source,
            "loaded" if current is None else "changed, swapped in",
            len(served.table.routes),
            ", ".join(served.services) or "no service",
        )
        return True

    def failed(self, message: str) -> None:
        """Record (and log) a load that did not get as far as a schema."""
        if message != self.error:
            kept = "; still serving the previous schema" if self.current is not None else ""
            log.error("%s%s", message, kept)
        self.error = message
