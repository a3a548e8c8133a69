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
