"""mock-eventsub: signing, notification shape, delivery, relay, journal and input validation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.mock_eventsub.app import create_app
from services.mock_eventsub.delivery import Settings
from services.mock_eventsub.signing import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    sign,
    twitch_timestamp,
    verify,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "twitch"
SECRET = "s3cr3t-eventsub-value"


def env_for(url: str, **extra: str) -> dict[str, str]:
    return {
        "Twitch__EventSubSecret": SECRET,
        "Backend__BaseUrl": url,
        "Twitch__BroadcasterUserId": "1971641",
        **extra,
    }


@pytest.fixture
def backend(fake_backend: Any) -> Any:
    fake_backend.eventsub_secret = SECRET
    return fake_backend


@pytest.fixture
def client(backend: Any, client_for: Any) -> httpx.Client:
    return client_for(create_app(env_for(backend.url)))


def signed_headers(
    body: bytes, secret: str = SECRET, timestamp: str | None = None
) -> dict[str, str]:
    message_id = "0f9e5b8e-0000-4000-8000-000000000001"
    timestamp = timestamp or twitch_timestamp()
    return {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Timestamp": timestamp,
        "Twitch-Eventsub-Message-Signature": sign(secret, message_id, timestamp, body),
        "Twitch-Eventsub-Message-Type": "notification",
        "Twitch-Eventsub-Message-Retry": "0",
        "Twitch-Eventsub-Subscription-Type": "channel.chat.message",
        "Twitch-Eventsub-Subscription-Version": "1",
    }


# --- signing ---------------------------------------------------------------------------------


def test_signature_matches_twitchs_published_example() -> None:
    body = (EXAMPLES / "signature_vector_channel_follow.json").read_bytes()
    signature = sign(
        "secretabcd", "ae2ff348-e102-16be-a3eb-6830c1bf38d2", "2021-02-19T23:47:00.8091512Z", body
    )
    assert signature == "sha256=d10f5bd9474b7ac7bd7105eb79c2d52768b4d0cd2a135982c3bf5a1d59a78823"


def test_timestamp_is_rfc3339_utc_with_nanoseconds() -> None:
    assert twitch_timestamp(1_699_294_307_492_253_549) == "2023-11-06T18:11:47.492253549Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", twitch_timestamp())


def test_verify_accepts_a_fresh_signed_message_and_names_each_refusal() -> None:
    body = b'{"a":1}'
    assert verify(SECRET, signed_headers(body), body).ok
    bad = verify("other-secret", signed_headers(body), body)
    assert (bad.ok, bad.code) == (False, "bad_signature")
    old = (datetime.now(UTC) - timedelta(minutes=11)).isoformat().replace("+00:00", "Z")
    stale = verify(SECRET, signed_headers(body, timestamp=old), body)
    assert (stale.ok, stale.code) == (False, "stale_message")
    assert "more than 10 minutes" in stale.reason
    missing = verify(SECRET, {}, body)
    assert missing.code == "missing_headers"
    assert "Twitch-Eventsub-Message-Signature" in missing.reason


# --- emit ------------------------------------------------------------------------------------


def test_health_names_the_service(client: httpx.Client) -> None:
    """MGM's health verifier compares these fields exactly (more in test_service_health.py)."""
    body = client.get("/health").json()
    assert (body["status"], body["service"]) == ("ok", "MockEventSubWebhook")


def test_emit_delivers_a_twitch_shaped_signed_notification(
    client: httpx.Client, backend: Any
) -> None:
    answer = client.post("/emit", json={"text": "!twgold Arthas", "chatterUserId": "555"})

    assert answer.status_code == 200
    report = answer.json()
    assert report["delivered"] is True
    assert report["status"] == 204
    assert report["error"] is None
    [got] = backend.received
    assert (got.method, got.path) == ("POST", "/api/twitch/eventsub")
    assert got.headers["twitch-eventsub-message-id"] == report["messageId"]
    assert got.headers["twitch-eventsub-message-timestamp"] == report["timestamp"]
    assert got.headers["twitch-eventsub-message-type"] == "notification"
    assert got.headers["twitch-eventsub-subscription-type"] == "channel.chat.message"
    assert got.headers["twitch-eventsub-subscription-version"] == "1"
    assert got.headers["twitch-eventsub-message-retry"] == "0"
    assert got.headers["content-type"] == "application/json"

    example = json.loads((EXAMPLES / "channel_chat_message.json").read_text())
    body = got.json()
    assert list(body) == ["subscription", "event"]
    assert list(body["subscription"]) == list(example["subscription"])
    assert body["subscription"]["transport"] == {
        "method": "webhook",
        "callback": backend.url + "/api/twitch/eventsub",
    }
    assert body["subscription"]["condition"] == {
        "broadcaster_user_id": "1971641",
        "user_id": "1971641",
    }
    event = body["event"]
    assert list(event) == list(example["event"])
    assert event["chatter_user_id"] == "555"
    assert event["message"]["text"] == "!twgold Arthas"
    assert event["message"]["fragments"] == [
        {
            "type": "text",
            "text": "!twgold Arthas",
            "cheermote": None,
            "emote": None,
            "mention": None,
        }
    ]
    assert event["badges"] == [{"set_id": "subscriber", "id": "0", "info": "1"}]
    assert event["message_id"] == report["eventMessageId"]


