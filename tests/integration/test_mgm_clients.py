"""The MGM project's own CI checks, as they call the stack, against an isolated envkit stack.

MGM's scripts (Python with `requests`) must work on envkit's stack unchanged.
These tests make the same calls with the same expectations: the health
verifiers, the mock-helix verifier and the Tier B orchestrator. The Tier A
sender's relay path is covered with mock-eventsub's own tests; here the
viewer is enrolled by a signed notification posted to the backend directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from envkit.engines.images import ImageResult
from envkit.lifecycle.commands import running_stack
from envkit.spec.settings import EnvkitSettings, load_settings

DEFAULT_STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"  # the MGM stack

VIEWER = "e2e-viewer-1"
CHARACTER = "Arthas"
TEXT = f"Награда отправлена персонажу {CHARACTER} на почту, проверяй ящик!"
MGM_HEALTH = {
    "mock-eventsub": {"status": "ok", "service": "MockEventSubWebhook"},
    "mock-jwt": {"status": "ok", "service": "MockExtensionJwt"},
    "mock-helix": {"status": "healthy", "component": "MockHelixApi"},
    "synthetic-desktop": {"status": "healthy", "component": "SyntheticDesktop"},
}


@pytest.fixture(scope="module")
def mgm_settings(tmp_path_factory: pytest.TempPathFactory) -> EnvkitSettings:
    tmp = tmp_path_factory.mktemp("mgm-clients")
    return load_settings(
        env_file=None,
        environ={
            "ENVKIT_ARTIFACT_ROOT": str(tmp / "artifacts"),
            "ENVKIT_HISTORY_PATH": str(tmp / "history.sqlite"),
        },
        stack=Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml",
    )


@pytest.fixture(scope="module")
def urls(mgm_settings: EnvkitSettings, images: dict[str, ImageResult]) -> Iterator[dict[str, str]]:
    """The MGM stack on random 127.0.0.1 ports, as each service's host URL."""
    with running_stack(mgm_settings, DEFAULT_STACK) as env:
        yield {name: row["host_url"] for name, row in env.endpoints().items()}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, trust_env=False) as client:
        yield client


def test_mgm_health_verifiers_pass(urls: dict[str, str], http: httpx.Client) -> None:
    """They compare each mock's /health fields exactly and call GET / on the backend."""
    for name, expected in MGM_HEALTH.items():
        answer = http.get(urls[name] + "/health")
        assert answer.status_code == 200, name
        body = answer.json()
        assert {key: body.get(key) for key in expected} == expected, name
    root = http.get(urls["backend"] + "/")
    assert root.status_code < 500  # any HTTP status will do, as long as the backend answers
    version = http.get(urls["backend"] + "/api/version")
    assert version.status_code == 200
    assert {"version", "releaseNotesUrl", "minimumDesktopVersion", "minimumAddonVersion",
            "minimumExtensionVersion"} <= set(version.json())  # fmt: skip


def test_mgm_mock_helix_verifier_passes_with_arbitrary_credentials(
    urls: dict[str, str], http: httpx.Client
) -> None:
    """It posts a chat message with made-up credentials, then reads /last-request."""
    helix = urls["mock-helix"]
    http.post(helix + "/reset")
    assert http.get(helix + "/last-request").json() == {"captured": False}
    message = {"broadcaster_id": "verifier", "sender_id": "verifier", "message": "ping"}
    posted = http.post(
        helix + "/helix/chat/messages",
        json=message,
        headers={"Authorization": "Bearer made-up-token", "Client-Id": "made-up-client"},
    )
    assert 200 <= posted.status_code < 300, posted.text
    assert posted.json()["data"][0]["is_sent"] is True
    last = http.get(helix + "/last-request").json()
    assert last["captured"] is True
    assert last["body"] == message
    assert last["authorizationHeader"] == "Bearer ***"
    assert last["clientIdHeader"] == "made-up-client"
    assert "made-up-token" not in json.dumps(http.get(helix + "/requests").json())
    http.post(helix + "/reset")


