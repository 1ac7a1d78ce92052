"""The fuzz targets: one function per target taking raw bytes, raising only on a real bug.

Each reads its input with atheris.FuzzedDataProvider, which takes numbers from the end of the
input and bytes from its front: a seed is the raw text the bridge would receive followed by
the byte(s) that pick among choices (a message type, a route, a method). Each checks the
bridge's promises: a refusal is a DecodeError (a 4xx) and nothing else; what is accepted
encodes, serializes and reads back unchanged; the whole app answers every request with a 2xx
or 4xx envelope, never a 5xx.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

import atheris
from google.protobuf import message_factory
from google.protobuf.message import Message

from rest_bridge.app import BridgeApp, create_app
from rest_bridge.codec import Codec, DecodeError
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptors import is_well_known
from rest_bridge.http_rule import PathDecodeError, TemplateError, parse_template
from rest_bridge.request_mapping import parse_json, parse_query, to_request
from rest_bridge.routes import Route, RouteTable, build_routes
from tests import http2_wire
from tests.fuzz.schema import checkpoint_schema, echo_schema
from tests.fuzz.standin import StandInChannel

ERROR_CODES = frozenset(
    {
        "invalid_argument", "not_found", "unimplemented", "unauthenticated",
        "permission_denied", "out_of_range", "failed_precondition", "aborted", "already_exists",
        "deadline_exceeded", "resource_exhausted", "cancelled",
    }
)  # fmt: skip
"""Codes a 4xx may carry (the status table's rows below 500)."""


@functools.cache
def _message_types() -> tuple[type[Message], ...]:
    """Every non-well-known message type the two schemas' methods take or return."""
    found: dict[str, type[Message]] = {}
    for schema in (echo_schema(), checkpoint_schema()):
        for service in schema.services:
            for method in service.methods:
                for desc in (method.input_type, method.output_type):
                    if not is_well_known(desc):
                        found[desc.full_name] = message_factory.GetMessageClass(desc)
    return tuple(found[name] for name in sorted(found))


def _canonical(codec: Codec, msg: Message) -> str:
    return json.dumps(codec.encode(msg), sort_keys=True)


def codec_target(data: bytes) -> None:
    """JSON bytes into a message: refused with DecodeError, or held and read back unchanged."""
    fdp = atheris.FuzzedDataProvider(data)
    types = _message_types()
    cls = types[fdp.ConsumeIntInRange(0, len(types) - 1)]
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    codec = Codec()
    msg = cls()
    try:
        codec.decode(parse_json(body), msg)
    except DecodeError:
        return
    msg.SerializeToString()
    text = _canonical(codec, msg)
    again = cls()
    codec.decode(parse_json(text.encode()), again)
    if _canonical(codec, again) != text:
        raise AssertionError(f"changed on a round trip: {text[:300]}")


@functools.cache
def _tables() -> tuple[RouteTable, RouteTable]:
    return build_routes(echo_schema()), build_routes(checkpoint_schema())


_METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT", "REPORT", "HEAD", "OPTIONS")


def path_target(data: bytes) -> None:
    """A raw request path against every route and template: a match, no match, or
    PathDecodeError; and any template text parses or is a TemplateError."""
    fdp = atheris.FuzzedDataProvider(data)
    method = _METHODS[fdp.ConsumeIntInRange(0, len(_METHODS) - 1)]
    as_template = fdp.ConsumeBool()
    raw = fdp.ConsumeBytes(fdp.remaining_bytes()).decode("latin-1")
    if as_template:
        try:
            template = parse_template(raw)
        except TemplateError:
            return
        template.match(raw)  # its own text may not match; it must not crash
        return
    for table in _tables():
        try:
            found = table.match(method, raw)
        except PathDecodeError:
            continue
        if found is not None and not isinstance(found, list):
            for value in found.params.values():
                value.encode("utf-8")  # every decoded value is text protobuf can hold


def query_target(data: bytes) -> None:
    """A raw query string: DecodeError, or named pairs of text protobuf can hold."""
    try:
        pairs = parse_query(data)
    except DecodeError:
        return
    for name, value in pairs:
        if not name:
            raise AssertionError("a pair with no name")
        (name + value).encode("utf-8")


@functools.cache
def _routes() -> tuple[Route, ...]:
    echo, checkpoints = _tables()
    return (*echo.routes, *checkpoints.routes)


def transcoder_target(data: bytes) -> None:
    """A route's request from fuzzed path values, query and body: a DecodeError, or a message
    that serializes and renders."""
    fdp = atheris.FuzzedDataProvider(data)
    routes = _routes()
    route = routes[fdp.ConsumeIntInRange(0, len(routes) - 1)]
    params = {
        v.field_path: fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
        for v in route.template.variables
    }
    query = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200))
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    codec = Codec()
    try:
        msg = to_request(route, codec, params, parse_query(query), body)
    except DecodeError:
        return
    msg.SerializeToString()
    json.dumps(codec.encode(msg))


