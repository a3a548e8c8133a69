"""The MGM troubleshooting matrix as code: name a failed step's root cause and the log to read.

`classify` reads what the orchestrator recorded on the failed step (each call's
status and response, the Helix journal, the desktop run) and the run's redacted
logs, and returns a `Failure` naming one of `CLASSES`, the concrete evidence,
the log to open first and the lines of it that matter. The HANDOVER
troubleshooting matrix is generated from `CLASSES`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from envkit.evidence.outcome import Failure, StepResult

QUOTED_LINES = 12
BACKEND_LOG = "mgm-backend.log"
HELIX_LOG = "mgm-mock-helix.log"
ORCHESTRATOR_LOG = "mgm-tier-b-orchestrator.log"
CHAT_PATH = "/helix/chat/messages"
API_KEY_CODES = ("invalid_api_key", "missing_api_key")
JWT_CODES = ("invalid_token", "token_expired", "missing_token", "jwt_not_configured",
             "identity_not_shared")  # fmt: skip


@dataclass(frozen=True)
class TriageClass:
    """One row of the troubleshooting matrix, in sentences for people."""

    name: str
    symptom: str
    first_log: str  # a log file name in the run's artifact directory
    likely_cause: str
    fix: str


CLASSES: tuple[TriageClass, ...] = (
    TriageClass("service-never-ready",
        "A container never passed its readiness probe, so no check ran (first log: that "
        "service's own, most often the backend's).",
        BACKEND_LOG,
        "The service waits for a dependency it cannot reach (the backend for PostgreSQL on "
        "a port that refuses) or is only slow; one that exits is service-exited-at-start.",
        "Read the quoted tail of that service's log; fix the setting it names and rerun."),
    TriageClass("eventsub-signature-rejected",
        "emit-enrollment: the backend answered the signed EventSub notification 401/403.",
        BACKEND_LOG,
        "Twitch__EventSubSecret differs between mock-eventsub and the backend, or the clocks "
        "are more than 10 minutes apart (stale_message).",
        "Set the EventSub secret once in the settings so both services receive the same value."),
    TriageClass("jwt-rejected",
        "GET /api/pool/me answered 401 for the JWT minted by mock-jwt.",
        BACKEND_LOG,
        "Twitch__ExtensionSecret (base64) or Twitch__ExtensionClientId (aud) differ between "
        "mock-jwt and the backend, or the token expired.",
        "Give mock-jwt and the backend the same extension secret and client id."),
    TriageClass("harness-disabled",
        "POST /api/e2e/prepare-pending-payout answered 404.",
        BACKEND_LOG,
        "The E2E harness is off: it needs ASPNETCORE_ENVIRONMENT=Development and "
        "Mgm__EnableE2eHarness=true.",
        "Set both variables on the backend (its startup line says 'e2e harness enabled')."),
    TriageClass("viewer-not-in-pool",
        "The harness answered 400 viewer_not_in_pool.",
        BACKEND_LOG,
        "The enrollment never happened or was ignored (badge, name rules, open payout), or "
        "Tier A was skipped.",
        "Read the backend's 'ignored' line for the viewer and run Tier A before Tier B."),
    TriageClass("desktop-api-key-rejected",
        "A desktop API call (harness or synthetic-desktop) answered 401.",
        BACKEND_LOG,
        "Mgm__ApiKey differs between the backend, synthetic-desktop and the orchestrator, "
        "or is empty.",
        "Set the API key once in the settings so every service receives the same value."),
    TriageClass("helix-never-called",
        "mock-helix recorded no POST /helix/chat/messages after the payout was marked Sent.",
        BACKEND_LOG,
        "An empty Twitch__BroadcasterAccessToken or Twitch__BroadcasterUserId makes the backend "
        "skip the send; a Twitch__HelixApiBaseUrl ending in /helix makes it call "
        "/helix/helix/chat/messages.",
        "Set the token and broadcaster id; set the Helix base URL to the root (no /helix)."),
    TriageClass("helix-auth-mismatch",
        "mock-helix's journal says the backend's chat message carried credentials that differ "
        "from the configured ones (credentialsMatch false; a 401 in StrictAuth=values mode).",
        HELIX_LOG,
        "The Bearer token or Client-Id the backend sends differ from mock-helix's configured "
        "ones.",
        "Set Twitch__BroadcasterAccessToken and Twitch__HelixClientId once in the settings."),
    TriageClass("wrong-chat-message",
        "One chat message was answered 2xx, but its broadcaster/sender id or its text is wrong.",
        BACKEND_LOG,
        "Twitch__BroadcasterUserId differs from the expected one, or the announcement is not "
        "exactly 'Награда отправлена персонажу <Name> на почту, проверяй ящик!'.",
        "Compare the journal entry with the settings; fix the backend's announcement."),
    TriageClass("helix-errors",
        "The backend's Helix attempts for the chat message all failed with 5xx (or 429): its "
        "retries were exhausted, so no chat message was answered 2xx.",
        BACKEND_LOG,
        "Helix (mock-helix, or a fault plan set on it) answers errors; the backend gives up "
        "after its last attempt.",
        "Read the backend's 'helix POST' lines; remove mock-helix's fault plan "
        "(MockHelix__Faults, DELETE /admin/faults) or fix what makes Helix fail."),
    TriageClass("helix-too-slow",
        "The backend's Helix attempts for the chat message timed out: Helix answered later "
        "than the backend waits.",
        BACKEND_LOG,
        "mock-helix delays its answers (a latencyMs fault plan) beyond the backend's "
        "per-attempt timeout, or Helix is slow.",
        "Read the backend's 'helix POST ... Timeout' lines; remove the latency or make "
        "Helix answer within the backend's timeout."),
    TriageClass("backend-5xx",
        "A backend call in the failing step answered 5xx.",
        BACKEND_LOG,
        "The backend hit an unhandled error or lost its database (503 not_ready).",
        "Read the backend's error or traceback lines around the failing request."),
    TriageClass("step-failed",
        "A check failed for a reason no other row describes.",
        ORCHESTRATOR_LOG,
        "See the step's error and evidence in summary.json.",
        "Start from the orchestrator log's FAILED line, then the log of the service it called."),
)  # fmt: skip
_BY_NAME = {c.name: c for c in CLASSES}
_STEP_LOGS = {"emit-enrollment": BACKEND_LOG, "mint-viewer-jwt": "mgm-mock-jwt.log",
              "pool-shows-enrolled": BACKEND_LOG, "prepare-pending-payout": BACKEND_LOG,
              "desktop-sequence": "mgm-synthetic-desktop.log", "helix-chat-message": HELIX_LOG,
              "desktop-last-run": "mgm-synthetic-desktop.log",
              "pool-shows-not-enrolled": BACKEND_LOG}  # fmt: skip
_KEYWORDS = {
    "eventsub-signature-rejected": (r"eventsub", r"signature", r"refused", r"-> 40[13]\b"),
    "jwt-rejected": (r"/api/pool/me", r"\bjwt\b", r"-> 401\b", r"ExtensionSecret"),
    "harness-disabled": (r"/api/e2e", r"harness", r"-> 404\b"),
    "viewer-not-in-pool": (r"/api/e2e", r"enroll", r"ignored", r"pool", r"-> 400\b"),
    "desktop-api-key-rejected": (r"-> 401\b", r"api ?key", r"/api/payouts", r"/api/e2e"),
    "helix-never-called": (r"helix", r"announcement"),
    "helix-auth-mismatch": (r"/helix/", r"-> 401\b", r"credentials differ"),
    "wrong-chat-message": (r"helix", r"announcement", r"broadcaster"),
    "helix-errors": (r"helix POST", r"chat announcement"),
    "helix-too-slow": (r"helix POST", r"chat announcement"),
    "backend-5xx": (r"-> 5\d\d\b", r"error", r"exception", r"traceback", r"not reachable"),
    "step-failed": (r"fail", r"error", r"ignored", r"refused", r"-> [45]\d\d\b"),
}
_CODE = re.compile(r'\\?"code\\?"\s*:\s*\\?"([A-Za-z0-9_]+)')
_MESSAGE = re.compile(r'\\?"message\\?"\s*:\s*\\?"((?:[^"\\]|\\.)*?)\\?"')


@dataclass(frozen=True)
class _Answer:
    """One answer the backend gave during the step, directly or through a mock."""

    where: str  # e.g. "POST /api/twitch/eventsub (via mock-eventsub)"
    path: str
    status: int
    text: str

    @property
    def code(self) -> str:
        """The `{code}` of a backend error body, or ""."""
        match = _CODE.search(self.text)
        return match.group(1) if match else ""

    def describe(self) -> str:
        """E.g. `GET /api/pool/me answered 401 (invalid_token: The extension JWT ...)`."""
        match = _MESSAGE.search(self.text)
        detail = f"{self.code}: {match.group(1)}" if self.code and match else self.code
        return f"{self.where} answered {self.status}" + (f" ({detail})" if detail else "")


def _parse(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None


def _answers(evidence: Mapping[str, Any]) -> list[_Answer]:
    """Every backend answer the step saw: its own calls, the emit relay, the desktop run."""
    found: list[_Answer] = []
    for call in evidence.get("calls") or []:
        method, _, url = str(call.get("request", "")).partition(" ")
        path, status, text = urlsplit(url).path, call.get("status"), str(call.get("response", ""))
        if path.startswith("/api/") and isinstance(status, int):
            found.append(_Answer(f"{method} {path}", path, status, text))
        elif path == "/emit":
            relayed = _parse(text)
            relayed = relayed if isinstance(relayed, dict) else {}
            status = relayed.get("status", evidence.get("backend_status"))
            if isinstance(status, int):
                where = "POST /api/twitch/eventsub (via mock-eventsub)"
                body = str(relayed.get("body", text))
                found.append(_Answer(where, "/api/twitch/eventsub", status, body))
    for key in ("desktop_run", "last_run"):
        run = evidence.get(key)
        for step in run.get("steps") or [] if isinstance(run, dict) else []:
            status = step.get("statusCode", step.get("status"))
            if isinstance(status, int):
                where = f"{step.get('method')} {step.get('path')} (via synthetic-desktop)"
                path, text = str(step.get("path")), str(step.get("bodySnippet", ""))
                found.append(_Answer(where, path, status, text))
    return found


def quotes_for(text: str, keywords: Iterable[str]) -> list[str]:
    """The last lines of `text` matching any keyword (regex, any case), else its last lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    pattern = re.compile("|".join(f"(?:{k})" for k in keywords) or "$^", re.IGNORECASE)
    matching = [line for line in lines if pattern.search(line)]
    return (matching or lines)[-QUOTED_LINES:]


