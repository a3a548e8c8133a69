"""The chat announcement through Helix `POST /helix/chat/messages`, with bounded retries.

Any 2xx counts as sent, like the real backend (a Helix body saying
`is_sent: false` is logged, not retried). Transport errors and 5xx are retried
with exponential backoff; 429 waits until `Ratelimit-Reset` (capped); any other
4xx is final. Every attempt is logged as method, URL, status and attempt
number, never the token. Sleep and clock are injectable so tests do not wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..common import log
from .config import BackendConfig

if TYPE_CHECKING:
    import httpx  # loaded on the first call that sends a request

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
Outcome = Literal["sent", "skipped", "failed"]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, backoff, the longest rate-limit wait, per-attempt timeout."""

    attempts: int = 3  # the real backend's number of attempts
    base_delay_s: float = 0.5
    max_delay_s: float = 4.0
    max_ratelimit_wait_s: float = 3.0
    timeout_s: float = 3.0

    def backoff(self, attempt: int) -> float:
        """The delay after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class AnnouncementResult:
    """What became of one announcement."""

    outcome: Outcome
    attempts: int
    status_code: int | None
    detail: str


def ratelimit_wait(headers: httpx.Headers, now: float, cap: float) -> float | None:
    """Seconds until `Ratelimit-Reset` (unix epoch seconds), capped; None when absent or bad."""
    raw = headers.get("ratelimit-reset", "").strip()
    try:
        reset = float(raw)
    except ValueError:
        return None
    if reset != reset:  # NaN
        return None
    return max(0.0, min(cap, reset - now))


class ChatAnnouncer:
    """Posts one chat message as the broadcaster, as configured."""

    def __init__(
        self,
        config: BackendConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
    ) -> None:
        self._url = config.helix_chat_url
        self._token = config.broadcaster_access_token
        self._broadcaster_id = config.broadcaster_user_id
        self._client_id = config.helix_client_id
        self._transport = transport
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """False when the token or broadcaster id is empty, so announcements are skipped."""
        return bool(self._token and self._broadcaster_id)

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        if self._client_id:
            headers["Client-Id"] = self._client_id
        return headers

    async def announce(self, message: str) -> AnnouncementResult:
        """Send `message` to the broadcaster's chat; never raises for HTTP or network trouble."""
        if not self.enabled:
            log.info("chat announcement skipped: token or broadcaster id empty")
            return AnnouncementResult("skipped", 0, None, "token or broadcaster id empty")
        import httpx  # not at start-up: the first announcement loads it

        body = {
            "broadcaster_id": self._broadcaster_id,
            "sender_id": self._broadcaster_id,
            "message": message,
        }
        policy = self._policy
        last = AnnouncementResult("failed", 0, None, "not attempted")
        async with httpx.AsyncClient(transport=self._transport, timeout=policy.timeout_s) as client:
            for attempt in range(1, policy.attempts + 1):
                last, delay = await self._attempt(client, body, attempt)
                if delay is None or attempt == policy.attempts:
                    break
                await self._sleep(delay)
        return last

    async def _attempt(
        self, client: httpx.AsyncClient, body: dict[str, Any], attempt: int
    ) -> tuple[AnnouncementResult, float | None]:
        """One POST; returns the result and the delay before a retry (None: do not retry)."""
        import httpx

        policy = self._policy
        of = f"{attempt}/{policy.attempts}"
        try:
            response = await client.post(self._url, json=body, headers=self._headers())
        except httpx.HTTPError as exc:
            log.warning("helix POST {} -> {} (attempt {})", self._url, type(exc).__name__, of)
            failed = AnnouncementResult("failed", attempt, None, f"{type(exc).__name__}: {exc}")
            return failed, policy.backoff(attempt)
        status = response.status_code
        log.info("helix POST {} -> {} (attempt {})", self._url, status, of)
        if response.is_success:
            return self._judge_success(response, attempt), None
        detail = _error_text(response)
        failed = AnnouncementResult("failed", attempt, status, detail)
        if status == 429:
            wait = ratelimit_wait(response.headers, self._clock(), policy.max_ratelimit_wait_s)
            return failed, policy.backoff(attempt) if wait is None else wait
        if status >= 500:
            return failed, policy.backoff(attempt)
        return failed, None

    def _judge_success(self, response: httpx.Response, attempt: int) -> AnnouncementResult:
        """Any 2xx is sent; a Helix body saying Twitch dropped the message is worth a log line."""
        try:
            entries = response.json().get("data") or []
            first = entries[0] if entries else {}
        except (ValueError, AttributeError, TypeError, IndexError, KeyError):
            first = {}
        if isinstance(first, dict) and first.get("is_sent") is False:
            log.warning(
                "helix accepted the chat message but says it was not sent: {}",
                str(first.get("drop_reason") or "no reason given")[:200],
            )
        return AnnouncementResult("sent", attempt, response.status_code, "sent")


def _error_text(response: httpx.Response) -> str:
    """A short, token-free description of a Helix error body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict) and "message" in data:
        return str(data.get("message"))[:200]
    return response.text[:200]
