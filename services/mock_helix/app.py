"""mock-helix: stands in for the Helix API root and journals every request it gets.

Routes:
    GET    /health                   {"status": "healthy", "component": "MockHelixApi", ...}
    *      /helix/...                Helix look-alike; POST /helix/chat/messages is served
    GET    /requests                 journal of Helix requests, oldest first
    GET    /last-request             the newest chat message answered 2xx: {"captured": true,
                                     "body", "authorizationHeader", "clientIdHeader", ...},
                                     or {"captured": false} before there is one
    DELETE /requests                 forget them
    GET    /admin/faults             the active fault plan
    POST   /admin/faults             set a fault plan (see faults.py)
    DELETE /admin/faults             clear it
    POST   /reset                    forget requests, clear faults (the standing plan of
                                     MockHelix__Faults comes back), restart the rate-limit window

Configuration (every variable optional; it starts with only `ASPNETCORE_URLS`):
    MockHelix__StrictAuth            false (default: accept any credentials, like MGM's mock),
                                     true (a Bearer token and a Client-Id must be present),
                                     values (they must equal the two below; 401 otherwise)
    Twitch__BroadcasterAccessToken   the token the backend should send (default: empty)
    Twitch__HelixClientId            the Client-Id the backend should send (default: empty)
    MockHelix__Seed                  seed of the fault plans' failure-rate draws (default: none)
    MockHelix__Faults                a standing fault plan, JSON as POST /admin/faults takes it
                                     (default: none)

In every mode each journal entry says whether the credentials matched the
configured values (`credentialsMatch`, `credentialProblem`), so drift stays
visible even when the request was accepted; a mismatch is also logged. The
token itself is never journaled or logged: `authorizationHeader` keeps only
its scheme (`Bearer ***`).

Helix routes answer in Helix's error shape; the other routes in `{code, message, details}`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..common import (
    ApiError,
    Journal,
    JsonProblem,
    loads_strict,
    log,
    read_json,
    read_raw_body,
    service_app,
)
from .faults import Fault, FaultInjector, standing_plan
from .helix import (
    AuthCheck,
    HelixError,
    RateLimiter,
    Settings,
    chat_message_fields,
    chat_message_sent,
    check_auth,
    helix_error_body,
    redacted_headers,
)

if TYPE_CHECKING:
    from .models import FaultPlan

SERVICE = "mock-helix"
CHAT_PATH = "/helix/chat/messages"
BODY_TEXT_CHARS = 2000
_MISSING = object()


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _query(request: Request) -> dict[str, Any]:
    """The query as a dict; a repeated name maps to the list of its values."""
    query: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name in query:
            previous = query[name]
            query[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            query[name] = value
    return query


def _decode(raw: bytes) -> Any:
    """Parsed JSON, None for an empty body, or `_MISSING` when the body is not JSON.

    NaN, lone surrogates and absurd nesting count as not JSON: the journal must
    stay serialisable, or `GET /requests` would break for everyone after one bad post.
    """
    if not raw.strip():
        return None
    try:
        return loads_strict(raw)
    except JsonProblem:
        return _MISSING


def _is_chat_message(entry: dict[str, Any]) -> bool:
    return entry.get("method") == "POST" and str(entry.get("path", "")).rstrip("/") == CHAT_PATH


class HelixMock:
    """The service's state and handlers: settings, journal, faults and rate limiter."""

    def __init__(self, settings: Settings, standing: FaultPlan | None = None) -> None:
        self.settings = settings
        self.journal = Journal()
        self.faults = FaultInjector(settings.seed, standing)
        self.rate_limiter = RateLimiter()

    async def helix(self, request: Request) -> Response:
        """Serve one Helix request: fault, authenticate, route, journal."""
        started = time.perf_counter()
        fault = self.faults.draw()
        if fault is not None and fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        auth = check_auth(self.settings, request.headers)
        allowed, headers = self.rate_limiter.take()
        entry: dict[str, Any] = {
            "at": _utc_now(),
            "method": request.method,
            "path": request.url.path,
            "query": _query(request),
            "headers": redacted_headers(request.headers, auth),
            "authorizationHeader": auth.redacted_authorization,
            "clientIdHeader": auth.client_id,
            "authMode": self.settings.strict_auth.value,
            "credentialsMatch": auth.credentials_match,
            "credentialProblem": auth.credential_problem,
            "authorized": auth.authorized,
            "authProblem": auth.problem,
            "clientId": auth.client_id,
            "body": None,
            "fault": None
            if fault is None
            else {"status": fault.status, "latencyMs": fault.latency_ms},
        }
        try:
            body = await self._body(request, entry)
            status, payload = self._answer(request, fault, auth, allowed, body, headers)
        except HelixError as exc:
            headers.update(exc.headers)
            status, payload = exc.status, helix_error_body(exc.status, exc.message)
        entry["status"] = status
        entry["response"] = payload
        entry["durationMs"] = round((time.perf_counter() - started) * 1000, 1)
        self.journal.append(entry)
        if not auth.credentials_match:
            log.warning(
                "{} {}: credentials differ from the configured ones: {} (Client-Id sent: {!r}, "
                "Authorization: {!r}); answered {} in StrictAuth mode {}",
                request.method,
                request.url.path,
                auth.credential_problem,
                auth.client_id,
                auth.redacted_authorization,
                status,
                self.settings.strict_auth.value,
            )
        return JSONResponse(payload, status_code=status, headers=headers)

    @staticmethod
    async def _body(request: Request, entry: dict[str, Any]) -> Any:
        try:
            raw = await read_raw_body(request)
        except ApiError as exc:
            raise HelixError(exc.status, exc.message) from exc
        body = _decode(raw)
        if body is _MISSING:
            entry["bodyText"] = raw.decode("utf-8", errors="replace")[:BODY_TEXT_CHARS]
        else:
            entry["body"] = body
        return body

    def _answer(
        self,
        request: Request,
        fault: Fault | None,
        auth: AuthCheck,
        allowed: bool,
        body: Any,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any]]:
        if fault is not None and fault.status is not None:
            if fault.status == 429:
                reset_at = int(time.time()) + fault.ratelimit_reset_seconds
                headers.update(self.rate_limiter.headers(0, reset_at))
                raise HelixError(429, "Too Many Requests (fault injected by mock-helix)")
            raise HelixError(fault.status, "Fault injected by mock-helix")
        if not auth.authorized:
            raise HelixError(401, auth.problem or "Unauthorized")
        if not allowed:
            raise HelixError(429, "Too Many Requests")
        path = request.url.path.rstrip("/")
        if (request.method, path) == ("POST", CHAT_PATH):
            if body is _MISSING:
                raise HelixError(400, "The request body is not valid JSON")
            chat_message_fields(dict(request.query_params), body)
            return 200, chat_message_sent()
        raise HelixError(404, f"mock-helix does not implement {request.method} {request.url.path}")

    async def requests(self, request: Request) -> Response:
        """List every Helix request, oldest first."""
        return JSONResponse(self.journal.entries())

    async def last_request(self, request: Request) -> Response:
        """The newest chat message answered 2xx (MGM's verifier reads it); else captured false."""
        for entry in reversed(self.journal.entries()):
            if _is_chat_message(entry) and 200 <= int(entry.get("status", 0)) < 300:
                return JSONResponse({"captured": True, **entry})
        return JSONResponse({"captured": False})

    async def clear_requests(self, request: Request) -> Response:
        """Forget every journaled request; answer how many there were."""
        return JSONResponse({"cleared": self.journal.clear()})

    async def get_faults(self, request: Request) -> Response:
        """Describe the active fault plan."""
        return JSONResponse(self.faults.describe())

    async def set_faults(self, request: Request) -> Response:
        """Replace the fault plan with the one in the body."""
        from .models import FaultPlan  # pydantic loads with the first plan set

        plan = await read_json(request, FaultPlan)
        self.faults.set(plan)
        return JSONResponse(self.faults.describe())

    async def clear_faults(self, request: Request) -> Response:
        """Clear the fault plan."""
        return JSONResponse({"cleared": self.faults.clear()})

    async def reset(self, request: Request) -> Response:
        """Forget requests, clear faults and restart the rate-limit window."""
        faults_cleared = self.faults.reset()
        self.rate_limiter.clear()
        return JSONResponse({"cleared": self.journal.clear(), "faultsCleared": faults_cleared})


def _helix_shape(
    path: str, status: int, code: str, message: str, details: Any
) -> dict[str, Any] | None:
    """Errors the framework raises on a Helix route (405, 414, 431, ...) in Helix's shape."""
    return helix_error_body(status, message) if path.startswith("/helix/") else None


def create_app(env: Mapping[str, str]) -> Starlette:
    """Build the mock-helix app from its environment."""
    mock = HelixMock(Settings.from_env(env), standing_plan(env))
    every_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/helix/{rest:path}", mock.helix, methods=every_method),
        Route("/requests", mock.requests, methods=["GET"]),
        Route("/requests", mock.clear_requests, methods=["DELETE"]),
        Route("/last-request", mock.last_request, methods=["GET"]),
        Route("/admin/faults", mock.get_faults, methods=["GET"]),
        Route("/admin/faults", mock.set_faults, methods=["POST"]),
        Route("/admin/faults", mock.clear_faults, methods=["DELETE"]),
        Route("/reset", mock.reset, methods=["POST"]),
    ]
    return service_app(SERVICE, routes, state={"mock": mock}, error_shape=_helix_shape)
