"""The tasks refuse invalid settings before they touch Docker at all."""

from __future__ import annotations

import inspect
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from envkit import errors
from envkit.cli import guard
from envkit.errors import EnvkitError, ProbeTimeout
from envkit.evidence.history import recent_runs, record_run
from envkit.evidence.outcome import Failure, RunOutcome
from envkit.spec.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("task", ["images", "engine", "tier-b"])
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ENVKIT_TWITCH__HELIX_BASE_URL", "http://mock-helix:8080/helix", "ends in /helix"),
        ("ENVKIT_MGM__API_KEY", "", "the desktop API key is empty"),
        ("ENVKIT_PORTS__MOCK_HELIX", "8080", "are both 8080"),
        ("ENVKIT_TWITCH__EXTENSION_SECRET", "%%%", "is not valid base64"),
        ("ENVKIT_TIMEOUT__ENGINE_START_SECONDS", "5", "is not an envkit setting"),
        ("ENVKIT_IMAGES__OVERRIDE", "backend", "is not SERVICE=IMAGE_OR_DIR"),
    ],
)
def test_invalid_settings_stop_a_task_before_any_engine_contact(
    task: str, name: str, value: str, expected: str
) -> None:
    # DOCKER_HOST names a closed loopback port: had the task reached for the engine (and so
    # possibly created a container) before validating, it would fail with an engine error.
    env = {**os.environ, name: value, "DOCKER_HOST": "tcp://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", task],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "envkit: 1 setting is invalid:\n  - ENVKIT_" in result.stderr
    assert name in result.stderr
    assert expected in result.stderr
    assert "Docker engine" not in result.stderr


