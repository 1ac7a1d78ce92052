"""Exception handlers for what the framework raises itself, so no {"detail": ...} body escapes.

Starlette looks handlers up along the exception's MRO, so registering the base classes covers
every subclass. Everything ends in status.ApiError.to_response.

The framework serves only the bridge's own paths (/openapi.json, /healthz, /readyz, all plain
Starlette routes without parameters), so no request validation runs and the only HTTPException
it can raise is 405 for a wrong method on one of them.
"""

from __future__ import annotations

import logging

import grpc
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from rest_bridge.metadata import request_id
from rest_bridge.status import ApiError

log = logging.getLogger(__name__)


def _render(request: Request, error: ApiError) -> Response:
    rid = request_id(request.headers.get("x-request-id"))
    return error.to_response("authorization" in request.headers, rid)


async def api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):
        raise TypeError(f"registered for ApiError, got {type(exc).__name__}")
    return _render(request, exc)


async def http_exception(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        raise TypeError(f"registered for HTTPException, got {type(exc).__name__}")
    return _render(request, ApiError.from_http_exception(exc))


async def unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request.headers.get("x-request-id"))
    log.error("unexpected error (request id %s)", rid, exc_info=exc)
    return ApiError(grpc.StatusCode.INTERNAL, "internal error").to_response(False, rid)


def install(app: FastAPI) -> None:
    """Register the handlers on app."""
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_exception)
    app.add_exception_handler(Exception, unexpected)
