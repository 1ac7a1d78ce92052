"""Exception handlers for what the framework raises itself, so no {"detail": ...} body escapes.

Starlette looks handlers up along the exception's MRO, so registering the base classes covers
every subclass. Everything ends in status.ApiError.to_response.
"""

from __future__ import annotations

import logging

import grpc
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from rest_bridge.metadata import request_id
from rest_bridge.status import STATUS_TABLE, ApiError

log = logging.getLogger(__name__)

# HTTP status of an HTTPException that Starlette or FastAPI raises -> the gRPC code whose
# envelope it gets (the reverse direction of status.STATUS_TABLE, for the framework's statuses).
_HTTP_TO_CODE: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    500: grpc.StatusCode.INTERNAL,
}


def _render(request: Request, error: ApiError) -> Response:
    rid = request_id(request.headers.get("x-request-id"))
    return error.to_response("authorization" in request.headers, rid)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _render(request, exc)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_TO_CODE.get(exc.status_code, grpc.StatusCode.UNKNOWN)
    http_status = None if STATUS_TABLE[code][0] == exc.status_code else exc.status_code
    headers = dict(exc.headers or {})
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return _render(request, ApiError(code, message, http_status=http_status, headers=headers))


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _render(request, ApiError(grpc.StatusCode.INVALID_ARGUMENT, "invalid request"))


async def unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request.headers.get("x-request-id"))
    log.error("unexpected error (request id %s)", rid, exc_info=exc)
    return ApiError(grpc.StatusCode.INTERNAL, "internal error").to_response(False, rid)


def install(app: FastAPI) -> None:
    """Register the handlers on app."""
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_exception)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
