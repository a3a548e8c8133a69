"""The MGM scenario's checks against a scripted stack: what they accept, refuse and cost.

The stack is an `httpx.MockTransport` answering like the services do, so each
test changes one answer and watches which step fails and why.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mgm_stack.scenario as mgm
import pytest

from envkit.evidence.redact import Redactor
from envkit.scenario.orchestrator import OrchestratorLog, StepContext, run_steps
from envkit.spec.settings import EnvkitSettings, load_settings

MGM_STACK = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"
TEXT = "Награда отправлена персонажу Arthas на почту, проверяй ящик!"
SERVICES = ("backend", "mock-eventsub", "mock-jwt", "mock-helix", "synthetic-desktop")


@pytest.fixture
def settings() -> EnvkitSettings:
    return load_settings(env_file=None, environ={}, stack=MGM_STACK)


@dataclass
class FakeStack:
    """Answers like the MGM stack after a good run; tests edit `helix` to break one thing."""

    settings: EnvkitSettings
    helix: list[dict[str, Any]] = field(default_factory=list)
    last_request: dict[str, Any] | None = None
    enrolled: bool = False
    last_run: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, str, httpx.Request]] = field(default_factory=list)

    def chat(self, status: int = 200, **changes: Any) -> dict[str, Any]:
        """A mock-helix journal entry for a chat message from the backend."""
        twitch = self.settings.twitch
        entry: dict[str, Any] = {
            "method": "POST", "path": "/helix/chat/messages", "status": status,
            "authorizationHeader": "Bearer ***", "clientIdHeader": twitch.helix_client_id,
            "credentialsMatch": True, "credentialProblem": None, "authorized": True,
            "body": {"broadcaster_id": twitch.broadcaster_user_id,
                     "sender_id": twitch.broadcaster_user_id, "message": TEXT},
        }  # fmt: skip
        entry.update(changes)
        return entry

    def handler(self, request: httpx.Request) -> httpx.Response:
        service, path = request.url.host.removesuffix(".test"), request.url.path
        self.calls.append((service, path, request))
        if path == "/reset":
            return httpx.Response(200, json={"cleared": 0})
        if (service, path) == ("mock-eventsub", "/emit"):
            self.enrolled = True
            return httpx.Response(200, json={"delivered": True, "status": 204, "body": ""})
        if (service, path) == ("mock-jwt", "/token"):
            return httpx.Response(200, json={"access_token": "jwt." + request.url.params["userId"]})
        if (service, path) == ("backend", "/api/pool/me"):
            name = mgm.CHARACTER if self.enrolled else None
            return httpx.Response(200, json={"isEnrolled": self.enrolled, "characterName": name})
        if (service, path) == ("backend", "/api/e2e/prepare-pending-payout"):
            return httpx.Response(200, json={"payoutId": "p-1", "characterName": mgm.CHARACTER})
        if (service, path) == ("synthetic-desktop", "/run-sequence"):
            self.enrolled = False
            steps = [{"name": n, "statusCode": 200, "bodySnippet": "{}"} for n in "abc"]
            self.last_run = {"ok": True, "steps": steps, "error": None, "completedAtUtc": "Z"}
            return httpx.Response(200, json=self.last_run)
        if (service, path) == ("synthetic-desktop", "/last-run"):
            return httpx.Response(200, json=self.last_run)
        if (service, path) == ("mock-helix", "/requests"):
            return httpx.Response(200, json=self.helix)
        if (service, path) == ("mock-helix", "/last-request"):
            sent = [e for e in self.helix if 200 <= e["status"] < 300]
            last = self.last_request or ({"captured": True, **sent[-1]} if sent else None)
            return httpx.Response(200, json=last or {"captured": False})
        return httpx.Response(404, json={"code": "not_found"})


def run(stack: FakeStack, tmp_path: Path) -> list[Any]:
    urls = {name: f"http://{name}.test" for name in SERVICES}
    log = OrchestratorLog(tmp_path / "orchestrator.log", Redactor(stack.settings.secret_values()))
    with httpx.Client(transport=httpx.MockTransport(stack.handler)) as client:
        ctx = StepContext(urls, stack.settings, log, client)
        return run_steps(mgm.steps(stack.settings), ctx)


def failed(results: list[Any]) -> tuple[str, str]:
    [bad] = [r for r in results if r.status == "failed"]
    return bad.name, bad.error


def test_a_good_run_passes_whatever_the_backend_retried(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    """Only chat messages answered 2xx count: the real backend may retry Helix up to 3 times."""
    stack = FakeStack(settings)
    stack.helix = [stack.chat(503), stack.chat(200)]
    results = run(stack, tmp_path)
    assert [r.status for r in results] == ["passed"] * 9
    helix = next(r for r in results if r.name == "helix-chat-message")
    assert helix.result == "one chat message naming Arthas, sent with the configured identity"


def test_viewer_ids_are_strings_like_the_mgm_scripts(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    stack = FakeStack(settings)
    stack.helix = [stack.chat()]
    run(stack, tmp_path)
    sent = {path: request for _, path, request in stack.calls}
    assert json.loads(sent["/emit"].content)["chatterUserId"] == "e2e-viewer-1"
    assert sent["/token"].url.params["userId"] == "e2e-viewer-1"
    harness = json.loads(sent["/api/e2e/prepare-pending-payout"].content)
    assert harness == {"twitchUserId": "e2e-viewer-1"}


def test_no_identity_makes_more_than_5_backend_calls(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    """The real backend allows 5 API calls per identity (JWT user, desktop key) per minute."""
    stack = FakeStack(settings)
    stack.helix = [stack.chat()]
    run(stack, tmp_path)
    per_identity: Counter[str] = Counter()
    for service, _, request in stack.calls:
        if service == "backend":
            headers = request.headers
            per_identity[headers.get("x-mgm-apikey") or headers["authorization"]] += 1
    desktop_key = settings.mgm.api_key.get_secret_value()
    run_sequences = sum(path == "/run-sequence" for _, path, _ in stack.calls)
    per_identity[desktop_key] += 3 * run_sequences  # synthetic-desktop's own three calls
    assert per_identity == {"Bearer jwt.e2e-viewer-1": 2, desktop_key: 4}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": {"broadcaster_id": "1971641", "sender_id": "1971641",
                   "message": "Награда отправлена персонажу Arthas на почту, проверяй ящик"}},
         "expected exactly 'Награда отправлена персонажу Arthas на почту, проверяй ящик!'"),
        ({"credentialsMatch": False, "clientIdHeader": "drifted",
          "credentialProblem": "Client ID and OAuth token do not match"},
         "the backend's Helix credentials differ from the configured ones: Client ID and OAuth "
         "token do not match (Client-Id sent: 'drifted', configured 'envkitdemoclientid'"),
        ({"body": {"broadcaster_id": "e2e-ci-broadcaster", "sender_id": "e2e-ci-broadcaster",
                   "message": TEXT}},
         "broadcaster_id/sender_id were e2e-ci-broadcaster/e2e-ci-broadcaster, configured "
         "1971641"),
    ],
    ids=["text-not-exact", "credentials-drift-in-lenient-mode", "broadcaster"],
)  # fmt: skip
def test_the_chat_message_must_be_exact(
    settings: EnvkitSettings, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    stack = FakeStack(settings)
    stack.helix = [stack.chat(**change)]
    name, error = failed(run(stack, tmp_path))
    assert name == "helix-chat-message"
    assert message in error


@pytest.mark.parametrize(
    ("statuses", "count"), [([], 0), ([401], 0), ([503, 503, 503], 0), ([200, 200], 2)]
)
def test_exactly_one_chat_message_must_be_answered_2xx(
    settings: EnvkitSettings, tmp_path: Path, statuses: list[int], count: int
) -> None:
    stack = FakeStack(settings)
    stack.helix = [stack.chat(status) for status in statuses]
    name, error = failed(run(stack, tmp_path))
    assert name == "helix-chat-message"
    expected = "expected exactly one POST /helix/chat/messages answered 2xx, mock-helix answered"
    assert f"{expected} {count} " in error


def test_last_request_must_show_the_message_captured(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    """MGM's orchestrator reads /last-request's `captured`; the scenario checks it too."""
    stack = FakeStack(settings)
    stack.helix = [stack.chat()]
    stack.last_request = {"captured": False}
    name, error = failed(run(stack, tmp_path))
    assert name == "helix-chat-message"
    assert "/last-request should show this chat message as captured" in error