def _failure(
    name: str, message: str, logs: Mapping[str, str], first_log: str = "", extra: Iterable[str] = ()
) -> Failure:
    log = first_log or _BY_NAME[name].first_log
    quotes = quotes_for(logs.get(log, ""), (*_KEYWORDS[name], *extra))
    return Failure(name, message, log, quotes)


def _last_line(text: str, pattern: str) -> str:
    hits = [line for line in text.splitlines() if re.search(pattern, line, re.IGNORECASE)]
    return hits[-1].strip() if hits else ""


def _status(entry: Mapping[str, Any]) -> int:
    status = entry.get("status")
    return status if isinstance(status, int) else 0


def _helix(failed: StepResult, logs: Mapping[str, str]) -> Failure | None:
    """Classify a helix-chat-message failure from mock-helix's journal."""
    journal = failed.evidence.get("helix_requests")
    if not isinstance(journal, list):
        return None
    chats = [r for r in journal if str(r.get("path", "")).rstrip("/") == CHAT_PATH]
    # credentialsMatch is journaled in every StrictAuth mode: in the lenient default a drifted
    # credential is answered 200, so the 401 alone would miss it.
    drifted = [
        r
        for r in chats
        if r.get("credentialsMatch") is False
        or r.get("authorized") is False
        or r.get("status") == 401
    ]
    if drifted:
        entry = drifted[-1]
        problem = entry.get("credentialProblem") or entry.get("authProblem")
        client_id = entry.get("clientIdHeader", entry.get("clientId"))
        return _failure(
            "helix-auth-mismatch",
            f"mock-helix answered POST {CHAT_PATH} with {entry.get('status')} and journaled "
            f"credentials that differ from its configured ones: {problem} (Client-Id sent: "
            f"{client_id!r}); the backend's Bearer token or Client-Id differ from mock-helix's.",
            logs,
        )
    if not chats:
        elsewhere = [
            f"{r.get('method')} {r.get('path')} (answered {r.get('status')})" for r in journal
        ]
        backend = logs.get(BACKEND_LOG, "")
        if any("/helix/helix/" in str(r.get("path")) for r in journal):
            why = (
                "Twitch__HelixApiBaseUrl ends in /helix, so the backend called "
                f"{', '.join(elsewhere)} instead; set it to the Helix root."
            )
        elif elsewhere:
            why = f"mock-helix only journaled {', '.join(elsewhere)}."
        elif re.search(r"announcement(s)? (will be )?skipped", backend, re.IGNORECASE):
            why = (
                "The backend skipped the send: Twitch__BroadcasterAccessToken or "
                "Twitch__BroadcasterUserId is empty."
            )
        else:
            attempt = _last_line(backend, r"helix POST")
            why = (
                f"The journal is empty; the backend's last Helix attempt: {attempt}."
                if attempt
                else "The journal is empty and the backend log shows no "
                "Helix attempt: check the broadcaster token and user id."
            )
        return _failure(
            "helix-never-called", f"No POST {CHAT_PATH} reached mock-helix. {why}", logs
        )
    sent = [r for r in chats if 200 <= _status(r) < 300]
    if len(sent) == 1:
        entry = sent[0]
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        return _failure(
            "wrong-chat-message",
            f"mock-helix recorded one chat message with broadcaster_id="
            f"{body.get('broadcaster_id')!r}, sender_id={body.get('sender_id')!r}, message="
            f"{body.get('message')!r}: {failed.error}",
            logs,
        )
    return None


