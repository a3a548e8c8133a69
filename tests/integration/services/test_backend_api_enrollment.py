"""The backend on a real PostgreSQL: health, EventSub verification, enrollment, `/api/pool/me`."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from services.backend.eventsub import compute_signature

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "twitch"


async def test_health_ready_and_version(make_backend: Any) -> None:
    async with make_backend() as backend:
        health = await backend.client.get("/health")
        ready = await backend.client.get("/health/ready")
        version = await backend.client.get("/api/version")
    assert health.status_code == 200
    assert health.json() == {"service": "backend", "status": "ok"}
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


async def test_name_held_by_another_viewer_is_refused_case_insensitively(
    make_backend: Any, captured_log: list[str]
) -> None:
    async with make_backend() as backend:
        await backend.chat("801", "!twgold Sylvanas")
        await backend.chat("802", "!twgold SYLVANAS")
        await backend.chat("803", "!twgold Ярослав")
        await backend.chat("804", "!twgold ЯРОСЛАВ")
        assert (await backend.pool_me("802"))["isEnrolled"] is False
        assert (await backend.pool_me("804"))["isEnrolled"] is False
        # the holder may re-enroll under their own name in another case
        await backend.chat("801", "!twgold sylvanas")
        assert (await backend.pool_me("801"))["characterName"] == "sylvanas"
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


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret": "not-the-secret"}, "invalid_signature"),
        ({"timestamp": _now_rfc3339(timedelta(minutes=-11))}, "stale_message"),
        ({"timestamp": "yesterday at noon"}, "invalid_timestamp"),
    ],
)
async def test_unverifiable_webhooks_are_403(
    make_backend: Any, kwargs: dict[str, str], code: str
) -> None:
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
        (b"[1, 2, 3]", "invalid_body"),
        (b'{"subscription": {"type": "channel.chat.message"}, "event": {"x": 1}}', "invalid_body"),
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
        return jwt.encode({**claims, "exp": now - 5}, secret, algorithm="HS256")
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
