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
from enum import StrEnum
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


class AuthMode(StrEnum):
    """How `MockHelix__StrictAuth` says credentials are checked (the value is the variable's)."""

    ANY = "false"  # accept any credentials: the MGM mock's default
    PRESENT = "true"  # a Bearer token and a Client-Id must be present
    VALUES = "values"  # they must equal the configured ones (envkit's mode)


_MODE_HELP = (
    "use false (accept any credentials, the default), true (a Bearer token and a Client-Id "
    "must be present) or values (they must equal Twitch__BroadcasterAccessToken and "
    "Twitch__HelixClientId)"
)


@dataclass
class Settings:
    """mock-helix configuration, read once from the environment; every variable is optional."""

    access_token: str = field(default="", repr=False)
    client_id: str = ""
    strict_auth: AuthMode = AuthMode.ANY
    seed: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read `MockHelix__StrictAuth`, `Twitch__BroadcasterAccessToken`,
        `Twitch__HelixClientId` and `MockHelix__Seed`; unset ones take their defaults."""
        raw_mode = env.get("MockHelix__StrictAuth", "").strip()
        try:
            mode = AuthMode(raw_mode.lower() or AuthMode.ANY.value)
        except ValueError as exc:
            raise ValueError(
                f"MockHelix__StrictAuth={raw_mode!r} is not a mode; {_MODE_HELP}."
            ) from exc
        token = env.get("Twitch__BroadcasterAccessToken", "").strip()
        client_id = env.get("Twitch__HelixClientId", "").strip()
        if mode is AuthMode.VALUES:
            missing = [
                name
                for name, value in (
                    ("Twitch__BroadcasterAccessToken", token),
                    ("Twitch__HelixClientId", client_id),
                )
                if not value
            ]
            if missing:
                verb = "is" if len(missing) == 1 else "are"
                raise ValueError(
                    "MockHelix__StrictAuth=values compares credentials with "
                    f"{' and '.join(missing)}, which {verb} not set; set it to the value the "
                    "backend sends, or use MockHelix__StrictAuth=false."
                )
        raw_seed = env.get("MockHelix__Seed", "").strip()
        try:
            seed = int(raw_seed) if raw_seed else None
        except ValueError as exc:
            raise ValueError(f"MockHelix__Seed={raw_seed!r} must be an integer.") from exc
        return cls(token, client_id, mode, seed)


@dataclass(frozen=True)
class AuthCheck:
    """What a request's credentials were, whether they match the configured ones, and the verdict.

    `credentials_match` is recorded in every mode; `authorized` is what the mode decided.
    """

    authorized: bool
    problem: str | None  # why the mode refused the request (Helix's wording), else None
    credentials_match: bool
    credential_problem: str | None  # why they do not match the configured values, else None
    client_id: str | None
    redacted_authorization: str | None


def redact_authorization(value: str | None) -> str | None:
    """`Bearer abc…` → `Bearer ***`: the scheme stays, the token never appears."""
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    return f"{scheme} ***" if token.strip() else scheme


def _presence_problem(scheme: str, token: str, client_id: str | None) -> str | None:
    if not token:
        return "OAuth token is missing"
    if scheme.lower() != "bearer":
        return "Invalid OAuth token"
    if not client_id:
        return "Client ID is missing"
    return None


def _value_problem(settings: Settings, token: str, client_id: str | None) -> str | None:
    if not (settings.access_token and settings.client_id):
        return (
            "mock-helix has no Twitch__BroadcasterAccessToken and Twitch__HelixClientId "
            "to compare the credentials with"
        )
    if not hmac.compare_digest(token.encode(), settings.access_token.encode()):
        return "Invalid OAuth token"
    if not hmac.compare_digest((client_id or "").encode(), settings.client_id.encode()):
        return "Client ID and OAuth token do not match"
    return None


def check_auth(settings: Settings, headers: Mapping[str, str]) -> AuthCheck:
    """Judge the Bearer token and Client-Id by the configured mode; compare them in every mode."""
    authorization = headers.get("authorization")
    client_id = headers.get("client-id")
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    presence = _presence_problem(scheme, token, client_id)
    mismatch = presence or _value_problem(settings, token, client_id)
    refusal = {AuthMode.ANY: None, AuthMode.PRESENT: presence, AuthMode.VALUES: mismatch}[
        settings.strict_auth
    ]
    return AuthCheck(
        authorized=refusal is None,
        problem=refusal,
        credentials_match=mismatch is None,
        credential_problem=mismatch,
        client_id=client_id,
        redacted_authorization=redact_authorization(authorization),
    )


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