# The backend's line for each Helix attempt: `helix POST <url> -> <status or error> (attempt n/N)`.
_ATTEMPT = re.compile(r"helix POST \S+ -> (\S+) \(attempt (\d+)/(\d+)\)")


def _helix_gave_up(failed: StepResult, logs: Mapping[str, str]) -> Failure | None:
    """helix-errors / helix-too-slow: the backend's last Helix attempt failed and was its last.

    Read from the backend's log, whichever step noticed: its attempts say what Helix did
    (a late answer may still be journaled 200 by mock-helix after the backend gave up).
    """
    attempts = _ATTEMPT.findall(logs.get(BACKEND_LOG, ""))
    if not attempts:
        return None
    outcome, number, of = attempts[-1]
    if number != of:
        return None  # it was sent, or refused for good (a 4xx other than 429)
    outcomes = [a[0] for a in attempts[-int(of) :]]
    seen = f"its {of} attempts ended in {', '.join(outcomes)}"
    if "timeout" in outcome.lower():
        return _failure(
            "helix-too-slow",
            f"The backend gave up on Helix: {seen}; Helix answered later than the backend "
            f"waits. Step {failed.name} failed: {failed.error}",
            logs,
        )
    if outcome.isdigit() and (int(outcome) >= 500 or int(outcome) == 429):
        return _failure(
            "helix-errors",
            f"The backend gave up on Helix: {seen} (retries exhausted). "
            f"Step {failed.name} failed: {failed.error}",
            logs,
        )
    return None


