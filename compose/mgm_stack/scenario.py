"""The MGM Tier A (enrollment gate) and Tier B (payout) checks of CONTRACT.md.

Every assertion proves the backend did the work: journals are reset first, the
chat message is only ever sent by the backend (never posted to mock-helix here),
and each check reads what the mocks and the backend recorded.

The checks pass against the real MGM backend as well as the reference one, so
they respect the real backend's limits: at most 5 API calls per identity per
minute (here 2 with the viewer's JWT, 4 with the desktop key: the harness and
synthetic-desktop's three), and nothing depends on how many times the backend
retried Helix: only chat messages that mock-helix answered 2xx are counted. The
Helix credentials are judged by mock-helix's journal (`credentialsMatch`), which
it records in every StrictAuth mode, the MGM mock's lenient default included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envkit.scenario.orchestrator import Step, StepContext
from envkit.spec.settings import EnvkitSettings
from mgm_stack.faults import FAULTS
from mgm_stack.settings import mgm_settings
from mgm_stack.triage import CLASSES, classify
from mgm_stack.triage import triage_for_service_not_ready as not_ready

__all__ = ["CLASSES", "FAULTS", "TIER_LABELS", "classify", "narrate", "not_ready", "steps"]

# How report.md's performance table names the time each tier took.
TIER_LABELS = {"tier-a": "Tier A", "tier-b": "Tier B boundary"}

# Viewer ids are any strings, as in the MGM project's own scripts.
VIEWER_ID = "e2e-viewer-1"
VIEWER_LOGIN = "e2e_viewer_1"
CHARACTER = "Arthas"
# The MGM orchestrator compares the announcement character for character.
ANNOUNCEMENT = f"Награда отправлена персонажу {CHARACTER} на почту, проверяй ящик!"
CHAT_PATH = "/helix/chat/messages"
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
    return {"X-MGM-ApiKey": mgm_settings(ctx.settings).mgm.api_key.get_secret_value()}


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
    summary = ", ".join(f"{s.get('name')} {s.get('statusCode')}" for s in steps)
    ctx.expect(
        run.get("ok") is True,
        f"the desktop sequence failed: {run.get('error')} (steps: {summary})",
        desktop_run=run,
    )
    return f"desktop sequence ok: {summary}"


def _is_chat(entry: dict[str, object]) -> bool:
    return entry.get("method") == "POST" and str(entry.get("path", "")).rstrip("/") == CHAT_PATH


def _answered_2xx(entry: dict[str, object]) -> bool:
    status = entry.get("status")
    return isinstance(status, int) and 200 <= status < 300


def helix_chat_message(ctx: StepContext) -> str:
    """mock-helix answered exactly one chat message, sent by the backend with the right identity."""
    requests = ctx.json(ctx.http("GET", "mock-helix", "/requests"))
    chats = [r for r in requests if _is_chat(r)]
    sent = [r for r in chats if _answered_2xx(r)]
    statuses = [r.get("status") for r in chats]
    ctx.expect(
        len(sent) == 1,
        f"expected exactly one POST {CHAT_PATH} answered 2xx, mock-helix answered {len(sent)} "
        f"(chat posts: {len(chats)}, statuses {statuses}; Helix calls: {len(requests)}); none "
        "means the backend never reached Helix (check Twitch__HelixApiBaseUrl and the "
        "broadcaster token)",
        helix_requests=requests,
    )
    chat = sent[0]
    twitch = mgm_settings(ctx.settings).twitch
    body = chat.get("body") if isinstance(chat.get("body"), dict) else {}
    ctx.expect(
        chat.get("credentialsMatch") is True,
        f"the backend's Helix credentials differ from the configured ones: "
        f"{chat.get('credentialProblem')} (Client-Id sent: {chat.get('clientIdHeader')!r}, "
        f"configured {twitch.helix_client_id!r}; Authorization: "
        f"{chat.get('authorizationHeader')!r})",
        chat=chat,
    )
    ctx.expect(
        body.get("broadcaster_id") == twitch.broadcaster_user_id
        and body.get("sender_id") == twitch.broadcaster_user_id,
        f"broadcaster_id/sender_id were {body.get('broadcaster_id')}/{body.get('sender_id')}, "
        f"configured {twitch.broadcaster_user_id}",
    )
    ctx.expect(
        body.get("message") == ANNOUNCEMENT,
        f"the chat message is {body.get('message')!r}, expected exactly {ANNOUNCEMENT!r}",
    )
    last = ctx.json(ctx.http("GET", "mock-helix", "/last-request"))
    ctx.expect(
        last.get("captured") is True and last.get("body") == chat.get("body"),
        f"mock-helix's /last-request should show this chat message as captured: {last}",
        last_request=last,
    )
    return f"one chat message naming {CHARACTER}, sent with the configured identity"


def desktop_last_run(ctx: StepContext) -> str:
    """synthetic-desktop's /last-run says ok."""
    answer = ctx.http("GET", "synthetic-desktop", "/last-run")
    run = ctx.json(answer)
    ctx.expect(run.get("ok") is True, f"/last-run is not ok: {run.get('error')}", last_run=run)
    ctx.expect(
        run.get("completedAtUtc") is not None and len(run.get("steps") or []) == 3,
        f"/last-run should be a completed run of three steps: {run}",
    )
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


def narrate(evidence: Mapping[str, Any]) -> list[str]:
    """The calls the services made on a step's behalf, as the mocks recorded them (demo)."""
    lines = []
    if isinstance(evidence.get("backend_status"), int):
        lines.append(
            f"mock-eventsub -> backend: POST /api/twitch/eventsub -> {evidence['backend_status']}"
        )
    run = evidence.get("desktop_run")
    for step in run.get("steps") or [] if isinstance(run, dict) else []:
        lines.append(
            f"synthetic-desktop -> backend: {step.get('method')} {step.get('path')} "
            f"-> {step.get('status')} ({step.get('name')})"
        )
    journal = evidence.get("helix_requests")
    for entry in journal if isinstance(journal, list) else []:
        lines.append(
            f"backend -> mock-helix: {entry.get('method')} {entry.get('path')} "
            f"-> {entry.get('status')}"
        )
    return lines
