"""The backend on a real PostgreSQL: the harness, payouts, the state machine, the announcement."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict

pytestmark = pytest.mark.anyio


async def _winner(backend: Any, user_id: str, name: str) -> dict[str, Any]:
    await backend.chat(user_id, f"!twgold {name}")
    return dict(await backend.prepare_payout(user_id))


async def _patch(backend: Any, payout_id: str, status: Any) -> httpx.Response:
    response: httpx.Response = await backend.desktop(
        "PATCH", f"/api/payouts/{payout_id}/status", {"status": status}
    )
    return response


async def test_full_desktop_sequence_sends_announces_and_empties_the_pool(
    make_backend: Any,
) -> None:
    async with make_backend() as backend:
        prepared = await _winner(backend, "2001", "Garrosh")
        payout_id = prepared["payoutId"]
        assert prepared["characterName"] == "Garrosh"
        pending = (await backend.desktop("GET", "/api/payouts/pending")).json()
        confirm = await backend.desktop(
            "POST", f"/api/payouts/{payout_id}/confirm-acceptance", {"characterName": "Garrosh"}
        )
        in_progress = await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
        me = await backend.pool_me("2001")
        after = (await backend.desktop("GET", "/api/payouts/pending")).json()

    assert [p["id"] for p in pending] == [payout_id]
    assert pending[0]["amount"] == 1000
    assert pending[0]["status"] == "Pending"
    assert pending[0]["twitchUserId"] == "2001"
    assert pending[0]["createdAtUtc"].endswith("Z")
    assert confirm.status_code == 200
    assert in_progress.json()["status"] == "InProgress"
    assert sent.status_code == 200
    assert sent.json()["status"] == "Sent"
    assert set(sent.json()) == {
        "id",
        "twitchUserId",
        "characterName",
        "amount",
        "status",
        "createdAtUtc",
        "updatedAtUtc",
    }
    assert me == {"isEnrolled": False, "characterName": None}
    assert after == []

    [request] = backend.helix.requests
    assert request.method == "POST"
    assert str(request.url) == "http://mock-helix.test:9053/helix/chat/messages"
    assert request.headers["authorization"] == f"Bearer {backend.broadcaster_token}"
    assert request.headers["client-id"] == backend.helix_client_id
    body = json.loads(request.content)
    assert body["broadcaster_id"] == body["sender_id"] == backend.broadcaster_id
    assert "Garrosh" in body["message"]


async def test_pending_is_oldest_first_and_excludes_other_states(make_backend: Any) -> None:
    async with make_backend() as backend:
        first = await _winner(backend, "2101", "Alpha")
        second = await _winner(backend, "2102", "Bravo")
        third = await _winner(backend, "2103", "Charlie")
        await _patch(backend, second["payoutId"], "Cancelled")
        pending = (await backend.desktop("GET", "/api/payouts/pending")).json()
    assert [p["id"] for p in pending] == [first["payoutId"], third["payoutId"]]


PROTECTED_ROUTES = [
    ("GET", "/api/payouts/pending"),
    ("POST", "/api/payouts/00000000-0000-0000-0000-000000000000/confirm-acceptance"),
    ("PATCH", "/api/payouts/00000000-0000-0000-0000-000000000000/status"),
    ("POST", "/api/e2e/prepare-pending-payout"),
]


async def test_api_key_routes_refuse_missing_or_wrong_keys(make_backend: Any) -> None:
    keys: list[bytes | None] = [None, b"", b"wrong-key", b"test-api-key-4f1c ", "clé".encode()]
    async with make_backend() as backend:
        for method, path in PROTECTED_ROUTES:
            for key in keys:
                headers = {} if key is None else {"X-MGM-ApiKey": key}
                response = await backend.client.request(method, path, json={}, headers=headers)
                assert response.status_code == 401, (method, path, key)
                expected = "missing_api_key" if not key else "invalid_api_key"
                assert response.json()["code"] == expected


@pytest.mark.parametrize("payout_id", [str(uuid.uuid4()), "42", "not-a-uuid", "%00", "x" * 300])
async def test_unknown_or_malformed_payout_ids_are_404(make_backend: Any, payout_id: str) -> None:
    async with make_backend() as backend:
        confirm = await backend.desktop(
            "POST", f"/api/payouts/{payout_id}/confirm-acceptance", {"characterName": "X"}
        )
        patch = await _patch(backend, payout_id, "InProgress")
    assert (confirm.status_code, patch.status_code) == (404, 404)
    assert confirm.json()["code"] == "payout_not_found"


async def test_confirm_acceptance_requires_the_exact_name(make_backend: Any) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "2201", "Rexxar"))["payoutId"]
        path = f"/api/payouts/{payout_id}/confirm-acceptance"
        wrong_case = await backend.desktop("POST", path, {"characterName": "rexxar"})
        padded = await backend.desktop("POST", path, {"characterName": "Rexxar "})
        right = await backend.desktop("POST", path, {"characterName": "Rexxar"})
        await _patch(backend, payout_id, "Cancelled")
        closed = await backend.desktop("POST", path, {"characterName": "Rexxar"})
    assert wrong_case.status_code == 409
    assert wrong_case.json()["code"] == "character_mismatch"
    assert wrong_case.json()["details"] == {"expected": "Rexxar", "received": "rexxar"}
    assert padded.status_code == 409
    assert right.status_code == 200
    assert right.json()["status"] == "Pending"
    assert closed.status_code == 409
    assert closed.json()["code"] == "payout_not_open"


@pytest.mark.parametrize(
    "body",
    [b"{oops", b"[]", b'{"characterName": 5}', b'{"name": "Rexxar"}', b'"Rexxar"', b"null"],
)
async def test_confirm_acceptance_bad_bodies_are_400(make_backend: Any, body: bytes) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "2301", "Rexxar"))["payoutId"]
        response = await backend.client.post(
            f"/api/payouts/{payout_id}/confirm-acceptance",
            content=body,
            headers={"X-MGM-ApiKey": backend.api_key, "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "details"}


async def test_status_parsing_is_case_insensitive_and_unknown_is_400(make_backend: Any) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "2401", "Vol"))["payoutId"]
        unknown = await _patch(backend, payout_id, "Teleported")
        wrong_type = await _patch(backend, payout_id, 3)
        lower = await _patch(backend, payout_id, "inprogress")
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid_status"
    assert "InProgress" in unknown.json()["details"]["allowed"]
    assert wrong_type.status_code == 400
    assert lower.status_code == 200
    assert lower.json()["status"] == "InProgress"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], "Sent"),
        ([], "Pending"),
        ([], "Expired"),
        (["InProgress"], "InProgress"),
        (["InProgress"], "Expired"),
        (["InProgress", "Sent"], "Pending"),
        (["InProgress", "Sent"], "Cancelled"),
        (["Cancelled"], "InProgress"),
        (["Failed"], "Pending"),
    ],
)
async def test_illegal_transitions_are_409_with_from_and_to(
    make_backend: Any, path: list[str], target: str
) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "2501", "Zuljin"))["payoutId"]
        for step in path:
            assert (await _patch(backend, payout_id, step)).status_code == 200
        response = await _patch(backend, payout_id, target)
    assert response.status_code == 409
    current = path[-1] if path else "Pending"
    assert response.json()["details"] == {"from": current, "to": target}


async def test_in_progress_can_go_back_to_pending(make_backend: Any) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "2601", "Cairne"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        back = await _patch(backend, payout_id, "Pending")
    assert back.status_code == 200
    assert back.json()["status"] == "Pending"


async def test_announcement_retries_then_keeps_sent(make_backend: Any, captured_log: Any) -> None:
    async with make_backend() as backend:
        backend.helix.script.extend(
            [httpx.Response(503, json={"error": "Service Unavailable"})] * 3
            + [httpx.ConnectError("connection refused")]
        )
        payout_id = (await _winner(backend, "2701", "Baine"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
        me = await backend.pool_me("2701")
    assert sent.status_code == 200
    assert sent.json()["status"] == "Sent"
    assert me["isEnrolled"] is False
    assert len(backend.helix.requests) == 4
    assert backend.sleeps == [0.5, 1.0, 2.0]
    attempts = [line for line in captured_log if line.startswith("helix POST")]
    assert len(attempts) == 4
    assert "(attempt 4/4)" in attempts[-1]
    assert any("failed after 4 attempt(s)" in line for line in captured_log)


async def test_rate_limited_announcement_waits_for_reset(make_backend: Any) -> None:
    async with make_backend() as backend:
        reset = str(int(time.time()) + 2)
        backend.helix.script.append(
            httpx.Response(429, headers={"Ratelimit-Reset": reset}, json={"status": 429})
        )
        payout_id = (await _winner(backend, "2801", "Saurfang"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        await _patch(backend, payout_id, "Sent")
    assert len(backend.helix.requests) == 2
    [waited] = backend.sleeps
    assert 0.0 <= waited <= 3.0


async def test_client_error_is_not_retried(make_backend: Any) -> None:
    async with make_backend() as backend:
        backend.helix.script.append(httpx.Response(401, json={"message": "Invalid OAuth token"}))
        payout_id = (await _winner(backend, "2901", "Drekthar"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
    assert sent.status_code == 200
    assert len(backend.helix.requests) == 1


@pytest.mark.parametrize(
    "overrides",
    [{"Twitch__BroadcasterAccessToken": ""}, {"Twitch__BroadcasterUserId": "  "}],
)
async def test_announcement_is_skipped_without_token_or_broadcaster(
    make_backend: Any, captured_log: list[str], overrides: dict[str, str]
) -> None:
    async with make_backend(**overrides) as backend:
        payout_id = (await _winner(backend, "3001", "Nazgrel"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
    assert sent.status_code == 200
    assert backend.helix.requests == []
    assert any("skipped: token or broadcaster id empty" in line for line in captured_log)


async def test_concurrent_sent_transitions_announce_once(make_backend: Any) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "3101", "Eitrigg"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        results = await asyncio.gather(*[_patch(backend, payout_id, "Sent") for _ in range(4)])
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409]
    assert len(backend.helix.requests) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"ASPNETCORE_ENVIRONMENT": "Production"},
        {"Mgm__EnableE2eHarness": "false"},
        {"Mgm__EnableE2eHarness": ""},
        {"ASPNETCORE_ENVIRONMENT": "Staging", "Mgm__EnableE2eHarness": "TRUE"},
    ],
)
async def test_harness_is_404_unless_enabled_in_development(
    make_backend: Any, overrides: dict[str, str]
) -> None:
    async with make_backend(**overrides) as backend:
        await backend.chat("3201", "!twgold Grom")
        response = await backend.desktop(
            "POST", "/api/e2e/prepare-pending-payout", {"twitchUserId": "3201"}
        )
    assert response.status_code == 404


async def test_harness_flag_is_case_insensitive(make_backend: Any) -> None:
    async with make_backend(
        ASPNETCORE_ENVIRONMENT="development", Mgm__EnableE2eHarness="True"
    ) as backend:
        prepared = await _winner(backend, "3301", "Orgrim")
    assert prepared["characterName"] == "Orgrim"
    uuid.UUID(prepared["payoutId"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"twitchUserId": ""}, "blank_twitch_user_id"),
        ({"twitchUserId": "   "}, "blank_twitch_user_id"),
        ({"twitchUserId": "9999"}, "viewer_not_in_pool"),
        ({"twitchUserId": 3401}, "invalid_body"),
        ({}, "invalid_body"),
    ],
)
async def test_harness_bad_requests_are_400(
    make_backend: Any, body: dict[str, Any], code: str
) -> None:
    async with make_backend() as backend:
        await backend.chat("3401", "!twgold Durotan")
        response = await backend.desktop("POST", "/api/e2e/prepare-pending-payout", body)
    assert response.status_code == 400
    assert response.json()["code"] == code


async def test_oversize_desktop_body_is_413(make_backend: Any) -> None:
    async with make_backend() as backend:
        response = await backend.desktop(
            "POST", "/api/e2e/prepare-pending-payout", {"twitchUserId": "1" * 70_000}
        )
    assert response.status_code == 413


async def test_no_secret_reaches_the_log(
    make_backend: Any, captured_log: list[str], pg_dsn: str
) -> None:
    async with make_backend() as backend:
        backend.helix.script.append(httpx.Response(500, json={"message": "boom"}))
        prepared = await _winner(backend, "3501", "Hellscream")
        await _patch(backend, prepared["payoutId"], "InProgress")
        await _patch(backend, prepared["payoutId"], "Sent")
        await backend.desktop("GET", "/api/payouts/pending", key="wrong-key")
        await backend.deliver(backend.notification("3502", "!twgold Test"), secret="bad")
        await backend.client.get("/api/pool/me", headers={"Authorization": "Bearer x.y.z"})
        secrets = [
            backend.api_key,
            backend.eventsub_secret,
            backend.broadcaster_token,
            backend.extension_secret.decode(),
            backend.token("3501"),
        ]
        password = conninfo_to_dict(pg_dsn).get("password")
        if password:
            secrets.append(str(password))
    text = "\n".join(captured_log)
    assert "helix POST" in text
    for secret in secrets:
        assert secret not in text
