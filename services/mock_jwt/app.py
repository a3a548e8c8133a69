"""mock-jwt: mints Twitch extension JWTs for test viewers.

Routes:
    GET    /health    liveness
    GET    /token     ?userId=…&displayName=…&role=viewer&ttl=7200 -> {access_token, token_type,
                      expires_in}; unknown parameters are ignored
    GET    /tokens    journal of minted tokens (claims and a fingerprint, never the token)
    DELETE /tokens    forget them
    POST   /reset     forget them (same as DELETE /tokens)

Configuration and its defaults: see the package docstring (`services.mock_jwt`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..common import ApiError, Journal, log, service_app
from .claims import Settings, build_claims, fingerprint, mint

if TYPE_CHECKING:
    from .models import TokenQuery

SERVICE = "mock-jwt"
_QUERY_HELP = (
    "GET /token takes userId (required: 1-100 letters, digits, '-' or '_', e.g. 'e2e-viewer-1'), "
    "displayName (optional), role (viewer, broadcaster, moderator or external) and ttl "
    "(seconds, 1-86400)."
)


def _parse_query(request: Request) -> TokenQuery:
    from pydantic import ValidationError  # pydantic loads with the first token asked for

    from .models import TokenQuery

    items = request.query_params.multi_items()
    names = [name for name, _ in items if name in TokenQuery.model_fields]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ApiError(
            400,
            "invalid_query",
            f"Give each query parameter once; repeated: {', '.join(repeated)}.",
            [{"field": name, "problem": "repeated"} for name in repeated],
        )
    try:
        return TokenQuery.model_validate(dict(items))
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(query)", "problem": err["msg"]}
            for err in exc.errors()
        ]
        raise ApiError(400, "invalid_query", _QUERY_HELP, problems) from exc


def _utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class JwtMock:
    """The service's state and handlers: settings and the journal of minted tokens."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.journal = Journal()

    async def token(self, request: Request) -> Response:
        """Mint one token for the requested user and role."""
        query = _parse_query(request)
        now = int(time.time())
        claims = build_claims(
            self.settings, query.userId, query.role, query.ttl, now, query.displayName
        )
        token = mint(self.settings, claims)
        self.journal.append(
            {
                "at": _utc(now),
                "userId": query.userId,
                "displayName": query.displayName,
                "role": query.role,
                "expiresAtUtc": _utc(claims["exp"]),
                "claims": claims,
                "fingerprint": fingerprint(token),
            }
        )
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": query.ttl},
            headers={"Cache-Control": "no-store"},
        )

    async def tokens(self, request: Request) -> Response:
        """List every minted token's claims, oldest first (the tokens themselves are not kept)."""
        return JSONResponse(self.journal.entries())

    async def clear(self, request: Request) -> Response:
        """Forget every minted token; answer how many there were."""
        return JSONResponse({"cleared": self.journal.clear()})


def create_app(env: Mapping[str, str]) -> Starlette:
    """Build the mock-jwt app from its environment."""
    settings = Settings.from_env(env)
    if settings.key_warning is not None:
        log.warning("{}", settings.key_warning)
    mock = JwtMock(settings)
    routes = [
        Route("/token", mock.token, methods=["GET"]),
        Route("/tokens", mock.tokens, methods=["GET"]),
        Route("/tokens", mock.clear, methods=["DELETE"]),
        Route("/reset", mock.clear, methods=["POST"]),
    ]
    return service_app(SERVICE, routes, state={"mock": mock})
