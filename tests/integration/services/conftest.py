"""Fixtures for the reference backend's integration tests: the app in-process on a real PostgreSQL.

The backend runs through `httpx.ASGITransport`; its Helix calls go to an
`httpx.MockTransport` that records them, and every retry sleep is recorded
instead of slept, so the suite never waits.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from psycopg.conninfo import conninfo_to_dict

from envkit.services.backend.app import build_app
from envkit.services.backend.config import load_config
from envkit.services.backend.eventsub import compute_signature
from envkit.services.backend.helix import RetryPolicy
from envkit.services.common import log

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "twitch"
API_KEY = "test-api-key-4f1c"
EVENTSUB_SECRET = "test-eventsub-secret-9a2b"
EXTENSION_SECRET = b"extension-secret-bytes-for-tests-0123"
EXTENSION_CLIENT_ID = "test-extension-client-id"
BROADCASTER_TOKEN = "broadcaster-token-77e1"
BROADCASTER_ID = "1971641"
HELIX_CLIENT_ID = "helix-client-id-5d0a"
HELIX_ROOT = "http://mock-helix.test:9053/"


def npgsql_connection_string(libpq_dsn: str) -> str:
    """Turn a libpq `key=value` conninfo into the Npgsql form the backend reads."""
    parts = conninfo_to_dict(libpq_dsn)

    def quoted(value: object) -> str:
        text = str(value)
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in ";=\"'") else text

    fields = {
        "Host": parts.get("host", "127.0.0.1"),
        "Port": parts.get("port", "5432"),
        "Database": parts.get("dbname", ""),
        "Username": parts.get("user", ""),
        "Password": parts.get("password", ""),
    }
    return ";".join(f"{key}={quoted(value)}" for key, value in fields.items())


def backend_env(connection_string: str, **overrides: str) -> dict[str, str]:
    """The environment a test backend gets, with the harness on unless overridden."""
    env = {
        "ConnectionStrings__PostgreSQL": connection_string,
        "ASPNETCORE_ENVIRONMENT": "Development",
        "Mgm__ApiKey": API_KEY,
        "Mgm__EnableE2eHarness": "true",
        "Twitch__EventSubSecret": EVENTSUB_SECRET,
        "Twitch__ExtensionSecret": base64.b64encode(EXTENSION_SECRET).decode(),
        "Twitch__ExtensionClientId": EXTENSION_CLIENT_ID,
        "Twitch__HelixApiBaseUrl": HELIX_ROOT,
        "Twitch__BroadcasterAccessToken": BROADCASTER_TOKEN,
        "Twitch__BroadcasterUserId": BROADCASTER_ID,
        "Twitch__HelixClientId": HELIX_CLIENT_ID,
    }
    env.update(overrides)
    return env


def viewer_token(user_id: str, *, expires_in: int = 600, **claims: Any) -> str:
    """An extension JWT for `user_id`, signed like mock-jwt does."""
    payload: dict[str, Any] = {
        "user_id": user_id,
        "opaque_user_id": f"U{user_id}",
        "channel_id": BROADCASTER_ID,
        "role": "viewer",
        "aud": EXTENSION_CLIENT_ID,
        "exp": int(time.time()) + expires_in,
    }
    payload.update(claims)
    return jwt.encode(payload, EXTENSION_SECRET, algorithm="HS256")


def chat_notification(user_id: str, text: str, badges: tuple[str, ...] = ("subscriber",)) -> bytes:
    """A `channel.chat.message` notification body built from Twitch's published example."""
    body = json.loads((EXAMPLES / "channel_chat_message.json").read_bytes())
    event = body["event"]
    event["chatter_user_id"] = user_id
    event["chatter_user_login"] = f"viewer{user_id}"
    event["chatter_user_name"] = f"Viewer{user_id}"
    event["message"]["text"] = text
    event["message"]["fragments"][0]["text"] = text
    event["badges"] = [{"set_id": badge, "id": "1", "info": ""} for badge in badges]
    return json.dumps(body).encode()