def _enroll(settings: EnvkitSettings, backend: str, http: httpx.Client) -> None:
    """A minimal signed `channel.chat.message`, with only the fields MGM's Tier A sender sets."""
    body = json.dumps({
        "subscription": {"type": "channel.chat.message"},
        "event": {"message_id": str(uuid.uuid4()), "chatter_user_id": VIEWER,
                  "chatter_user_login": "e2e_viewer_1",
                  "message": {"text": f"!twgold {CHARACTER}"},
                  "badges": [{"set_id": "subscriber"}]},
    }).encode()  # fmt: skip
    message_id = str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    secret = settings.twitch.eventsub_secret.get_secret_value().encode()
    digest = hmac.new(secret, message_id.encode() + stamp.encode() + body, hashlib.sha256)
    answer = http.post(
        backend + "/api/twitch/eventsub",
        content=body,
        headers={
            "Twitch-Eventsub-Message-Id": message_id,
            "Twitch-Eventsub-Message-Timestamp": stamp,
            "Twitch-Eventsub-Message-Signature": "sha256=" + digest.hexdigest(),
            "Twitch-Eventsub-Message-Type": "notification",
            "Content-Type": "application/json",
        },
    )
    assert 200 <= answer.status_code < 300, answer.text


def _viewer_jwt(settings: EnvkitSettings) -> str:
    key = base64.b64decode(settings.twitch.extension_secret.get_secret_value())
    claims: dict[str, Any] = {"user_id": VIEWER, "opaque_user_id": "U" + VIEWER, "role": "viewer",
                              "channel_id": settings.twitch.broadcaster_user_id,
                              "exp": int(time.time()) + 600}  # fmt: skip
    if settings.twitch.extension_client_id:
        claims["aud"] = settings.twitch.extension_client_id
    return jwt.encode(claims, key, algorithm="HS256")


def test_mgm_tier_b_orchestrator_passes(
    urls: dict[str, str], http: httpx.Client, mgm_settings: EnvkitSettings
) -> None:
    """Harness, run-sequence, /last-request (captured, exact text), /last-run, pool/me."""
    backend, helix, desktop = urls["backend"], urls["mock-helix"], urls["synthetic-desktop"]
    key = {"X-MGM-ApiKey": mgm_settings.mgm.api_key.get_secret_value()}
    bearer = {"Authorization": "Bearer " + _viewer_jwt(mgm_settings)}
    http.post(helix + "/reset")
    _enroll(mgm_settings, backend, http)
    assert http.get(backend + "/api/pool/me", headers=bearer).json() == {
        "isEnrolled": True, "characterName": CHARACTER,
    }  # fmt: skip

    prepared = http.post(
        backend + "/api/e2e/prepare-pending-payout", json={"twitchUserId": VIEWER}, headers=key
    )
    assert prepared.status_code == 200, prepared.text
    payout = prepared.json()
    run = http.post(
        desktop + "/run-sequence",
        json={"payoutId": payout["payoutId"], "characterName": payout["characterName"]},
        timeout=120,
    )
    assert run.status_code == 200
    last = http.get(helix + "/last-request").json()
    assert last["captured"] is True
    assert last["body"]["message"] == TEXT
    assert last["body"]["broadcaster_id"] == mgm_settings.twitch.broadcaster_user_id
    assert last["authorizationHeader"] == "Bearer ***"
    assert last["clientIdHeader"] == mgm_settings.twitch.helix_client_id
    last_run = http.get(desktop + "/last-run").json()
    assert last_run["ok"] is True, last_run
    assert [step["statusCode"] for step in last_run["steps"]] == [200, 200, 200]
    assert last_run["error"] is None
    assert last_run["completedAtUtc"]
    after = http.get(backend + "/api/pool/me", headers=bearer).json()
    assert after["isEnrolled"] is False
