"""PostgresProbe against the session's real PostgreSQL: ready, wrong password, missing database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from envkit.healthchecks import (
    PostgresProbe,
    ProbeFailed,
    ProbeTimeout,
    RetryPolicy,
    wait_until_ready,
)

if TYPE_CHECKING:  # only for annotations: conftest is pytest's to import
    from tests.integration.conftest import PostgresServer


def probe_for(server: PostgresServer, **overrides: str) -> PostgresProbe:
    fields = {"user": server.user, "password": server.password, "dbname": "envkit"} | overrides
    return PostgresProbe(server.host, server.port, **fields)


def test_ready_database_passes_and_wait_takes_one_attempt(
    postgres_server: PostgresServer,
) -> None:
    probe = probe_for(postgres_server)
    probe.check()

    result = wait_until_ready(probe, RetryPolicy(timeout=10), service="postgres")

    assert result.attempts == 1


def test_custom_query_runs(postgres_server: PostgresServer) -> None:
    probe_for(postgres_server).check()
    PostgresProbe(
        postgres_server.host,
        postgres_server.port,
        postgres_server.user,
        postgres_server.password,
        "envkit",
        query="SELECT count(*) FROM pg_catalog.pg_tables",
    ).check()


def test_wrong_password_is_named_and_the_password_is_not(postgres_server: PostgresServer) -> None:
    probe = probe_for(postgres_server, password="not-the-password")

    with pytest.raises(ProbeFailed) as caught:
        probe.check()

    assert "password authentication failed for user" in caught.value.reason
    assert "not-the-password" not in caught.value.reason


def test_missing_database_times_out_with_the_server_error(
    postgres_server: PostgresServer,
) -> None:
    probe = probe_for(postgres_server, dbname="no_such_db")

    with pytest.raises(ProbeTimeout) as caught:
        wait_until_ready(probe, RetryPolicy(timeout=0.3), service="postgres")

    assert caught.value.attempts >= 2
    assert 'database "no_such_db" does not exist' in str(caught.value)
    assert postgres_server.password not in str(caught.value)
