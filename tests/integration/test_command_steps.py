"""Command steps: the project's own commands run by `tier-b` on the host, against a real stack.

The stack (`steps/stack.toml`) is one mock; its scenario file (`steps/scenario.toml`)
holds one tier per case, run with `only=`. The commands are the small scripts next to
it, run by this test's own interpreter (its directory goes first on PATH).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from envkit.errors import ScenarioError
from envkit.evidence.history import recent_runs
from envkit.scenario.replayer import replay
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

STEPS = Path(__file__).resolve().parent / "steps"
STACK = STEPS / "stack.toml"
ORCHESTRATOR_LOG = "steps-orchestrator.log"  # no orchestrator_log in the stack: the default
# The stack's own secrets (its [settings] table declares them).
SECRETS = {
    "ENVKIT_API__KEY": "apikey-Cmd71qW",
    "ENVKIT_JWT__SECRET": "c3RlcHMtc2VjcmV0LUNtZDIyTG0tMzItYnl0ZXMteHg=",
}


@pytest.fixture(autouse=True)
def _python3_is_this_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def run_settings(sandbox: Callable[..., EnvkitSettings]) -> EnvkitSettings:
    return sandbox(stack=STACK, **SECRETS)


def leftovers(engine: docker.DockerClient, run_id: str) -> list[str]:
    label = {"label": f"envkit.run={run_id}"}
    return [c.name for c in engine.containers.list(all=True, filters=label)] + [
        n.name for n in engine.networks.list(filters=label)
    ]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaps does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def junit_case(where: Path, name: str) -> ET.Element:
    cases = [c for c in ET.parse(where / "junit.xml").getroot().iter("testcase")]
    [case] = [c for c in cases if c.get("name") == name]
    return case


def test_a_passing_command_sees_the_stack_and_its_output_is_logged(
    run_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    outcome, where = run_isolated(run_settings, STACK, only="pass")
    assert outcome.verdict == "passed", outcome.failure
    [step] = outcome.steps
    assert (step.name, step.tier, step.status) == ("reach-the-mock", "pass", "passed")
    assert step.evidence["exit_code"] == 0
    host_url = outcome.services["mock-api"].host_url
    # an isolated run on this machine's engine: the container's address, its own port
    assert re.fullmatch(r"http://\d+\.\d+\.\d+\.\d+:8080", host_url), host_url
    assert not host_url.startswith("http://127.")
    log = (where / ORCHESTRATOR_LOG).read_text()
    assert f"reach-the-mock | STACK_MOCK_API_URL={host_url}" in log
    assert f"reach-the-mock | GET {host_url}/health -> 200" in log
    assert "reach-the-mock | IN_NETWORK_URL=http://mock-api:8080" in log
    assert f"reach-the-mock | run {outcome.run_id} in {where}" in log
    assert "step pass/reach-the-mock: `python3 reach.py " in log  # the step's outcome line
    assert (where / "report.md").read_text().startswith("# run steps: PASSED")
    assert leftovers(engine, outcome.run_id) == []


def test_a_failing_command_is_quoted_with_its_exit_code_in_report_and_junit(
    run_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    outcome, where = run_isolated(run_settings, STACK, only="fail")
    assert outcome.verdict == "failed"
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "command-failed"
    assert outcome.failure.first_log == "mock-api.log"
    report = (where / "report.md").read_text()
    triage = report.split("## Triage", 1)[1]
    assert "Failure class: `command-failed`" in triage
    assert "exited with code 3; its last output line: FAIL: expected 1 pending payout" in triage
    assert "Last lines of its output:\nchecking the payout queue\nusing key ***\n" in triage
    assert "Read first: `mock-api.log`" in triage
    failure = junit_case(where, "exit-three").find("failure")
    assert failure is not None
    assert "exited with code 3" in (failure.get("message") or "")
    assert "output (last lines):\nchecking the payout queue\nusing key ***\nFAIL:" in (
        failure.text or ""
    )
    [record] = recent_runs(run_settings, 1)
    assert (record.run_id, record.failure_class) == (outcome.run_id, "command-failed")
    assert leftovers(engine, outcome.run_id) == []


def test_a_hanging_command_is_ended_at_its_limit_as_a_timeout(
    run_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    outcome, where = run_isolated(run_settings, STACK, only="hang")
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "step-timeout"
    [step] = outcome.steps
    assert step.evidence["timed_out"] is True
    assert (step.error or "").endswith(
        "did not finish within its time limit of 8 s; its process group was ended "
        "(SIGTERM, then SIGKILL after 5 s)"
    )
    pids = [int(p) for p in (where / "hang.pids").read_text().split()]
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)  # the script and the helper it started
    assert "Failure class: `step-timeout`" in (where / "report.md").read_text()
    assert leftovers(engine, outcome.run_id) == []


def test_a_program_that_is_not_found_is_refused_before_any_container(
    run_settings: EnvkitSettings, engine: docker.DockerClient, tmp_path: Path
) -> None:
    name = f"steps-{uuid.uuid4().hex[:8]}"
    stack = tmp_path / "stack.toml"
    stack.write_text(
        STACK.read_text()
        .replace('name = "steps"', f'name = "{name}"')
        .replace('scenario = "scenario.toml"', 'scenario = "e2e.toml"')
    )
    (tmp_path / "e2e.toml").write_text(
        '[[steps]]\nname = "tier-a-sender"\ncommand = ["envkit-no-such-sender-3f9a"]\n\n'
        '[[steps]]\nname = "tier-b-orchestrator"\ncommand = ["./ci/run_e2e_tier_b.py"]\n'
    )
    since = datetime.now(UTC)
    with pytest.raises(ScenarioError) as info:
        run_isolated(run_settings, stack)
    until = datetime.now(UTC)
    assert str(info.value).startswith("2 problems in the scenario:")
    assert info.value.problems == [
        f"{tmp_path / 'e2e.toml'}: step 'tier-a-sender', field 'command[0]': program "
        "'envkit-no-such-sender-3f9a' is not on PATH; install it or give its path (e.g. "
        '"./bin/envkit-no-such-sender-3f9a", relative to the step\'s cwd)',
        f"{tmp_path / 'e2e.toml'}: step 'tier-b-orchestrator', field 'command[0]': program "
        f"'./ci/run_e2e_tier_b.py' does not exist (looked for {tmp_path.resolve()}/ci/"
        "run_e2e_tier_b.py; a path is relative to the step's cwd); fix the path or create the "
        "file",
    ]
    creations = {"type": "container", "event": "create"}
    created = [
        event
        for event in engine.events(since=since, until=until, decode=True, filters=creations)
        if event.get("Actor", {}).get("Attributes", {}).get("envkit.stack") == name
    ]
    assert created == []
    assert engine.containers.list(all=True, filters={"label": f"envkit.stack={name}"}) == []
    assert not (Path(run_settings.artifact_root)).exists()  # not even an artifact directory


def test_no_secret_on_a_command_line_reaches_any_artifact(run_settings: EnvkitSettings) -> None:
    outcome, where = run_isolated(run_settings, STACK)  # passes one step, fails the next
    assert [s.status for s in outcome.steps] == ["passed", "failed", "skipped", "skipped"]
    secrets = run_settings.secret_values()
    assert SECRETS["ENVKIT_API__KEY"] in secrets
    scanned = 0
    for path in where.rglob("*"):
        if path.is_file():
            scanned += 1
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:4]}… found in {path.name}"
    assert scanned >= 6
    log = (where / ORCHESTRATOR_LOG).read_text()
    assert f"reach-the-mock | argv: ['{outcome.services['mock-api'].host_url}'" in log
    assert "'--api-key', '***']" in log  # the key was on its command line, and masked
    shown = json.dumps([s.error for s in outcome.steps]) + str(outcome.failure)
    assert SECRETS["ENVKIT_API__KEY"] not in shown  # what the task prints is masked too


def test_a_scenario_given_for_the_run_is_recorded_and_replayed(
    run_settings: EnvkitSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = tmp_path / "stack.toml"  # names no scenario: only the recorded option can run one
    stack.write_text(STACK.read_text().replace('scenario = "scenario.toml"\n', ""))
    outcome, where = run_isolated(
        run_settings, stack, only="fail", scenario_ref=str(STEPS / "scenario.toml")
    )
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "command-failed"
    options = json.loads((where / "manifest.json").read_text())["options"]
    assert options["scenario"] == "tests/integration/steps/scenario.toml"
    monkeypatch.setenv("ENVKIT_ARTIFACT_ROOT", str(tmp_path / "replays"))
    monkeypatch.setenv("ENVKIT_HISTORY_PATH", str(tmp_path / "history.sqlite"))
    replayed = replay(where, env_file=None)
    assert replayed.original_class == "command-failed"
    again = replayed.outcome
    assert again.failure is not None
    assert again.failure.failure_class == "command-failed"
    assert [s.name for s in again.steps] == ["exit-three"]


def test_sigterm_during_a_command_ends_it_and_still_tears_down(
    engine: docker.DockerClient, tmp_path: Path, images: object
) -> None:
    root = tmp_path / "artifacts"
    output = (tmp_path / "runner.out").open("w")
    runner = subprocess.Popen(
        [sys.executable, str(STEPS / "run_scenario.py"), str(STACK), str(root), "interrupt"],
        stdout=output, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # a safety net, not a measurement
        while not list(root.glob("*/hang.pids")):
            assert runner.poll() is None, (tmp_path / "runner.out").read_text()
            assert time.monotonic() < deadline, "the command step never started"
            time.sleep(0.2)
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
        output.close()
    [pids_file] = root.glob("*/hang.pids")
    pids = [int(p) for p in pids_file.read_text().split()]
    assert not any(alive(pid) for pid in pids)
    run_dir = pids_file.parent
    assert leftovers(engine, run_dir.name) == []
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failure"]["failure_class"] == "interrupted"


def test_orchestrate_runs_a_scenario_file_against_an_up_stack(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient, tmp_path: Path
) -> None:
    from envkit.lifecycle.commands import down, up
    from envkit.scenario.runner import orchestrate

    settings = sandbox(ports_from=28500, stack=STACK, **SECRETS)
    stack = tmp_path / "stack.toml"  # names no scenario: --scenario supplies it
    stack.write_text(STACK.read_text().replace('scenario = "scenario.toml"\n', ""))
    state = up(settings, stack)
    try:
        scenario = str(STEPS / "scenario.toml")
        outcome, where = orchestrate(settings, only="pass", scenario_ref=scenario)
        assert outcome.verdict == "passed", outcome.failure
        log = (where / ORCHESTRATOR_LOG).read_text()
        assert f"reach-the-mock | run {outcome.run_id} in {where}" in log
        assert outcome.replay_command == (
            "./inv orchestrate --only pass --scenario tests/integration/steps/scenario.toml"
        )
        failed, _ = orchestrate(settings, only="fail", scenario_ref=scenario)
        assert failed.failure is not None
        assert failed.failure.failure_class == "command-failed"
    finally:
        down(settings)
    assert leftovers(engine, state.run_id) == []


def test_the_mgm_example_scenario_file_passes_on_the_mgm_stack(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient
) -> None:
    DEFAULT_STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"

    example = DEFAULT_STACK.parent / "mgm-smoke.toml"
    outcome, where = run_isolated(sandbox(), DEFAULT_STACK, scenario_ref=str(example))
    assert outcome.verdict == "passed", outcome.failure
    assert [s.name for s in outcome.steps] == ["backend-accepts-api-key", "mocks-answer"]
    log = (where / "mgm-tier-b-orchestrator.log").read_text()
    backend = outcome.services["backend"].host_url
    assert f"backend-accepts-api-key | GET {backend}/api/payouts/pending -> 200" in log
    mocks = ["mock-eventsub", "mock-jwt", "mock-helix", "synthetic-desktop"]
    assert all(
        log.count(f"mocks-answer | GET {outcome.services[m].host_url}/") == 1 for m in mocks
    ), log
    assert leftovers(engine, outcome.run_id) == []
