"""mock-helix: Send Chat Message, Helix errors and headers, auth modes, journal, faults, input."""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from envkit.services.common import log
from envkit.services.mock_helix.app import create_app
from envkit.services.mock_helix.faults import FaultInjector
from envkit.services.mock_helix.helix import AuthMode, RateLimiter, Settings
from envkit.services.mock_helix.models import FaultPlan

TOKEN = "broadcaster-user-access-token-value"
CLIENT_ID = "helixclientid123"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Client-Id": CLIENT_ID}
MESSAGE = {"broadcaster_id": "1971641", "sender_id": "1971641", "message": "Arthas got 1000 gold"}


def env(**extra: str) -> dict[str, str]:
    return {"Twitch__BroadcasterAccessToken": TOKEN, "Twitch__HelixClientId": CLIENT_ID, **extra}


@pytest.fixture
def client(client_for: Any) -> httpx.Client:
    """mock-helix in its default mode (any credentials accepted), with values to compare."""
    return client_for(create_app(env()))


@pytest.fixture
def strict(client_for: Any) -> httpx.Client:
    """mock-helix in envkit's mode: credentials must equal the configured values."""
    return client_for(create_app(env(MockHelix__StrictAuth="values")))


@pytest.fixture
def log_lines() -> Any:
    lines: list[str] = []
    sink = log.add(lambda m: lines.append(str(m).rstrip("\n")), format="{message}")
    yield lines
    log.remove(sink)


def send(client: httpx.Client, body: Any = MESSAGE, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("headers", AUTH)
    return client.post("/helix/chat/messages", json=body, **kwargs)


def assert_ratelimit_headers(response: httpx.Response) -> None:
    assert response.headers["Ratelimit-Limit"] == "800"
    assert int(response.headers["Ratelimit-Remaining"]) >= 0
    assert int(response.headers["Ratelimit-Reset"]) >= int(time.time())


def test_health_is_the_body_mgm_health_verifier_compares(client: httpx.Client) -> None:
    assert client.get("/health").json() == {
        "status": "healthy",
        "component": "MockHelixApi",
        "name": "mock-helix",
    }


# --- Send Chat Message -----------------------------------------------------------------------


def test_send_chat_message_answers_like_helix(client: httpx.Client) -> None:
    answer = send(client)

    assert answer.status_code == 200
    [sent] = answer.json()["data"]
    assert uuid.UUID(sent["message_id"])
    assert (sent["is_sent"], sent["drop_reason"]) == (True, None)
    assert_ratelimit_headers(answer)
    assert answer.headers["Ratelimit-Remaining"] == "799"
    assert send(client).headers["Ratelimit-Remaining"] == "798"


def test_parameters_may_come_from_the_query_string(client: httpx.Client) -> None:
    answer = client.post("/helix/chat/messages", params=MESSAGE, headers=AUTH)
    assert answer.status_code == 200
    assert client.get("/last-request").json()["query"] == MESSAGE


def last_entry(client: httpx.Client) -> dict[str, Any]:
    entries: list[dict[str, Any]] = client.get("/requests").json()
    return entries[-1]


def test_journal_records_the_request_with_the_token_redacted(client: httpx.Client) -> None:
    send(client, {**MESSAGE, "reply_parent_message_id": "abc"}, params={"trace": "1"})
    entry = last_entry(client)

    assert (entry["method"], entry["path"], entry["status"]) == (
        "POST",
        "/helix/chat/messages",
        200,
    )
    assert entry["query"] == {"trace": "1"}
    assert entry["headers"]["authorization"] == "Bearer ***"
    assert entry["headers"]["client-id"] == CLIENT_ID
    assert (entry["authorizationHeader"], entry["clientIdHeader"]) == ("Bearer ***", CLIENT_ID)
    assert (entry["credentialsMatch"], entry["credentialProblem"]) == (True, None)
    assert (entry["authorized"], entry["authProblem"], entry["clientId"]) == (True, None, CLIENT_ID)
    assert entry["authMode"] == "false"
    assert entry["body"] == {**MESSAGE, "reply_parent_message_id": "abc"}
    assert entry["fault"] is None
    assert entry["response"]["data"][0]["is_sent"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["at"])
    assert TOKEN not in json.dumps(client.get("/requests").json())


DRIFTS = [
    ({"Client-Id": CLIENT_ID}, "OAuth token is missing"),
    ({"Authorization": "Bearer wrong", "Client-Id": CLIENT_ID}, "Invalid OAuth token"),
    ({"Authorization": f"OAuth {TOKEN}", "Client-Id": CLIENT_ID}, "Invalid OAuth token"),
    ({"Authorization": f"Bearer {TOKEN}"}, "Client ID is missing"),
    (
        {"Authorization": f"Bearer {TOKEN}", "Client-Id": "other"},
        "Client ID and OAuth token do not match",
    ),
]


@pytest.mark.parametrize(("headers", "message"), DRIFTS)
def test_by_default_any_credentials_are_accepted_but_drift_is_journaled(
    client: httpx.Client, headers: dict[str, str], message: str
) -> None:
    """MGM's mock-helix verifier posts arbitrary credentials and expects a 2xx (the default)."""
    answer = send(client, headers=headers)
    assert answer.status_code == 200
    entry = last_entry(client)
    assert (entry["authorized"], entry["authProblem"], entry["status"]) == (True, None, 200)
    assert (entry["credentialsMatch"], entry["credentialProblem"]) == (False, message)


@pytest.mark.parametrize(("headers", "message"), DRIFTS)
def test_values_mode_answers_drifted_credentials_with_a_helix_401(
    strict: httpx.Client, headers: dict[str, str], message: str
) -> None:
    answer = send(strict, headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"error": "Unauthorized", "status": 401, "message": message}
    assert_ratelimit_headers(answer)
    entry = last_entry(strict)
    assert (entry["authorized"], entry["authProblem"], entry["status"]) == (False, message, 401)
    assert (entry["credentialsMatch"], entry["credentialProblem"]) == (False, message)
    assert entry["authMode"] == "values"
    assert send(strict).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": "Bearer anything", "Client-Id": "any-client"}, 200),
        ({"Client-Id": "any-client"}, 401),
        ({"Authorization": "Bearer anything"}, 401),
        ({"Authorization": "Basic dXNlcjpwdw==", "Client-Id": "any-client"}, 401),
    ],
)
def test_true_mode_wants_a_bearer_token_and_a_client_id_of_any_value(
    client_for: Any, headers: dict[str, str], status: int
) -> None:
    client = client_for(create_app(env(MockHelix__StrictAuth="TRUE")))
    assert send(client, headers=headers).status_code == status
    assert last_entry(client)["credentialsMatch"] is False


