"""mock-eventsub: notification shape, signing, delivery, the relay MGM's sender uses, journal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from envkit.services import mock_eventsub
from envkit.services.backend.eventsub import compute_signature
from envkit.services.common import log
from envkit.services.mock_eventsub.app import create_app
from envkit.services.mock_eventsub.delivery import Settings
from envkit.services.mock_eventsub.signing import twitch_timestamp

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
    body: bytes,
    secret: str = SECRET,
    timestamp: str | None = None,
    message_type: str | None = "notification",
) -> dict[str, str]:
    message_id = str(uuid.uuid4())
    timestamp = timestamp or twitch_timestamp()
    headers = {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Timestamp": timestamp,
        "Twitch-Eventsub-Message-Signature": compute_signature(secret, message_id, timestamp, body),
        "Twitch-Eventsub-Message-Retry": "0",
        "Twitch-Eventsub-Subscription-Type": "channel.chat.message",
        "Twitch-Eventsub-Subscription-Version": "1",
    }
    if message_type is not None:
        headers["Twitch-Eventsub-Message-Type"] = message_type
    return headers


def mgm_tier_a_request(
    secret: str = SECRET, text: str = "!twgold Etoehero"
) -> tuple[bytes, dict[str, str]]:
    """What the MGM Tier A sender posts: a minimal compact body, Unix seconds, no type header."""
    message_id = str(uuid.uuid4())
    doc = json.loads((EXAMPLES / "mgm_tier_a_chat_message.json").read_bytes())
    doc["event"]["message_id"] = message_id
    doc["event"]["message"]["text"] = text
    body = json.dumps(doc, separators=(",", ":")).encode()
    stamp = str(int(time.time()))
    signature = (
        "sha256="
        + hmac.new(
            secret.encode(), (message_id + stamp).encode() + body, hashlib.sha256
        ).hexdigest()
    )
    return body, {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Timestamp": stamp,
        "Twitch-Eventsub-Message-Signature": signature,
    }


# --- timestamps ------------------------------------------------------------------------------


def test_timestamp_is_rfc3339_utc_with_nanoseconds() -> None:
    assert twitch_timestamp(1_699_294_307_492_253_549) == "2023-11-06T18:11:47.492253549Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", twitch_timestamp())


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


def test_emit_keeps_the_envkit_scenarios_fields(client: httpx.Client, backend: Any) -> None:
    """envkit's scenario sends text, chatterUserId, chatterLogin and chatterName."""
    report = client.post(
        "/emit",
        json={
            "text": "!twgold Arthas",
            "chatterUserId": "4145994",
            "chatterLogin": "viewer32",
            "chatterName": "viewer32",
        },
    ).json()
    assert report["delivered"] is True
    event = backend.received[0].json()["event"]
    assert (event["chatter_user_id"], event["chatter_user_login"], event["chatter_user_name"]) == (
        "4145994",
        "viewer32",
        "viewer32",
    )


def test_emit_takes_ids_as_any_strings_like_the_mgm_workflow(
    client: httpx.Client, backend: Any
) -> None:
    """The MGM workflow uses `e2e-viewer-1` and the broadcaster `e2e-ci-broadcaster`."""
    report = client.post(
        "/emit",
        json={
            "text": "!twgold Etoehero",
            "chatterUserId": "e2e-viewer-1",
            "broadcasterUserId": "e2e-ci-broadcaster",
            "messageId": "e2e-message-1",
            "eventOverrides": {"message_id": "e2e-event-1"},
        },
    ).json()
    assert report["delivered"] is True
    got = backend.received[0]
    assert got.headers["twitch-eventsub-message-id"] == "e2e-message-1"
    body = got.json()
    assert body["event"]["chatter_user_id"] == "e2e-viewer-1"
    assert body["event"]["broadcaster_user_id"] == "e2e-ci-broadcaster"
    assert body["event"]["message_id"] == report["eventMessageId"] == "e2e-event-1"
    assert body["subscription"]["condition"]["broadcaster_user_id"] == "e2e-ci-broadcaster"


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


