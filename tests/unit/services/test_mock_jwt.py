"""mock-jwt: tokens verify like Twitch extension JWTs, claims are right, input is validated."""

from __future__ import annotations

import base64
import json
import re
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from envkit.services import mock_jwt
from envkit.services.backend.config import DEV_EXTENSION_KEY, decode_extension_secret, load_config
from envkit.services.backend.jwt_auth import verify_extension_jwt
from envkit.services.common import log
from envkit.services.mock_jwt.app import create_app
from envkit.services.mock_jwt.claims import Settings, build_claims, mint

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
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 7200)
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    claims = decode(body["access_token"])
    assert before + 7200 <= claims["exp"] <= int(time.time()) + 7200
    assert claims["exp"] - claims["iat"] == 7200
    assert {k: v for k, v in claims.items() if k not in ("exp", "iat")} == {
        "opaque_user_id": "U555",
        "user_id": "555",
        "channel_id": CHANNEL,
        "role": "viewer",
        "unique_name": "Arthas",
        "is_unlinked": False,
        "pubsub_perms": {"listen": ["broadcast", "whisper-U555", "global"], "send": []},
    }


def test_the_mgm_gates_user_id_e2e_viewer_1_gets_a_token(client: httpx.Client) -> None:
    """The MGM Tier A gate mints for `e2e-viewer-1`; the display name defaults to the id."""
    answer = client.get("/token", params={"userId": "e2e-viewer-1", "role": "viewer"})
    assert answer.status_code == 200, answer.text
    claims = decode(answer.json()["access_token"])
    assert (claims["user_id"], claims["opaque_user_id"]) == ("e2e-viewer-1", "Ue2e-viewer-1")
    assert claims["unique_name"] == "e2e-viewer-1"


def test_unknown_query_parameters_are_ignored(client: httpx.Client) -> None:
    answer = client.get(
        "/token", params={"userId": "7", "user_id": "8", "channelId": "x", "foo": ["1", "2"]}
    )
    assert answer.status_code == 200, answer.text
    assert decode(answer.json()["access_token"])["user_id"] == "7"


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
        ({"userId": "e2e viewer"}, "userId"),
        ({"userId": "a/b"}, "userId"),
        ({"userId": "ид"}, "userId"),
        ({"userId": "x\x00"}, "userId"),
        ({"userId": "1" * 101}, "userId"),
        ({"userId": "5", "role": "admin"}, "role"),
        ({"userId": "5", "ttl": "0"}, "ttl"),
        ({"userId": "5", "ttl": "86401"}, "ttl"),
        ({"userId": "5", "ttl": "soon"}, "ttl"),
        ({"userId": "5", "displayName": "x" * 201}, "displayName"),
    ],
)
def test_bad_queries_are_a_clear_400(
    client: httpx.Client, query: dict[str, str], field: str
) -> None:
    answer = client.get("/token", params=query)
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == "invalid_query"
    assert error["message"] == (
        "GET /token takes userId (required: 1-100 letters, digits, '-' or '_', e.g. "
        "'e2e-viewer-1'), displayName (optional), role (viewer, broadcaster, moderator or "
        "external) and ttl (seconds, 1-86400)."
    )
    assert field in [problem["field"] for problem in error["details"]]


@pytest.mark.parametrize("user_id", ["4145994", "e2e-viewer-1", "-5", "abc_DEF-09", "x" * 100])
def test_any_id_of_letters_digits_dash_and_underscore_is_accepted(
    client: httpx.Client, user_id: str
) -> None:
    answer = client.get("/token", params={"userId": user_id})
    assert answer.status_code == 200, answer.text
    assert decode(answer.json()["access_token"])["user_id"] == user_id


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


def test_settings_name_a_bad_secret() -> None:
    with pytest.raises(ValueError, match="Twitch__ExtensionSecret is not valid base64"):
        Settings.from_env({"Twitch__ExtensionSecret": "not base64!"})


def test_starts_with_no_configuration_at_all(client_for: Any) -> None:
    """Like the MGM mock, it needs nothing but ASPNETCORE_URLS (which the runner reads)."""
    settings = Settings.from_env({"ASPNETCORE_URLS": "http://+:9052"})
    assert settings.key == DEV_EXTENSION_KEY
    assert (settings.channel_id, settings.client_id) == ("1971641", "")
    client = client_for(create_app({"ASPNETCORE_URLS": "http://+:9052"}))
    token = client.get("/token", params={"userId": "e2e-viewer-1"}).json()["access_token"]
    assert jwt.decode(token, DEV_EXTENSION_KEY, algorithms=["HS256"])["user_id"] == "e2e-viewer-1"
    documentation = mock_jwt.__doc__ or ""
    for documented in ("mgm-dev-extension-secret-change-me", "1971641", "`aud`"):
        assert documented in documentation


def test_a_bare_mock_pairs_with_a_development_backend_with_an_empty_secret(
    client_for: Any,
) -> None:
    """The MGM workflow leaves Twitch__ExtensionSecret empty on both sides in Development."""
    client = client_for(create_app({}))
    token = client.get("/token", params={"userId": "e2e-viewer-1"}).json()["access_token"]
    backend = load_config(
        {
            "ConnectionStrings__PostgreSQL": "Host=db;Database=mgm;Username=u",
            "ASPNETCORE_ENVIRONMENT": "Development",
            "Twitch__ExtensionSecret": "",
        }
    )
    viewer = verify_extension_jwt(token, backend.extension_secret, backend.extension_client_id)
    assert viewer.user_id == "e2e-viewer-1"


def test_broadcaster_id_is_any_string(client_for: Any) -> None:
    """The MGM workflow's broadcaster id is `e2e-ci-broadcaster`."""
    client = client_for(create_app(env(Twitch__BroadcasterUserId="e2e-ci-broadcaster")))
    token = client.get("/token", params={"userId": "1"}).json()["access_token"]
    assert decode(token)["channel_id"] == "e2e-ci-broadcaster"


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = log.add(lambda m: lines.append(str(m).rstrip("\n")), format="{level} {message}")
    yield lines
    log.remove(sink)


def test_start_up_says_which_key_signs(log_lines: list[str]) -> None:
    create_app({})
    create_app(env())
    create_app({"Twitch__ExtensionSecret": base64.b64encode(b"k" * 20).decode()})
    warnings = [line for line in log_lines if line.startswith("WARNING")]
    assert len(warnings) == 2, log_lines
    assert "Twitch__ExtensionSecret is not set: signing with the Development key" in warnings[0]
    assert "Twitch__ExtensionSecret decodes to 20 bytes" in warnings[1]
    assert "openssl rand -base64 32" in warnings[1]


def test_a_short_key_still_mints_without_library_warnings() -> None:
    short = b"k" * 20
    settings = Settings.from_env({"Twitch__ExtensionSecret": base64.b64encode(short).decode()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyJWT's per-token key-length warning would raise
        token = mint(settings, build_claims(settings, "1", "viewer", 60, int(time.time())))
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        assert jwt.decode(token, short, algorithms=["HS256"])["user_id"] == "1"


def test_secret_is_decoded_and_hidden() -> None:
    assert decode_extension_secret(SECRET_B64) == KEY
    assert decode_extension_secret(base64.urlsafe_b64encode(KEY).decode().rstrip("=")) == KEY
    assert Settings.from_env(env()).key == KEY
    assert SECRET_B64 not in repr(Settings.from_env(env()))
