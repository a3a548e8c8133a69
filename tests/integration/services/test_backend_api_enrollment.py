"""The backend on a real PostgreSQL: health, EventSub verification, enrollment, `/api/pool/me`."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from envkit.services.backend.eventsub import compute_signature
from envkit.services.mock_eventsub.app import create_app as create_eventsub_mock
from envkit.services.mock_jwt.claims import Settings as MockJwtSettings
from envkit.services.mock_jwt.claims import build_claims, mint

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "twitch"


async def test_health_ready_and_version(make_backend: Any) -> None:
    async with make_backend() as backend:
        health = await backend.client.get("/health")
        ready = await backend.client.get("/health/ready")
        version = await backend.client.get("/api/version")
    assert health.status_code == 200  # its body belongs to services.common
    assert ready.status_code == 200, ready.text
    assert version.json()["service"] == "mgm-reference-backend"
    assert version.json()["version"]


async def test_unknown_route_and_wrong_method_are_json_errors(make_backend: Any) -> None:
    async with make_backend() as backend:
        missing = await backend.client.get("/api/nothing-here")
        wrong_method = await backend.client.get("/api/twitch/eventsub")
    assert missing.status_code == 404
    assert set(missing.json()) == {"code", "message", "details"}
    assert wrong_method.status_code == 405


async def test_challenge_is_echoed_as_plain_text(make_backend: Any) -> None:
    body = json.dumps(
        {"challenge": "pogchamp-kappa-360noscope", "subscription": {"type": "channel.follow"}}
    ).encode()
    async with make_backend() as backend:
        response = await backend.deliver(body, message_type="webhook_callback_verification")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "pogchamp-kappa-360noscope"


async def test_twitch_shaped_chat_example_enrolls_the_viewer(make_backend: Any) -> None:
    raw = (EXAMPLES / "channel_chat_message.json").read_text()
    body = raw.replace('"hello there"', '"!twgold Arthas"').encode()
    async with make_backend() as backend:
        assert (await backend.pool_me("5520117"))["isEnrolled"] is False
        response = await backend.deliver(body)
        me = await backend.pool_me("5520117")
    assert response.status_code == 204, response.text
    assert me == {"isEnrolled": True, "characterName": "Arthas"}


async def test_cyrillic_name_and_any_case_command(make_backend: Any) -> None:
    async with make_backend() as backend:
        await backend.chat("501", "  !TwGold \t Ёжик  ", badges=("founder",))
        assert await backend.pool_me("501") == {"isEnrolled": True, "characterName": "Ёжик"}


@pytest.mark.parametrize(
    ("text", "badges"),
    [
        ("!twgold Arthas", ("moderator", "sub-gifter")),
        ("!twgold Arthas", ()),
        ("!twgold A", ("subscriber",)),
        ("!twgold Arthas2", ("subscriber",)),
        ("!twgold Arthas Menethil", ("subscriber",)),
        ("!twgoldArthas", ("subscriber",)),
        ("hello !twgold Arthas", ("subscriber",)),
        ("!twgold Abcdefghijklm", ("subscriber",)),
    ],
)
async def test_messages_that_break_a_rule_are_acknowledged_and_ignored(
    make_backend: Any, text: str, badges: tuple[str, ...]
) -> None:
    async with make_backend() as backend:
        await backend.chat("601", text, badges)
        assert (await backend.pool_me("601"))["isEnrolled"] is False


async def test_reenrolling_replaces_the_entry(make_backend: Any) -> None:
    async with make_backend() as backend:
        await backend.chat("701", "!twgold Jaina")
        await backend.chat("701", "!twgold Thrall", badges=("premium",))
        assert (await backend.pool_me("701"))["characterName"] == "Thrall"


async def test_name_held_by_another_viewer_is_refused_case_sensitively(
    make_backend: Any, captured_log: list[str]
) -> None:
    """The real backend compares names ordinally: `Sylvanas` and `SYLVANAS` are two names."""
    async with make_backend() as backend:
        await backend.chat("801", "!twgold Sylvanas")
        await backend.chat("802", "!twgold Sylvanas")
        await backend.chat("803", "!twgold SYLVANAS")
        await backend.chat("804", "!twgold Ярослав")
        await backend.chat("805", "!twgold Ярослав")
        await backend.chat("806", "!twgold ярослав")
        assert (await backend.pool_me("802"))["isEnrolled"] is False
        assert (await backend.pool_me("805"))["isEnrolled"] is False
        assert (await backend.pool_me("803"))["characterName"] == "SYLVANAS"
        assert (await backend.pool_me("806"))["characterName"] == "ярослав"
        # the holder may re-enroll under their own name
        await backend.chat("801", "!twgold Sylvanas", badges=("founder",))
        assert (await backend.pool_me("801"))["characterName"] == "Sylvanas"
    assert any("another viewer already holds that character name" in line for line in captured_log)


async def test_viewer_with_open_payout_cannot_reenroll(make_backend: Any) -> None:
    async with make_backend() as backend:
        await backend.chat("901", "!twgold Uther")
        await backend.prepare_payout("901")
        await backend.chat("901", "!twgold Varian")
        assert (await backend.pool_me("901"))["characterName"] == "Uther"


async def test_gold_cap_blocks_enrollment(make_backend: Any, pg_dsn: str) -> None:
    async with make_backend() as backend:
        await backend.chat("1001", "!twgold Kael")  # creates the schema
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM pool_entries")
            for _ in range(9):
                conn.execute(
                    "INSERT INTO payouts (id, twitch_user_id, character_name, amount, status) "
                    "VALUES (%s, '1001', 'Kael', 1000, 'Sent')",
                    (uuid.uuid4(),),
                )
        await backend.chat("1001", "!twgold Kael")  # 9000 + 1000 = 10000 is allowed
        assert (await backend.pool_me("1001"))["isEnrolled"] is True
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM pool_entries")
            conn.execute(
                "INSERT INTO payouts (id, twitch_user_id, character_name, amount, status) "
                "VALUES (%s, '1001', 'Kael', 1000, 'Sent')",
                (uuid.uuid4(),),
            )
        await backend.chat("1001", "!twgold Kael")  # 10000 + 1000 is not
        assert (await backend.pool_me("1001"))["isEnrolled"] is False


async def test_replayed_message_id_is_acknowledged_but_not_processed(
    make_backend: Any,
) -> None:
    message_id = str(uuid.uuid4())
    async with make_backend() as backend:
        first = await backend.deliver(
            backend.notification("1101", "!twgold Medivh"), message_id=message_id
        )
        await backend.chat("1101", "!twgold Khadgar")
        replay = await backend.deliver(
            backend.notification("1101", "!twgold Medivh"), message_id=message_id
        )
        me = await backend.pool_me("1101")
    assert (first.status_code, replay.status_code) == (204, 204)
    assert me["characterName"] == "Khadgar"


async def test_revocation_and_other_types_are_acknowledged(make_backend: Any) -> None:
    revocation = json.dumps(
        {"subscription": {"type": "channel.chat.message", "status": "authorization_revoked"}}
    ).encode()
    follow = (EXAMPLES / "signature_vector_channel_follow.json").read_bytes()
    async with make_backend() as backend:
        revoked = await backend.deliver(revocation, message_type="revocation")
        other = await backend.deliver(follow)
        unknown = await backend.deliver(follow, message_type="something_new")
    assert [revoked.status_code, other.status_code, unknown.status_code] == [204, 204, 204]


def _now_rfc3339(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.%f123Z")


def _unix_seconds(delta: timedelta) -> str:
    return str(int((datetime.now(UTC) + delta).timestamp()))


def _unix_millis(delta: timedelta) -> str:
    return str(int((datetime.now(UTC) + delta).timestamp() * 1000))


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret": "not-the-secret"}, "invalid_signature"),
        ({"timestamp": (_now_rfc3339, timedelta(minutes=-11))}, "stale_message"),
        ({"timestamp": "yesterday at noon"}, "invalid_timestamp"),
        ({"timestamp": (_unix_seconds, timedelta(minutes=-11))}, "stale_message"),
        ({"timestamp": (_unix_millis, timedelta(minutes=11))}, "stale_message"),
    ],
)
async def test_unverifiable_webhooks_are_403(
    make_backend: Any, kwargs: dict[str, Any], code: str
) -> None:
    if isinstance(kwargs.get("timestamp"), tuple):  # a time relative to now, made when run
        make, delta = kwargs["timestamp"]
        kwargs = {**kwargs, "timestamp": make(delta)}
    async with make_backend() as backend:
        response = await backend.deliver(backend.notification("1201", "!twgold Anduin"), **kwargs)
        assert response.status_code == 403
        assert response.json()["code"] == code
        assert (await backend.pool_me("1201"))["isEnrolled"] is False


async def test_fresh_timestamp_with_nine_fraction_digits_is_accepted(
    make_backend: Any,
) -> None:
    async with make_backend() as backend:
        response = await backend.deliver(
            backend.notification("1202", "!twgold Tyrande"), timestamp=_now_rfc3339()
        )
    assert response.status_code == 204


async def test_missing_headers_and_tampered_body_are_403(make_backend: Any) -> None:
    async with make_backend() as backend:
        body = backend.notification("1301", "!twgold Malfurion")
        bare = await backend.client.post("/api/twitch/eventsub", content=body)
        message_id, stamp = str(uuid.uuid4()), _now_rfc3339()
        signature = compute_signature(backend.eventsub_secret, message_id, stamp, body)
        tampered = await backend.client.post(
            "/api/twitch/eventsub",
            content=body.replace(b"Malfurion", b"Illidan"),
            headers={
                "Twitch-Eventsub-Message-Id": message_id,
                "Twitch-Eventsub-Message-Timestamp": stamp,
                "Twitch-Eventsub-Message-Signature": signature,
                "Twitch-Eventsub-Message-Type": "notification",
            },
        )
    assert bare.status_code == 403
    assert bare.json()["code"] == "missing_eventsub_headers"
    assert tampered.status_code == 403
    assert tampered.json()["code"] == "invalid_signature"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b'{"subscription": {"type": "x"}, "n": NaN}', "malformed_json"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "malformed_json"),
        (b"[1, 2, 3]", "invalid_body"),
        (b'{"event": {}}', "invalid_body"),
        (b'{"subscription": {"type": "channel.chat.message"}, "event": "text"}', "invalid_body"),
    ],
)
async def test_signed_but_malformed_bodies_are_400(
    make_backend: Any, body: bytes, code: str
) -> None:
    async with make_backend() as backend:
        response = await backend.deliver(body)
    assert response.status_code == 400
    assert response.json()["code"] == code


async def test_oversize_webhook_is_413(make_backend: Any) -> None:
    async with make_backend() as backend:
        response = await backend.deliver(b'{"pad": "' + b"x" * 70_000 + b'"}')
    assert response.status_code == 413


def _forged_token(case: str, secret: bytes, audience: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"user_id": "1401", "aud": audience, "exp": now + 600}
    if case == "wrong key":
        return jwt.encode(claims, b"some-other-secret-of-enough-length!", algorithm="HS256")
    if case == "expired":
        return jwt.encode({**claims, "exp": now - 400}, secret, algorithm="HS256")
    if case == "alg none":
        return jwt.encode(claims, None, algorithm="none")
    if case == "wrong aud":
        return jwt.encode({**claims, "aud": "another-extension"}, secret, algorithm="HS256")
    if case == "no aud":
        return jwt.encode({"user_id": "1401", "exp": now + 600}, secret, algorithm="HS256")
    if case == "no exp":
        return jwt.encode({"user_id": "1401", "aud": audience}, secret, algorithm="HS256")
    if case == "no user_id":
        return jwt.encode({"opaque_user_id": "A1", "aud": audience, "exp": now + 600}, secret)
    return "not.a.jwt"


@pytest.mark.parametrize(
    "case",
    ["wrong key", "expired", "alg none", "wrong aud", "no aud", "no exp", "no user_id", "garbage"],
)
async def test_pool_me_refuses_bad_tokens_with_401(make_backend: Any, case: str) -> None:
    async with make_backend() as backend:
        token = _forged_token(case, backend.extension_secret, backend.extension_client_id)
        response = await backend.client.get(
            "/api/pool/me", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    assert set(response.json()) == {"code", "message", "details"}


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Token x.y.z"])
async def test_pool_me_without_bearer_token_is_401(make_backend: Any, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with make_backend() as backend:
        response = await backend.client.get("/api/pool/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "missing_token"


async def test_aud_is_not_checked_without_a_client_id(make_backend: Any) -> None:
    async with make_backend(Twitch__ExtensionClientId="") as backend:
        token = backend.token("1501", aud="anything")
        response = await backend.client.get(
            "/api/pool/me", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200


async def test_becomes_ready_once_its_database_exists(
    make_backend: Any, backend_connection_string: str, pg_dsn: str
) -> None:
    name = conninfo_to_dict(pg_dsn)["dbname"]
    later = f"{name}_later"
    connection_string = backend_connection_string.replace(f"Database={name}", f"Database={later}")
    async with make_backend(ConnectionStrings__PostgreSQL=connection_string) as backend:
        before = await backend.client.get("/health/ready")
        pool_before = await backend.client.get(
            "/api/pool/me", headers={"Authorization": f"Bearer {backend.token('1601')}"}
        )
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(later)))
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test database user may not create databases")
        try:
            after = await backend.client.get("/health/ready")
            pool_after = await backend.pool_me("1601")
        finally:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(later))
                )
    assert before.status_code == 503
    assert before.json()["code"] == "not_ready"
    assert "does not exist" in before.json()["details"]["database"]
    assert pool_before.status_code == 503
    assert after.status_code == 200
    assert pool_after["isEnrolled"] is False


# --- what the MGM project's own clients send ---------------------------------------------------


def _mgm_tier_a(
    secret: str,
    *,
    user_id: str = "e2e-viewer-1",
    login: str = "e2eviewer1",
    text: str = "!twgold Etoehero",
    message_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The MGM Tier A sender's request: minimal compact body, Unix seconds, no type header."""
    message_id = message_id or str(uuid.uuid4())
    doc = json.loads((EXAMPLES / "mgm_tier_a_chat_message.json").read_bytes())
    doc["event"].update(message_id=message_id, chatter_user_id=user_id, chatter_user_login=login)
    doc["event"]["message"]["text"] = text
    body = json.dumps(doc, separators=(",", ":")).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Timestamp": stamp,
        "Twitch-Eventsub-Message-Signature": compute_signature(secret, message_id, stamp, body),
    }
    return body, headers


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _mock_jwt_token(user_id: str, **env: str) -> str:
    """A token minted by mock-jwt's own code, configured by `env` alone."""
    settings = MockJwtSettings.from_env(env)
    return mint(settings, build_claims(settings, user_id, "viewer", 7200, int(time.time())))


