"""Unit tests of rest_bridge.handlers and ApiError.from_http_exception: the framework's errors.

FastAPI serves only the bridge's own paths, so the one framework error a client can meet is 405
for a wrong method there; it must keep its bytes (code unimplemented, Allow, the request id).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import grpc
import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from rest_bridge import handlers
from rest_bridge.app import BridgeApp, create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.routes import RESERVED_PATHS
from rest_bridge.status import ApiError

S = grpc.StatusCode
NOT_ALLOWED = b'{"error":{"code":"unimplemented","message":"Method Not Allowed"}}'


class _UnusedChannel:
    """Stands in for grpc.aio.Channel: these tests never reach the gRPC side."""

    def unary_unary(self, path: str, **_: Any) -> Callable[..., Any]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"unexpected call to {path}")

        return call

    unary_stream = unary_unary


def _app() -> BridgeApp:
    channel = cast(grpc.aio.Channel, _UnusedChannel())
    app = create_app(BridgeConfig(), channel, load_schema(default_descriptor_set()))
    assert isinstance(app, BridgeApp)  # without metrics, the app itself
    return app


def test_framework_routes_are_the_reserved_paths_without_parameters() -> None:
    """FastAPI holds only plain routes for the reserved paths: nothing it could validate."""
    routes = _app().api.routes
    assert {cast(Route, r).path for r in routes} == set(RESERVED_PATHS)
    for route in routes:
        assert type(route) is Route
        assert route.param_convertors == {}
        assert route.methods == {"GET", "HEAD"}


@pytest.mark.anyio
@pytest.mark.parametrize("path", sorted(RESERVED_PATHS))
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_wrong_method_on_own_path_is_405(path: str, method: str) -> None:
    """A wrong method on a bridge path is 405 unimplemented with Allow, in the usual envelope."""
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        response = await client.request(
            method, path, headers={"X-Request-Id": "req-7", "Authorization": "Bearer t"}
        )
    assert response.status_code == 405
    assert response.content == NOT_ALLOWED
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.headers["X-Request-Id"] == "req-7"
    assert response.headers["content-type"] == "application/json"
    assert "WWW-Authenticate" not in response.headers


def test_from_http_exception_405_keeps_unimplemented() -> None:
    """405 is not in the table: the code is unimplemented, the status stays 405, Allow sorted."""
    error = ApiError.from_http_exception(HTTPException(405, headers={"Allow": "HEAD, GET"}))
    assert (error.code, error.status, error.message) == (S.UNIMPLEMENTED, 405, "Method Not Allowed")
    assert error.http_status == 405
    assert dict(error.headers) == {"Allow": "GET, HEAD"}


@pytest.mark.parametrize(
    ("status", "code", "override"),
    [
        pytest.param(404, S.NOT_FOUND, None, id="404-from-table"),
        pytest.param(401, S.UNAUTHENTICATED, None, id="401-from-table"),
        pytest.param(422, S.INVALID_ARGUMENT, None, id="422-first-row"),
        pytest.param(400, S.UNKNOWN, 400, id="400-not-in-table"),
    ],
)
def test_from_http_exception_other_statuses(
    status: int, code: grpc.StatusCode, override: int | None
) -> None:
    """Any other status takes the table's first code for it, else unknown, keeping the status."""
    error = ApiError.from_http_exception(HTTPException(status, detail="nope"))
    assert (error.code, error.status, error.http_status, error.message) == (
        code,
        status,
        override,
        "nope",
    )


def _request(headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


@pytest.mark.anyio
async def test_http_exception_handler_renders_the_envelope() -> None:
    """The handler answers an HTTPException with the ApiError envelope and the request id."""
    exc = HTTPException(405, headers={"Allow": "GET, HEAD"})
    response = await handlers.http_exception(_request({"X-Request-Id": "r1"}), exc)
    assert response.status_code == 405
    assert bytes(response.body) == NOT_ALLOWED
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.headers["X-Request-Id"] == "r1"


@pytest.mark.anyio
async def test_api_error_handler_renders_it() -> None:
    """An ApiError raised under the framework renders as itself, token-aware."""
    error = ApiError(S.UNAUTHENTICATED, "who are you")
    response = await handlers.api_error(_request({"Authorization": "Bearer x"}), error)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert json.loads(bytes(response.body)) == {
        "error": {"code": "unauthenticated", "message": "who are you"}
    }


@pytest.mark.anyio
async def test_handlers_refuse_other_exceptions() -> None:
    """A handler given an exception it was not registered for is a TypeError, not a guess."""
    with pytest.raises(TypeError):
        await handlers.http_exception(_request(), ValueError("x"))
    with pytest.raises(TypeError):
        await handlers.api_error(_request(), ValueError("x"))
