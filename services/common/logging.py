"""One log line per request, on stderr, through loguru."""

from __future__ import annotations

import sys
import time

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logger


def configure_logging(service: str) -> None:
    """Send this service's log to stderr with a timestamp and its name."""
    logger.remove()
    logger.add(
        _stderr,
        format="{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level:<7} " + service + " {message}",
        level="INFO",
        backtrace=False,
        diagnose=False,
    )


def _stderr(message: str) -> None:
    # Whatever sys.stderr is at write time: a stream replaced after start-up (a test
    # runner's capture, for one) must not leave the log writing to a closed file.
    sys.stderr.write(message)


class RequestLogMiddleware:
    """Logs `METHOD path -> status in N ms` once per HTTP request (never headers or bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.info(
                "{} {} -> {} in {:.1f} ms", scope["method"], scope["path"], status, elapsed_ms
            )