@dataclass
class HelixFake:
    """Records Helix calls; answers from `script` in order, then 200 `is_sent: true`."""

    script: list[httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        """The MockTransport handler."""
        self.requests.append(request)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        return httpx.Response(200, json={"data": [{"message_id": "m1", "is_sent": True}]})


@dataclass
class BackendUnderTest:
    """The running app, its client, the Helix fake, the sleeps it asked for, and test helpers.

    Tests reach the shared settings through these attributes rather than importing
    this conftest (two conftest modules exist under tests/, so `import conftest` is ambiguous).
    """

    client: httpx.AsyncClient
    helix: HelixFake
    sleeps: list[float]
    api_key: str = API_KEY
    eventsub_secret: str = EVENTSUB_SECRET
    extension_secret: bytes = EXTENSION_SECRET
    extension_client_id: str = EXTENSION_CLIENT_ID
    broadcaster_token: str = BROADCASTER_TOKEN
    broadcaster_id: str = BROADCASTER_ID
    helix_client_id: str = HELIX_CLIENT_ID
    examples: Path = EXAMPLES

    @staticmethod
    def notification(user_id: str, text: str, badges: tuple[str, ...] = ("subscriber",)) -> bytes:
        """A signed-ready `channel.chat.message` notification body."""
        return chat_notification(user_id, text, badges)

    @staticmethod
    def token(user_id: str, *, expires_in: int = 600, **claims: Any) -> str:
        """An extension JWT for `user_id`."""
        return viewer_token(user_id, expires_in=expires_in, **claims)

    async def deliver(
        self,
        body: bytes,
        *,
        message_type: str = "notification",
        message_id: str | None = None,
        timestamp: str | None = None,
        secret: str = EVENTSUB_SECRET,
    ) -> httpx.Response:
        """POST a signed EventSub webhook."""
        message_id = message_id or str(uuid.uuid4())
        timestamp = timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        headers = {
            "Twitch-Eventsub-Message-Id": message_id,
            "Twitch-Eventsub-Message-Timestamp": timestamp,
            "Twitch-Eventsub-Message-Signature": compute_signature(
                secret, message_id, timestamp, body
            ),
            "Twitch-Eventsub-Message-Type": message_type,
            "Content-Type": "application/json",
        }
        return await self.client.post("/api/twitch/eventsub", content=body, headers=headers)

    async def chat(
        self, user_id: str, text: str, badges: tuple[str, ...] = ("subscriber",)
    ) -> None:
        """Deliver a chat message and insist the backend acknowledged it."""
        response = await self.deliver(chat_notification(user_id, text, badges))
        assert response.status_code == 204, response.text

    async def pool_me(self, user_id: str) -> dict[str, Any]:
        """The viewer's `GET /api/pool/me` answer (asserting 200)."""
        response = await self.client.get(
            "/api/pool/me", headers={"Authorization": f"Bearer {viewer_token(user_id)}"}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def desktop(
        self, method: str, path: str, body: Any = None, *, key: str | None = API_KEY
    ) -> httpx.Response:
        """Call an API-key route as the desktop app."""
        headers = {"X-MGM-ApiKey": key} if key is not None else {}
        return await self.client.request(method, path, json=body, headers=headers)

    async def prepare_payout(self, user_id: str) -> dict[str, Any]:
        """Use the harness to make a Pending payout for an enrolled viewer (asserting 200)."""
        response = await self.desktop(
            "POST", "/api/e2e/prepare-pending-payout", {"twitchUserId": user_id}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


BackendFactory = Callable[..., AbstractAsyncContextManager[BackendUnderTest]]


@pytest.fixture
def backend_connection_string(pg_dsn: str) -> str:
    """The Npgsql connection string of this test's fresh database."""
    return npgsql_connection_string(pg_dsn)


@pytest.fixture
def make_backend(backend_connection_string: str) -> BackendFactory:
    """Build `async with make_backend(**env_overrides) as backend:` on this test's database."""

    @asynccontextmanager
    async def factory(
        *, helix: HelixFake | None = None, **overrides: str
    ) -> AsyncIterator[BackendUnderTest]:
        helix = helix or HelixFake()
        sleeps: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            sleeps.append(seconds)

        config = load_config(backend_env(backend_connection_string, **overrides))
        app = build_app(
            config,
            helix_transport=httpx.MockTransport(helix.handler),
            helix_policy=RetryPolicy(attempts=4, timeout_s=5.0),
            helix_sleep=fake_sleep,
            db_sleep=fake_sleep,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as client:
            yield BackendUnderTest(client, helix, sleeps)

    return factory


@pytest.fixture
def captured_log() -> Iterator[list[str]]:
    """Every log line (message and exception text) emitted during the test."""
    lines: list[str] = []
    sink_id = log.add(lambda message: lines.append(str(message).rstrip()), format="{message}")
    try:
        yield lines
    finally:
        log.remove(sink_id)


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio only (psycopg's async driver needs it)."""
    return "asyncio"