def test_deliveries_journal_keeps_every_attempt_but_never_the_secret(client: httpx.Client) -> None:
    client.post("/emit", json={"text": "one"})
    client.post("/emit", json={"text": "two", "signWith": "wrong"})
    entries = client.get("/deliveries").json()
    assert [e["body"]["event"]["message"]["text"] for e in entries] == ["one", "two"]
    assert [e["status"] for e in entries] == [204, 403]
    assert [e["signedWith"] for e in entries] == ["configured-secret", "override"]
    assert SECRET not in json.dumps(entries)
    assert client.delete("/deliveries").json() == {"cleared": 2}
    assert client.get("/deliveries").json() == []
    client.post("/emit", json={})
    assert client.post("/reset").json() == {"cleared": 1}


@pytest.mark.parametrize("route", ["emit", "relay"])
def test_a_third_party_can_verify_the_signature_from_a_journal_entry(
    client: httpx.Client, backend: Any, route: str
) -> None:
    """A journal entry holds the exact bytes and headers sent: recompute the HMAC from them."""
    if route == "emit":
        client.post("/emit", json={"text": "!twgold Ведьма", "chatterUserId": "e2e-viewer-1"})
    else:
        body, headers = mgm_tier_a_request()
        client.post("/api/twitch/eventsub", content=body, headers=headers)
    [entry] = client.get("/deliveries").json()
    raw = base64.b64decode(entry["bodyBase64"])
    assert raw == backend.received[0].body
    assert entry["bodyText"] == raw.decode()
    sent = {name.lower(): value for name, value in entry["headers"].items()}
    message = (
        sent["twitch-eventsub-message-id"] + sent["twitch-eventsub-message-timestamp"]
    ).encode() + raw
    recomputed = "sha256=" + hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert sent["twitch-eventsub-message-signature"] == recomputed


def test_journal_keeps_bytes_that_are_not_utf8(client: httpx.Client, backend: Any) -> None:
    body = b'{"subscription":{"type":"x.y"},"pad":"\xff\xfe"}'
    client.post("/api/twitch/eventsub", content=body, headers=signed_headers(body))
    [entry] = client.get("/deliveries").json()
    assert base64.b64decode(entry["bodyBase64"]) == body == backend.received[0].body
    assert entry["bodyText"] is None


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


def test_relay_accepts_the_mgm_tier_a_senders_request_and_adds_the_inferred_type(
    client: httpx.Client, backend: Any
) -> None:
    """MGM's sender: minimal body, Unix-seconds timestamp, no Twitch-Eventsub-Message-Type."""
    body, headers = mgm_tier_a_request()
    answer = client.post("/api/twitch/eventsub", content=body, headers=headers)

    assert answer.status_code == 204, answer.text
    [got] = backend.received
    assert got.body == body
    for name in ("Id", "Timestamp", "Signature"):
        header = f"Twitch-Eventsub-Message-{name}"
        assert got.headers[header.lower()] == headers[header]
    assert got.headers["twitch-eventsub-message-type"] == "notification"


def test_relay_infers_a_challenge_without_a_type_header(client: httpx.Client, backend: Any) -> None:
    body = b'{"challenge":"pogchamp-kappa","subscription":{"type":"channel.chat.message"}}'
    headers = signed_headers(body, timestamp=str(int(time.time() * 1000)), message_type=None)
    answer = client.post("/api/twitch/eventsub", content=body, headers=headers)
    assert (answer.status_code, answer.text) == (200, "pogchamp-kappa")
    assert answer.headers["content-type"].startswith("text/plain")
    assert backend.received[0].headers["twitch-eventsub-message-type"] == (
        "webhook_callback_verification"
    )


def test_relay_keeps_a_type_header_the_sender_gave(client: httpx.Client, backend: Any) -> None:
    body = b'{"subscription":{"type":"channel.chat.message","status":"authorization_revoked"}}'
    headers = signed_headers(body, message_type="revocation")
    client.post("/api/twitch/eventsub", content=body, headers=headers)
    assert backend.received[0].headers["twitch-eventsub-message-type"] == "revocation"