def test_credentials_are_compared_even_with_nothing_configured(client_for: Any) -> None:
    client = client_for(create_app({}))
    assert send(client).status_code == 200
    entry = last_entry(client)
    assert entry["credentialsMatch"] is False
    assert "has no Twitch__BroadcasterAccessToken" in entry["credentialProblem"]


def test_drift_is_logged_without_the_token(client: httpx.Client, log_lines: list[str]) -> None:
    send(client, headers={"Authorization": f"Bearer {TOKEN}x", "Client-Id": "drifted"})
    [line] = [line for line in log_lines if "credentials differ" in line]
    assert line == (
        "POST /helix/chat/messages: credentials differ from the configured ones: Invalid OAuth "
        "token (Client-Id sent: 'drifted', Authorization: 'Bearer ***'); answered 200 in "
        "StrictAuth mode false"
    )
    assert not any(TOKEN in text for text in log_lines)
    assert TOKEN not in json.dumps(client.get("/requests").json())


# --- /last-request, as MGM's mock-helix verifier reads it ------------------------------------


def test_last_request_is_not_captured_before_any_chat_message(strict: httpx.Client) -> None:
    """MGM's verifier reads `captured`; before a 2xx chat message it is false, with a 200."""
    assert strict.get("/last-request").json() == {"captured": False}
    send(strict, headers={})  # refused 401: not a captured chat message
    strict.get("/helix/users", headers=AUTH)  # not a chat message
    answer = strict.get("/last-request")
    assert (answer.status_code, answer.json()) == (200, {"captured": False})


def test_last_request_captures_the_newest_chat_message_answered_2xx(
    client: httpx.Client,
) -> None:
    """MGM's verifier posts a chat message with arbitrary credentials, then reads it back."""
    send(client, {**MESSAGE, "message": "first"})
    answer = send(client, headers={"Authorization": "Bearer arbitrary", "Client-Id": "x"})
    assert answer.status_code == 200
    client.post("/admin/faults", json={"status": 503, "count": 1})
    assert send(client, {**MESSAGE, "message": "failed"}).status_code == 503
    last = client.get("/last-request").json()
    assert last["captured"] is True
    assert last["body"] == MESSAGE
    assert last["authorizationHeader"] == "Bearer ***"
    assert last["clientIdHeader"] == "x"
    assert (last["credentialsMatch"], last["status"]) == (False, 200)
    assert client.delete("/requests").json() == {"cleared": 3}
    assert client.get("/last-request").json() == {"captured": False}