def _invoke(args: list[str], cwd: Path = ROOT, **environ: str) -> subprocess.CompletedProcess[str]:
    # DOCKER_HOST names a closed port: a task that reached for the engine would say so.
    env = {**os.environ, **environ, "DOCKER_HOST": "tcp://127.0.0.1:9"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("task", ["up", "tier-b"])
def test_an_image_override_of_an_unknown_service_stops_before_the_engine(task: str) -> None:
    result = _invoke([task, "--image", "backnd=registry.example/mgm-backend:1.4"])
    assert result.returncode == 2, result.stderr
    assert (
        "ENVKIT_IMAGES__OVERRIDE (or --image) names service 'backnd', which stack 'mgm'"
    ) in result.stderr
    assert "did you mean 'backend'? its services are: backend, mock-eventsub" in result.stderr
    assert "Fix the name" in result.stderr
    assert "Docker engine" not in result.stderr


def test_the_setting_names_an_unknown_service_too() -> None:
    result = _invoke(["tier-b"], ENVKIT_IMAGES__OVERRIDE="web=nginx:1")
    assert result.returncode == 2, result.stderr
    assert "names service 'web', which stack 'mgm'" in result.stderr


def test_an_image_directory_is_taken_from_where_the_task_runs(tmp_path: Path) -> None:
    result = _invoke(["tier-b", "--image", "backend=./mgm-backend"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert (
        "for service 'backend': the build-context directory "
        f"{tmp_path / 'mgm-backend'} does not exist"
    ) in " ".join(result.stderr.split())
    assert "Docker engine" not in result.stderr


def test_a_malformed_image_flag_is_refused() -> None:
    result = _invoke(["up", "--image", "backend"])
    assert result.returncode == 2, result.stderr
    assert "--image 'backend': 'backend' is not SERVICE=IMAGE_OR_DIR" in result.stderr


def test_every_documented_task_is_in_the_namespace() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    listed = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.startswith("  ")}
    expected = {
        "config", "engine", "images", "up", "down", "status", "logs", "clean", "tier-b",
        "orchestrate", "replay", "history", "diff", "health-report", "alert", "demo", "test",
    }  # fmt: skip
    assert expected <= listed


def test_tier_b_refuses_a_scenario_file_before_any_engine_contact(tmp_path: Path) -> None:
    scenario = tmp_path / "e2e.toml"
    scenario.write_text('[[steps]]\nname = "sender"\ncommand = ["envkit-no-such-sender-3f9a"]\n')
    env = {**os.environ, "DOCKER_HOST": "tcp://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "tier-b", "--stack", "tests/integration/steps/stack.toml",
         "--scenario", str(scenario)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"envkit: 1 problem in the scenario:\n  - {scenario}: step 'sender', field 'command[0]': "
        "program 'envkit-no-such-sender-3f9a' is not on PATH"
    )
    assert "Docker engine" not in result.stderr


def test_a_probe_error_that_escapes_a_task_becomes_exit_with_its_message() -> None:
    def call() -> None:
        raise ProbeTimeout("backend", "TCP connect to 127.0.0.1:1", 1.0, 2, "connection refused")

    with pytest.raises(Exit) as caught:
        guard(call)

    assert caught.value.code == 2
    assert caught.value.message == (
        "envkit: backend did not become ready within 1.0 s: TCP connect to 127.0.0.1:1 failed "
        "2 times; last error: connection refused. Check the service's log for why it is not "
        "ready, or raise its readiness timeout if it is only slow to start."
    )


# -- every error type reaches the user as `Exit` with its message ------------------------------


def _one_of_each() -> list[EnvkitError]:
    # The probe library's errors are not EnvkitErrors: see the probe-error test above.
    return [
        errors.SettingsError(["ENVKIT_PORTS__BACKEND: out of range"]),
        errors.OptionError("--days 0 is not a window.", option="--days"),
        errors.OverrideError("--override 'x' is not SERVICE.VARIABLE=VALUE."),
        errors.FaultError("--fault 'x' is not STEP:KIND[:NAME=VALUE,...]."),
        errors.StackError(["stack.toml: service 'a' needs 'b'"]),
        errors.ScenarioError(["e2e.toml: step 'x' has no command"]),
        errors.ScenarioLoadError("stack.toml names no scenario.", ref=None),
        errors.EngineError("No Docker engine answers."),
        errors.ReaperError("The reaper did not start; set ENVKIT_REAPER__ENABLED=false."),
        errors.EngineLostError("The engine at tcp://h:2375 stopped answering.", "tcp://h:2375"),
        errors.ImageError("postgres:16-alpine cannot be pulled."),
        errors.BuildError(
            service="api", context=Path("/src"), dockerfile="Dockerfile", log_tail=""
        ),
        errors.StepError("pip", ["pip", "wheel"], "no network", "use the wheelhouse"),
        errors.ServiceNotReady(
            service="db",
            probe="tcp 5432",
            elapsed=1.0,
            attempts=2,
            last_error="refused",
            state="exited",
            exit_code=1,
            log_path=Path("db.log"),
            log_tail="",
            hint="look",
        ),
        errors.ServiceStartFailed(service="db", state="exited (code 3)", exit_code=3),
        errors.PortInUseError("Port 8080 is taken; set ENVKIT_PORTS__BACKEND."),
        errors.StackAborted("db was skipped: the stack is being torn down."),
        errors.RunStateError("No stack is up. Start one with `invoke up`."),
        errors.ReplayError("x/manifest.json does not exist.", path=Path("x/manifest.json")),
        errors.RunLookupError("No run 'x' was found.", path=Path("x")),
        errors.HistoryError("The run history h is damaged.", path=Path("h")),
        errors.FileAccessError("Could not write the artifact a.", path=Path("a")),
        errors.DocsError("handover.md has no markers.", path=Path("handover.md")),
    ]


def test_the_sample_covers_every_error_type() -> None:
    everything = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, EnvkitError) and cls is not EnvkitError and cls.__name__[0] != "_"
    }
    assert {type(error) for error in _one_of_each()} == everything


@pytest.mark.parametrize("error", _one_of_each(), ids=lambda e: type(e).__name__)
def test_the_tasks_turn_each_error_into_exit_with_its_message(error: EnvkitError) -> None:
    def fail() -> None:
        raise error

    with pytest.raises(Exit) as info:
        guard(fail)
    assert info.value.message == f"envkit: {error}"
    assert info.value.code == 2
    assert info.value.__cause__ is error


