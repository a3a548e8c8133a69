"""The desktop app's payout choreography: confirm acceptance, mark InProgress, mark Sent.

Each step is one backend call with `X-MGM-ApiKey`; the run stops at the first
step that answers non-2xx or cannot reach the backend, and records what every
attempted step saw (`name`, `statusCode`, `bodySnippet`, and more).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import httpx  # loaded on the first call that sends a request

    from .models import RunRequest

API_KEY_HEADER = "X-MGM-ApiKey"
SNIPPET_CHARS = 300
DEFAULT_TIMEOUT_SECONDS = 100.0  # HttpClient's default, which the real desktop app keeps
DEFAULT_BACKEND_BASE_URL = "http://127.0.0.1:8080"


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds and `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Settings:
    """synthetic-desktop configuration, read once from the environment."""

    backend_base_url: str = DEFAULT_BACKEND_BASE_URL
    api_key: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read `SyntheticDesktop__BackendBaseUrl` (default `http://127.0.0.1:8080`) and
        `Mgm__ApiKey` (default empty: no key is sent, and the backend will answer 401)."""
        raw = env.get("SyntheticDesktop__BackendBaseUrl", "").strip()
        base_url = (raw or DEFAULT_BACKEND_BASE_URL).rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"SyntheticDesktop__BackendBaseUrl={raw!r} is not an http(s) URL; "
                "use a value like 'http://backend:8080'."
            )
        return cls(backend_base_url=base_url, api_key=env.get("Mgm__ApiKey", "").strip())


@dataclass(frozen=True)
class Step:
    """One backend call of the choreography."""

    name: str
    method: str
    path_template: str

    def body(self, character_name: str) -> dict[str, str]:
        """The JSON body this step sends."""
        if self.name == "confirm-acceptance":
            return {"characterName": character_name}
        return {"status": "InProgress" if self.name == "mark-in-progress" else "Sent"}


STEPS = (
    Step("confirm-acceptance", "POST", "/api/payouts/{id}/confirm-acceptance"),
    Step("mark-in-progress", "PATCH", "/api/payouts/{id}/status"),
    Step("mark-sent", "PATCH", "/api/payouts/{id}/status"),
)


def _hint(status: int, api_key: str) -> str:
    if status == 401 and not api_key:
        return " synthetic-desktop has no Mgm__ApiKey; set it to the backend's key."
    if status == 401:
        return " Check that Mgm__ApiKey matches the backend's."
    return ""


class SequenceRunner:
    """Runs the choreography against the backend and returns a run record."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._timeout = timeout

    async def run(self, request: RunRequest) -> dict[str, Any]:
        """Run every step in order, stopping at the first failure."""
        import httpx  # not at start-up: the first request that needs it loads it

        payout_id = request.payoutId
        record: dict[str, Any] = {
            "runId": str(uuid.uuid4()),
            "payoutId": payout_id,
            "characterName": request.characterName,
            "ok": False,
            "steps": [],
            "error": None,
            "startedAtUtc": utc_now(),
            "completedAtUtc": None,
        }
        headers = {API_KEY_HEADER: self.settings.api_key} if self.settings.api_key else {}
        async with httpx.AsyncClient(
            base_url=self.settings.backend_base_url,
            headers=headers,
            transport=self._transport,
            timeout=self._timeout,
        ) as client:
            for step in STEPS:
                result = await self._call(client, step, payout_id, request.characterName)
                record["steps"].append(result)
                if not result["ok"]:
                    record["error"] = result["error"]
                    break
            else:
                record["ok"] = True
        record["completedAtUtc"] = utc_now()
        return record

    async def _call(
        self, client: httpx.AsyncClient, step: Step, payout_id: str, character_name: str
    ) -> dict[str, Any]:
        import httpx

        path = step.path_template.format(id=quote(payout_id, safe=""))
        label = f"Step '{step.name}' ({step.method} {path})"
        started = time.perf_counter()
        result: dict[str, Any] = {"name": step.name, "method": step.method, "path": path}
        try:
            response = await client.request(step.method, path, json=step.body(character_name))
        except httpx.HTTPError as exc:
            result.update(
                statusCode=None,
                ok=False,
                bodySnippet="",
                error=(
                    f"{label} could not reach the backend at {self.settings.backend_base_url}: "
                    f"{type(exc).__name__}: {exc}"
                ),
            )
        else:
            ok = response.is_success
            hint = _hint(response.status_code, self.settings.api_key)
            result.update(
                statusCode=response.status_code,
                ok=ok,
                bodySnippet=response.text[:SNIPPET_CHARS],
                error=None if ok else f"{label} answered {response.status_code}.{hint}",
            )
        result["durationMs"] = round((time.perf_counter() - started) * 1000, 1)
        return result
