"""mock-jwt: tokens verify like Twitch extension JWTs, claims are right, input is validated."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import httpx
import jwt
import pytest

from services.mock_jwt.app import create_app
from services.mock_jwt.claims import Settings, decode_secret

KEY = b"extension-secret-32-bytes-\x00\xff\x10\x7f-ok"
SECRET_B64 = base64.b64encode(KEY).decode()
CHANNEL = "1971641"


def env(**extra: str) -> dict[str, str]:
    return {"Twitch__ExtensionSecret": SECRET_B64, "Twitch__BroadcasterUserId": CHANNEL, **extra}


@pytest.fixture
def client(client_for: Any) -> httpx.Client:
    return client_for(create_app(env()))


def decode(token: str, **options: Any) -> dict[str, Any]:
    return jwt.decode(token, KEY, algorithms=["HS256"], **options)


def test_health_names_the_service(client: httpx.Client) -> None:
    """MGM's health verifier compares these fields exactly (more in test_service_health.py)."""
    body = client.get("/health").json()
    assert (body["status"], body["service"]) == ("ok", "MockExtensionJwt")


def test_viewer_token_verifies_with_the_decoded_secret_and_carries_twitch_claims(
    client: httpx.Client,
) -> None:
    before = int(time.time())
    answer = client.get("/token", params={"userId": "555", "displayName": "Arthas"})

    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    claims = decode(body["access_token"])
    assert before + 3600 <= claims["exp"] <= int(time.time()) + 3600
    assert claims["exp"] - claims["iat"] == 3600
    assert {k: v for k, v in claims.items() if k not in ("exp", "iat")} == {
        "opaque_user_id": "U555",
        "user_id": "555",
        "channel_id": CHANNEL,
        "role": "viewer",
        "is_unlinked": False,
        "pubsub_perms": {"listen": ["broadcast", "whisper-U555", "global"], "send": []},
    }


def test_a_wrong_secret_fails_verification(client: httpx.Client) -> None:
    token = client.get("/token", params={"userId": "555"}).json()["access_token"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, b"some-other-secret-of-32-bytes!!!", algorithms=["HS256"])
    with pytest.raises(jwt.InvalidSignatureError):
        # The base64 text itself is not the key; the decoded bytes are.
        jwt.decode(token, SECRET_B64.encode(), algorithms=["HS256"])


def test_audience_is_the_extension_client_id_only_when_configured(client_for: Any) -> None:
    plain = client_for(create_app(env()))
    assert "aud" not in decode(plain.get("/token?userId=1").json()["access_token"])

    with_aud = client_for(create_app(env(Twitch__ExtensionClientId="abc123clientid")))
    token = with_aud.get("/token?userId=1").json()["access_token"]
    assert decode(token, audience="abc123clientid")["aud"] == "abc123clientid"
    with pytest.raises(jwt.InvalidAudienceError):
        decode(token, audience="someone-else")


def test_broadcaster_and_external_roles(client: httpx.Client) -> None:
    broadcaster = decode(
        client.get("/token", params={"userId": CHANNEL, "role": "broadcaster"}).json()[
            "access_token"
        ]
    )
    assert broadcaster["role"] == "broadcaster"
    assert broadcaster["pubsub_perms"]["send"] == ["broadcast", "whisper-*"]

    external = decode(
        client.get("/token", params={"userId": "77", "role": "external"}).json()["access_token"]
    )
    assert external["role"] == "external"
    assert external["user_id"] == "77"
    assert "opaque_user_id" not in external
    assert external["pubsub_perms"] == {"send": ["broadcast"]}


def test_ttl_sets_expiry(client: httpx.Client) -> None:
    body = client.get("/token", params={"userId": "5", "ttl": "60"}).json()
    claims = decode(body["access_token"])
    assert body["expires_in"] == 60
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "userId"),
        ({"userId": ""}, "userId"),
        ({"userId": "abc"}, "userId"),
        ({"userId": "-5"}, "userId"),
        ({"userId": "1" * 5000}, "userId"),
        ({"userId": "5", "role": "admin"}, "role"),
        ({"userId": "5", "ttl": "0"}, "ttl"),
        ({"userId": "5", "ttl": "86401"}, "ttl"),
        ({"userId": "5", "ttl": "soon"}, "ttl"),
        ({"userId": "5", "displayName": "x" * 65}, "displayName"),
        ({"userId": "5", "user_id": "5"}, "user_id"),
    ],
)
def test_bad_queries_are_a_clear_400(
    client: httpx.Client, query: dict[str, str], field: str
) -> None:
    answer = client.get("/token", params=query)
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == "invalid_query"
    assert "userId (digits) is required" in error["message"]
    assert field in [problem["field"] for problem in error["details"]]


def test_repeated_parameters_are_refused(client: httpx.Client) -> None:
    answer = client.get("/token?userId=1&userId=2")
    assert answer.status_code == 400
    assert answer.json()["message"] == "Give each query parameter once; repeated: userId."


def test_journal_keeps_claims_but_never_the_token(client: httpx.Client) -> None:
    tokens = [
        client.get("/token", params={"userId": uid, "displayName": name}).json()["access_token"]
        for uid, name in (("1", "One"), ("2", "Two"))
    ]
    entries = client.get("/tokens").json()

    assert [(e["userId"], e["displayName"], e["role"]) for e in entries] == [
        ("1", "One", "viewer"),
        ("2", "Two", "viewer"),
    ]
    assert entries[0]["claims"] == decode(tokens[0])
    assert re.fullmatch(r"[0-9a-f]{12}", entries[0]["fingerprint"])
    dumped = json.dumps(entries)
    assert all(token not in dumped for token in tokens)
    assert all(part not in dumped for token in tokens for part in token.split(".")[1:])
    assert client.delete("/tokens").json() == {"cleared": 2}
    assert client.get("/tokens").json() == []
    client.get("/token", params={"userId": "3"})
    assert client.post("/reset").json() == {"cleared": 1}


def test_unknown_routes_and_methods_use_the_error_shape(client: httpx.Client) -> None:
    missing = client.get("/nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong = client.post("/token", content=b"x" * 100_000)
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"Twitch__BroadcasterUserId": CHANNEL}, "mock-jwt needs Twitch__ExtensionSecret"),
        (
            {"Twitch__ExtensionSecret": "not base64!", "Twitch__BroadcasterUserId": CHANNEL},
            "Twitch__ExtensionSecret is not valid base64",
        ),
        ({"Twitch__ExtensionSecret": SECRET_B64}, "needs Twitch__BroadcasterUserId"),
    ],
)
def test_settings_name_the_missing_or_bad_variable(
    environment: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.from_env(environment)


def test_secret_is_decoded_and_hidden() -> None:
    assert decode_secret(SECRET_B64) == KEY
    assert decode_secret(base64.urlsafe_b64encode(KEY).decode().rstrip("=")) == KEY
    assert SECRET_B64 not in repr(Settings.from_env(env()))
