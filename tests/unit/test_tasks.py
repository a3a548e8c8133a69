"""The tasks refuse invalid settings before they touch Docker at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        "orchestrate", "replay", "history", "health-report", "alert", "demo", "test",
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


def test_a_probe_error_that_escapes_a_task_becomes_exit_with_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from invoke.exceptions import Exit

    from healthchecks import ProbeTimeout

    monkeypatch.syspath_prepend(str(ROOT))
    import tasks

    def call() -> None:
        raise ProbeTimeout("backend", "TCP connect to 127.0.0.1:1", 1.0, 2, "connection refused")

    with pytest.raises(Exit) as caught:
        tasks._guard(call)

    assert caught.value.code == 2
    assert caught.value.message == (
        "envkit: backend did not become ready within 1.0 s: TCP connect to 127.0.0.1:1 failed "
        "2 times; last error: connection refused. Check the service's log for why it is not "
        "ready, or raise its readiness timeout if it is only slow to start."
    )
