"""synthetic-desktop: the payout choreography, stopping rules, run journal, input validation."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from envkit.services.synthetic_desktop.app import create_app
from envkit.services.synthetic_desktop.sequence import Settings

API_KEY = "desktop-api-key-value"


def env_for(url: str) -> dict[str, str]:
    return {"SyntheticDesktop__BackendBaseUrl": url, "Mgm__ApiKey": API_KEY}


@pytest.fixture
def client(fake_backend: Any, client_for: Any) -> httpx.Client:
    return client_for(create_app(env_for(fake_backend.url)))


def test_health_is_the_body_mgm_health_verifier_compares(client: httpx.Client) -> None:
    assert client.get("/health").json() == {
        "status": "healthy",
        "component": "SyntheticDesktop",
        "name": "synthetic-desktop",
    }


def test_the_sequence_calls_the_backend_in_order_with_the_api_key(
    client: httpx.Client, fake_backend: Any
) -> None:
    answer = client.post("/run-sequence", json={"payoutId": "p-42", "characterName": "Arthas"})

    assert answer.status_code == 200
    run = answer.json()
    assert (run["ok"], run["error"], run["payoutId"]) == (True, None, "p-42")
    calls = [(r.method, r.path, r.json()) for r in fake_backend.received]
    assert calls == [
        ("POST", "/api/payouts/p-42/confirm-acceptance", {"characterName": "Arthas"}),
        ("PATCH", "/api/payouts/p-42/status", {"status": "InProgress"}),
        ("PATCH", "/api/payouts/p-42/status", {"status": "Sent"}),
    ]
    assert {"ok", "steps", "error", "completedAtUtc"} <= set(run)
    assert all(r.headers["x-mgm-apikey"] == API_KEY for r in fake_backend.received)
    assert [s["name"] for s in run["steps"]] == [
        "confirm-acceptance",
        "mark-in-progress",
        "mark-sent",
    ]
    step = run["steps"][0]
    assert {"name", "statusCode", "bodySnippet"} <= set(step)
    assert (step["method"], step["path"], step["statusCode"], step["ok"]) == (
        "POST",
        "/api/payouts/p-42/confirm-acceptance",
        200,
        True,
    )
    assert step["bodySnippet"] == '{"ok":true}'
    assert step["durationMs"] >= 0
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(stamp, run["startedAtUtc"])
    assert re.fullmatch(stamp, run["completedAtUtc"])
    assert client.get("/last-run").json() == run
    assert API_KEY not in answer.text


def test_the_run_stops_at_the_first_non_2xx(client: httpx.Client, fake_backend: Any) -> None:
    def refuse_sent(got: Any) -> tuple[int, Any] | None:
        if got.method == "PATCH" and got.json() == {"status": "Sent"}:
            return 409, {"code": "invalid_transition", "message": "InProgress -> Sent refused"}
        return None

    fake_backend.responder = refuse_sent
    run = client.post("/run-sequence", json={"payoutId": 7, "characterName": "Jaina"}).json()

    assert run["ok"] is False
    assert [(s["name"], s["statusCode"], s["ok"]) for s in run["steps"]] == [
        ("confirm-acceptance", 200, True),
        ("mark-in-progress", 200, True),
        ("mark-sent", 409, False),
    ]
    assert run["error"] == "Step 'mark-sent' (PATCH /api/payouts/7/status) answered 409."
    assert "invalid_transition" in run["steps"][2]["bodySnippet"]


def test_a_failed_first_step_runs_nothing_else(client: httpx.Client, fake_backend: Any) -> None:
    fake_backend.responder = lambda got: (404, {"code": "not_found"})
    run = client.post("/run-sequence", json={"payoutId": "9", "characterName": "Thrall"}).json()
    assert [s["name"] for s in run["steps"]] == ["confirm-acceptance"]
    assert len(fake_backend.received) == 1
    assert run["error"].endswith("answered 404.")


def test_a_401_hints_at_the_api_key(client: httpx.Client, fake_backend: Any) -> None:
    fake_backend.responder = lambda got: (401, {"code": "unauthorized"})
    run = client.post("/run-sequence", json={"payoutId": "9", "characterName": "Thrall"}).json()
    assert run["error"] == (
        "Step 'confirm-acceptance' (POST /api/payouts/9/confirm-acceptance) answered 401. "
        "Check that Mgm__ApiKey matches the backend's."
    )


def test_body_snippets_are_at_most_300_characters(client: httpx.Client, fake_backend: Any) -> None:
    fake_backend.responder = lambda got: (200, "y" * 5000)
    run = client.post("/run-sequence", json={"payoutId": "1", "characterName": "Uther"}).json()
    assert run["ok"] is True
    assert all(s["bodySnippet"] == "y" * 300 for s in run["steps"])


def test_an_unreachable_backend_is_recorded_not_raised(
    client_for: Any, closed_port_url: str
) -> None:
    client = client_for(create_app(env_for(closed_port_url)))
    answer = client.post("/run-sequence", json={"payoutId": "1", "characterName": "Uther"})
    assert answer.status_code == 200
    run = answer.json()
    [step] = run["steps"]
    assert (step["statusCode"], step["ok"]) == (None, False)
    assert run["error"].startswith(
        "Step 'confirm-acceptance' (POST /api/payouts/1/confirm-acceptance) could not reach "
        f"the backend at {closed_port_url}: ConnectError"
    )


def test_an_injected_transport_replaces_the_network(client_for: Any) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        return httpx.Response(204)

    app = create_app(env_for("http://backend:8080"), transport=httpx.MockTransport(handler))
    run = client_for(app).post("/run-sequence", json={"payoutId": "5", "characterName": "Anduin"})
    assert run.json()["ok"] is True
    assert seen == [
        "POST http://backend:8080/api/payouts/5/confirm-acceptance",
        "PATCH http://backend:8080/api/payouts/5/status",
        "PATCH http://backend:8080/api/payouts/5/status",
    ]


NO_RUN = {"ok": False, "steps": [], "error": None, "completedAtUtc": None}


def test_last_run_before_any_run_is_an_empty_not_ok_record(client: httpx.Client) -> None:
    """MGM's Tier B orchestrator reads /last-run; before a run it is 200 with this exact shape."""
    answer = client.get("/last-run")
    assert (answer.status_code, answer.json()) == (200, NO_RUN)


