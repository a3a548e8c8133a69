"""The MGM Tier A (enrollment gate) and Tier B (payout) checks of CONTRACT.md.

Every assertion proves the backend did the work: journals are reset first, the
chat message is only ever sent by the backend (never posted to mock-helix here),
and each check reads what the mocks and the backend recorded.
"""

from __future__ import annotations

from envkit.orchestrator import Step, StepContext
from envkit.scenarios.mgm_triage import classify
from envkit.scenarios.mgm_triage import triage_for_service_not_ready as not_ready
from envkit.settings import EnvkitSettings

__all__ = ["classify", "not_ready", "steps"]

VIEWER_ID = "4145994"
VIEWER_LOGIN = "viewer32"
CHARACTER = "Arthas"
MOCKS = ("mock-eventsub", "mock-jwt", "mock-helix", "synthetic-desktop")


def reset_journals(ctx: StepContext) -> str:
    """Start from empty journals so every later count belongs to this run."""
    for mock in MOCKS:
        answer = ctx.http("POST", mock, "/reset")
        ctx.expect(answer.status_code == 200, f"{mock} refused POST /reset ({answer.status_code})")
    return f"journals of {len(MOCKS)} mocks reset"


def emit_enrollment(ctx: StepContext) -> str:
    """mock-eventsub signs and delivers `!twgold <Name>` from a subscriber."""
    answer = ctx.http(
        "POST", "mock-eventsub", "/emit",
        json={"text": f"!twgold {CHARACTER}", "chatterUserId": VIEWER_ID,
              "chatterLogin": VIEWER_LOGIN, "chatterName": VIEWER_LOGIN},
    )  # fmt: skip
    body = ctx.json(answer)
    ctx.expect(answer.status_code == 200, f"mock-eventsub /emit answered {answer.status_code}")
    backend_status = body.get("status")
    ctx.expect(
        body.get("delivered") is True,
        f"the backend did not accept the signed EventSub notification "
        f"(it answered {backend_status}: {str(body.get('body'))[:200]})",
        backend_status=backend_status,
    )
    return f"backend acknowledged the signed chat message with {backend_status}"


def mint_viewer_token(ctx: StepContext) -> str:
    """mock-jwt mints the viewer's extension JWT."""
    answer = ctx.http("GET", "mock-jwt", "/token", params={"userId": VIEWER_ID, "role": "viewer"})
    body = ctx.json(answer)
    ctx.expect(answer.status_code == 200, f"mock-jwt /token answered {answer.status_code}")
    ctx.expect(bool(body.get("access_token")), "mock-jwt returned no access_token")
    ctx.state["bearer"] = {"Authorization": f"Bearer {body['access_token']}"}
    return "viewer JWT minted"


def _pool_me(ctx: StepContext) -> dict[str, object]:
    answer = ctx.http("GET", "backend", "/api/pool/me", headers=ctx.state["bearer"])
    body = ctx.json(answer)
    ctx.expect(
        answer.status_code == 200,
        f"GET /api/pool/me answered {answer.status_code}: {answer.text[:200]} "
        "(401 means the backend rejected the extension JWT)",
    )
    return dict(body)


def pool_shows_enrolled(ctx: StepContext) -> str:
    """The backend enrolled the viewer under the character name."""
    me = _pool_me(ctx)
    ctx.expect(
        me.get("isEnrolled") is True and me.get("characterName") == CHARACTER,
        f"expected the viewer enrolled as {CHARACTER}, the backend says {me}",
        pool=me,
    )
    return f"viewer {VIEWER_ID} is enrolled as {CHARACTER}"


def _api_key(ctx: StepContext) -> dict[str, str]:
    return {"X-MGM-ApiKey": ctx.settings.mgm.api_key.get_secret_value()}


def prepare_pending_payout(ctx: StepContext) -> str:
    """The E2E harness makes the viewer the winner with a Pending payout."""
    answer = ctx.http(
        "POST", "backend", "/api/e2e/prepare-pending-payout",
        json={"twitchUserId": VIEWER_ID}, headers=_api_key(ctx),
    )  # fmt: skip
    body = ctx.json(answer)
    hints = {404: " (404: the E2E harness is disabled)", 401: " (401: API key rejected)"}
    ctx.expect(
        answer.status_code == 200,
        f"the harness answered {answer.status_code}{hints.get(answer.status_code, '')}: "
        f"{answer.text[:200]}",
    )
    ctx.expect(body.get("characterName") == CHARACTER, f"payout is for {body.get('characterName')}")
    ctx.state["payout_id"] = body["payoutId"]
    return f"Pending payout {body['payoutId']} for {CHARACTER}"