def test_emit_applies_chatter_badges_broadcaster_and_event_overrides(
    client: httpx.Client, backend: Any
) -> None:
    client.post(
        "/emit",
        json={
            "text": "!twgold Ведьма",
            "chatterUserId": "42",
            "chatterLogin": "witch",
            "chatterName": "Witch",
            "badges": [],
            "broadcasterUserId": "999",
            "eventOverrides": {"color": "#FF0000", "message_type": "power_ups_gigantified_emote"},
        },
    )
    raw = backend.received[0].body
    assert "Ведьма".encode() in raw, "bodies are UTF-8, not \\u escapes, like Twitch's"
    event = json.loads(raw)["event"]
    assert (event["chatter_user_login"], event["chatter_user_name"]) == ("witch", "Witch")
    assert event["badges"] == []
    assert event["broadcaster_user_id"] == "999"
    assert (event["color"], event["message_type"]) == ("#FF0000", "power_ups_gigantified_emote")


def test_wrong_secret_is_reported_as_the_backends_refusal(client: httpx.Client) -> None:
    report = client.post("/emit", json={"signWith": "not-the-secret"}).json()
    assert (report["delivered"], report["status"]) == (False, 403)
    assert report["error"] == "The backend answered 403."


def test_message_id_and_timestamp_overrides_reach_the_backend(
    client: httpx.Client, backend: Any
) -> None:
    stale = "2020-01-01T00:00:00.000000000Z"
    report = client.post("/emit", json={"messageId": "replay-1", "timestamp": stale}).json()
    assert (report["messageId"], report["timestamp"]) == ("replay-1", stale)
    headers = backend.received[0].headers
    assert headers["twitch-eventsub-message-id"] == "replay-1"
    assert headers["twitch-eventsub-message-timestamp"] == stale
    assert report["delivered"] is True, "signed correctly; the fake backend does not check age"


def test_other_subscription_types_carry_only_the_given_event(
    client: httpx.Client, backend: Any
) -> None:
    client.post("/emit", json={"type": "channel.follow", "eventOverrides": {"user_id": "7"}})
    got = backend.received[0]
    assert got.headers["twitch-eventsub-subscription-type"] == "channel.follow"
    assert got.json()["event"] == {"broadcaster_user_id": "1971641", "user_id": "7"}


def test_emit_challenge_reports_whether_the_backend_echoed_it(client: httpx.Client) -> None:
    report = client.post("/emit-challenge", json={"challenge": "pogchamp-kappa"}).json()
    assert report["challengeEchoed"] is True
    assert report["body"] == "pogchamp-kappa"


def test_unreachable_backend_is_a_502_naming_the_url(closed_port_url: str, client_for: Any) -> None:
    client = client_for(create_app(env_for(closed_port_url)))
    answer = client.post("/emit", json={})
    assert answer.status_code == 502
    error = answer.json()
    assert error["code"] == "backend_unreachable"
    assert f"Could not reach {closed_port_url}/api/twitch/eventsub" in error["message"]
    assert "Check Backend__BaseUrl" in error["message"]
    assert client.get("/deliveries").json()[0]["error"].startswith("Could not reach")


def test_injected_transport_replaces_the_network(client_for: Any) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, text="queued")

    app = create_app(env_for("http://backend:8080"), transport=httpx.MockTransport(handler))
    report = client_for(app).post("/emit", json={}).json()
    assert (report["status"], report["body"]) == (202, "queued")
    assert str(seen[0].url) == "http://backend:8080/api/twitch/eventsub"


# --- journal ---------------------------------------------------------------------------------


def test_deliveries_journal_keeps_every_attempt_without_signatures(client: httpx.Client) -> None:
    client.post("/emit", json={"text": "one"})
    client.post("/emit", json={"text": "two", "signWith": "wrong"})
    entries = client.get("/deliveries").json()
    assert [e["body"]["event"]["message"]["text"] for e in entries] == ["one", "two"]
    assert [e["status"] for e in entries] == [204, 403]
    assert [e["signedWith"] for e in entries] == ["configured-secret", "override"]
    assert all(HEADER_SIGNATURE not in e["headers"] for e in entries)
    assert SECRET not in json.dumps(entries)
    assert client.delete("/deliveries").json() == {"cleared": 2}
    assert client.get("/deliveries").json() == []
    client.post("/emit", json={})
    assert client.post("/reset").json() == {"cleared": 1}