async def test_the_mgm_tier_a_sender_and_gate_pass_against_a_development_backend(
    make_backend: Any, pg_dsn: str
) -> None:
    """MGM's Tier A: minimal body + Unix seconds + no type header, then a mock-jwt token for
    `e2e-viewer-1` with no extension secret on either side (the Development key)."""
    async with make_backend(Twitch__ExtensionSecret="", Twitch__ExtensionClientId="") as backend:
        body, headers = _mgm_tier_a(backend.eventsub_secret)
        sent = await backend.client.post("/api/twitch/eventsub", content=body, headers=headers)
        token = _mock_jwt_token("e2e-viewer-1")
        me = await backend.client.get("/api/pool/me", headers=_bearer(token))
    assert sent.status_code == 204, sent.text
    assert me.status_code == 200, me.text
    assert me.json() == {"isEnrolled": True, "characterName": "Etoehero"}
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT display_name FROM pool_entries WHERE twitch_user_id = 'e2e-viewer-1'"
        ).fetchone()
    assert row == ("e2eviewer1",), "the display name is chatter_user_login"


async def test_display_name_is_the_login_not_the_name(make_backend: Any, pg_dsn: str) -> None:
    raw = (EXAMPLES / "channel_chat_message.json").read_text()
    body = raw.replace('"hello there"', '"!twgold Arthas"').encode()
    async with make_backend() as backend:
        assert (await backend.deliver(body)).status_code == 204
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT display_name FROM pool_entries").fetchone()
    assert row == ("goldfan",)


