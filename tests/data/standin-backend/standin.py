"""The stand-in backend's entry point: envkit's reference backend, plus GET /api/version.

`/api/version` reports the `Version__*` variables (as the MGM contract says the real
backend does); every other request goes to the reference backend unchanged.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import uvicorn

from services.backend.app import create_app
from services.common import configure_logging, listen_address

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def version_body(env: Mapping[str, str]) -> bytes:
    """The contract's `GET /api/version` body, from the `Version__*` variables."""
    names = {
        "version": "CurrentVersion",
        "releaseNotesUrl": "ReleaseNotesUrl",
        "minimumDesktopVersion": "MinimumDesktopVersion",
        "minimumAddonVersion": "MinimumAddonVersion",
        "minimumExtensionVersion": "MinimumExtensionVersion",
    }
    body = {key: env.get(f"Version__{name}", "") for key, name in names.items()}
    return json.dumps({**body, "implementation": "standin"}).encode()


def with_version_route(app: App, body: bytes) -> App:
    """`app`, with GET /api/version answered here (lifespan and the rest pass through)."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/version":
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return asgi


def main(argv: list[str]) -> int:
    """Serve the backend where ASPNETCORE_URLS says; the only command is `backend`."""
    if argv not in ([], ["backend"]):
        print("usage: standin.py [backend]", file=sys.stderr)
        return 2
    configure_logging("backend")
    host, port = listen_address(os.environ)
    app = with_version_route(create_app(dict(os.environ)), version_body(os.environ))
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
