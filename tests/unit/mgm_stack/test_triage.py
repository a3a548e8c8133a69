"""The MGM troubleshooting matrix as code: each failure shape maps to its class, log and quotes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from mgm_stack.triage import (
    CLASSES,
    QUOTED_LINES,
    classify,
    triage_for_service_not_ready,
)

from envkit.evidence.outcome import StepResult

EVENTSUB = "http://127.0.0.1:40001"
BACKEND = "http://127.0.0.1:40002"
HELIX = "http://127.0.0.1:40003"
DESKTOP = "http://127.0.0.1:40004"
PAYOUT = "0b7e4f0e-8c1a-4d55-9a57-5f8c2c8e1d10"
T = "2025-05-01T10:00:0"


def _line(n: int, service: str, text: str, level: str = "INFO") -> str:
    return f"{T}{n % 10}.{n:03d}Z {level:<7} {service} {text}"


def _log(service: str, *lines: str) -> str:
    """A service log: startup noise, the given lines, trailing noise (as loguru writes it)."""
    noise = [_line(i, service, "GET /health -> 200 in 0.4 ms") for i in range(15)]
    body = [_line(20 + i, service, text) for i, text in enumerate(lines)]
    return "\n".join([*noise, *body, _line(99, service, "GET /health -> 200 in 0.3 ms")]) + "\n"


def _error(code: str, message: str) -> str:
    return json.dumps({"code": code, "message": message, "details": None})


def _call(request: str, status: int, response: Any, body: Any = None) -> dict[str, Any]:
    text = response if isinstance(response, str) else json.dumps(response)
    return {"request": request, "body": body, "status": status, "response": text}


def _failed(name: str, error: str, **evidence: Any) -> StepResult:
    tier = "tier-a" if name in {"emit-enrollment", "pool-shows-enrolled"} else "tier-b"
    return StepResult(name, tier, "failed", error=error, evidence=evidence)


def _assert_quotes(quotes: list[str], log_text: str, *patterns: str) -> None:
    assert quotes
    assert len(quotes) <= QUOTED_LINES
    assert all(q in log_text.splitlines() for q in quotes)
    assert all(any(re.search(p, q, re.IGNORECASE) for p in patterns) for q in quotes)


def test_classes_are_complete_distinct_and_filled() -> None:
    names = [c.name for c in CLASSES]
    assert len(names) == len(set(names))
    assert set(names) == {
        "service-never-ready",
        "eventsub-signature-rejected",
        "jwt-rejected",
        "harness-disabled",
        "viewer-not-in-pool",
        "desktop-api-key-rejected",
        "helix-never-called",
        "helix-auth-mismatch",
        "wrong-chat-message",
        "helix-errors",
        "helix-too-slow",
        "backend-5xx",
        "step-failed",
    }
    for triage in CLASSES:
        assert all(v.strip() for v in (triage.symptom, triage.likely_cause, triage.fix))
        assert re.fullmatch(r"[a-z0-9-]+\.log", triage.first_log)


def test_bad_eventsub_signature() -> None:
    backend_body = _error("invalid_signature", "The EventSub signature does not match the message.")
    relay = {"delivered": False, "status": 403, "body": backend_body, "messageId": "m-1"}
    failed = _failed(
        "emit-enrollment",
        f"the backend did not accept the signed EventSub notification (it answered 403: "
        f"{backend_body})",
        calls=[_call(f"POST {EVENTSUB}/emit", 200, relay, {"text": "!twgold Arthas"})],
        backend_status=403,
    )
    backend = _log(
        "backend",
        "eventsub message refused: The EventSub signature does not match the message.",
        "POST /api/twitch/eventsub -> 403 in 2.1 ms",
    )
    failure = classify(failed, {"mgm-backend.log": backend, "mgm-mock-eventsub.log": "x\n"})
    assert failure.failure_class == "eventsub-signature-rejected"
    assert failure.first_log == "mgm-backend.log"
    assert "403" in failure.message
    assert "invalid_signature" in failure.message
    _assert_quotes(failure.quotes, backend, "eventsub", "signature")
    assert len(failure.quotes) == 2


def test_jwt_rejected_on_pool_me() -> None:
    answer = _error(
        "invalid_token", "The extension JWT is malformed or its signature does not verify."
    )
    failed = _failed(
        "pool-shows-enrolled",
        f"GET /api/pool/me answered 401: {answer} (401 means the backend rejected the JWT)",
        calls=[_call(f"GET {BACKEND}/api/pool/me", 401, answer)],
    )
    backend = _log("backend", "GET /api/pool/me -> 401 in 1.0 ms")
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "jwt-rejected"
    assert failure.first_log == "mgm-backend.log"
    assert "401" in failure.message
    assert "invalid_token" in failure.message
    _assert_quotes(failure.quotes, backend, "/api/pool/me")


def test_harness_disabled() -> None:
    answer = _error("not_found", "The E2E harness is disabled; it needs ...")
    failed = _failed(
        "prepare-pending-payout",
        f"the harness answered 404 (404: the E2E harness is disabled): {answer}",
        calls=[
            _call(
                f"POST {BACKEND}/api/e2e/prepare-pending-payout",
                404,
                answer,
                {"twitchUserId": "e2e-viewer-1"},
            )
        ],
    )
    backend = _log(
        "backend",
        "backend starting: database postgres:5432/mgm, environment Production, e2e harness "
        "disabled, helix http://mock-helix:9053/helix/chat/messages",
        "POST /api/e2e/prepare-pending-payout -> 404 in 0.8 ms",
    )
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "harness-disabled"
    assert failure.first_log == "mgm-backend.log"
    assert "404" in failure.message
    assert "/api/e2e/prepare-pending-payout" in failure.message
    _assert_quotes(failure.quotes, backend, "harness|/api/e2e")
    assert len(failure.quotes) == 2


def test_viewer_not_in_pool() -> None:
    answer = _error("viewer_not_in_pool", "Viewer 'e2e-viewer-1' is not in the pool.")
    failed = _failed(
        "prepare-pending-payout",
        f"the harness answered 400: {answer}",
        calls=[_call(f"POST {BACKEND}/api/e2e/prepare-pending-payout", 400, answer)],
    )
    backend = _log(
        "backend",
        "chat message from viewer e2e-viewer-1 ignored: no subscriber, founder or premium badge",
        "POST /api/e2e/prepare-pending-payout -> 400 in 3.0 ms",
    )
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "viewer-not-in-pool"
    assert "400" in failure.message
    assert "viewer_not_in_pool" in failure.message
    _assert_quotes(failure.quotes, backend, "ignored", "/api/e2e")


@pytest.mark.parametrize("where", ["harness", "desktop"])
def test_desktop_api_key_rejected(where: str) -> None:
    answer = _error("invalid_api_key", "The X-MGM-ApiKey header is not the configured key.")
    path = f"/api/payouts/{PAYOUT}/confirm-acceptance"
    if where == "harness":
        path = "/api/e2e/prepare-pending-payout"
        evidence: dict[str, Any] = {"calls": [_call(f"POST {BACKEND}{path}", 401, answer)]}
    else:
        step = {
            "name": "confirm-acceptance",
            "method": "POST",
            "path": path,
            "statusCode": 401,
            "ok": False,
            "bodySnippet": answer,
            "error": f"Step 'confirm-acceptance' (POST {path}) answered 401.",
        }
        run = {"ok": False, "steps": [step], "error": step["error"]}
        evidence = {"calls": [_call(f"POST {DESKTOP}/run-sequence", 200, run)], "desktop_run": run}
    failed = _failed("desktop-sequence", "the desktop sequence failed", **evidence)
    backend = _log("backend", f"POST {path} -> 401 in 0.5 ms")
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "desktop-api-key-rejected"
    assert failure.first_log == "mgm-backend.log"
    assert "401" in failure.message
    assert "invalid_api_key" in failure.message
    assert path in failure.message
    _assert_quotes(failure.quotes, backend, "-> 401")


def _helix_entry(path: str, status: int, **fields: Any) -> dict[str, Any]:
    """A mock-helix journal entry as it records one request."""
    entry = {
        "method": "POST",
        "path": path,
        "authorizationHeader": "Bearer ***",
        "clientIdHeader": "envkit-client",
        "authMode": "false",
        "credentialsMatch": True,
        "credentialProblem": None,
        "authorized": True,
        "authProblem": None,
        "clientId": "envkit-client",
        "status": status,
        "body": None,
    }
    entry.update(fields)
    return entry


def _helix_step(journal: list[dict[str, Any]], error: str, **more: Any) -> StepResult:
    call = _call(f"GET {HELIX}/requests", 200, journal)
    return _failed("helix-chat-message", error, calls=[call], helix_requests=journal, **more)


def test_helix_never_called_because_base_url_ends_in_helix() -> None:
    journal = [_helix_entry("/helix/helix/chat/messages", 404)]
    failed = _helix_step(journal, "expected exactly one POST /helix/chat/messages ... recorded 0")
    backend = _log(
        "backend",
        "helix POST http://mock-helix:9053/helix/helix/chat/messages -> 404 (attempt 1/4)",
        "chat announcement for payout 1: failed after 1 attempt(s) (not implemented)",
    )
    failure = classify(failed, {"mgm-backend.log": backend, "mgm-mock-helix.log": "x\n"})
    assert failure.failure_class == "helix-never-called"
    assert failure.first_log == "mgm-backend.log"
    assert "/helix/helix/chat/messages" in failure.message
    assert "404" in failure.message
    assert "Twitch__HelixApiBaseUrl" in failure.message
    _assert_quotes(failure.quotes, backend, "helix", "announcement")


def test_helix_never_called_because_send_skipped() -> None:
    failed = _helix_step([], "expected exactly one POST /helix/chat/messages ... recorded 0")
    backend = _log(
        "backend",
        "chat announcements will be skipped: token or broadcaster id empty",
        f"PATCH /api/payouts/{PAYOUT}/status -> 200 in 4.0 ms",
        "chat announcement skipped: token or broadcaster id empty",
    )
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "helix-never-called"
    assert "skipped" in failure.message
    assert "Twitch__BroadcasterAccessToken" in failure.message
    _assert_quotes(failure.quotes, backend, "announcement")
    assert len(failure.quotes) == 2


def test_helix_auth_mismatch_in_values_mode_is_a_401() -> None:
    problem = "Client ID and OAuth token do not match"
    entry = _helix_entry(
        "/helix/chat/messages", 401, authMode="values", authorized=False, authProblem=problem,
        credentialsMatch=False, credentialProblem=problem, clientIdHeader="other-client",
        clientId="other-client",
    )  # fmt: skip
    failed = _helix_step([entry], "expected exactly one POST ... answered 2xx, ... 0")
    helix = _log("mock-helix", "POST /helix/chat/messages -> 401 in 0.6 ms")
    failure = classify(failed, {"mgm-mock-helix.log": helix, "mgm-backend.log": "x\n"})
    assert failure.failure_class == "helix-auth-mismatch"
    assert failure.first_log == "mgm-mock-helix.log"
    assert "401" in failure.message
    assert "Client ID and OAuth token do not match" in failure.message
    assert "'other-client'" in failure.message
    assert failure.quotes == [helix.splitlines()[-2]]


def test_helix_auth_mismatch_in_the_lenient_default_comes_from_the_journal() -> None:
    """MGM's mock-helix default accepts any credentials: the journal's credentialsMatch tells."""
    problem = "Client ID and OAuth token do not match"
    entry = _helix_entry(
        "/helix/chat/messages", 200, credentialsMatch=False, credentialProblem=problem,
        clientIdHeader="drifted-client-id", clientId="drifted-client-id",
        body={"broadcaster_id": "1971641", "sender_id": "1971641", "message": "x"},
    )  # fmt: skip
    failed = _helix_step([entry], "the backend's Helix credentials differ", chat=entry)
    helix = _log(
        "mock-helix",
        "POST /helix/chat/messages: credentials differ from the configured ones: Client ID and "
        "OAuth token do not match (Client-Id sent: 'drifted-client-id', Authorization: "
        "'Bearer ***'); answered 200 in StrictAuth mode false",
        "POST /helix/chat/messages -> 200 in 0.7 ms",
    )
    failure = classify(failed, {"mgm-mock-helix.log": helix, "mgm-backend.log": "x\n"})
    assert failure.failure_class == "helix-auth-mismatch"
    assert failure.first_log == "mgm-mock-helix.log"
    assert "drifted-client-id" in failure.message
    assert problem in failure.message
    assert failure.quotes == helix.splitlines()[-3:-1]


def test_wrong_chat_message_broadcaster() -> None:
    body = {"broadcaster_id": "999", "sender_id": "999", "message": "Payout sent to Arthas"}
    entry = _helix_entry("/helix/chat/messages", 200, body=body)
    failed = _helix_step(
        [entry], "broadcaster_id/sender_id were 999/999, configured 1971641", chat=entry
    )
    backend = _log(
        "backend", "helix POST http://mock-helix:9053/helix/chat/messages -> 200 (attempt 1/4)"
    )
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "wrong-chat-message"
    assert "'999'" in failure.message
    assert "1971641" in failure.message
    _assert_quotes(failure.quotes, backend, "helix")


def test_wrong_chat_message_text_counts_only_the_message_answered_2xx() -> None:
    """Retries do not matter: one 503 then one 200 is still one chat message to judge."""
    body = {"broadcaster_id": "1971641", "sender_id": "1971641", "message": "Payout sent!"}
    journal = [
        _helix_entry("/helix/chat/messages", 503, body=body),
        _helix_entry("/helix/chat/messages", 200, body=body),
    ]
    error = "the chat message is 'Payout sent!', expected exactly 'Награда ...'"
    failure = classify(_helix_step(journal, error), {"mgm-backend.log": "x\n"})
    assert failure.failure_class == "wrong-chat-message"
    assert "message='Payout sent!'" in failure.message
    assert "expected exactly" in failure.message


def test_backend_5xx_wins_over_other_statuses() -> None:
    answer = _error("not_ready", "The backend's database is not reachable.")
    failed = _failed(
        "pool-shows-not-enrolled",
        f"GET /api/pool/me answered 503: {answer}",
        calls=[_call(f"GET {BACKEND}/api/pool/me", 503, answer)],
    )
    backend = _log(
        "backend",
        "database not reachable yet (attempt 3), retrying in 2.0 s: ConnectionRefusedError",
        "GET /api/pool/me -> 503 in 1.0 ms",
    )
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "backend-5xx"
    assert failure.first_log == "mgm-backend.log"
    assert "503" in failure.message
    assert "/api/pool/me" in failure.message
    _assert_quotes(failure.quotes, backend, "-> 503", "not reachable")
    assert len(failure.quotes) == 2


def test_backend_5xx_seen_through_the_desktop_run() -> None:
    path = f"/api/payouts/{PAYOUT}/status"
    step = {
        "name": "mark-sent",
        "method": "PATCH",
        "path": path,
        "statusCode": 500,
        "bodySnippet": _error("internal_error", "The service hit an unexpected error."),
    }
    failed = _failed(
        "desktop-sequence",
        "the desktop sequence failed",
        desktop_run={"ok": False, "steps": [step]},
    )
    failure = classify(failed, {"mgm-backend.log": _log("backend", f"PATCH {path} -> 500")})
    assert failure.failure_class == "backend-5xx"
    assert "500" in failure.message
    assert "internal_error" in failure.message


def test_fallback_for_an_unknown_step_quotes_the_last_lines() -> None:
    failed = _failed("custom-check", "something odd happened")
    orchestrator = "\n".join(f"line {i}" for i in range(30))
    failure = classify(failed, {"mgm-tier-b-orchestrator.log": orchestrator})
    assert failure.failure_class == "step-failed"
    assert failure.first_log == "mgm-tier-b-orchestrator.log"
    assert "custom-check" in failure.message
    assert "something odd happened" in failure.message
    assert failure.quotes == orchestrator.splitlines()[-QUOTED_LINES:]


def test_fallback_for_a_known_step_reads_its_service_log() -> None:
    me = {"isEnrolled": False, "characterName": None}
    failed = _failed(
        "pool-shows-enrolled",
        f"expected the viewer enrolled as Arthas, the backend says {me}",
        calls=[_call(f"GET {BACKEND}/api/pool/me", 200, me)],
        pool=me,
    )
    backend = _log("backend", "chat message from viewer e2e-viewer-1 ignored: name too long")
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "step-failed"
    assert failure.first_log == "mgm-backend.log"
    assert "isEnrolled" in failure.message
    assert failure.quotes == [backend.splitlines()[-2]]


def test_service_never_ready_quotes_the_tail() -> None:
    tail = "\n".join(f"waiting for postgres ({i})" for i in range(20))
    failure = triage_for_service_not_ready("mgm-backend.log", tail, "backend never became ready")
    assert failure.failure_class == "service-never-ready"
    assert failure.first_log == "mgm-backend.log"
    assert failure.message == "backend never became ready"
    assert failure.quotes == tail.splitlines()[-QUOTED_LINES:]


def test_service_never_ready_quotes_why_not_the_probes_own_requests() -> None:
    """A 0.1 s probe fills the tail with its own 503 lines; the retry warnings explain it."""
    warnings = [
        _line(i, "backend", f"database not reachable yet (attempt {i}), retrying", "WARNING")
        for i in (1, 2)
    ]
    probes = [_line(10 + i, "backend", "GET /health/ready -> 503 in 1.5 ms") for i in range(20)]
    tail = "\n".join([warnings[0], *probes[:5], warnings[1], *probes[5:]])
    failure = triage_for_service_not_ready("mgm-backend.log", tail, "backend never became ready")
    assert failure.quotes == warnings


HELIX_URL = "http://mock-helix:8080/helix/chat/messages"


def test_helix_errors_until_the_backend_gives_up() -> None:
    backend = _log(
        "backend",
        *(f"helix POST {HELIX_URL} -> 503 (attempt {n}/3)" for n in (1, 2, 3)),
        "chat announcement for payout 7: failed after 3 attempt(s) (Fault injected)",
    )
    failed = _failed("helix-chat-message", "expected exactly one POST answered 2xx")
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "helix-errors"
    assert failure.first_log == "mgm-backend.log"
    assert "its 3 attempts ended in 503, 503, 503 (retries exhausted)" in failure.message
    _assert_quotes(failure.quotes, backend, r"helix POST", r"chat announcement")


def test_helix_answering_later_than_the_backend_waits_is_too_slow() -> None:
    backend = _log(
        "backend",
        *(f"helix POST {HELIX_URL} -> ReadTimeout (attempt {n}/3)" for n in (1, 2, 3)),
    )
    # Whichever step noticed: the backend's log is read first, not synthetic-desktop's.
    failed = _failed("desktop-sequence", "the desktop sequence failed")
    failure = classify(failed, {"mgm-backend.log": backend})
    assert failure.failure_class == "helix-too-slow"
    assert failure.first_log == "mgm-backend.log"
    assert "ReadTimeout, ReadTimeout, ReadTimeout" in failure.message


@pytest.mark.parametrize(
    "attempts",
    [
        ["-> 429 (attempt 1/3)", "-> 429 (attempt 2/3)", "-> 200 (attempt 3/3)"],  # honoured
        ["-> 400 (attempt 1/3)"],  # refused for good: not Helix trouble
    ],
)
def test_a_send_that_succeeded_or_was_refused_is_not_helix_trouble(attempts: list[str]) -> None:
    backend = _log("backend", *(f"helix POST {HELIX_URL} {a}" for a in attempts))
    failed = _failed("pool-shows-not-enrolled", "after Sent the viewer should have left")
    assert classify(failed, {"mgm-backend.log": backend}).failure_class == "step-failed"