def test_runs_journal_lists_and_clears(client: httpx.Client) -> None:
    for name in ("One", "Two"):
        client.post("/run-sequence", json={"payoutId": "1", "characterName": name})
    assert [r["characterName"] for r in client.get("/runs").json()] == ["One", "Two"]
    assert client.get("/last-run").json()["characterName"] == "Two"
    assert client.delete("/runs").json() == {"cleared": 2}
    assert client.get("/last-run").json() == NO_RUN
    client.post("/run-sequence", json={"payoutId": "1", "characterName": "Three"})
    assert client.post("/reset").json() == {"cleared": 1}


@pytest.mark.parametrize(
    ("content", "code", "field"),
    [
        (b"{oops", "malformed_json", None),
        (b"", "malformed_json", None),
        (b'{"payoutId": "1"}', "invalid_body", "characterName"),
        (b'{"characterName": "A"}', "invalid_body", "payoutId"),
        (b'{"payoutId": "1", "characterName": 5}', "invalid_body", "characterName"),
        (b'{"payoutId": "1", "characterName": ""}', "invalid_body", "characterName"),
        (b'{"payoutId": [1], "characterName": "A"}', "invalid_body", "payoutId"),
        (b'{"payoutId": true, "characterName": "A"}', "invalid_body", "payoutId"),
        (b'{"payoutId": "../admin", "characterName": "A"}', "invalid_body", "payoutId"),
        (b'["1", "A"]', "invalid_body", "(body)"),
    ],
)
def test_bad_bodies_are_a_clear_400_and_call_nothing(
    client: httpx.Client, fake_backend: Any, content: bytes, code: str, field: str | None
) -> None:
    answer = client.post("/run-sequence", content=content)
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == code
    if field is not None:
        assert field in [problem["field"] for problem in error["details"]]
    assert fake_backend.received == []
    assert client.get("/runs").json() == []


