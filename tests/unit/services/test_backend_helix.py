"""The chat announcement: request shape, retries, rate limits, skipping, and no token in logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from envkit.services.backend.config import BackendConfig, DatabaseSettings
from envkit.services.backend.helix import (
    AnnouncementResult,
    ChatAnnouncer,
    RetryPolicy,
    ratelimit_wait,
)
from envkit.services.common import log

TOKEN = "very-secret-broadcaster-token"
TEXT = "Награда отправлена персонажу Thrall на почту, проверяй ящик!"
NOW = 1_700_000_000.0


def _config(
    *,
    broadcaster_access_token: str = TOKEN,
    broadcaster_user_id: str = "e2e-ci-broadcaster",
    helix_client_id: str = "helix-client",
) -> BackendConfig:
    return BackendConfig(
        database=DatabaseSettings("db", "mgm", "u"),
        helix_base_url="http://helix.test:9053",
        broadcaster_access_token=broadcaster_access_token,
        broadcaster_user_id=broadcaster_user_id,
        helix_client_id=helix_client_id,
    )


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = log.add(lambda m: lines.append(str(m).rstrip("\n")), format="{message}")
    yield lines
    log.remove(sink)


def _announce(
    script: list[httpx.Response | Exception], **overrides: str
) -> tuple[AnnouncementResult, list[httpx.Request], list[float]]:
    requests: list[httpx.Request] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        item = script.pop(0) if script else httpx.Response(200, json={"data": [{"is_sent": True}]})
        if isinstance(item, Exception):
            raise item
        return item

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    announcer = ChatAnnouncer(
        _config(**overrides),
        transport=httpx.MockTransport(handler),
        policy=RetryPolicy(attempts=4, base_delay_s=0.5, max_delay_s=4.0, max_ratelimit_wait_s=5),
        sleep=fake_sleep,
        clock=lambda: NOW,
    )
    result = asyncio.run(announcer.announce(TEXT))
    return result, requests, sleeps


def test_sends_the_request_mgm_orchestrator_checks_in_mock_helix() -> None:
    """Bearer token, Client-Id, string broadcaster ids and the exact text, UTF-8 encoded."""
    result, [request], sleeps = _announce([])
    assert result == AnnouncementResult("sent", 1, 200, "sent")
    assert request.method == "POST"
    assert str(request.url) == "http://helix.test:9053/helix/chat/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["client-id"] == "helix-client"
    assert json.loads(request.content) == {
        "broadcaster_id": "e2e-ci-broadcaster",
        "sender_id": "e2e-ci-broadcaster",
        "message": TEXT,
    }
    assert sleeps == []


@pytest.mark.parametrize(
    "overrides", [{"broadcaster_access_token": ""}, {"broadcaster_user_id": ""}]
)
def test_skipped_without_token_or_broadcaster(
    overrides: dict[str, str], log_lines: list[str]
) -> None:
    result, requests, _ = _announce([], **overrides)
    assert result.outcome == "skipped"
    assert requests == []
    assert "chat announcement skipped: token or broadcaster id empty" in log_lines


def test_server_errors_and_transport_errors_are_retried_with_backoff(log_lines: list[str]) -> None:
    script: list[httpx.Response | Exception] = [
        httpx.Response(500),
        httpx.ConnectError("refused"),
        httpx.Response(502, json={"message": "bad gateway"}),
    ]
    result, requests, sleeps = _announce(script)
    assert result.outcome == "sent"
    assert result.attempts == 4
    assert len(requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert log_lines == [
        "helix POST http://helix.test:9053/helix/chat/messages -> 500 (attempt 1/4)",
        "helix POST http://helix.test:9053/helix/chat/messages -> ConnectError (attempt 2/4)",
        "helix POST http://helix.test:9053/helix/chat/messages -> 502 (attempt 3/4)",
        "helix POST http://helix.test:9053/helix/chat/messages -> 200 (attempt 4/4)",
    ]
    assert not any(TOKEN in line for line in log_lines)


def test_gives_up_after_the_last_attempt_without_a_final_sleep() -> None:
    result, requests, sleeps = _announce([httpx.Response(503)] * 10)
    assert result.outcome == "failed"
    assert (result.attempts, result.status_code) == (4, 503)
    assert len(requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_rate_limit_waits_until_reset() -> None:
    limited = httpx.Response(429, headers={"Ratelimit-Reset": str(int(NOW) + 2)})
    result, requests, sleeps = _announce([limited])
    assert result.outcome == "sent"
    assert len(requests) == 2
    assert sleeps == [2.0]


@pytest.mark.parametrize(
    ("reset", "wait"),
    [("1700000100", 5.0), ("1699999990", 0.0), ("soon", 0.5), ("nan", 0.5), (None, 0.5)],
)
def test_rate_limit_wait_is_capped_and_falls_back_to_backoff(
    reset: str | None, wait: float
) -> None:
    headers = {"Ratelimit-Reset": reset} if reset is not None else {}
    _, _, sleeps = _announce([httpx.Response(429, headers=headers)])
    assert sleeps == [wait]


def test_ratelimit_wait_helper() -> None:
    assert ratelimit_wait(httpx.Headers({"ratelimit-reset": "103.5"}), 100.0, 10.0) == 3.5
    assert ratelimit_wait(httpx.Headers({}), 100.0, 10.0) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_final(status: int) -> None:
    response = httpx.Response(status, json={"error": "x", "status": status, "message": "nope"})
    result, requests, sleeps = _announce([response])
    assert result == AnnouncementResult("failed", 1, status, "nope")
    assert len(requests) == 1
    assert sleeps == []


DROPPED = "helix accepted the chat message but says it was not sent: msg_duplicate"


@pytest.mark.parametrize(
    ("answer", "warnings"),
    [
        (httpx.Response(200, json={"data": [{"is_sent": False, "drop_reason": "msg_duplicate"}]}),
         [DROPPED]),
        (httpx.Response(204), []),
        (httpx.Response(202, text="not json"), []),
        (httpx.Response(200, json={"data": {"is_sent": False}}), []),
        (httpx.Response(200, json=[1, 2]), []),
    ],
)  # fmt: skip
def test_any_2xx_counts_as_sent_like_the_real_backend(
    answer: httpx.Response, warnings: list[str], log_lines: list[str]
) -> None:
    result, requests, sleeps = _announce([answer])
    assert (result.outcome, result.attempts, result.status_code) == ("sent", 1, answer.status_code)
    assert (len(requests), sleeps) == (1, [])
    assert [line for line in log_lines if "says it was not sent" in line] == warnings


def test_the_default_policy_makes_three_attempts_like_the_real_backend() -> None:
    assert RetryPolicy().attempts == 3


def test_client_id_header_is_omitted_when_not_configured() -> None:
    _, [request], _ = _announce([], helix_client_id="")
    assert "client-id" not in request.headers


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=3.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
