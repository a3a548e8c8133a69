"""Shared fixtures for the mock-service tests: real HTTP servers in threads, a fake backend."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from envkit.services.common.runner import SERVER_OPTIONS


class Servers:
    """Real uvicorn servers on 127.0.0.1, each in a thread; `stop()` stops them all together."""

    def __init__(self) -> None:
        self._running: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(self, app: ASGIApp) -> str:
        """Serve `app` on a free port and return its base URL once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan="off", **SERVER_OPTIONS)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._running.append((server, thread, sock))
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The test server on port {port} did not start within 10 s.")
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Ask every server to exit, then wait for each (uvicorn polls every 0.1 s)."""
        for server, _, _ in self._running:
            server.should_exit = True
        for _, thread, sock in self._running:
            thread.join(timeout=10)
            sock.close()
        self._running.clear()


@pytest.fixture
def serve_app() -> Iterator[Callable[[ASGIApp], str]]:
    """Start apps on real servers for one test (`url = serve_app(app)`); all stop afterwards."""
    servers = Servers()
    try:
        yield servers.start
    finally:
        servers.stop()


@pytest.fixture
def client_for(
    serve_app: Callable[[ASGIApp], str],
) -> Iterator[Callable[[ASGIApp], httpx.Client]]:
    """Serve an app for real and return an `httpx.Client` bound to it; both closed afterwards."""
    with ExitStack() as stack:

        def make(app: ASGIApp) -> httpx.Client:
            client = httpx.Client(base_url=serve_app(app), timeout=30)
            return stack.enter_context(client)

        yield make


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Received:
    """One request the fake backend received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


Responder = Callable[[Received], "tuple[int, Any] | None"]


@dataclass
class FakeBackend:
    """A stand-in for the MGM backend that records requests and answers as scripted.

    With `eventsub_secret` set, `/api/twitch/eventsub` checks the HMAC independently of the
    code under test (403 on mismatch) and echoes challenges as Twitch expects.
    """

    eventsub_secret: str | None = None
    responder: Responder | None = None
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        """Record the request, then answer."""
        got = Received(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            await request.body(),
        )
        self.received.append(got)
        if self.responder is not None:
            scripted = self.responder(got)
            if scripted is not None:
                status, body = scripted
                if isinstance(body, str):
                    return PlainTextResponse(body, status_code=status)
                return JSONResponse(body, status_code=status)
        if got.path == "/api/twitch/eventsub" and self.eventsub_secret is not None:
            return self._eventsub(got)
        return JSONResponse({"ok": True})

    def _eventsub(self, got: Received) -> Response:
        message = (
            got.headers.get("twitch-eventsub-message-id", "").encode()
            + got.headers.get("twitch-eventsub-message-timestamp", "").encode()
            + got.body
        )
        assert self.eventsub_secret is not None
        expected = (
            "sha256=" + hmac.new(self.eventsub_secret.encode(), message, hashlib.sha256).hexdigest()
        )
        if got.headers.get("twitch-eventsub-message-signature") != expected:
            return JSONResponse({"code": "invalid_signature"}, status_code=403)
        if got.headers.get("twitch-eventsub-message-type") == "webhook_callback_verification":
            return PlainTextResponse(got.json()["challenge"])
        return Response(status_code=204)

    def app(self) -> Starlette:
        """The ASGI app answering every path and method."""
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])


@pytest.fixture
def fake_backend(serve_app: Callable[[ASGIApp], str]) -> FakeBackend:
    """A running fake backend (real HTTP on 127.0.0.1), stopped after the test."""
    backend = FakeBackend()
    backend.url = serve_app(backend.app())
    return backend
