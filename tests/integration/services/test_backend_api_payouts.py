"""The backend on a real PostgreSQL: the harness, payouts, the state machine, the announcement.

Viewer ids are strings like the MGM scripts' `e2e-viewer-1`; each test names
the real client behaviour it protects.
"""

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

HARNESS = "/api/e2e/prepare-pending-payout"
TEXT = "Награда отправлена персонажу {} на почту, проверяй ящик!"
PAYOUT_FIELDS = {
    "id", "twitchUserId", "twitchDisplayName", "characterName", "goldAmount",
    "enrollmentRequestId", "status", "createdAt", "isRewardSentAnnouncedToChat",
}  # fmt: skip


async def _winner(backend: Any, user_id: str, name: str) -> dict[str, Any]:
    await backend.chat(user_id, f"!twgold {name}")
    return dict(await backend.prepare_payout(user_id))


async def _patch(backend: Any, payout_id: str, status: Any) -> httpx.Response:
    response: httpx.Response = await backend.desktop(
        "PATCH", f"/api/payouts/{payout_id}/status", {"status": status}
    )
    return response


async def _confirm(backend: Any, payout_id: str, body: Any) -> httpx.Response:
    response: httpx.Response = await backend.desktop(
        "POST", f"/api/payouts/{payout_id}/confirm-acceptance", body
    )
    return response


async def test_the_desktop_sequence_mgm_runs_sends_announces_and_empties_the_pool(
    make_backend: Any,
) -> None:
    """synthetic-desktop's choreography: confirm, InProgress, Sent; then the exact chat line."""
    async with make_backend(Twitch__BroadcasterUserId="e2e-ci-broadcaster") as backend:
        prepared = await _winner(backend, "e2e-viewer-1", "Garrosh")
        payout_id = prepared["payoutId"]
        pending = (await backend.desktop("GET", "/api/payouts/pending")).json()
        confirm = await _confirm(backend, payout_id, {"characterName": "Garrosh"})
        in_progress = await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
        me = await backend.pool_me("e2e-viewer-1")
        after = (await backend.desktop("GET", "/api/payouts/pending")).json()

    assert prepared["characterName"] == "Garrosh"
    [shown] = pending
    assert set(shown) == PAYOUT_FIELDS
    assert (shown["id"], shown["twitchUserId"], shown["status"]) == (
        payout_id, "e2e-viewer-1", "Pending"
    )  # fmt: skip
    assert shown["twitchDisplayName"].lower() == "viewere2e-viewer-1"
    assert (shown["goldAmount"], shown["isRewardSentAnnouncedToChat"]) == (1000, False)
    uuid.UUID(shown["enrollmentRequestId"])
    assert shown["createdAt"].endswith("Z")
    assert confirm.status_code == 200
    assert in_progress.json()["status"] == "InProgress"
    assert sent.status_code == 200
    assert set(sent.json()) == PAYOUT_FIELDS
    assert sent.json()["status"] == "Sent"
    assert sent.json()["isRewardSentAnnouncedToChat"] is True
    assert sent.json()["enrollmentRequestId"] == shown["enrollmentRequestId"]
    assert me == {"isEnrolled": False, "characterName": None}
    assert after == []

    [request] = backend.helix.requests
    assert request.method == "POST"
    assert str(request.url) == "http://mock-helix.test:9053/helix/chat/messages"
    assert request.headers["authorization"] == f"Bearer {backend.broadcaster_token}"
    assert request.headers["client-id"] == backend.helix_client_id
    assert json.loads(request.content) == {
        "broadcaster_id": "e2e-ci-broadcaster",
        "sender_id": "e2e-ci-broadcaster",
        "message": TEXT.format("Garrosh"),
    }


async def test_status_may_be_the_real_enums_integer(make_backend: Any) -> None:
    """A desktop client serialising the enum as a number: 1 = InProgress, 2 = Sent."""
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "e2e-viewer-10", "Thrall"))["payoutId"]
        in_progress = await _patch(backend, payout_id, 1)
        sent = await _patch(backend, payout_id, 2)
        again = await _patch(backend, payout_id, 0)
    assert (in_progress.status_code, in_progress.json()["status"]) == (200, "InProgress")
    assert (sent.status_code, sent.json()["status"]) == (200, "Sent")
    assert again.status_code == 409
    assert again.json()["details"] == {"from": "Sent", "to": "Pending"}