def test_relay_returns_the_backends_status_and_body(client: httpx.Client, backend: Any) -> None:
    backend.responder = lambda got: (418, {"code": "teapot"})
    body = b'{"event":{}}'
    answer = client.post("/api/twitch/eventsub", content=body, headers=signed_headers(body))
    assert (answer.status_code, answer.json()) == (418, {"code": "teapot"})


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (
            lambda h: h.update({"Twitch-Eventsub-Message-Signature": "sha256=" + "0" * 64}),
            "invalid_signature",
        ),
        (lambda h: h.update({"Twitch-Eventsub-Message-Id": "another-id"}), "invalid_signature"),
        (lambda h: h.pop("Twitch-Eventsub-Message-Timestamp"), "missing_eventsub_headers"),
        (lambda h: h.pop("Twitch-Eventsub-Message-Signature"), "missing_eventsub_headers"),
    ],
)
def test_relay_refuses_unsigned_or_tampered_requests_like_the_backend(
    client: httpx.Client, backend: Any, tamper: Any, code: str
) -> None:
    body, headers = mgm_tier_a_request()
    tamper(headers)
    answer = client.post("/api/twitch/eventsub", content=body, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (403, code)
    assert backend.received == []


@pytest.mark.parametrize(
    ("form", "minutes"),
    [("unix-seconds", -15), ("unix-millis", 15), ("rfc3339", -15), ("rfc3339", 15)],
)
def test_relay_refuses_stale_messages_in_every_timestamp_form(
    client: httpx.Client, backend: Any, form: str, minutes: int
) -> None:
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    stamp = {
        "unix-seconds": str(int(moment.timestamp())),
        "unix-millis": str(int(moment.timestamp() * 1000)),
        "rfc3339": moment.isoformat().replace("+00:00", "Z"),
    }[form]
    body = b"{}"
    answer = client.post(
        "/api/twitch/eventsub", content=body, headers=signed_headers(body, timestamp=stamp)
    )
    assert (answer.status_code, answer.json()["code"]) == (403, "stale_message")
    assert backend.received == []


def test_relay_judges_age_by_its_own_clock(backend: Any, client_for: Any) -> None:
    then = datetime(2021, 2, 19, 23, 50, tzinfo=UTC)
    client = client_for(create_app(env_for(backend.url), clock=lambda: then))
    body = b"{}"
    fresh = client.post(
        "/api/twitch/eventsub",
        content=body,
        headers=signed_headers(body, timestamp=str(int(then.timestamp()) - 60)),
    )
    assert fresh.status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 20_000 + b"]" * 20_000,
        b'{"challenge_not":"x","a":"\\ud800","b":"\x00"}',
        b'{"a": NaN}',
        b"\x00\xff not json at all",
    ],
)
def test_relay_forwards_odd_signed_bodies_and_its_journal_still_lists(
    client: httpx.Client, backend: Any, body: bytes
) -> None:
    answer = client.post(
        "/api/twitch/eventsub", content=body, headers=signed_headers(body, message_type=None)
    )
    assert answer.status_code == 204
    assert backend.received[0].body == body
    assert backend.received[0].headers["twitch-eventsub-message-type"] == "notification"
    listed = client.get("/deliveries")
    assert listed.status_code == 200
    assert base64.b64decode(listed.json()[0]["bodyBase64"]) == body


def test_relay_passes_latin1_and_huge_header_values_through(
    client: httpx.Client, backend: Any
) -> None:
    body = b"{}"
    message_id = "id-\xe9-" + "x" * 4000
    stamp = twitch_timestamp()
    headers = {
        "Twitch-Eventsub-Message-Id": message_id.encode("latin-1"),
        "Twitch-Eventsub-Message-Timestamp": stamp.encode(),
        "Twitch-Eventsub-Message-Signature": compute_signature(
            SECRET, message_id, stamp, body
        ).encode(),
    }
    answer = client.post("/api/twitch/eventsub", content=body, headers=headers)
    assert answer.status_code == 204, answer.text
    assert backend.received[0].headers["twitch-eventsub-message-id"] == message_id
    assert client.get("/deliveries").status_code == 200


