"""Refusing over-long request targets and headers with a JSON 4xx before any route reads them.

The limits are Kestrel's defaults (the real backend's server): an 8 KiB request
line and 32 KiB of headers. uvicorn itself accepts far more (`SERVER_OPTIONS` in
`runner.py` raises its parser's limit), so an over-long header is answered here,
in the service's own error shape, instead of by a dropped connection.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import scoped_error_response

MAX_TARGET_BYTES: Final = 8 * 1024
MAX_HEADER_BYTES: Final = 32 * 1024


class RequestLimitsMiddleware:
    """Answers 414 for a path plus query over `MAX_TARGET_BYTES`, 431 for headers over the limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        target = len(path) + len(scope.get("query_string", b""))
        # As HTTP/1.1 sends them: "name: value\r\n" per header.
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if target > MAX_TARGET_BYTES:
            response = scoped_error_response(
                scope,
                414,
                "uri_too_long",
                f"The request's path and query are longer than {MAX_TARGET_BYTES} bytes.",
                {"limitBytes": MAX_TARGET_BYTES, "receivedBytes": target},
            )
        elif header_bytes > MAX_HEADER_BYTES:
            response = scoped_error_response(
                scope,
                431,
                "headers_too_large",
                f"The request's headers total more than {MAX_HEADER_BYTES} bytes.",
                {"limitBytes": MAX_HEADER_BYTES, "receivedBytes": header_bytes},
            )
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
