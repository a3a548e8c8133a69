"""Each injected fault is named by its own class, with its first log, through public means.

Faults come from an override (a mock-helix fault plan, a bad setting), a copy of the
stack (a memory or CPU limit), or an action on the running stack (`docker kill`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from envkit.engines.images import ImageResult
from envkit.lifecycle.environment import Environment
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

ROOT = Path(__file__).resolve().parents[2]
MGM_STACK = ROOT / "compose" / "tier-b.toml"
NOT_STARTED = "not run: the stack did not start"


@pytest.fixture
def fault_settings(sandbox: Callable[..., EnvkitSettings]) -> EnvkitSettings:
    return sandbox(ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS="30")


def helix_plan(**plan: Any) -> dict[str, dict[str, str]]:
    """An override giving mock-helix a standing fault plan (it survives the scenario's reset)."""
    return {"mock-helix": {"MockHelix__Faults": json.dumps(plan)}}


def stack_copy(tmp_path: Path, service: str, lines: str) -> Path:
    """The MGM stack with `lines` added to one service's table."""
    header = f"[services.{service}]\n"
    text = MGM_STACK.read_text()
    assert header in text
    path = tmp_path / "limited.toml"
    path.write_text(text.replace(header, header + lines + "\n", 1))
    return path


def leftovers(engine: docker.DockerClient, run_id: str) -> list[str]:
    label = {"label": f"envkit.run={run_id}"}
    return [c.name for c in engine.containers.list(all=True, filters=label)] + [
        n.name for n in engine.networks.list(filters=label)
    ]


def summary(where: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((where / "summary.json").read_text())
    return result


def test_helix_answering_5xx_until_the_backend_gives_up_is_helix_errors(
    fault_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    outcome, where = run_isolated(fault_settings, overrides=helix_plan(status=503))
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "helix-errors", outcome.failure
    assert outcome.failure.first_log == "mgm-backend.log"
    assert "503, 503, 503" in outcome.failure.message
    assert any("helix POST" in q and "-> 503 (attempt 3/3)" in q for q in outcome.failure.quotes)
    assert "helix-errors" in (where / "report.md").read_text()
    assert leftovers(engine, outcome.run_id) == []


def test_helix_slower_than_the_backend_waits_is_helix_too_slow(
    fault_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    # The backend waits 3 s per attempt; mock-helix answers after 5 s.
    outcome, _ = run_isolated(fault_settings, overrides=helix_plan(latencyMs=5000))
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "helix-too-slow", outcome.failure
    assert outcome.failure.first_log == "mgm-backend.log"  # not synthetic-desktop's
    assert any("Timeout (attempt" in q for q in outcome.failure.quotes)
    assert leftovers(engine, outcome.run_id) == []


def test_a_429_honoured_within_the_retry_budget_is_no_failure(
    fault_settings: EnvkitSettings,
) -> None:
    plan = helix_plan(status=429, count=2, ratelimitResetSeconds=1)
    outcome, where = run_isolated(fault_settings, overrides=plan)
    assert outcome.verdict == "passed", outcome.failure
    backend_log = (where / "mgm-backend.log").read_text()
    assert "-> 429 (attempt 1/3)" in backend_log
    assert "-> 429 (attempt 2/3)" in backend_log
    assert "-> 200 (attempt 3/3)" in backend_log


def _kill(service: str) -> Callable[[Environment], None]:
    def kill(env: Environment) -> None:
        container = env.runs[service].container
        assert container is not None
        container.wrapped.kill()  # what `docker kill` does: SIGKILL, exit code 137

    return kill


def test_a_service_killed_after_it_was_ready_is_service_died(
    fault_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    outcome, where = run_isolated(fault_settings, after_start=_kill("mock-jwt"))
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "service-died", outcome.failure
    assert outcome.failure.first_log == "mgm-mock-jwt.log"
    assert outcome.failure.message.startswith(
        "mock-jwt stopped during the run after it was ready: exited (code 137)."
    )
    assert "OOM" not in outcome.failure.message
    assert outcome.failure.quotes  # its last log lines
    rows = summary(where)["services"]
    assert rows["mock-jwt"]["state"] == "exited (code 137)"
    assert rows["backend"]["state"] == "running"
    assert "service-died" in (where / "report.md").read_text()
    assert leftovers(engine, outcome.run_id) == []


def test_a_service_that_exits_at_start_names_its_exit_code(
    fault_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    broken = {"mock-helix": {"MockHelix__StrictAuth": "bogus"}}
    outcome, where = run_isolated(fault_settings, overrides=broken)
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "service-exited-at-start", outcome.failure
    assert outcome.failure.message.startswith("mock-helix exited at start with code 2")
    assert outcome.failure.first_log == "mgm-mock-helix.log"
    assert any("MockHelix__StrictAuth='bogus' is not a mode" in q for q in outcome.failure.quotes)
    assert {s.result for s in outcome.steps} == {NOT_STARTED}
    assert NOT_STARTED in (where / "report.md").read_text()
    assert NOT_STARTED in (where / "junit.xml").read_text()
    assert "Traceback" not in (where / "report.md").read_text()
    assert leftovers(engine, outcome.run_id) == []


def test_a_database_host_that_does_not_exist_fails_the_start_at_once(
    fault_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    conn = "Host=nowhere.invalid;Port=5432;Database=mgm;Username=mgm;Password=x"
    outcome, _ = run_isolated(
        fault_settings, overrides={"backend": {"ConnectionStrings__PostgreSQL": conn}}
    )
    assert outcome.failure is not None
    # Exited, so not the readiness timeout (30 s here) with probe lines for evidence.
    assert outcome.failure.failure_class == "service-exited-at-start", outcome.failure
    assert outcome.failure.message.startswith("backend exited at start with code 2")
    assert outcome.failure.first_log == "mgm-backend.log"
    assert any(
        "the database host 'nowhere.invalid' of ConnectionStrings__PostgreSQL does not resolve" in q
        for q in outcome.failure.quotes
    )
    assert leftovers(engine, outcome.run_id) == []


def test_a_service_over_its_memory_limit_is_reported_oom_killed(
    fault_settings: EnvkitSettings, engine: docker.DockerClient, tmp_path: Path
) -> None:
    # 16 MiB is less than the Python service needs to import its web framework.
    stack = stack_copy(tmp_path, "mock-jwt", 'memory = "16m"')
    outcome, where = run_isolated(fault_settings, stack)
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "service-exited-at-start", outcome.failure
    assert outcome.failure.message.startswith("mock-jwt exited at start with code 137")
    assert "OOM-killed" in outcome.failure.message
    assert summary(where)["services"]["mock-jwt"]["state"] == "exited (code 137, OOM-killed)"
    assert leftovers(engine, outcome.run_id) == []


def test_a_container_the_engine_refuses_is_engine_refused_start(
    fault_settings: EnvkitSettings, engine: docker.DockerClient, tmp_path: Path
) -> None:
    stack = stack_copy(tmp_path, "mock-jwt", "cpus = 512")  # more CPUs than any test machine
    outcome, _ = run_isolated(fault_settings, stack)
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "engine-refused-start", outcome.failure
    assert outcome.failure.message.startswith("The engine refused to start mock-jwt: ")
    assert "CPU" in outcome.failure.message
    assert {s.result for s in outcome.steps} == {NOT_STARTED}
    assert leftovers(engine, outcome.run_id) == []


# --- a signal at any moment removes the whole run, and the CLI says only what happened ------


def _owned(engine: docker.DockerClient, pid: int, **filters: Any) -> list[Any]:
    label = {"label": f"envkit.owner_pid={pid}"}
    return list(engine.containers.list(all=True, filters={**label, **filters}))


def _starting(engine: docker.DockerClient, pid: int, artifacts: Path) -> bool:
    return bool(_owned(engine, pid))


def _checking(engine: docker.DockerClient, pid: int, artifacts: Path) -> bool:
    return any(artifacts.glob("*/mgm-tier-b-orchestrator.log"))


def _stopping(engine: docker.DockerClient, pid: int, artifacts: Path) -> bool:
    # The run's containers are being stopped: the first one of them has exited.
    return bool(_owned(engine, pid, status="exited"))


MOMENTS = {"starting": _starting, "checking": _checking, "stopping": _stopping}


@pytest.mark.parametrize(
    ("moment", "sig"),
    [("starting", signal.SIGTERM), ("checking", signal.SIGINT), ("stopping", signal.SIGTERM),
     ("stopping", signal.SIGINT)],
)  # fmt: skip
def test_a_signal_at_any_moment_removes_the_run_and_says_so(
    engine: docker.DockerClient,
    images: dict[str, ImageResult],
    tmp_path: Path,
    moment: str,
    sig: int,
) -> None:
    artifacts = tmp_path / "artifacts"
    env = {
        **os.environ,
        "ENVKIT_ARTIFACT_ROOT": str(artifacts),
        "ENVKIT_HISTORY_PATH": str(tmp_path / "history.sqlite"),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "invoke", "tier-b"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reached = MOMENTS[moment]
    try:
        while child.poll() is None and not reached(engine, child.pid, artifacts):
            time.sleep(0.02)
        assert child.poll() is None, "the run ended before the moment to signal it"
        child.send_signal(sig)
        _, err = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert "interrupted; the stack's containers and network were removed" in err
    assert "Traceback" not in err
    assert _owned(engine, child.pid) == []
    assert engine.networks.list(filters={"label": f"envkit.owner_pid={child.pid}"}) == []
    [run] = list(artifacts.glob("mgm-*"))
    assert summary(run)["failure"]["failure_class"] == "interrupted"


# --- secrets with quotes, backslashes, newlines and non-ASCII stay out of every artifact ----

AWKWARD = {
    # Through the environment: a .env refuses the newline (test_settings.py).
    "ENVKIT_MGM__API_KEY": 'key-"q"\\back\nline-two-ü',
    "ENVKIT_TWITCH__BROADCASTER_ACCESS_TOKEN": "tok-<&>'ünï\\x",
}


def _spellings(secret: str) -> set[str]:
    from html import escape
    from urllib.parse import quote

    json_form = json.dumps(secret)[1:-1]
    lines = {line for line in secret.splitlines() if len(line) >= 4}
    return {
        secret, *lines, json_form, json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(json_form)[1:-1], escape(secret), quote(secret, safe=""), repr(secret)[1:-1],
    }  # fmt: skip


def test_awkward_secrets_reach_no_artifact_in_any_form(
    sandbox: Callable[..., EnvkitSettings],
) -> None:
    settings = sandbox(**AWKWARD)
    outcome, where = run_isolated(settings)
    assert outcome.failure is not None  # a header cannot carry the newline: the run fails
    written = {p.name: p.read_text(errors="replace") for p in where.rglob("*") if p.is_file()}
    assert {"report.md", "summary.json", "junit.xml", "mgm-backend.log"} <= set(written)
    for secret in AWKWARD.values():
        for form in _spellings(secret):
            for name, text in written.items():
                assert form not in text, f"{form[:5]}… in {name}"
