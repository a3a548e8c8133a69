"""Helix look-alike pieces: error bodies, rate-limit headers, auth check, Send Chat Message.

Helix answers errors as `{"error": <reason phrase>, "status": <code>, "message": <text>}`
and puts `Ratelimit-Limit`, `Ratelimit-Remaining` and `Ratelimit-Reset` (unix
seconds) on every response. Send Chat Message (`POST /helix/chat/messages`)
takes `broadcaster_id`, `sender_id`, `message` (at most 500 characters) and an
optional `reply_parent_message_id`, and answers
`{"data": [{"message_id", "is_sent", "drop_reason"}]}`.
"""

from __future__ import annotations

import hmac
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

MAX_MESSAGE_CHARS = 500
RATE_LIMIT_POINTS = 800
RATE_LIMIT_WINDOW_SECONDS = 60
_REQUIRED = ("broadcaster_id", "sender_id", "message")
_OPTIONAL = ("reply_parent_message_id",)


class HelixError(Exception):
    """An error answered in Helix's own `{error, status, message}` shape."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def reason_phrase(status: int) -> str:
    """The HTTP reason phrase Helix puts in `error` (e.g. 'Bad Request')."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def helix_error_body(status: int, message: str) -> dict[str, Any]:
    """The Helix error body for a status and message."""
    return {"error": reason_phrase(status), "status": status, "message": message}


def helix_response(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A JSON response with the given Helix headers."""
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


@dataclass
class Settings:
    """mock-helix configuration, read once from the environment."""

    access_token: str = field(repr=False)
    client_id: str
    seed: int | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read `Twitch__BroadcasterAccessToken`, `Twitch__HelixClientId`, `MockHelix__Seed`."""
        values = {}
        for name in ("Twitch__BroadcasterAccessToken", "Twitch__HelixClientId"):
            values[name] = env.get(name, "").strip()
            if not values[name]:
                raise ValueError(
                    f"mock-helix needs {name} (the value the backend is expected to send); "
                    "set it in the service's environment."
                )
        raw_seed = env.get("MockHelix__Seed", "").strip()
        try:
            seed = int(raw_seed) if raw_seed else None
        except ValueError as exc:
            raise ValueError(f"MockHelix__Seed={raw_seed!r} must be an integer.") from exc
        return cls(values["Twitch__BroadcasterAccessToken"], values["Twitch__HelixClientId"], seed)


@dataclass(frozen=True)
class AuthCheck:
    """Whether a request's credentials match the configured ones, and Helix's complaint if not."""

    authorized: bool
    problem: str | None
    client_id: str | None
    redacted_authorization: str | None


def check_auth(settings: Settings, headers: Mapping[str, str]) -> AuthCheck:
    """Compare the Bearer token and Client-Id with the configured values."""
    authorization = headers.get("authorization")
    client_id = headers.get("client-id")
    redacted = None
    problem = None
    if not authorization:
        problem = "OAuth token is missing"
    else:
        scheme, _, token = authorization.partition(" ")
        redacted = f"{scheme} ***"
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), settings.access_token.encode()
        ):
            problem = "Invalid OAuth token"
    if problem is None and client_id != settings.client_id:
        problem = "Client ID and OAuth token do not match"
    return AuthCheck(problem is None, problem, client_id, redacted)


def redacted_headers(headers: Mapping[str, str], auth: AuthCheck) -> dict[str, str]:
    """The request headers with the Authorization value reduced to its scheme."""
    shown = {name.lower(): value for name, value in headers.items()}
    if "authorization" in shown:
        shown["authorization"] = auth.redacted_authorization or "***"
    return shown


class RateLimiter:
    """A fixed-window points bucket like Helix's: 800 points a minute, one point a request."""

    def __init__(
        self,
        limit: int = RATE_LIMIT_POINTS,
        window_seconds: int = RATE_LIMIT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._reset_at = 0
        self._remaining = limit

    def take(self) -> tuple[bool, dict[str, str]]:
        """Spend one point; return whether one was left and the headers to send."""
        now = self._clock()
        if now >= self._reset_at:
            self._reset_at = math.ceil(now) + self.window_seconds
            self._remaining = self.limit
        allowed = self._remaining > 0
        self._remaining = max(0, self._remaining - 1)
        return allowed, self.headers(self._remaining, self._reset_at)

    def headers(self, remaining: int, reset_at: int) -> dict[str, str]:
        """The three rate-limit headers."""
        return {
            "Ratelimit-Limit": str(self.limit),
            "Ratelimit-Remaining": str(remaining),
            "Ratelimit-Reset": str(reset_at),
        }

    def clear(self) -> None:
        """Start a fresh window on the next request."""
        self._reset_at = 0
        self._remaining = self.limit


def chat_message_fields(query: Mapping[str, str], body: Any) -> dict[str, str]:
    """Merge query and JSON body (the body wins) and check Send Chat Message's parameters."""
    if body is not None and not isinstance(body, dict):
        raise HelixError(400, "The request body must be a JSON object")
    merged: dict[str, Any] = {k: v for k, v in query.items() if k in _REQUIRED + _OPTIONAL}
    merged.update(body or {})
    for name in _REQUIRED + _OPTIONAL:
        value = merged.get(name)
        if value is not None and not isinstance(value, str):
            raise HelixError(400, f'The parameter "{name}" must be a string')
    for name in _REQUIRED:
        if not merged.get(name):
            raise HelixError(400, f'Missing required parameter "{name}"')
    if len(merged["message"]) > MAX_MESSAGE_CHARS:
        raise HelixError(
            400, f'The parameter "message" may not exceed {MAX_MESSAGE_CHARS} characters'
        )
    return {name: merged[name] for name in _REQUIRED + _OPTIONAL if merged.get(name)}


def chat_message_sent() -> dict[str, Any]:
    """The success body of Send Chat Message, with a fresh message id."""
    return {"data": [{"message_id": str(uuid.uuid4()), "is_sent": True, "drop_reason": None}]}