def _history_of_a_newer_envkit(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    return path


def test_no_up_stack_is_a_run_state_error(tmp_path: Path) -> None:
    result = _invoke(["status"], ENVKIT_CACHE_DIR=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr == "envkit: No stack is up. Start one with `./inv up`.\n"


def test_replaying_a_directory_without_a_manifest_is_a_replay_error(tmp_path: Path) -> None:
    result = _invoke(["replay", "--run", str(tmp_path)])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"envkit: {tmp_path / 'manifest.json'} does not exist: give the artifact directory"
    )


def test_replaying_a_foreign_manifest_is_a_replay_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('["not", "a", "run"]\n')
    result = _invoke(["replay", "--run", str(tmp_path)])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"envkit: {tmp_path / 'manifest.json'} is not an envkit run manifest (it names no stack "
        "file); give the artifact directory of a `tier-b` run"
    )


def test_a_bad_days_flag_is_an_option_error(tmp_path: Path) -> None:
    result = _invoke(["health-report", "--days", "0"], ENVKIT_HISTORY_PATH=str(tmp_path / "h"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("envkit: --days 0 is not a window; give a whole number")


def test_a_malformed_override_is_an_override_error() -> None:
    result = _invoke(["tier-b", "--override", "backend"])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "envkit: --override 'backend' is not SERVICE.VARIABLE=VALUE (e.g. --override "
    )


def test_a_history_from_a_newer_envkit_is_a_history_error(tmp_path: Path) -> None:
    history = _history_of_a_newer_envkit(tmp_path / "history.sqlite")
    result = _invoke(["history"], ENVKIT_HISTORY_PATH=str(history))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"envkit: The run history {history} has schema version 99, newer than this envkit"
    )


def test_diffing_an_unknown_run_is_a_run_lookup_error(tmp_path: Path) -> None:
    result = _invoke(["diff", "no-such-run"], ENVKIT_ARTIFACT_ROOT=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("envkit: No run 'no-such-run' was found (looked for summary")
    assert "`invoke history` lists recent runs." in result.stderr


def test_history_flaky_judges_each_failure_class(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    settings = load_settings(env_file=None, environ={"ENVKIT_HISTORY_PATH": str(path)})
    for n, failure in enumerate(["backend-5xx", None, "jwt-rejected"]):
        where = tmp_path / f"r{n}"
        where.mkdir()
        (where / "manifest.json").write_text('{"git_dirty": false}')
        stamp = f"2026-11-22T10:0{n}:00.000Z"
        outcome = RunOutcome(
            f"r{n}", "mgm", "failed" if failure else "passed", stamp, stamp,
            failure=Failure(failure, "x") if failure else None,
        )  # fmt: skip
        record_run(settings, outcome, where, "abc" if n < 2 else "def")
    assert len(recent_runs(settings)) == 3
    result = _invoke(["history", "--flaky"], ENVKIT_HISTORY_PATH=str(path))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line}
    assert "flaky" in rows["backend-5xx"]
    assert "50% (1/2)" in rows["backend-5xx"]
    assert "broken" in rows["jwt-rejected"]


def test_an_unwritable_report_directory_is_a_file_access_error(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a directory\n")
    result = _invoke(
        ["health-report", "--out", str(taken)], ENVKIT_HISTORY_PATH=str(tmp_path / "h.sqlite")
    )
    assert result.returncode == 2, result.stderr
    assert f"envkit: The health report could not be written to {taken} (" in result.stderr
    assert result.stderr.endswith("give --out a writable directory.\n")


def test_a_stack_without_a_scenario_is_a_scenario_load_error(tmp_path: Path) -> None:
    source = (ROOT / "tests" / "integration" / "steps" / "stack.toml").read_text()
    stack = tmp_path / "stack.toml"
    stack.write_text(source.replace('scenario = "scenario.toml"\n', ""))
    result = _invoke(["tier-b", "--stack", str(stack)])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"envkit: {stack} names no scenario; add `scenario = ")
    assert "Docker engine" not in result.stderr