def desktop_sequence(ctx: StepContext) -> str:
    """synthetic-desktop confirms, moves to InProgress, then Sent, through the desktop API."""
    answer = ctx.http(
        "POST", "synthetic-desktop", "/run-sequence",
        json={"payoutId": ctx.state["payout_id"], "characterName": CHARACTER},
    )  # fmt: skip
    run = ctx.json(answer)
    steps = run.get("steps", [])
    summary = ", ".join(f"{s.get('name')} {s.get('status')}" for s in steps)
    ctx.expect(
        run.get("ok") is True,
        f"the desktop sequence failed: {run.get('error')} (steps: {summary})",
        desktop_run=run,
    )
    return f"desktop sequence ok: {summary}"


def helix_chat_message(ctx: StepContext) -> str:
    """mock-helix recorded exactly one chat message, sent by the backend with the right identity."""
    answer = ctx.http("GET", "mock-helix", "/requests")
    requests = ctx.json(answer)
    chats = [r for r in requests if r.get("path") == "/helix/chat/messages"]
    ctx.expect(
        len(chats) == 1,
        f"expected exactly one POST /helix/chat/messages from the backend, mock-helix recorded "
        f"{len(chats)} (of {len(requests)} Helix calls); none means the backend never called "
        "Helix (check Twitch__HelixApiBaseUrl and the broadcaster token)",
        helix_requests=requests,
    )
    chat = chats[0]
    twitch = ctx.settings.twitch
    body = chat.get("body") or {}
    ctx.expect(
        chat.get("authorized") is True,
        f"mock-helix refused the backend's credentials: {chat.get('authProblem')} "
        "(Bearer token or Client-Id differ from the configured ones)",
        chat=chat,
    )
    ctx.expect(
        chat.get("status") == 200, f"mock-helix answered the chat message {chat.get('status')}"
    )
    ctx.expect(
        chat.get("clientId") == twitch.helix_client_id,
        f"Client-Id was {chat.get('clientId')!r}, configured {twitch.helix_client_id!r}",
    )
    ctx.expect(
        body.get("broadcaster_id") == twitch.broadcaster_user_id
        and body.get("sender_id") == twitch.broadcaster_user_id,
        f"broadcaster_id/sender_id were {body.get('broadcaster_id')}/{body.get('sender_id')}, "
        f"configured {twitch.broadcaster_user_id}",
    )
    ctx.expect(
        CHARACTER in str(body.get("message", "")),
        f"the chat message does not name {CHARACTER}: {body.get('message')!r}",
    )
    return f"one chat message naming {CHARACTER}, sent with the configured identity"


def desktop_last_run(ctx: StepContext) -> str:
    """synthetic-desktop's /last-run says ok."""
    answer = ctx.http("GET", "synthetic-desktop", "/last-run")
    run = ctx.json(answer)
    ctx.expect(run.get("ok") is True, f"/last-run is not ok: {run.get('error')}", last_run=run)
    return "/last-run ok"


def pool_shows_not_enrolled(ctx: StepContext) -> str:
    """Sent removed the viewer from the pool."""
    me = _pool_me(ctx)
    ctx.expect(
        me.get("isEnrolled") is False,
        f"after Sent the viewer should have left the pool, the backend says {me}",
        pool=me,
    )
    return "viewer left the pool after Sent"


def steps(settings: EnvkitSettings) -> list[Step]:
    """Tier A then Tier B, in order."""
    return [
        Step("reset-journals", "tier-a", reset_journals, "mgm-tier-b-orchestrator"),
        Step("emit-enrollment", "tier-a", emit_enrollment, "backend"),
        Step("mint-viewer-jwt", "tier-a", mint_viewer_token, "mock-jwt"),
        Step("pool-shows-enrolled", "tier-a", pool_shows_enrolled, "backend"),
        Step("prepare-pending-payout", "tier-b", prepare_pending_payout, "backend"),
        Step("desktop-sequence", "tier-b", desktop_sequence, "synthetic-desktop"),
        Step("helix-chat-message", "tier-b", helix_chat_message, "mock-helix"),
        Step("desktop-last-run", "tier-b", desktop_last_run, "synthetic-desktop"),
        Step("pool-shows-not-enrolled", "tier-b", pool_shows_not_enrolled, "backend"),
    ]