# --- relay -----------------------------------------------------------------------------------


def test_relay_forwards_a_verified_request_unchanged(client: httpx.Client, backend: Any) -> None:
    body = (EXAMPLES / "channel_chat_message.json").read_bytes()
    headers = signed_headers(body)
    answer = client.post("/api/twitch/eventsub", content=body, headers=headers)

    assert answer.status_code == 204
    [got] = backend.received
    assert got.body == body
    for name, value in headers.items():
        assert got.headers[name.lower()] == value
    assert client.get("/deliveries").json()[0]["kind"] == "relay"


def test_relay_returns_the_backends_status_and_body(client: httpx.Client, backend: Any) -> None:
    backend.responder = lambda got: (418, {"code": "teapot"})
    body = b'{"event":{}}'
    answer = client.post("/api/twitch/eventsub", content=body, headers=signed_headers(body))
    assert (answer.status_code, answer.json()) == (418, {"code": "teapot"})


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda h: h.update({HEADER_SIGNATURE: "sha256=" + "0" * 64}), "bad_signature"),
        (lambda h: h.update({HEADER_ID: "another-id"}), "bad_signature"),
        (lambda h: h.pop(HEADER_TIMESTAMP), "missing_headers"),
    ],
)
def test_relay_refuses_unsigned_or_tampered_requests(
    client: httpx.Client, backend: Any, tamper: Any, code: str
) -> None:
    body = b'{"event":{}}'
    headers = signed_headers(body)
    tamper(headers)
    answer = client.post("/api/twitch/eventsub", content=body, headers=headers)
    assert answer.status_code == (400 if code == "missing_headers" else 403)
    assert answer.json()["code"] == code
    assert backend.received == []


def test_relay_refuses_stale_messages(client: httpx.Client, backend: Any) -> None:
    body = b"{}"
    old = (datetime.now(UTC) - timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    answer = client.post(
        "/api/twitch/eventsub", content=body, headers=signed_headers(body, timestamp=old)
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "stale_message")
    assert backend.received == []


# --- input validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "malformed_json", None),
        (b'{"text": 12}', "invalid_body", "text"),
        (b'{"chatterUserId": "abc"}', "invalid_body", "chatterUserId"),
        (b'{"badges": [{"set_id": "subscriber"}]}', "invalid_body", "badges.0.id"),
        (b'{"eventOverrides": []}', "invalid_body", "eventOverrides"),
        (b'{"colour": "#fff"}', "invalid_body", "colour"),
        (b'{"type": "Not A Type"}', "invalid_body", "type"),
        (b"[1, 2]", "invalid_body", "(body)"),
        (json.dumps({"text": "x" * 501}).encode(), "invalid_body", "text"),
    ],
)
def test_emit_rejects_bad_bodies_with_a_clear_400(
    client: httpx.Client, backend: Any, body: bytes, code: str, field: str | None
) -> None:
    answer = client.post("/emit", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == code
    if field is not None:
        assert field in [problem["field"] for problem in error["details"]]
    assert backend.received == []


def test_oversize_bodies_are_refused_with_413(client: httpx.Client, backend: Any) -> None:
    huge = b'{"text": "' + b"x" * 70_000 + b'"}'
    for path in ("/emit", "/emit-challenge", "/api/twitch/eventsub"):
        answer = client.post(path, content=huge)
        assert (answer.status_code, answer.json()["code"]) == (413, "payload_too_large")
    assert backend.received == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"Backend__BaseUrl": "http://backend:8080"}, "mock-eventsub needs Twitch__EventSubSecret"),
        ({"Twitch__EventSubSecret": "x"}, "Backend__BaseUrl"),
        (
            {"Twitch__EventSubSecret": "x", "Backend__BaseUrl": "backend:8080"},
            "is not an http(s) URL",
        ),
        (
            {
                "Twitch__EventSubSecret": "x",
                "Backend__BaseUrl": "http://b",
                "Twitch__BroadcasterUserId": "streamer",
            },
            "must be a numeric Twitch user id",
        ),
    ],
)
def test_settings_name_the_missing_or_bad_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.from_env(env)


def test_settings_do_not_show_the_secret() -> None:
    settings = Settings.from_env(env_for("http://backend:8080/"))
    assert SECRET not in repr(settings)
    assert settings.callback_url == "http://backend:8080/api/twitch/eventsub"
