"""The step runner without Docker: a fake scenario against an httpx MockTransport."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envkit.errors import EnvkitError
from envkit.evidence.redact import Redactor
from envkit.scenario.orchestrator import (
    SNIPPET,
    OrchestratorLog,
    Step,
    StepContext,
    load_scenario,
    run_steps,
)
from envkit.spec.settings import EnvkitSettings, load_settings

SECRET = "orchestrator-secret-0042"
API = "http://127.0.0.1:9999"


def answer(request: httpx.Request) -> httpx.Response:
    """The fake service: /ok answers JSON, /text plain text, /long a long body, /down fails."""
    if request.url.path == "/ok":
        return httpx.Response(200, json={"echo": json.loads(request.content or b"null")})
    if request.url.path == "/text":
        return httpx.Response(200, text="<html>not json</html>")
    if request.url.path == "/long":
        return httpx.Response(200, text="x" * (SNIPPET + 100))
    if request.url.path == "/down":
        raise httpx.ConnectError("connection refused", request=request)
    return httpx.Response(404, json={"error": "not_found"})


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[StepContext]:
    settings: EnvkitSettings = load_settings(env_file=None, environ={})
    log = OrchestratorLog(tmp_path / "stack-orchestrator.log", Redactor([SECRET]))
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        yield StepContext({"api": API}, settings, log, client, run_id="run-1")


def log_text(ctx: StepContext) -> str:
    return ctx.log.path.read_text()


def call_ok(ctx: StepContext) -> str:
    response = ctx.http("POST", "api", "/ok", json={"n": 1})
    body = ctx.json(response)
    ctx.expect(body == {"echo": {"n": 1}}, f"unexpected echo {body}", echo=body)
    return "the api echoed the body"


def call_missing(ctx: StepContext) -> str:
    response = ctx.http("GET", "api", f"/missing?token={SECRET}")
    ctx.expect(response.status_code == 200, f"GET /missing answered {response.status_code}")
    return "unreachable"


def never(ctx: StepContext) -> str:
    raise AssertionError("a step after a failure must not run")


def test_steps_pass_fail_then_skip_with_evidence(ctx: StepContext) -> None:
    before: list[str] = []
    after: list[str] = []
    steps = [
        Step("echo", "tier-a", call_ok),
        Step("missing", "tier-b", call_missing, log_of="api"),
        Step("later", "tier-b", never),
    ]
    results = run_steps(
        steps,
        ctx,
        before_step=lambda s: before.append(s.name),
        on_step=lambda r: after.append(r.name),
    )
    assert [(r.name, r.tier, r.status) for r in results] == [
        ("echo", "tier-a", "passed"),
        ("missing", "tier-b", "failed"),
        ("later", "tier-b", "skipped"),
    ]
    assert before == after == ["echo", "missing"]  # skipped steps are not observed
    echo, missing, later = results
    assert echo.result == "the api echoed the body"
    assert (echo.request, echo.status_code, echo.error) == (f"POST {API}/ok", 200, None)
    assert echo.evidence == {
        "calls": [
            {
                "request": f"POST {API}/ok",
                "body": {"n": 1},
                "status": 200,
                "response": '{"echo":{"n":1}}',
            }
        ],
        "echo": {"echo": {"n": 1}},
    }
    assert echo.started_at.endswith("Z")
    assert echo.duration_s >= 0
    assert missing.error == "GET /missing answered 404"
    assert missing.status_code == 404
    assert missing.evidence["calls"][0]["response"] == '{"error":"not_found"}'
    assert (later.error, later.evidence, later.started_at) == (None, {}, "")
    assert ctx.current is None


def test_the_orchestrator_log_has_each_call_and_step_and_no_secret(ctx: StepContext) -> None:
    run_steps([Step("echo", "tier-a", call_ok), Step("missing", "tier-b", call_missing)], ctx)
    text = log_text(ctx)
    assert SECRET not in text
    lines = text.splitlines()
    assert lines[0].endswith("step tier-a/echo: start")
    assert f"POST {API}/ok -> 200 in " in lines[1]
    assert "step tier-a/echo: the api echoed the body (" in lines[2]
    assert f"GET {API}/missing?token=*** -> 404 in " in lines[4]
    assert "step tier-b/missing: FAILED: GET /missing answered 404 (" in lines[5]
    assert all(line[:4].isdigit() and line.split(" ")[0].endswith("Z") for line in lines)


def test_a_long_response_is_kept_as_a_snippet(ctx: StepContext) -> None:
    def long(ctx: StepContext) -> str:
        ctx.http("GET", "api", "/long")
        return "read"

    (result,) = run_steps([Step("long", "tier-a", long)], ctx)
    assert result.evidence["calls"][0]["response"] == "x" * SNIPPET


def test_a_transport_error_fails_the_step_naming_the_call(ctx: StepContext) -> None:
    def down(ctx: StepContext) -> str:
        ctx.http("GET", "api", "/down")
        return "unreachable"

    (result,) = run_steps([Step("down", "tier-a", down)], ctx)
    assert result.status == "failed"
    assert result.error == f"GET {API}/down failed: ConnectError('connection refused')"
    assert f"GET {API}/down -> transport error: ConnectError" in log_text(ctx)


def test_a_service_without_a_url_fails_the_step(ctx: StepContext) -> None:
    def other(ctx: StepContext) -> str:
        ctx.http("GET", "db", "/")
        return "unreachable"

    (result,) = run_steps([Step("other", "tier-a", other)], ctx)
    assert result.error == "the stack has no service 'db' with a URL"


def test_a_body_that_is_not_json_fails_the_step_with_its_start(ctx: StepContext) -> None:
    def text(ctx: StepContext) -> str:
        ctx.json(ctx.http("GET", "api", "/text"))
        return "unreachable"

    (result,) = run_steps([Step("text", "tier-a", text)], ctx)
    assert result.error == (
        f"GET {API}/text answered 200 with a body that is not JSON: '<html>not json</html>'"
    )


def test_a_bug_in_a_step_is_that_steps_failure(ctx: StepContext) -> None:
    def buggy(ctx: StepContext) -> str:
        return str({}["missing"])

    results = run_steps([Step("buggy", "tier-a", buggy), Step("later", "tier-a", never)], ctx)
    assert [r.status for r in results] == ["failed", "skipped"]
    assert results[0].error == "KeyError: 'missing'"


def test_expect_keeps_evidence_even_when_it_holds(ctx: StepContext) -> None:
    def expect(ctx: StepContext) -> str:
        ctx.expect(True, "never", seen=[1, 2])
        ctx.expect(False, "the second check failed", why="because")
        return "unreachable"

    (result,) = run_steps([Step("expect", "tier-a", expect)], ctx)
    assert result.error == "the second check failed"
    assert result.evidence == {"seen": [1, 2], "why": "because"}


def test_a_scenario_module_that_does_not_import_says_what_to_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings(env_file=None, environ={})
    with pytest.raises(EnvkitError) as info:
        load_scenario("no_such_pkg.scenario", settings)
    assert str(info.value) == (
        "Scenario module 'no_such_pkg.scenario' (the stack file's `scenario`) cannot be "
        "imported: No module named 'no_such_pkg'. Name an importable module that defines "
        "steps(settings) (a module next to the stack file imports too)."
    )
