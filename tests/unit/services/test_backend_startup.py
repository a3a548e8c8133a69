"""The backend with no reachable database: it serves, reports not-ready, and keeps retrying."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Iterator

import httpx
import jwt
import psycopg
import pytest

from envkit.services.__main__ import main as services_main
from envkit.services.backend.app import build_app, create_app
from envkit.services.backend.config import ConfigError, load_config, parse_connection_string
from envkit.services.backend.db import Database
from envkit.services.backend.eventsub import compute_signature
from envkit.services.common import log

SECRET = b"extension-secret-for-startup-tests"


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = log.add(lambda m: lines.append(str(m).rstrip("\n")), format="{message}")
    yield lines
    log.remove(sink)


def _env(port: int) -> dict[str, str]:
    return {
        "ConnectionStrings__PostgreSQL": (
            f"Host=127.0.0.1;Port={port};Database=mgm;Username=envkit;Password=pw-not-logged"
        ),
        "Mgm__ApiKey": "key",
        "Twitch__EventSubSecret": "es",
        "Twitch__ExtensionSecret": base64.b64encode(SECRET).decode(),
    }


def test_invalid_connection_string_fails_at_startup_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="ConnectionStrings__PostgreSQL has no Host"):
        create_app({"ConnectionStrings__PostgreSQL": "Database=mgm;Username=u"})
    monkeypatch.setenv("ConnectionStrings__PostgreSQL", "Database=mgm;Username=u")
    assert services_main(["backend"]) == 2
    err = capsys.readouterr().err
    assert "backend: cannot start: ConnectionStrings__PostgreSQL has no Host" in err
    assert "Traceback" not in err


def test_serves_while_the_database_is_unreachable(closed_port: int) -> None:
    app = create_app(_env(closed_port))
    token = jwt.encode({"user_id": "1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = b'{"subscription": {"type": "channel.chat.message"}, "event": {}}'
    eventsub_headers = {
        "Twitch-Eventsub-Message-Id": "m1",
        "Twitch-Eventsub-Message-Timestamp": stamp,
        "Twitch-Eventsub-Message-Signature": compute_signature("es", "m1", stamp, body),
        "Twitch-Eventsub-Message-Type": "notification",
    }

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as client:
            return [
                await client.get("/health"),
                await client.get("/health/ready"),
                await client.get("/api/pool/me", headers={"Authorization": f"Bearer {token}"}),
                await client.get("/api/payouts/pending", headers={"X-MGM-ApiKey": "key"}),
                await client.post("/api/twitch/eventsub", content=body, headers=eventsub_headers),
                await client.get("/api/version"),
            ]

    health, ready, pool, pending, eventsub, version = asyncio.run(scenario())
    assert health.status_code == 200
    assert health.json() == {"service": "backend", "status": "ok"}
    assert ready.status_code == 503
    assert ready.json()["code"] == "not_ready"
    assert set(ready.json()) == {"code", "message", "details"}
    for response in (pool, pending, eventsub):
        assert response.status_code == 503
        assert response.json()["code"] == "database_unavailable"
    # GET /api/version is the stack's readiness probe (it works for the real backend too),
    # so it must not pass before the backend can serve requests.
    assert version.status_code == 503
    assert version.json()["code"] == "not_ready"
    assert "database" in version.json()["details"]


def test_wait_until_ready_logs_each_attempt_and_backs_off(
    closed_port: int, log_lines: list[str]
) -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    settings = parse_connection_string(
        f"Host=127.0.0.1;Port={closed_port};Database=mgm;Username=u;Password=hush-hush"
    )
    db = Database(settings, sleep=fake_sleep, max_backoff_s=2.0)
    with pytest.raises(psycopg.OperationalError):
        asyncio.run(db.wait_until_ready(max_attempts=5))
    assert sleeps == [0.5, 1.0, 2.0, 2.0]
    retries = [line for line in log_lines if line.startswith("database not reachable yet")]
    assert len(retries) == 4
    assert retries[0].startswith("database not reachable yet (attempt 1), retrying in 0.5 s: ")
    assert "connection" in retries[0].lower()
    assert not any("hush-hush" in line for line in log_lines)
    assert db.schema_ready is False


def test_lifespan_retries_in_the_background_and_stops_cleanly(
    closed_port: int, log_lines: list[str]
) -> None:
    async def scenario() -> None:
        attempts = asyncio.Event()
        count = 0

        async def fake_sleep(seconds: float) -> None:
            nonlocal count
            count += 1
            if count >= 2:
                attempts.set()
            await asyncio.sleep(0)

        app = build_app(load_config(_env(closed_port)), db_sleep=fake_sleep)
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(attempts.wait(), timeout=10)

    asyncio.run(scenario())
    assert any("backend starting" in line for line in log_lines)
    assert sum(line.startswith("database not reachable yet") for line in log_lines) >= 2
    assert not any("pw-not-logged" in line for line in log_lines)


def _lookup_fails(monkeypatch: pytest.MonkeyPatch, errno: int) -> list[str]:
    asked: list[str] = []

    def getaddrinfo(host: str, *args: object) -> object:
        asked.append(host)
        raise socket.gaierror(errno, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_database_host_that_does_not_exist_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = _lookup_fails(monkeypatch, socket.EAI_NONAME)
    conn = "Host=db-typo;Port=5432;Database=mgm;Username=u;Password=hush-hush"
    monkeypatch.setenv("ConnectionStrings__PostgreSQL", conn)
    assert services_main(["backend"]) == 2
    err = capsys.readouterr().err
    assert asked == ["db-typo"]
    assert (
        "backend: cannot start: the database host 'db-typo' of ConnectionStrings__PostgreSQL "
        "does not resolve (Name or service not known); name the PostgreSQL service or its "
        "address as Host"
    ) in err
    assert "hush-hush" not in err


def test_a_lookup_that_fails_for_a_passing_reason_is_left_to_the_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _lookup_fails(monkeypatch, socket.EAI_AGAIN)
    create_app(
        {"ConnectionStrings__PostgreSQL": "Host=db;Port=5432;Database=mgm;Username=u"}
    )  # no error: the background retries wait for the name