async def test_a_challenge_without_a_type_header_is_echoed(make_backend: Any) -> None:
    body = b'{"challenge":"pogchamp-kappa","subscription":{"type":"channel.chat.message"}}'
    async with make_backend() as backend:
        message_id, stamp = str(uuid.uuid4()), str(int(time.time() * 1000))
        headers = {
            "Twitch-Eventsub-Message-Id": message_id,
            "Twitch-Eventsub-Message-Timestamp": stamp,
            "Twitch-Eventsub-Message-Signature": compute_signature(
                backend.eventsub_secret, message_id, stamp, body
            ),
        }
        response = await backend.client.post("/api/twitch/eventsub", content=body, headers=headers)
    assert (response.status_code, response.text) == (200, "pogchamp-kappa")
    assert response.headers["content-type"].startswith("text/plain")


async def test_a_replayed_mgm_message_id_is_acknowledged_but_not_processed(
    make_backend: Any,
) -> None:
    async with make_backend() as backend:
        message_id = str(uuid.uuid4())
        first = _mgm_tier_a(backend.eventsub_secret, message_id=message_id)
        again = _mgm_tier_a(backend.eventsub_secret, message_id=message_id, text="!twgold Other")
        answers = [
            await backend.client.post("/api/twitch/eventsub", content=body, headers=headers)
            for body, headers in (first, again)
        ]
        me = await backend.client.get(
            "/api/pool/me", headers=_bearer(backend.token("e2e-viewer-1"))
        )
    assert [a.status_code for a in answers] == [204, 204]
    assert me.json()["characterName"] == "Etoehero"


