"""Delivering signed EventSub messages to the backend and journaling each attempt."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.common import Journal
from services.mock_eventsub.signing import HEADER_SIGNATURE

EVENTSUB_PATH = "/api/twitch/eventsub"
SNIPPET_CHARS = 1000
DEFAULT_TIMEOUT_SECONDS = 10.0


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ValueError(f"mock-eventsub needs {name}; set it in the service's environment.")
    return value


@dataclass(frozen=True)
class Settings:
    """mock-eventsub configuration, read once from the environment."""

    secret: str = field(repr=False)
    backend_base_url: str
    broadcaster_user_id: str

    @property
    def callback_url(self) -> str:
        """The backend's EventSub webhook URL."""
        return self.backend_base_url + EVENTSUB_PATH

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read `Twitch__EventSubSecret`, `Backend__BaseUrl`, `Twitch__BroadcasterUserId`."""
        base_url = _required(env, "Backend__BaseUrl").rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"Backend__BaseUrl={base_url!r} is not an http(s) URL; "
                "use a value like 'http://backend:8080'."
            )
        broadcaster = env.get("Twitch__BroadcasterUserId", "").strip() or "1971641"
        if not broadcaster.isdigit():
            raise ValueError(
                f"Twitch__BroadcasterUserId={broadcaster!r} must be a numeric Twitch user id."
            )
        return cls(
            secret=_required(env, "Twitch__EventSubSecret"),
            backend_base_url=base_url,
            broadcaster_user_id=broadcaster,
        )


@dataclass
class Outcome:
    """What the backend answered, or why it could not be reached."""

    status: int | None
    text: str
    content: bytes
    content_type: str
    error: str | None

    @property
    def delivered(self) -> bool:
        """True when the backend answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds and `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")[:SNIPPET_CHARS]


class Deliverer:
    """Posts messages to the backend's webhook URL and records every attempt."""

    def __init__(
        self,
        url: str,
        journal: Journal,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self.journal = journal
        self._transport = transport
        self._timeout = timeout

    async def post(
        self, kind: str, headers: Mapping[str, str], body: bytes, signed_with: str
    ) -> Outcome:
        """Deliver one message unchanged and journal what happened."""
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=self._timeout
            ) as client:
                response = await client.post(self.url, content=body, headers=dict(headers))
            outcome = Outcome(
                status=response.status_code,
                text=response.text[:SNIPPET_CHARS],
                content=response.content,
                content_type=response.headers.get("content-type", "text/plain"),
                error=None
                if response.is_success
                else f"The backend answered {response.status_code}.",
            )
        except httpx.HTTPError as exc:
            outcome = Outcome(
                status=None,
                text="",
                content=b"",
                content_type="",
                error=f"Could not reach {self.url}: {type(exc).__name__}: {exc}",
            )
        self.journal.append(
            {
                "kind": kind,
                "at": utc_now(),
                "url": self.url,
                "signedWith": signed_with,
                "headers": {
                    k: v for k, v in headers.items() if k.lower() != HEADER_SIGNATURE.lower()
                },
                "body": _decoded(body),
                "status": outcome.status,
                "delivered": outcome.delivered,
                "response": outcome.text,
                "error": outcome.error,
                "durationMs": round((time.perf_counter() - started) * 1000, 1),
            }
        )
        return outcome