# --- input validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "malformed_json", None),
        (b'{"text": NaN}', "malformed_json", None),
        (b'{"eventOverrides": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "malformed_json", None),
        (b'{"text": 12}', "invalid_body", "text"),
        (b'{"chatterUserId": ""}', "invalid_body", "chatterUserId"),
        (b'{"chatterUserId": 4145994}', "invalid_body", "chatterUserId"),
        (json.dumps({"chatterUserId": "9" * 256}).encode(), "invalid_body", "chatterUserId"),
        (b'{"messageId": "\\u0438\\u0434"}', "invalid_body", "messageId"),
        (b'{"messageId": "a\\nb"}', "invalid_body", "messageId"),
        (b'{"timestamp": "\\u0000"}', "invalid_body", "timestamp"),
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


@pytest.mark.parametrize(
    ("body", "field"),
    [(b'{"text": "!twgold \\ud800"}', "text"), (b'{"chatterUserId": "\\udfff"}', "chatterUserId")],
)
def test_emit_refuses_unpaired_surrogates_in_fields_naming_the_field(
    client: httpx.Client, backend: Any, body: bytes, field: str
) -> None:
    answer = client.post("/emit", content=body)
    assert answer.status_code == 400
    [problem] = answer.json()["details"]
    assert problem["field"] == field
    assert "unable to parse raw data as a unicode string" in problem["problem"]
    assert backend.received == []


def test_emit_refuses_unpaired_surrogates_deep_in_overrides_with_the_fix(
    client: httpx.Client, backend: Any
) -> None:
    answer = client.post("/emit", content=b'{"eventOverrides": {"deep": [{"x": "\\ud800"}]}}')
    assert answer.status_code == 400
    assert answer.json()["message"] == (
        "The event cannot be sent as JSON: it holds an unpaired surrogate or a value such as "
        "NaN. Send plain Unicode text and finite numbers."
    )
    assert backend.received == []


def test_emit_delivers_nul_bytes_in_ids_for_the_backend_to_judge(
    client: httpx.Client, backend: Any
) -> None:
    report = client.post("/emit", json={"chatterUserId": "nul\x00id", "text": "x\x00y"}).json()
    assert report["delivered"] is True
    assert backend.received[0].json()["event"]["chatter_user_id"] == "nul\x00id"


def test_oversize_bodies_are_refused_with_413(client: httpx.Client, backend: Any) -> None:
    huge = b'{"text": "' + b"x" * 70_000 + b'"}'
    for path in ("/emit", "/emit-challenge", "/api/twitch/eventsub"):
        answer = client.post(path, content=huge)
        assert (answer.status_code, answer.json()["code"]) == (413, "payload_too_large")
    assert backend.received == []


# --- settings --------------------------------------------------------------------------------


def test_starts_with_no_configuration_and_documented_defaults() -> None:
    """Like the MGM mock, it needs nothing but ASPNETCORE_URLS (which the runner reads)."""
    settings = Settings.from_env({"ASPNETCORE_URLS": "http://+:9051"})
    assert settings.callback_url == "http://127.0.0.1:8080/api/twitch/eventsub"
    assert settings.secret == "demo-eventsub-secret-0001"
    assert settings.secret_is_demo is True
    assert settings.broadcaster_user_id == "1971641"
    documentation = mock_eventsub.__doc__ or ""
    for documented in ("http://127.0.0.1:8080", "demo-eventsub-secret-0001", "1971641"):
        assert documented in documentation


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = log.add(lambda m: lines.append(str(m).rstrip("\n")), format="{level} {message}")
    yield lines
    log.remove(sink)


def test_start_up_warns_when_signing_with_the_demo_secret(log_lines: list[str]) -> None:
    create_app({})
    create_app(env_for("http://backend:8080"))
    warnings = [line for line in log_lines if line.startswith("WARNING")]
    assert warnings == [
        "WARNING Twitch__EventSubSecret is not set: signing and verifying with the documented "
        "demo secret; give the backend the same value"
    ]
    assert any("delivers to http://backend:8080/api/twitch/eventsub" in line for line in log_lines)


def test_broadcaster_id_is_any_string() -> None:
    environment = env_for("http://b", Twitch__BroadcasterUserId="e2e-ci-broadcaster")
    settings = Settings.from_env(environment)
    assert settings.broadcaster_user_id == "e2e-ci-broadcaster"


@pytest.mark.parametrize("url", ["backend:8080", "ftp://backend", "http://"])
def test_a_bad_backend_url_is_named(url: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Backend__BaseUrl={url!r} is not an http(s)")):
        Settings.from_env({"Backend__BaseUrl": url})


def test_settings_do_not_show_the_secret() -> None:
    settings = Settings.from_env(env_for("http://backend:8080/"))
    assert SECRET not in repr(settings)
    assert settings.callback_url == "http://backend:8080/api/twitch/eventsub"