def _event_body(event: dict[str, Any]) -> bytes:
    return json.dumps({"subscription": {"type": "channel.chat.message"}, "event": event}).encode()


GOOD_EVENT: dict[str, Any] = {
    "message_id": "m-1",
    "chatter_user_id": "e2e-viewer-9",
    "chatter_user_login": "viewer9",
    "message": {"text": "!twgold Valeera"},
    "badges": [{"set_id": "subscriber"}],
}


@pytest.mark.parametrize(
    "change",
    [
        {"message_id": None},
        {"message_id": ""},
        {"chatter_user_id": None},
        {"chatter_user_id": 42},
        {"chatter_user_id": "x" * 10_000},
        {"chatter_user_id": "nul\x00id"},
        {"chatter_user_id": "\ud800"},
        {"chatter_user_login": "nul\x00login"},
        {"message": None},
        {"message": {"text": 5}},
        {"badges": "subscriber"},
        {"badges": [{"set_id": "Subscriber"}]},
        {"badges": [{"set_id": None}]},
    ],
)
async def test_chat_events_with_missing_hostile_or_mistyped_fields_are_ignored_with_204(
    make_backend: Any, pg_dsn: str, change: dict[str, Any]
) -> None:
    event = {**GOOD_EVENT, **change}
    event = {key: value for key, value in event.items() if value is not None}
    async with make_backend() as backend:
        response = await backend.deliver(_event_body(event))
        control = await backend.deliver(_event_body({**GOOD_EVENT, "chatter_user_id": "ok-1"}))
    assert (response.status_code, control.status_code) == (204, 204), response.text
    with psycopg.connect(pg_dsn) as conn:
        viewers = [row[0] for row in conn.execute("SELECT twitch_user_id FROM pool_entries")]
    assert viewers == ["ok-1"]


