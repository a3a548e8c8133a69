"""Every service's `GET /health` body, and every mock starting with only `ASPNETCORE_URLS`.

The MGM project's health verifiers compare `status` and `service`/`component`
character for character, so these tests pin the exact values; extra fields are
allowed by the contract and only `name` is added.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from envkit.services.__main__ import SERVICES
from envkit.services.backend.app import create_app as backend_app
from envkit.services.common.health import MGM_HEALTH, health_body
from envkit.services.mock_eventsub.app import create_app as eventsub_app
from envkit.services.mock_helix.app import create_app as helix_app
from envkit.services.mock_jwt.app import create_app as jwt_app
from envkit.services.synthetic_desktop.app import create_app as desktop_app

ONLY_URLS = {"ASPNETCORE_URLS": "http://+:8080"}
# What mock-eventsub and mock-jwt need today besides ASPNETCORE_URLS (their own tests own
# whether they may start without it); the health body does not depend on it.
EVENTSUB_ENV = {**ONLY_URLS, "Backend__BaseUrl": "http://127.0.0.1:8080",
                "Twitch__EventSubSecret": "health-test-secret",
                "Twitch__BroadcasterUserId": "1971641"}  # fmt: skip
JWT_ENV = {**ONLY_URLS, "Twitch__BroadcasterUserId": "1971641",
           "Twitch__ExtensionSecret": base64.b64encode(b"k" * 32).decode()}  # fmt: skip

AppFactory = Callable[[dict[str, str]], Starlette]
MOCKS: dict[str, tuple[AppFactory, dict[str, str], dict[str, str]]] = {
    "mock-eventsub": (
        eventsub_app, EVENTSUB_ENV, {"status": "ok", "service": "MockEventSubWebhook"},
    ),
    "mock-jwt": (jwt_app, JWT_ENV, {"status": "ok", "service": "MockExtensionJwt"}),
    "mock-helix": (helix_app, ONLY_URLS, {"status": "healthy", "component": "MockHelixApi"}),
    "synthetic-desktop": (
        desktop_app, ONLY_URLS, {"status": "healthy", "component": "SyntheticDesktop"},
    ),
}  # fmt: skip


def test_every_mock_has_an_mgm_health_body() -> None:
    assert set(MGM_HEALTH) == set(MOCKS) == set(SERVICES) - {"backend"}


@pytest.mark.parametrize("name", sorted(MOCKS))
def test_health_body_is_what_the_mgm_health_verifier_compares(client_for: Any, name: str) -> None:
    """The MGM health verifiers compare these key/value pairs exactly; only `name` is extra."""
    make, env, expected = MOCKS[name]
    answer = client_for(make(env)).get("/health")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {**expected, "name": name}


@pytest.mark.parametrize("name", ["mock-eventsub", "mock-jwt", "mock-helix", "synthetic-desktop"])
def test_mock_starts_with_only_aspnetcore_urls_like_the_mgm_mocks(
    client_for: Any, name: str
) -> None:
    """The MGM workflow starts each mock with ASPNETCORE_URLS alone; the defaults do the rest."""
    make, _, expected = MOCKS[name]
    client = client_for(make(dict(ONLY_URLS)))
    assert client.get("/health").json() == {**expected, "name": name}


def test_backend_keeps_its_own_health_and_answers_get_root_without_a_5xx() -> None:
    """MGM's health verifier calls `GET /` on the backend and accepts any status but a 5xx."""
    app = backend_app(
        {"ConnectionStrings__PostgreSQL": "Host=127.0.0.1;Port=1;Database=d;Username=u"}
    )

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as client:
            return await client.get("/"), await client.get("/health")

    root, health = asyncio.run(call())
    assert 200 <= root.status_code < 500
    assert root.json()["code"] == "not_found"
    assert health.json() == health_body("backend") == {"service": "backend", "status": "ok"}
