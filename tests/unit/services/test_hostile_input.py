"""Every route of every service, fuzzed in-process with hostile input (hypothesis).

Each answer must be below 500, every error a JSON body in the route's shape
(`{code, message, details}`, Helix's `{error, status, message}` under mock-helix's
`/helix/`), no ERROR log record or logged exception, and every journal must stay
readable afterwards. The backend runs without a database here (its database routes
answer 503 `database_unavailable`, the one 5xx allowed); the same properties run
against a real PostgreSQL in tests/integration/services/test_backend_hostile.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from envkit.services.backend.app import build_app
from envkit.services.backend.config import load_config
from envkit.services.mock_eventsub.app import create_app as mock_eventsub
from envkit.services.mock_helix.app import create_app as mock_helix
from envkit.services.mock_jwt.app import create_app as mock_jwt
from envkit.services.synthetic_desktop.app import create_app as synthetic_desktop
from tests.hostile_input import (
    Credentials,
    Tally,
    calls,
    check_answer,
    journal_routes,
    logged_problems,
    make_jwt_key_b64,
    send,
)

API_KEY = "hostile-api-key"
EVENTSUB_SECRET = "hostile-eventsub-secret"
EXTENSION_SECRET = b"hostile-extension-secret-0123456789abcdef"
CREDENTIALS = Credentials(API_KEY, EVENTSUB_SECRET, EXTENSION_SECRET)


def _backend_down(response: httpx.Response) -> bool:
    """Without a database the backend's database routes answer 503; nothing else may be 5xx."""
    return response.status_code == 503 and response.json().get("code") in {
        "database_unavailable",
        "not_ready",
    }


@dataclass
class Service:
    """One app under fuzzing, how its errors look, and what it answered."""

    name: str
    app: Starlette
    helix_prefix: str | None = None
    allowed_5xx: Callable[[httpx.Response], bool] = lambda response: False
    tally: Tally | None = None


def _answer_204(request: httpx.Request) -> httpx.Response:
    return httpx.Response(204)


def _services(closed_port: int) -> list[Service]:
    async def no_wait(seconds: float) -> None:
        return None

    backend_env = {
        "ConnectionStrings__PostgreSQL": (
            f"Host=127.0.0.1;Port={closed_port};Database=mgm;Username=mgm;Password=pw"
        ),
        "ASPNETCORE_ENVIRONMENT": "Development",
        "Mgm__ApiKey": API_KEY,
        "Mgm__EnableE2eHarness": "true",
        "Twitch__EventSubSecret": EVENTSUB_SECRET,
        "Twitch__ExtensionSecret": make_jwt_key_b64(EXTENSION_SECRET),
    }
    # The lifespan (which would connect to the database in the background) never runs:
    # every request finds the database unreachable at once.
    backend = build_app(load_config(backend_env), db_sleep=no_wait)
    fake_backend = httpx.MockTransport(_answer_204)
    mock_env = {"Twitch__EventSubSecret": EVENTSUB_SECRET, "Mgm__ApiKey": API_KEY}
    return [
        Service("backend", backend, allowed_5xx=_backend_down),
        Service("mock-helix", mock_helix({}), helix_prefix="/helix/"),
        Service("mock-eventsub", mock_eventsub(mock_env, transport=fake_backend)),
        Service("mock-jwt", mock_jwt({})),
        Service("synthetic-desktop", synthetic_desktop(mock_env, transport=fake_backend)),
    ]


SERVICE_NAMES = ["backend", "mock-helix", "mock-eventsub", "mock-jwt", "synthetic-desktop"]


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the module's requests."""
    with asyncio.Runner() as loop:
        yield loop


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, Service]]:
    """Each service app once for the module (journals fill up across examples), then a summary."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    built = {service.name: service for service in _services(closed_port)}
    for service in built.values():
        service.tally = Tally()
    yield built
    for service in built.values():
        assert service.tally is not None
        print(f"\n{service.name}: {service.tally.summary()}")


def test_every_service_is_fuzzed(services: dict[str, Service]) -> None:
    """The fuzzing below covers exactly the services the image starts."""
    from envkit.services.__main__ import SERVICES

    assert sorted(services) == sorted(SERVICES) == sorted(SERVICE_NAMES)


@pytest.mark.parametrize("name", SERVICE_NAMES)
@given(data=st.data())
def test_hostile_requests_get_a_4xx_in_the_route_s_error_shape(
    name: str, data: st.DataObject, services: dict[str, Service], runner: asyncio.Runner
) -> None:
    service = services[name]
    call = data.draw(calls(service.app, CREDENTIALS), label="request")

    async def exchange() -> list[tuple[str, httpx.Response]]:
        transport = httpx.ASGITransport(app=service.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            answers = [("request", await send(client, call))]
            # What was recorded must never make a journal unreadable.
            for path in journal_routes(service.app):
                answers.append((f"GET {path}", await client.get(path)))
            return answers

    with logged_problems() as problems:
        answers = runner.run(exchange())
    assert service.tally is not None
    first = answers[0][1]
    service.tally.statuses[first.status_code] += 1
    check_answer(call, first, helix_prefix=service.helix_prefix, allowed_5xx=service.allowed_5xx)
    for what, response in answers[1:]:
        assert response.status_code < 500 or service.allowed_5xx(response), (
            f"after {call.describe()}, {what} answered {response.status_code}: "
            f"{response.text[:300]}"
        )
    assert problems == [], f"{call.describe()} logged: {problems}"