async def test_a_huge_message_id_is_remembered_and_processed_once(make_backend: Any) -> None:
    message_id = "id-" + "x" * 8000
    async with make_backend() as backend:
        first = await backend.deliver(
            backend.notification("1701", "!twgold Garrosh"), message_id=message_id
        )
        again = await backend.deliver(
            backend.notification("1701", "!twgold Grommash"), message_id=message_id
        )
        me = await backend.pool_me("1701")
    assert (first.status_code, again.status_code) == (204, 204), first.text
    assert me["characterName"] == "Garrosh"


async def test_a_challenge_with_an_unpaired_surrogate_is_a_400(make_backend: Any) -> None:
    async with make_backend() as backend:
        response = await backend.deliver(
            b'{"challenge": "\\ud800"}', message_type="webhook_callback_verification"
        )
    assert response.status_code == 400
    assert response.json()["message"] == "The challenge is not valid Unicode text."


async def test_pool_me_takes_the_viewer_from_sub_when_user_id_is_absent(
    make_backend: Any,
) -> None:
    async with make_backend() as backend:
        await backend.chat("e2e-viewer-3", "!twgold Tirion")
        claims = {"sub": "e2e-viewer-3", "aud": backend.extension_client_id}
        token = jwt.encode(
            {**claims, "exp": int(time.time()) + 600}, backend.extension_secret, algorithm="HS256"
        )
        me = await backend.client.get("/api/pool/me", headers=_bearer(token))
    assert me.json() == {"isEnrolled": True, "characterName": "Tirion"}