@functools.cache
def _app() -> tuple[BridgeApp, asyncio.AbstractEventLoop]:
    config = BridgeConfig(timeout=5, max_body_bytes=1 << 16)
    app = create_app(config, StandInChannel(), echo_schema())  # type: ignore[arg-type]
    return app, asyncio.new_event_loop()


def app_target(data: bytes) -> None:
    """A whole raw request (method, target, headers, body) through the ASGI app: a 2xx or a
    4xx in the contract's envelope (or the OpenAPI document), never a 5xx or an exception.

    Input: "TARGET\\nname: value\\n...\\n\\nBODY", then a byte choosing the method.
    """
    fdp = atheris.FuzzedDataProvider(data)
    method = _METHODS[fdp.ConsumeIntInRange(0, len(_METHODS) - 1)]
    head, _, body = fdp.ConsumeBytes(fdp.remaining_bytes()).partition(b"\n\n")
    target, *header_lines = head.split(b"\n")
    raw_path, _, query = target.partition(b"?")
    headers = []
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    app, loop = _app()
    status, answer = loop.run_until_complete(
        _serve(app, method=method, raw_path=raw_path, query=query, headers=headers, body=body)
    )
    if not answer and (method == "HEAD" or status == 304):
        # HEAD is its GET without the body; a 304 has none (issue 13's conditional requests).
        if not 200 <= status < 500:
            raise AssertionError(f"{status} for {method} {target!r}")
        return
    if status == 200 and raw_path.startswith(b"/docs"):
        return  # the Swagger UI page and its assets, not JSON
    envelope = json.loads(answer)
    if status == 504 and _asked_for_deadline(headers):
        # The contract's one 5xx a client can cause: it asked for a deadline that expired
        # (Grpc-Timeout: 0S); 504 deadline_exceeded, as the status table maps it.
        if envelope["error"]["code"] != "deadline_exceeded":
            raise AssertionError(f"504 with code {envelope['error']['code']!r}")
        return
    if not (200 <= status < 500):
        raise AssertionError(f"{status} for {method} {target!r}: {answer[:300]!r}")
    if status >= 400 and envelope["error"]["code"] not in ERROR_CODES:
        raise AssertionError(f"{status} with code {envelope['error']['code']!r}")
    if status < 400 and raw_path != b"/openapi.json" and "data" not in envelope:
        raise AssertionError(f"{status} without data: {answer[:300]!r}")


def _asked_for_deadline(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"grpc-timeout" for name, _ in headers)


async def _serve(
    app: BridgeApp,
    *,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> tuple[int, bytes]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        # As uvicorn builds it: the target's bytes, and their percent-decoded text.
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    out: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], out["body"]


def http2_target(data: bytes) -> None:
    """Raw bytes after a client's preface on an HTTP/2 connection, read in two parts: no
    exception escapes the protocol, and its fast path (rest_bridge.http2_inbound) ends where h2
    alone ends (tests/http2_wire.py). Input: the bytes, then a byte choosing where to cut."""
    fdp = atheris.FuzzedDataProvider(data)
    cut = fdp.ConsumeIntInRange(0, 255)
    wire = fdp.ConsumeBytes(fdp.remaining_bytes())
    http2_wire.both([wire[:cut], wire[cut:]])


TARGETS: dict[str, Callable[[bytes], None]] = {
    "codec": codec_target,
    "path": path_target,
    "query": query_target,
    "transcoder": transcoder_target,
    "app": app_target,
    "http2": http2_target,
}