async def test_request_keys_match_in_any_case_like_aspnet(make_backend: Any) -> None:
    """ASP.NET binds `CharacterName`, `STATUS`, `TwitchUserId` as well as camelCase."""
    async with make_backend() as backend:
        await backend.chat("e2e-viewer-11", "!twgold Jaina")
        prepared = await backend.desktop("POST", HARNESS, {"TwitchUserId": "e2e-viewer-11"})
        payout_id = prepared.json()["payoutId"]
        confirm = await _confirm(backend, payout_id, {"CharacterName": "Jaina"})
        patched = await backend.desktop(
            "PATCH", f"/api/payouts/{payout_id}/status", {"STATUS": "inprogress"}
        )
    assert prepared.status_code == 200
    assert confirm.status_code == 200
    assert patched.json()["status"] == "InProgress"


async def test_pending_is_oldest_first_and_excludes_other_states(make_backend: Any) -> None:
    async with make_backend() as backend:
        first = await _winner(backend, "e2e-viewer-21", "Alpha")
        second = await _winner(backend, "e2e-viewer-22", "Bravo")
        third = await _winner(backend, "e2e-viewer-23", "Charlie")
        await _patch(backend, second["payoutId"], "Cancelled")
        pending = (await backend.desktop("GET", "/api/payouts/pending")).json()
    assert [p["id"] for p in pending] == [first["payoutId"], third["payoutId"]]
    assert pending[0]["createdAt"] <= pending[1]["createdAt"]


PROTECTED_ROUTES = [
    ("GET", "/api/payouts/pending"),
    ("POST", "/api/payouts/00000000-0000-0000-0000-000000000000/confirm-acceptance"),
    ("PATCH", "/api/payouts/00000000-0000-0000-0000-000000000000/status"),
    ("POST", HARNESS),
]


@pytest.mark.parametrize("harness", ["true", "false"])
async def test_api_key_routes_refuse_missing_or_wrong_keys_first(
    make_backend: Any, harness: str
) -> None:
    """The key is checked before anything else, the harness switch included."""
    keys: list[bytes | None] = [None, b"", b"wrong-key", b"test-api-key-4f1c ", "clé".encode()]
    async with make_backend(Mgm__EnableE2eHarness=harness) as backend:
        for method, path in PROTECTED_ROUTES:
            for key in keys:
                headers = {} if key is None else {"X-MGM-ApiKey": key}
                response = await backend.client.request(method, path, json={}, headers=headers)
                assert response.status_code == 401, (method, path, key)
                expected = "missing_api_key" if not key else "invalid_api_key"
                assert response.json()["code"] == expected
                assert set(response.json()) == {"code", "message", "details"}


@pytest.mark.parametrize("payout_id", [str(uuid.uuid4()), "42", "not-a-uuid", "%00", "x" * 300])
async def test_unknown_or_malformed_payout_ids_are_404(make_backend: Any, payout_id: str) -> None:
    async with make_backend() as backend:
        confirm = await _confirm(backend, payout_id, {"characterName": "X"})
        patch = await _patch(backend, payout_id, "InProgress")
    assert (confirm.status_code, patch.status_code) == (404, 404)
    assert confirm.json()["code"] == "payout_not_found"


async def test_confirm_acceptance_wants_the_exact_name_else_400_invalid_character_name(
    make_backend: Any,
) -> None:
    """The real backend answers a name mismatch 400 `invalid_character_name`."""
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "e2e-viewer-31", "Rexxar"))["payoutId"]
        wrong_case = await _confirm(backend, payout_id, {"characterName": "rexxar"})
        padded = await _confirm(backend, payout_id, {"characterName": "Rexxar "})
        right = await _confirm(backend, payout_id, {"characterName": "Rexxar"})
        await _patch(backend, payout_id, "Cancelled")
        closed = await _confirm(backend, payout_id, {"characterName": "Rexxar"})
    assert wrong_case.status_code == 400
    assert wrong_case.json()["code"] == "invalid_character_name"
    assert wrong_case.json()["details"] == {"expected": "Rexxar", "received": "rexxar"}
    assert (padded.status_code, padded.json()["code"]) == (400, "invalid_character_name")
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
        payout_id = (await _winner(backend, "e2e-viewer-32", "Rexxar"))["payoutId"]
        response = await backend.client.post(
            f"/api/payouts/{payout_id}/confirm-acceptance",
            content=body,
            headers={"X-MGM-ApiKey": backend.api_key, "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "details"}


async def test_unknown_statuses_are_400_naming_names_and_numbers(make_backend: Any) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "e2e-viewer-41", "Vol"))["payoutId"]
        values: list[Any] = ["Teleported", 6, -1, True, 2.0, None]
        answers = [await _patch(backend, payout_id, value) for value in values]
        lower = await _patch(backend, payout_id, "inprogress")
    assert [(a.status_code, a.json()["code"]) for a in answers] == [
        (400, "invalid_status"), (400, "invalid_status"), (400, "invalid_status"),
        (400, "invalid_body"), (400, "invalid_body"), (400, "invalid_body"),
    ]  # fmt: skip
    assert answers[0].json()["details"]["allowed"]["InProgress"] == 1
    message = answers[1].json()["message"]
    assert message == "6 is not a payout status; send a name or its number 0-5."
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
        payout_id = (await _winner(backend, "e2e-viewer-51", "Zuljin"))["payoutId"]
        for step in path:
            assert (await _patch(backend, payout_id, step)).status_code == 200
        response = await _patch(backend, payout_id, target)
    assert response.status_code == 409
    current = path[-1] if path else "Pending"
    assert response.json()["details"] == {"from": current, "to": target}