def test_oversize_bodies_are_refused(client: httpx.Client, fake_backend: Any) -> None:
    huge = b'{"payoutId": "1", "characterName": "' + b"x" * 70_000 + b'"}'
    answer = client.post("/run-sequence", content=huge)
    assert (answer.status_code, answer.json()["code"]) == (413, "payload_too_large")
    assert fake_backend.received == []


def test_extra_fields_of_the_request_are_ignored(client: httpx.Client, fake_backend: Any) -> None:
    """MGM's orchestrator may send more than payoutId and characterName."""
    body = {"payoutId": "p-1", "characterName": "Arthas", "twitchUserId": "e2e-viewer-1", "x": 1}
    run = client.post("/run-sequence", json=body).json()
    assert run["ok"] is True
    assert len(fake_backend.received) == 3


@pytest.mark.parametrize(
    "content",
    [
        b'{"payoutId": "1", "characterName": NaN}',
        b'{"payoutId": "1", "characterName": "\\udc00"}',
        b"[" * 3000 + b"]" * 3000,
        b'{"payoutId": "1", "characterName": "A", "n": ' + b"7" * 5000 + b"}",
    ],
    ids=["nan", "lone-surrogate", "deep", "huge-int"],
)
def test_hostile_bodies_are_a_400_not_a_5xx(
    client: httpx.Client, fake_backend: Any, content: bytes
) -> None:
    answer = client.post("/run-sequence", content=content)
    assert (answer.status_code, answer.json()["code"]) == (400, "malformed_json")
    assert fake_backend.received == []
    assert client.get("/runs").json() == []


def test_a_nul_in_the_character_name_is_sent_on_as_json(
    client: httpx.Client, fake_backend: Any
) -> None:
    run = client.post("/run-sequence", json={"payoutId": "1", "characterName": "A\x00"}).json()
    assert fake_backend.received[0].json() == {"characterName": "A\x00"}
    assert client.get("/last-run").json() == run


def test_defaults_are_the_backend_on_localhost_no_key_and_100_s_per_call(client_for: Any) -> None:
    """Like MGM's synthetic desktop, it starts with ASPNETCORE_URLS alone."""
    assert Settings.from_env({"ASPNETCORE_URLS": "http://+:8080"}) == Settings(
        "http://127.0.0.1:8080", ""
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    app = create_app({"ASPNETCORE_URLS": "http://+:8080"}, transport=httpx.MockTransport(handler))
    client_for(app).post("/run-sequence", json={"payoutId": "1", "characterName": "A"})
    assert len(seen) == 3
    assert str(seen[0].url) == "http://127.0.0.1:8080/api/payouts/1/confirm-acceptance"
    assert all(r.extensions["timeout"]["read"] == 100.0 for r in seen)


def test_without_an_api_key_no_header_is_sent_and_the_401_says_so(
    client_for: Any, fake_backend: Any
) -> None:
    fake_backend.responder = lambda got: (401, {"code": "missing_api_key"})
    app = create_app({"SyntheticDesktop__BackendBaseUrl": fake_backend.url})
    run = client_for(app).post("/run-sequence", json={"payoutId": "9", "characterName": "A"})
    assert "x-mgm-apikey" not in fake_backend.received[0].headers
    assert run.json()["error"] == (
        "Step 'confirm-acceptance' (POST /api/payouts/9/confirm-acceptance) answered 401. "
        "synthetic-desktop has no Mgm__ApiKey; set it to the backend's key."
    )


def test_a_bad_backend_url_names_the_variable() -> None:
    with pytest.raises(ValueError, match=re.escape(
        "SyntheticDesktop__BackendBaseUrl='backend:8080' is not an http(s) URL; use a value "
        "like 'http://backend:8080'."
    )):  # fmt: skip
        Settings.from_env({"SyntheticDesktop__BackendBaseUrl": "backend:8080"})


def test_settings_do_not_show_the_api_key() -> None:
    assert API_KEY not in repr(Settings.from_env(env_for("http://backend:8080")))
