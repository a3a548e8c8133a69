"""Delivering signed EventSub messages to the backend and journaling each attempt."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..backend.eventsub import load_json
from ..common import ApiError, Journal

if TYPE_CHECKING:
    import httpx  # loaded on the first call that sends a request

EVENTSUB_PATH = "/api/twitch/eventsub"
SNIPPET_CHARS = 1000
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_JOURNAL_NESTING = 64


DEFAULT_BACKEND_BASE_URL = "http://127.0.0.1:8080"
# Used when Twitch__EventSubSecret is unset; the same value as envkit's demo settings, so a
# mock started with only ASPNETCORE_URLS signs what envkit's demo backend accepts.
DEMO_EVENTSUB_SECRET = "demo-eventsub-secret-0001"
DEFAULT_BROADCASTER_USER_ID = "1971641"


@dataclass(frozen=True)
class Settings:
    """mock-eventsub configuration, read once from the environment (every variable optional)."""

    secret: str = field(repr=False)
    backend_base_url: str
    broadcaster_user_id: str
    secret_is_demo: bool = False

    @property
    def callback_url(self) -> str:
        """The backend's EventSub webhook URL."""
        return self.backend_base_url + EVENTSUB_PATH

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read `Twitch__EventSubSecret`, `Backend__BaseUrl`, `Twitch__BroadcasterUserId`."""
        given = env.get("Backend__BaseUrl", "").strip() or DEFAULT_BACKEND_BASE_URL
        base_url = given.rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"Backend__BaseUrl={given!r} is not an http(s) URL; "
                "use a value like 'http://backend:8080'."
            )
        secret = env.get("Twitch__EventSubSecret", "")
        return cls(
            secret=secret or DEMO_EVENTSUB_SECRET,
            backend_base_url=base_url,
            broadcaster_user_id=env.get("Twitch__BroadcasterUserId", "").strip()
            or DEFAULT_BROADCASTER_USER_ID,
            secret_is_demo=not secret,
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


def _nesting(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _decoded(body: bytes) -> Any:
    """The body as JSON when the journal can safely show it again as JSON, else a text snippet."""
    try:
        parsed = load_json(body)
        # A lone surrogate (an escape in the JSON) cannot be written back out as UTF-8, and
        # very deep nesting could exhaust the recursion limit when the journal is listed.
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except (ApiError, UnicodeEncodeError):
        parsed = None
    if parsed is None or _nesting(parsed) > MAX_JOURNAL_NESTING:
        return body.decode("utf-8", errors="replace")[:SNIPPET_CHARS]
    return parsed


def _utf8_text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _header_text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _header_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


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
        self, kind: str, headers: Mapping[str, str | bytes], body: bytes, signed_with: str
    ) -> Outcome:
        """Deliver one message unchanged and journal what happened.

        The journal keeps the exact bytes delivered (base64, and as text when they
        are UTF-8) and every header sent, signature included, so anyone holding the
        secret can recompute the signature from a journal entry.
        """
        import httpx  # not at start-up: the first request that needs it loads it

        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=self._timeout
            ) as client:
                wire = [(name.encode("latin-1"), _header_bytes(v)) for name, v in headers.items()]
                response = await client.post(self.url, content=body, headers=wire)
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
                "headers": {name: _header_text(value) for name, value in headers.items()},
                "body": _decoded(body),
                "bodyBase64": base64.b64encode(body).decode("ascii"),
                "bodyText": _utf8_text(body),
                "status": outcome.status,
                "delivered": outcome.delivered,
                "response": outcome.text,
                "error": outcome.error,
                "durationMs": round((time.perf_counter() - started) * 1000, 1),
            }
        )
        return outcome