def classify(failed: StepResult, logs: Mapping[str, str]) -> Failure:
    """Name the root-cause class of a failed MGM step, with its evidence and log quotes."""
    answers = _answers(failed.evidence)
    paths = tuple(re.escape(a.path) for a in answers)
    for answer in answers:
        if answer.status >= 500:
            return _failure(
                "backend-5xx", f"{answer.describe()} during step {failed.name}.", logs, extra=paths
            )
    for answer in answers:
        desktop = answer.path.startswith(("/api/payouts", "/api/e2e"))
        if answer.status == 401 and (answer.code in API_KEY_CODES or desktop):
            return _failure(
                "desktop-api-key-rejected",
                f"{answer.describe()}: the X-MGM-ApiKey sent is not the backend's Mgm__ApiKey.",
                logs,
            )
        if answer.status == 401 and (answer.code in JWT_CODES or answer.path == "/api/pool/me"):
            return _failure(
                "jwt-rejected",
                f"{answer.describe()}: the backend rejected the viewer JWT minted by mock-jwt.",
                logs,
            )
        if answer.path == "/api/twitch/eventsub" and answer.status in (401, 403):
            return _failure(
                "eventsub-signature-rejected",
                f"{answer.describe()}: the backend refused mock-eventsub's signed notification.",
                logs,
            )
        if answer.path == "/api/e2e/prepare-pending-payout" and answer.status == 404:
            return _failure(
                "harness-disabled",
                f"{answer.describe()}: the E2E harness is disabled on the backend.",
                logs,
            )
        if answer.code == "viewer_not_in_pool":
            return _failure(
                "viewer-not-in-pool",
                f"{answer.describe()}: the viewer was never enrolled (or no longer is).",
                logs,
            )
    trouble = _helix_gave_up(failed, logs)
    if trouble is not None:
        return trouble
    helix = _helix(failed, logs) if failed.name == "helix-chat-message" else None
    if helix is not None:
        return helix
    log = _STEP_LOGS.get(failed.name, ORCHESTRATOR_LOG)
    step_words = (re.escape(failed.name), *paths)
    return _failure(
        "step-failed",
        f"Step {failed.name} failed: {failed.error}",
        logs,
        first_log=log,
        extra=step_words,
    )


# What explains a service that never got ready; its probe's own request lines do not.
_NOT_READY_KEYWORDS = (r"\b(?:WARNING|ERROR|CRITICAL)\b", r"cannot start", r"traceback",
                       r"not reachable", r"exception")  # fmt: skip


def triage_for_service_not_ready(service_log_name: str, tail: str, message: str) -> Failure:
    """The `service-never-ready` failure: the service's own log, its warnings and errors first.

    A probe polling a not-ready service fills the tail with its own request lines;
    the lines that say why (the backend's 'database not reachable yet') come first,
    else the last lines.
    """
    quotes = quotes_for(tail, _NOT_READY_KEYWORDS)
    return Failure("service-never-ready", message, service_log_name, quotes)