async def test_in_progress_can_go_back_to_pending(make_backend: Any) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "e2e-viewer-61", "Cairne"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        back = await _patch(backend, payout_id, "Pending")
    assert back.status_code == 200
    assert back.json()["status"] == "Pending"


async def test_a_failed_announcement_is_logged_and_does_not_undo_sent(
    make_backend: Any, captured_log: Any
) -> None:
    async with make_backend() as backend:
        backend.helix.script.extend(
            [httpx.Response(503, json={"error": "Service Unavailable"})] * 3
            + [httpx.ConnectError("connection refused")]
        )
        payout_id = (await _winner(backend, "e2e-viewer-71", "Baine"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
        me = await backend.pool_me("e2e-viewer-71")
    assert sent.status_code == 200
    assert sent.json()["status"] == "Sent"
    assert sent.json()["isRewardSentAnnouncedToChat"] is False
    assert me["isEnrolled"] is False
    assert len(backend.helix.requests) == 4  # the fixture's policy: 4 attempts
    assert backend.sleeps == [0.5, 1.0, 2.0]
    attempts = [line for line in captured_log if line.startswith("helix POST")]
    assert len(attempts) == 4
    assert "(attempt 4/4)" in attempts[-1]
    assert any("failed after 4 attempt(s)" in line for line in captured_log)


async def test_a_retried_announcement_that_gets_through_is_recorded(make_backend: Any) -> None:
    async with make_backend() as backend:
        backend.helix.script.append(httpx.Response(502))
        payout_id = (await _winner(backend, "e2e-viewer-72", "Anduin"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
    assert sent.json()["isRewardSentAnnouncedToChat"] is True
    assert len(backend.helix.requests) == 2


async def test_rate_limited_announcement_waits_for_reset(make_backend: Any) -> None:
    async with make_backend() as backend:
        reset = str(int(time.time()) + 2)
        backend.helix.script.append(
            httpx.Response(429, headers={"Ratelimit-Reset": reset}, json={"status": 429})
        )
        payout_id = (await _winner(backend, "e2e-viewer-81", "Saurfang"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        await _patch(backend, payout_id, "Sent")
    assert len(backend.helix.requests) == 2
    [waited] = backend.sleeps
    assert 0.0 <= waited <= 3.0


async def test_client_error_is_not_retried(make_backend: Any) -> None:
    async with make_backend() as backend:
        backend.helix.script.append(httpx.Response(401, json={"message": "Invalid OAuth token"}))
        payout_id = (await _winner(backend, "e2e-viewer-91", "Drekthar"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
    assert sent.status_code == 200
    assert sent.json()["isRewardSentAnnouncedToChat"] is False
    assert len(backend.helix.requests) == 1


@pytest.mark.parametrize(
    "overrides",
    [{"Twitch__BroadcasterAccessToken": ""}, {"Twitch__BroadcasterUserId": "  "}],
)
async def test_announcement_is_skipped_without_token_or_broadcaster(
    make_backend: Any, captured_log: list[str], overrides: dict[str, str]
) -> None:
    async with make_backend(**overrides) as backend:
        payout_id = (await _winner(backend, "e2e-viewer-101", "Nazgrel"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        sent = await _patch(backend, payout_id, "Sent")
    assert sent.status_code == 200
    assert sent.json()["isRewardSentAnnouncedToChat"] is False
    assert backend.helix.requests == []
    assert any("skipped: token or broadcaster id empty" in line for line in captured_log)


async def test_concurrent_sent_transitions_announce_once(make_backend: Any) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "e2e-viewer-111", "Eitrigg"))["payoutId"]
        await _patch(backend, payout_id, "InProgress")
        results = await asyncio.gather(*[_patch(backend, payout_id, "Sent") for _ in range(4)])
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409]
    assert len(backend.helix.requests) == 1


# --- the E2E harness ---------------------------------------------------------------------


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
        await backend.chat("e2e-viewer-121", "!twgold Grom")
        response = await backend.desktop("POST", HARNESS, {"twitchUserId": "e2e-viewer-121"})
        blank = await backend.desktop("POST", HARNESS, {"twitchUserId": ""})
    assert response.status_code == 404
    assert blank.status_code == 404, "404 comes before the body is looked at"


async def test_harness_flag_is_case_insensitive(make_backend: Any) -> None:
    async with make_backend(
        ASPNETCORE_ENVIRONMENT="development", Mgm__EnableE2eHarness="True"
    ) as backend:
        prepared = await _winner(backend, "e2e-viewer-1", "Orgrim")
    assert prepared["characterName"] == "Orgrim"
    uuid.UUID(prepared["payoutId"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"twitchUserId": ""}, "blank_twitch_user_id"),
        ({"twitchUserId": "   "}, "blank_twitch_user_id"),
        ({"twitchUserId": "e2e-viewer-9999"}, "viewer_not_in_pool"),
        ({"twitchUserId": 3401}, "invalid_body"),
        ({}, "invalid_body"),
    ],
)
async def test_harness_bad_requests_are_400(
    make_backend: Any, body: dict[str, Any], code: str
) -> None:
    async with make_backend() as backend:
        await backend.chat("e2e-viewer-131", "!twgold Durotan")
        response = await backend.desktop("POST", HARNESS, body)
    assert response.status_code == 400
    assert response.json()["code"] == code


@pytest.mark.parametrize("moves", [[], ["InProgress"]])
async def test_harness_refuses_a_second_open_payout_with_409(
    make_backend: Any, moves: list[str]
) -> None:
    """MGM's orchestrator sees 409 `active_payout_exists` when a run left a payout open."""
    async with make_backend() as backend:
        first = await _winner(backend, "e2e-viewer-1", "Arthas")
        for move in moves:
            await _patch(backend, first["payoutId"], move)
        again = await backend.desktop("POST", HARNESS, {"twitchUserId": "e2e-viewer-1"})
        await _patch(backend, first["payoutId"], "Cancelled")
        after_cancel = await backend.desktop("POST", HARNESS, {"twitchUserId": "e2e-viewer-1"})
        pending = (await backend.desktop("GET", "/api/payouts/pending")).json()
    assert again.status_code == 409
    assert again.json()["code"] == "active_payout_exists"
    assert again.json()["details"] == {
        "twitchUserId": "e2e-viewer-1",
        "payoutId": first["payoutId"],
    }
    assert after_cancel.status_code == 200
    assert [p["id"] for p in pending] == [after_cancel.json()["payoutId"]]


async def test_concurrent_harness_calls_make_one_payout(make_backend: Any) -> None:
    async with make_backend() as backend:
        await backend.chat("e2e-viewer-141", "!twgold Malfurion")
        answers = await asyncio.gather(
            *[
                backend.desktop("POST", HARNESS, {"twitchUserId": "e2e-viewer-141"})
                for _ in range(4)
            ]
        )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]


async def test_a_new_enrollment_is_a_new_enrollment_request(make_backend: Any) -> None:
    async with make_backend() as backend:
        first = await _winner(backend, "e2e-viewer-151", "Tyrande")
        await _patch(backend, first["payoutId"], "InProgress")
        sent = (await _patch(backend, first["payoutId"], "Sent")).json()
        second = await _winner(backend, "e2e-viewer-151", "Tyrande")
        [pending] = (await backend.desktop("GET", "/api/payouts/pending")).json()
    assert pending["id"] == second["payoutId"] != sent["id"]
    uuid.UUID(sent["enrollmentRequestId"])
    uuid.UUID(pending["enrollmentRequestId"])
    assert pending["enrollmentRequestId"] != sent["enrollmentRequestId"]


async def test_oversize_desktop_body_is_413(make_backend: Any) -> None:
    async with make_backend() as backend:
        response = await backend.desktop("POST", HARNESS, {"twitchUserId": "1" * 70_000})
    assert response.status_code == 413


# --- GET /api/version, the readiness probe that works for both backends -------------------


async def test_version_reports_the_version_settings_once_the_schema_is_ready(
    make_backend: Any,
) -> None:
    """compose's backend probe is GET /api/version: the real backend has no /health."""
    async with make_backend(
        Version__CurrentVersion="3.1.4", Version__MinimumDesktopVersion="3.0.0"
    ) as backend:
        answer = await backend.client.get("/api/version")
        pending = await backend.desktop("GET", "/api/payouts/pending")
    assert answer.status_code == 200
    body = answer.json()
    assert {k: body[k] for k in ("version", "minimumDesktopVersion", "minimumAddonVersion")} == {
        "version": "3.1.4",
        "minimumDesktopVersion": "3.0.0",
        "minimumAddonVersion": "0.0.0",
    }
    assert body["releaseNotesUrl"] == ""
    assert body["minimumExtensionVersion"] == "0.0.0"
    assert pending.status_code == 200, "a 200 from the probe means the API can serve"


# --- hostile input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "code"),
    [
        ("harness", b'{"twitchUserId": "e2e-viewer-1\\u0000"}', "invalid_value"),
        ("harness", b'{"twitchUserId": "\\ud800"}', "malformed_json"),
        ("harness", b'{"twitchUserId": NaN}', "malformed_json"),
        ("harness", b"[" * 5000 + b"]" * 5000, "malformed_json"),
        ("confirm", b'{"characterName": "Arthas\\u0000"}', "invalid_character_name"),
        ("confirm", b'{"characterName": "\\udfff"}', "malformed_json"),
        ("confirm", b'{"characterName": "A", "n": ' + b"1" * 5000 + b"}", "malformed_json"),
        ("status", b'{"status": NaN}', "malformed_json"),
        ("status", b'{"status": "Sent\\u0000"}', "invalid_status"),
        ("status", b'{"status": 1e999}', "malformed_json"),
        ("status", b'{"status": "\\ud83d"}', "malformed_json"),
    ],
)
async def test_hostile_bodies_are_a_400_never_a_5xx(
    make_backend: Any, route: str, body: bytes, code: str
) -> None:
    async with make_backend() as backend:
        payout_id = (await _winner(backend, "e2e-viewer-1", "Arthas"))["payoutId"]
        path = {
            "harness": HARNESS,
            "confirm": f"/api/payouts/{payout_id}/confirm-acceptance",
            "status": f"/api/payouts/{payout_id}/status",
        }[route]
        method = "PATCH" if route == "status" else "POST"
        headers = {"X-MGM-ApiKey": backend.api_key, "Content-Type": "application/json"}
        answer = await backend.client.request(method, path, content=body, headers=headers)
        pending = await backend.desktop("GET", "/api/payouts/pending")
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == {"code", "message", "details"}
    assert answer.json()["code"] == code
    assert "Traceback" not in answer.text
    assert [p["status"] for p in pending.json()] == ["Pending"]


async def test_no_secret_reaches_the_log(
    make_backend: Any, captured_log: list[str], pg_dsn: str
) -> None:
    async with make_backend() as backend:
        backend.helix.script.append(httpx.Response(500, json={"message": "boom"}))
        prepared = await _winner(backend, "e2e-viewer-161", "Hellscream")
        await _patch(backend, prepared["payoutId"], "InProgress")
        await _patch(backend, prepared["payoutId"], "Sent")
        await backend.desktop("GET", "/api/payouts/pending", key="wrong-key")
        await backend.deliver(backend.notification("e2e-viewer-162", "!twgold Test"), secret="bad")
        await backend.client.get("/api/pool/me", headers={"Authorization": "Bearer x.y.z"})
        secrets = [
            backend.api_key,
            backend.eventsub_secret,
            backend.broadcaster_token,
            backend.extension_secret.decode(),
            backend.token("e2e-viewer-161"),
        ]
        password = conninfo_to_dict(pg_dsn).get("password")
        if password:
            secrets.append(str(password))
    text = "\n".join(captured_log)
    assert "helix POST" in text
    for secret in secrets:
        assert secret not in text
