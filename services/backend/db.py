"""The backend's PostgreSQL: connections, the schema, and waiting for the server to come up.

Each request opens its own short-lived connection (psycopg 3, async). That
costs a millisecond or two on a local network and means a database restart
needs no reconnect logic. Until the schema is in place every database route
answers 503 (`GET /api/version`, the readiness probe, too), and the app keeps
serving `/health` meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, LiteralString

import psycopg
from psycopg.rows import DictRow, dict_row
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
)

from ..common import ApiError, log
from .config import DatabaseSettings

Connection = psycopg.AsyncConnection[DictRow]
Sleep = Callable[[float], Awaitable[None]]

# Serialises schema creation when several backends share one database.
_SCHEMA_LOCK_KEY = 0x4D474D01

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS pool_entries (
    twitch_user_id  text PRIMARY KEY,
    display_name    text NOT NULL,
    character_name  text NOT NULL,
    character_key   text NOT NULL,
    enrolled_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE pool_entries ADD COLUMN IF NOT EXISTS enrollment_request_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS pool_entries_character_key ON pool_entries (character_key);

CREATE TABLE IF NOT EXISTS payouts (
    id              uuid PRIMARY KEY,
    twitch_user_id  text NOT NULL,
    character_name  text NOT NULL,
    amount          integer NOT NULL CHECK (amount > 0),
    status          text NOT NULL CHECK (status IN
                        ('Pending', 'InProgress', 'Sent', 'Failed', 'Cancelled', 'Expired')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS twitch_display_name text NOT NULL DEFAULT '';
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS enrollment_request_id uuid;
ALTER TABLE payouts ADD COLUMN IF NOT EXISTS is_reward_sent_announced_to_chat boolean
    NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS payouts_status_created ON payouts (status, created_at);
CREATE INDEX IF NOT EXISTS payouts_viewer ON payouts (twitch_user_id);
-- At most one open payout per viewer, whatever races the harness or enrollment lose.
CREATE UNIQUE INDEX IF NOT EXISTS payouts_one_open_per_viewer ON payouts (twitch_user_id)
    WHERE status IN ('Pending', 'InProgress');

CREATE TABLE IF NOT EXISTS eventsub_messages (
    message_id      text PRIMARY KEY,
    message_type    text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
DELETE FROM eventsub_messages
    WHERE received_at < clock_timestamp() - interval '1 day';
"""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def unavailable(exc: BaseException | None = None) -> ApiError:
    """The 503 a route answers while the database cannot be used."""
    details = {"error": _one_line(exc)} if exc is not None else None
    return ApiError(
        503,
        "database_unavailable",
        "The backend's database is not reachable yet; retry in a few seconds.",
        details,
    )


class Database:
    """Opens connections to the configured PostgreSQL and keeps track of schema readiness."""

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._max_backoff_s = max_backoff_s
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()
        self.last_error: str | None = None

    @property
    def schema_ready(self) -> bool:
        """True once the tables exist (they are created once per process)."""
        return self._schema_ready

    async def connect(self) -> Connection:
        """Open one autocommit connection with dict rows; raises psycopg errors."""
        return await psycopg.AsyncConnection.connect(
            autocommit=True, row_factory=dict_row, **self.settings.connect_kwargs()
        )

    async def ensure_schema(self) -> None:
        """Create the tables if this process has not yet; raises psycopg errors."""
        if self._schema_ready:
            return
        async with self._schema_lock:
            if self._schema_ready:
                return
            conn = await self.connect()
            async with conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
                await conn.execute(SCHEMA_SQL)
            self._schema_ready = True
            self.last_error = None
            log.info("database ready at {}; schema in place", self.settings.describe())

    async def wait_until_ready(self, max_attempts: int | None = None) -> None:
        """Retry `ensure_schema` with exponential backoff, logging each failed attempt.

        Runs forever by default (the app keeps serving meanwhile); with
        `max_attempts` it re-raises the last error once they are used up.
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max_attempts) if max_attempts else stop_never,
            wait=wait_exponential(multiplier=0.5, min=0.5, max=self._max_backoff_s),
            retry=retry_if_exception_type(psycopg.Error),
            before_sleep=self._log_retry,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.ensure_schema()

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self.last_error = _one_line(exc) if exc is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "database not reachable yet (attempt {}), retrying in {:.1f} s: {}",
            state.attempt_number,
            delay,
            self.last_error,
        )

    async def check_ready(self) -> str | None:
        """Return None when the schema exists and `SELECT 1` answers, else why not."""
        try:
            await self.ensure_schema()
            conn = await self.connect()
            async with conn:
                await conn.execute("SELECT 1")
        except psycopg.Error as exc:
            self.last_error = _one_line(exc)
            return self.last_error
        return None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """Yield a connection inside one transaction; unreachable database → `ApiError` 503."""
        try:
            await self.ensure_schema()
            conn = await self.connect()
        except psycopg.Error as exc:  # unreachable, or the schema cannot be created yet
            self.last_error = _one_line(exc)
            raise unavailable(exc) from exc
        try:
            async with conn, conn.transaction():
                yield conn
        except psycopg.OperationalError as exc:
            raise unavailable(exc) from exc
        except psycopg.DataError as exc:  # e.g. a NUL character, which text columns cannot hold
            raise ApiError(
                400,
                "invalid_value",
                "The request holds a value the database cannot store (a NUL character, say).",
                {"error": _one_line(exc)[:200]},
            ) from exc


async def fetch_one(
    conn: Connection, query: LiteralString, params: tuple[Any, ...] = ()
) -> DictRow | None:
    """Run `query` and return its first row, or None."""
    cursor = await conn.execute(query, params)
    return await cursor.fetchone()


async def fetch_all(
    conn: Connection, query: LiteralString, params: tuple[Any, ...] = ()
) -> list[DictRow]:
    """Run `query` and return every row."""
    cursor = await conn.execute(query, params)
    return await cursor.fetchall()
