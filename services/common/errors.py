"""The `{code, message, details}` error shape every service answers with.

A route raises `ApiError`; the handlers installed by `install_error_handlers`
turn it, Starlette's own HTTP errors and anything unexpected into that JSON
shape, so no client ever sees a stack trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from .logging import log

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    431: "headers_too_large",
}


class ApiError(Exception):
    """An error a route answers with: HTTP status, stable code, sentence, details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


# (path, status, code, message, details) -> the body to answer with, or None for the default
# `{code, message, details}`; a mock whose routes imitate another API (Helix) sets one.
ErrorShape = Callable[[str, int, str, str, Any], "dict[str, Any] | None"]


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build the JSON error response `{code, message, details}`."""
    body = {"code": code, "message": message, "details": details}
    return JSONResponse(body, status_code=status, headers=headers)


def scoped_error_response(
    scope: Scope,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Like `error_response`, in the shape the app chose for this path (`service_app`'s shape)."""
    app = scope.get("app")
    shape: ErrorShape | None = getattr(getattr(app, "state", None), "error_shape", None)
    body = shape(scope.get("path", ""), status, code, message, details) if shape else None
    if body is None:
        return error_response(status, code, message, details, headers)
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return scoped_error_response(
        request.scope, exc.status, exc.code, exc.message, exc.details, exc.headers
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    detail = str(exc.detail)
    return scoped_error_response(request.scope, exc.status_code, code, detail, None, headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on {} {}", request.method, request.url.path)
    return scoped_error_response(
        request.scope, 500, "internal_error", "The service hit an unexpected error; see its log."
    )


def install_error_handlers(app: Starlette) -> None:
    """Make `app` answer every error in the `{code, message, details}` shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