async def test_a_short_extension_secret_refuses_every_token(make_backend: Any) -> None:
    """The real backend refuses every token when its key is under 32 bytes; so does this one."""
    short = b"only-twenty-bytes!!!"
    secret = base64.b64encode(short).decode()
    async with make_backend(Twitch__ExtensionSecret=secret) as backend:
        same_key = _mock_jwt_token(
            "1801",
            Twitch__ExtensionSecret=secret,
            Twitch__ExtensionClientId=backend.extension_client_id,
        )
        other_key = backend.token("1801")
        answers = [
            await backend.client.get("/api/pool/me", headers=_bearer(token))
            for token in (same_key, other_key)
        ]
    assert [a.status_code for a in answers] == [401, 401]
    assert {a.json()["code"] for a in answers} == {"jwt_key_too_short"}


async def test_outside_development_an_empty_secret_refuses_the_development_key(
    make_backend: Any,
) -> None:
    production = {"ASPNETCORE_ENVIRONMENT": "Production", "Twitch__ExtensionClientId": ""}
    async with make_backend(Twitch__ExtensionSecret="", **production) as backend:
        token = _mock_jwt_token("e2e-viewer-1")
        response = await backend.client.get("/api/pool/me", headers=_bearer(token))
    assert response.status_code == 401
    assert response.json()["code"] == "jwt_not_configured"


# --- mock-eventsub and mock-jwt against this backend ---------------------------------------------


def _into(backend: Any) -> httpx.MockTransport:
    """A transport that hands mock-eventsub's deliveries to the backend under test."""

    async def forward(request: httpx.Request) -> httpx.Response:
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower().startswith("twitch-") or name.lower() == "content-type"
        }
        path, content = request.url.path, request.content
        answer = await backend.client.post(path, content=content, headers=headers)
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={"content-type": answer.headers.get("content-type", "text/plain")},
        )

    return httpx.MockTransport(forward)


async def test_the_mgm_sender_through_the_relay_enrolls_and_mock_jwt_opens_pool_me(
    make_backend: Any,
) -> None:
    """The MGM Tier A flow on envkit's parts: sender -> mock-eventsub relay -> backend;
    mock-jwt (no secret) -> pool/me, with the workflow's string broadcaster id."""
    async with make_backend(
        Twitch__ExtensionSecret="",
        Twitch__ExtensionClientId="",
        Twitch__BroadcasterUserId="e2e-ci-broadcaster",
    ) as backend:
        relay = create_eventsub_mock(
            {"Twitch__EventSubSecret": backend.eventsub_secret}, transport=_into(backend)
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=relay), base_url="http://mock-eventsub"
        ) as mock:
            body, headers = _mgm_tier_a(backend.eventsub_secret)
            relayed = await mock.post("/api/twitch/eventsub", content=body, headers=headers)
            emitted = await mock.post(
                "/emit",
                json={
                    "text": "!twgold Jaina",
                    "chatterUserId": "e2e-viewer-2",
                    "broadcasterUserId": "e2e-ci-broadcaster",
                },
            )
            journal = (await mock.get("/deliveries")).json()
        first = await backend.client.get(
            "/api/pool/me", headers=_bearer(_mock_jwt_token("e2e-viewer-1"))
        )
        second = await backend.client.get(
            "/api/pool/me", headers=_bearer(_mock_jwt_token("e2e-viewer-2"))
        )
    assert relayed.status_code == 204, relayed.text
    assert emitted.json()["delivered"] is True, emitted.text
    assert first.json() == {"isEnrolled": True, "characterName": "Etoehero"}
    assert second.json() == {"isEnrolled": True, "characterName": "Jaina"}
    assert [entry["headers"]["Twitch-Eventsub-Message-Type"] for entry in journal] == [
        "notification",
        "notification",
    ]
