"""Assembling a service: its routes plus what every service has (health, request log, errors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan

from .errors import ErrorShape, install_error_handlers
from .health import health_body
from .limits import RequestLimitsMiddleware
from .logging import RequestLogMiddleware


def service_app(
    name: str,
    routes: Sequence[BaseRoute],
    *,
    state: dict[str, Any] | None = None,
    lifespan: Lifespan[Starlette] | None = None,
    error_shape: ErrorShape | None = None,
) -> Starlette:
    """A Starlette app with `GET /health` (`health_body`), a log line per request, JSON errors.

    Errors are `{code, message, details}` unless `error_shape` gives another body for a path.
    """
    body = health_body(name)

    async def health(request: Request) -> Response:
        return JSONResponse(body)

    app = Starlette(
        routes=[Route("/health", health, methods=["GET"]), *routes],
        middleware=[Middleware(RequestLogMiddleware), Middleware(RequestLimitsMiddleware)],
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.state.error_shape = error_shape
    for key, value in (state or {}).items():
        setattr(app.state, key, value)
    return app