@pytest.mark.parametrize("missing", ["broadcaster_id", "sender_id", "message"])
def test_missing_parameters_are_a_helix_400(client: httpx.Client, missing: str) -> None:
    body = {k: v for k, v in MESSAGE.items() if k != missing}
    answer = send(client, body)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "Bad Request",
        "status": 400,
        "message": f'Missing required parameter "{missing}"',
    }


def test_messages_longer_than_500_characters_are_refused(client: httpx.Client) -> None:
    assert send(client, {**MESSAGE, "message": "x" * 500}).status_code == 200
    answer = send(client, {**MESSAGE, "message": "x" * 501})
    assert answer.status_code == 400
    assert "may not exceed 500 characters" in answer.json()["message"]


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"{broken", 400, "The request body is not valid JSON"),
        (b"[1, 2]", 400, "The request body must be a JSON object"),
        (json.dumps({**MESSAGE, "broadcaster_id": 1971641}).encode(), 400, "must be a string"),
        (json.dumps({**MESSAGE, "message": ["hi"]}).encode(), 400, "must be a string"),
        (b'{"message": "' + b"x" * 70_000 + b'"}', 413, "larger than 65536 bytes"),
    ],
)
def test_bad_bodies_are_answered_in_helix_shape(
    client: httpx.Client, content: bytes, status: int, message: str
) -> None:
    answer = client.post("/helix/chat/messages", content=content, headers=AUTH)
    assert answer.status_code == status
    body = answer.json()
    assert (body["status"], set(body)) == (status, {"error", "status", "message"})
    assert message in body["message"]
    assert_ratelimit_headers(answer)


def test_unparsable_bodies_are_journaled_as_text(client: httpx.Client) -> None:
    client.post("/helix/chat/messages", content=b"{broken", headers=AUTH)
    entry = last_entry(client)
    assert (entry["body"], entry["bodyText"]) == (None, "{broken")


