"""The audit service of the second test stack: keeps the notes API's signed webhooks.

`POST /events` accepts a body only with a valid `X-Notes-Signature` (HMAC-SHA256 with
AUDIT_WEBHOOK_SECRET); `GET /events` lists what was accepted. Configuration:
AUDIT_WEBHOOK_SECRET, PORT.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET = os.environ.get("AUDIT_WEBHOOK_SECRET", "").encode()
EVENTS: list[Any] = []


def log(line: str) -> None:
    print(f"audit {line}", flush=True)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "audit"})


async def receive(request: Request) -> Response:
    raw = await request.body()
    expected = "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    given = request.headers.get("x-notes-signature", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        log("refused an event with a bad signature")
        return JSONResponse({"code": "bad_signature"}, status_code=403)
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):
        return JSONResponse({"code": "bad_json"}, status_code=400)
    EVENTS.append(event)
    log(f"accepted {event.get('type') if isinstance(event, dict) else 'an event'}")
    return Response(status_code=204)


async def events(request: Request) -> Response:
    return JSONResponse(EVENTS)


def main() -> None:
    if not SECRET:
        log("AUDIT_WEBHOOK_SECRET must be set")
        sys.exit(2)
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/events", receive, methods=["POST"]),
            Route("/events", events, methods=["GET"]),
        ]
    )
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")), log_level="info")


if __name__ == "__main__":
    main()
