"""The backend on a real PostgreSQL, fuzzed with hostile input on every route (hypothesis).

Here nothing may answer 5xx: with the database up, hostile values reach the queries
(NUL bytes, lone surrogates and over-long ids must be refused before PostgreSQL sees them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_input import Credentials, Tally, calls, check_answer, logged_problems, send

pytestmark = pytest.mark.integration


@pytest.fixture
def running(make_backend: Any) -> Iterator[tuple[asyncio.Runner, httpx.AsyncClient, Credentials]]:
    """The backend on this test's fresh database, its schema in place, one event loop."""
    with asyncio.Runner() as loop:
        context = make_backend()
        backend = loop.run(context.__aenter__())
        try:
            for _ in range(200):  # the schema is created in the background at start
                if loop.run(backend.client.get("/api/version")).status_code == 200:
                    break
                loop.run(asyncio.sleep(0.05))
            credentials = Credentials(
                backend.api_key, backend.eventsub_secret, backend.extension_secret
            )
            yield loop, backend.client, credentials
        finally:
            loop.run(context.__aexit__(None, None, None))


def test_hostile_requests_to_the_backend_on_postgres_never_get_a_5xx(
    running: tuple[asyncio.Runner, httpx.AsyncClient, Credentials],
) -> None:
    loop, client, credentials = running
    assert loop.run(client.get("/api/version")).status_code == 200, "the schema never came up"
    tally = Tally()
    app = client._transport.app  # type: ignore[attr-defined]

    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        call = data.draw(calls(app, credentials), label="request")
        with logged_problems() as problems:
            response = loop.run(send(client, call))
        tally.statuses[response.status_code] += 1
        check_answer(call, response)
        assert problems == [], f"{call.describe()} logged: {problems}"

    started = time.monotonic()
    one()
    print(f"\nbackend on PostgreSQL: {tally.summary()} ({time.monotonic() - started:.1f} s)")
    assert tally.sent > 0