@pytest.mark.parametrize(
    "content",
    [
        b'{"broadcaster_id": "1", "sender_id": "1", "message": NaN}',
        b'{"broadcaster_id": "1", "sender_id": "1", "message": "x", "n": -Infinity}',
        b'{"broadcaster_id": "1", "sender_id": "1", "message": "\\ud800"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 70 + b"1" + b"}" * 70,
        b"\x00\xff\xfe garbage",
        b'{"message": ' + b"9" * 5000 + b"}",
        b'{"broadcaster_id": "1", "sender_id": "1", "message": "x", "f": 1e999}',
    ],
    ids=[
        "nan",
        "infinity",
        "lone-surrogate",
        "deep-array",
        "deep-object",
        "bytes",
        "huge-int",
        "overflow",
    ],
)
def test_hostile_bodies_get_a_helix_400_and_the_journal_keeps_working(
    client: httpx.Client, content: bytes
) -> None:
    answer = client.post("/helix/chat/messages", content=content, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["message"] == "The request body is not valid JSON"
    journal = client.get("/requests")
    assert journal.status_code == 200
    assert journal.json()[-1]["body"] is None
    assert client.get("/last-request").json() == {"captured": False}


def test_hostile_paths_and_query_strings_are_journaled_readably(client: httpx.Client) -> None:
    answer = client.post("/helix/%ED%A0%80/x%00?q=%ED%A0%80&nul=%00&%FF=1", headers=AUTH)
    assert answer.status_code == 404
    journal = client.get("/requests")
    assert journal.status_code == 200
    assert journal.json()[-1]["query"]["nul"] == "\x00"


def test_nul_characters_are_valid_json_and_journaled(client: httpx.Client) -> None:
    answer = send(client, {**MESSAGE, "message": "a\x00b"})
    assert answer.status_code == 200
    assert client.get("/last-request").json()["body"]["message"] == "a\x00b"
    assert client.get("/requests").status_code == 200


def test_unknown_helix_routes_are_a_helix_404(client: httpx.Client) -> None:
    for method, path in (("GET", "/helix/users"), ("GET", "/helix/chat/messages")):
        answer = client.request(method, path, headers=AUTH)
        assert answer.status_code == 404
        assert answer.json()["error"] == "Not Found"
        assert f"does not implement {method} {path}" in answer.json()["message"]
        assert_ratelimit_headers(answer)


# --- journal ---------------------------------------------------------------------------------


def test_requests_journal_lists_and_clears(strict: httpx.Client) -> None:
    client = strict
    assert client.get("/requests").json() == []
    send(client)
    send(client, headers={})
    assert [e["status"] for e in client.get("/requests").json()] == [200, 401]
    assert client.delete("/requests").json() == {"cleared": 2}
    assert client.get("/requests").json() == []


# --- faults ----------------------------------------------------------------------------------


def test_a_counted_fault_fails_the_next_requests_then_stops(client: httpx.Client) -> None:
    plan = client.post("/admin/faults", json={"status": 503, "count": 2}).json()
    assert plan["plan"] == {"status": 503, "count": 2, "failureRate": 1.0}

    statuses = [send(client).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    faulted = client.get("/requests").json()[0]
    assert faulted["fault"] == {"status": 503, "latencyMs": 0}
    assert faulted["response"] == {
        "error": "Service Unavailable",
        "status": 503,
        "message": "Fault injected by mock-helix",
    }
    described = client.get("/admin/faults").json()
    assert (described["active"], described["remaining"], described["injected"]) == (False, 0, 2)


def test_faults_come_before_auth_and_only_touch_helix(strict: httpx.Client) -> None:
    client = strict
    client.post("/admin/faults", json={"status": 500})
    assert send(client, headers={}).status_code == 500
    assert client.get("/health").status_code == 200
    assert client.get("/requests").status_code == 200
    assert client.delete("/admin/faults").json() == {"cleared": True}
    assert send(client).status_code == 200


def test_an_injected_429_carries_exhausted_rate_limit_headers(client: httpx.Client) -> None:
    client.post("/admin/faults", json={"status": 429, "ratelimitResetSeconds": 30, "count": 1})
    answer = send(client)
    assert answer.status_code == 429
    assert answer.json()["error"] == "Too Many Requests"
    assert answer.headers["Ratelimit-Remaining"] == "0"
    assert abs(int(answer.headers["Ratelimit-Reset"]) - (int(time.time()) + 30)) <= 2


def test_latency_delays_the_answer_on_a_real_server(client: httpx.Client) -> None:
    client.post("/admin/faults", json={"latencyMs": 300, "count": 1})
    started = time.perf_counter()
    answer = send(client)
    assert answer.status_code == 200, "latency alone still serves the request"
    assert time.perf_counter() - started >= 0.3
    assert last_entry(client)["fault"] == {"status": None, "latencyMs": 300}


def test_failure_rate_is_deterministic_with_a_seed(client_for: Any) -> None:
    def pattern(app_env: dict[str, str], plan: dict[str, Any]) -> list[int]:
        client = client_for(create_app(app_env))
        client.post("/admin/faults", json={"status": 500, "failureRate": 0.5, **plan})
        return [send(client).status_code for _ in range(20)]

    rng = random.Random(7)
    expected = [500 if rng.random() < 0.5 else 200 for _ in range(20)]
    assert pattern(env(MockHelix__Seed="7"), {}) == expected
    assert pattern(env(), {"seed": 7}) == expected
    assert {200, 500} <= set(expected), "the seed should exercise both outcomes"


def test_reset_clears_requests_and_faults(client: httpx.Client) -> None:
    client.post("/admin/faults", json={"status": 502})
    send(client)
    assert client.post("/reset").json() == {"cleared": 1, "faultsCleared": True}
    assert send(client).status_code == 200
    assert client.get("/admin/faults").json() == {"active": False, "plan": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": 200}, "status"),
        ({"status": 600}, "status"),
        ({"status": "503"}, "status"),
        ({"status": True}, "status"),
        ({"status": 503, "failureRate": 1.5}, "failureRate"),
        ({"status": 503, "failureRate": "half"}, "failureRate"),
        ({"status": 503, "count": 0}, "count"),
        ({"latencyMs": -1}, "latencyMs"),
        ({"latencyMs": 120_000}, "latencyMs"),
        ({"status": 503, "colour": "red"}, "colour"),
        ({}, "(body)"),
        ({"failureRate": 0.5}, "(body)"),
        ({"status": 503, "ratelimitResetSeconds": 5}, "(body)"),
    ],
)
def test_fault_plans_are_validated(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    answer = client.post("/admin/faults", json=body)
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == "invalid_body"
    assert field in [problem["field"] for problem in error["details"]]
    assert client.get("/admin/faults").json()["active"] is False


def test_fault_admin_rejects_malformed_and_oversize_bodies(client: httpx.Client) -> None:
    malformed = client.post("/admin/faults", content=b"{status: 503}")
    assert (malformed.status_code, malformed.json()["code"]) == (400, "malformed_json")
    huge = client.post("/admin/faults", content=b" " * 70_000)
    assert (huge.status_code, huge.json()["code"]) == (413, "payload_too_large")


def test_incoherent_plans_say_why() -> None:
    with pytest.raises(ValueError, match="ratelimitResetSeconds only applies when status is 429"):
        FaultPlan.model_validate({"status": 500, "ratelimitResetSeconds": 3})
    with pytest.raises(ValueError, match="this plan would do nothing"):
        FaultPlan.model_validate({"latencyMs": 0})


# --- units -----------------------------------------------------------------------------------


def test_fault_injector_counts_requests_not_failures() -> None:
    injector = FaultInjector()
    injector.set(FaultPlan(status=500, failureRate=0.0, count=3))
    assert [injector.draw() for _ in range(4)] == [None] * 4
    assert injector.describe()["seen"] == 3


def test_rate_limiter_spends_points_and_refills_each_window() -> None:
    now = [1000.0]
    limiter = RateLimiter(limit=2, window_seconds=60, clock=lambda: now[0])
    assert limiter.take() == (
        True,
        {"Ratelimit-Limit": "2", "Ratelimit-Remaining": "1", "Ratelimit-Reset": "1060"},
    )
    assert limiter.take()[0] is True
    allowed, headers = limiter.take()
    assert (allowed, headers["Ratelimit-Remaining"]) == (False, "0")
    now[0] = 1060.0
    assert limiter.take() == (
        True,
        {"Ratelimit-Limit": "2", "Ratelimit-Remaining": "1", "Ratelimit-Reset": "1120"},
    )


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (env(MockHelix__Seed="abc"), "MockHelix__Seed='abc' must be an integer"),
        (
            env(MockHelix__StrictAuth="yes"),
            "MockHelix__StrictAuth='yes' is not a mode; use false (accept any credentials, the "
            "default), true (a Bearer token and a Client-Id must be present) or values (they "
            "must equal Twitch__BroadcasterAccessToken and Twitch__HelixClientId).",
        ),
        (
            {"MockHelix__StrictAuth": "values", "Twitch__HelixClientId": CLIENT_ID},
            "MockHelix__StrictAuth=values compares credentials with "
            "Twitch__BroadcasterAccessToken, which is not set; set it to the value the backend "
            "sends, or use MockHelix__StrictAuth=false.",
        ),
        (
            {"MockHelix__StrictAuth": "Values"},
            "Twitch__BroadcasterAccessToken and Twitch__HelixClientId, which are not set",
        ),
    ],
)
def test_settings_name_the_bad_variable_and_the_fix(
    environment: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.from_env(environment)


@pytest.mark.parametrize(
    ("raw", "mode"),
    [(None, AuthMode.ANY), ("", AuthMode.ANY), ("False", AuthMode.ANY), ("true", AuthMode.PRESENT),
     (" VALUES ", AuthMode.VALUES)],
)  # fmt: skip
def test_strict_auth_modes_are_read_in_any_case(raw: str | None, mode: AuthMode) -> None:
    extra = {} if raw is None else {"MockHelix__StrictAuth": raw}
    assert Settings.from_env(env(**extra)).strict_auth is mode


def test_starts_with_only_aspnetcore_urls_accepting_any_credentials() -> None:
    """Like MGM's mock: no variable is required, and the default accepts any credentials."""
    settings = Settings.from_env({"ASPNETCORE_URLS": "http://+:8080"})
    assert settings == Settings("", "", AuthMode.ANY, None)


def test_settings_do_not_show_the_token() -> None:
    assert TOKEN not in repr(Settings.from_env(env()))


def test_a_standing_fault_plan_from_the_environment_survives_reset(client_for: Any) -> None:
    plan = json.dumps({"status": 503, "count": 1})
    standing = client_for(create_app(env(MockHelix__Faults=plan)))
    assert send(standing).status_code == 503
    assert send(standing).status_code == 200  # the counted plan is spent
    assert standing.post("/reset").json()["faultsCleared"] is True
    assert send(standing).status_code == 503  # back after a reset
    assert standing.delete("/admin/faults").json() == {"cleared": True}
    assert send(standing).status_code == 200


def test_a_standing_fault_plan_that_is_not_a_plan_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"^MockHelix__Faults is not a fault plan \(.*\); use"):
        create_app(env(MockHelix__Faults='{"status": 200}'))
    with pytest.raises(ValueError, match=r"^MockHelix__Faults is not a fault plan"):
        create_app(env(MockHelix__Faults="not json"))
