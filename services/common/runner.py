"""Where a service listens, from the .NET-style `ASPNETCORE_URLS` every service honours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

DEFAULT_URLS = "http://+:8080"

# uvicorn's settings for every service. Its HTTP parser drops a connection whose headers
# exceed 16 KiB with a bare 400; read up to 1 MiB instead, so `RequestLimitsMiddleware`
# answers over-long headers (more than 32 KiB) in the service's JSON error shape.
# The protocol, loop and interface are named rather than left to "auto", which tries to
# import httptools, websockets, wsproto and uvloop at every start (none is installed, and
# no service has a WebSocket route): the same server, with less start-up work.
SERVER_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "log_level": "warning",
    "h11_max_incomplete_event_size": 1024 * 1024,
    "http": "h11",
    "ws": "none",
    "loop": "asyncio",
    "interface": "asgi3",
}


def listen_address(env: Mapping[str, str]) -> tuple[str, int]:
    """Return (host, port) from `ASPNETCORE_URLS` (first URL; `+`/`*` mean all interfaces)."""
    urls = env.get("ASPNETCORE_URLS", "").strip() or DEFAULT_URLS
    first = urls.split(";")[0].strip()
    netloc = urlsplit(first).netloc
    host, _, port = netloc.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"ASPNETCORE_URLS={urls!r} has no valid port; use a value like 'http://+:8080'."
        )
    if host in ("+", "*", "", "[::]"):
        host = "0.0.0.0"
    return host, int(port)
