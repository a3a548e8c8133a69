"""The reference backend's application: routes, middleware, startup, and `create_app(env)`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import Route

from ..common import log, service_app
from .config import BackendConfig, ConfigError, load_config
from .db import Database, Sleep
from .handlers import Backend, Clock, utc_now
from .helix import ChatAnnouncer, RetryPolicy

if TYPE_CHECKING:
    import httpx  # loaded on the first call that sends a request


def _routes(backend: Backend) -> list[Route]:
    return [
        Route("/health/ready", backend.ready, methods=["GET"]),
        Route("/api/version", backend.version, methods=["GET"]),
        Route("/api/twitch/eventsub", backend.eventsub, methods=["POST"]),
        Route("/api/pool/me", backend.pool_me, methods=["GET"]),
        Route("/api/payouts/pending", backend.pending, methods=["GET"]),
        Route(
            "/api/payouts/{payout_id}/confirm-acceptance",
            backend.confirm_acceptance,
            methods=["POST"],
        ),
        Route("/api/payouts/{payout_id}/status", backend.set_status, methods=["PATCH"]),
        Route("/api/e2e/prepare-pending-payout", backend.prepare_pending_payout, methods=["POST"]),
    ]


def _log_startup(config: BackendConfig) -> None:
    log.info(
        "backend starting: database {}, environment {}, e2e harness {}, helix {}",
        config.database.describe(),
        config.environment,
        "enabled" if config.harness_enabled else "disabled",
        config.helix_chat_url,
    )
    if config.database.ignored_keys:
        log.info("connection string keys ignored: {}", ", ".join(config.database.ignored_keys))
    for present, variable in (
        (config.api_key, "Mgm__ApiKey"),
        (config.eventsub_secret, "Twitch__EventSubSecret"),
    ):
        if not present:
            log.warning("{} is empty: requests that need it will be refused", variable)
    if config.extension_key_warning is not None:
        log.warning("{}", config.extension_key_warning)
    if not (config.broadcaster_access_token and config.broadcaster_user_id):
        log.warning("chat announcements will be skipped: token or broadcaster id empty")


async def _connect_in_background(db: Database) -> None:
    """Wait for the database without ever taking the app down; a bug is logged, not raised."""
    try:
        await db.wait_until_ready()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("giving up on the database after an unexpected error")


def build_app(
    config: BackendConfig,
    *,
    helix_transport: httpx.AsyncBaseTransport | None = None,
    helix_policy: RetryPolicy | None = None,
    helix_sleep: Sleep = asyncio.sleep,
    db_sleep: Sleep = asyncio.sleep,
    clock: Clock = utc_now,
) -> Starlette:
    """Build the app from settings; the keyword arguments exist so tests need not wait or dial."""
    db = Database(config.database, sleep=db_sleep)
    announcer = ChatAnnouncer(
        config, transport=helix_transport, policy=helix_policy, sleep=helix_sleep
    )
    backend = Backend(config=config, db=db, announcer=announcer, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _log_startup(config)
        task = asyncio.create_task(_connect_in_background(db), name="backend-db-connect")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return service_app("backend", _routes(backend), state={"backend": backend}, lifespan=lifespan)


def create_app(env: Mapping[str, str]) -> Starlette:
    """Build the backend from the .NET-style environment (see CONTRACT.md for the names)."""
    config = load_config(env)  # a ConfigError names the variable; __main__ prints it
    require_resolvable(config.database.host)
    return build_app(config)


def require_resolvable(hosts: str) -> None:
    """Refuse to start when a database host name does not exist (`ConfigError`).

    Like the real backend, which exits when PostgreSQL is unreachable at start: waiting
    cannot make a name that does not exist resolve, while a refused port may open later.
    A lookup that fails for a passing reason (no answer yet) is left to the retries.
    """
    for host in hosts.split(","):
        if not host or host.startswith("/"):  # a Unix socket directory needs no lookup
            continue
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror as exc:
            if exc.errno != socket.EAI_NONAME:
                continue
            raise ConfigError(
                f"the database host {host!r} of ConnectionStrings__PostgreSQL does not resolve "
                f"({exc.strerror}); name the PostgreSQL service or its address as Host"
            ) from None
