"""The MGM project's own CI scripts run unchanged against `invoke up`'s stack.

The scripts in `tests/mgm_project/ci/` call the stack the way the MGM project's scripts do
(see that folder's README): fixed `up` ports on 127.0.0.1, the secret and API key on their
command lines, a minimal relay body with a Unix-seconds timestamp and no type header, a
token for `e2e-viewer-1`, a credential-less Helix post, `captured` and the exact text.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from envkit.spec.settings import EnvkitSettings

CI = Path(__file__).resolve().parents[1] / "mgm_project" / "ci"
CHARACTER = "Thrall"


def leftovers(engine: docker.DockerClient, run_id: str) -> list[str]:
    found = engine.containers.list(all=True, filters={"label": f"envkit.run={run_id}"})
    return [c.name for c in found]


@pytest.fixture(scope="module")
def up_stack(
    tmp_path_factory: pytest.TempPathFactory,
    engine: docker.DockerClient,
    sandbox_in: Callable[..., EnvkitSettings],
) -> Iterator[tuple[EnvkitSettings, dict[str, str]]]:
    """The MGM stack started like `invoke up` (fixed ports moved to 28600+), for the module."""
    from envkit.lifecycle.commands import down, up

    settings = sandbox_in(tmp_path_factory.mktemp("mgm-project"), ports_from=28600)
    state = up(settings)
    try:
        urls = {name: row.host_url for name, row in state.services.items()}
        yield settings, urls
    finally:
        down(settings)
        assert leftovers(engine, state.run_id) == []


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one stand-in script the way the MGM workflow does: a plain python3 process."""
    return subprocess.run(
        [sys.executable, str(CI / name), *args],
        cwd=CI, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and result.stdout.rstrip().endswith("OK")


def test_the_mgm_scripts_pass_in_the_order_the_mgm_workflow_runs_them(
    up_stack: tuple[EnvkitSettings, dict[str, str]],
) -> None:
    settings, urls = up_stack
    secret = settings.twitch.eventsub_secret.get_secret_value()
    api_key = settings.mgm.api_key.get_secret_value()
    backend, helix = urls["backend"], urls["mock-helix"]
    assert backend == "http://127.0.0.1:28600"  # the fixed `up` port, as the scripts expect

    health = run_script(
        "check_health.py", "--backend", backend, "--eventsub", urls["mock-eventsub"],
        "--jwt", urls["mock-jwt"], "--helix", helix, "--desktop", urls["synthetic-desktop"],
    )  # fmt: skip
    assert ok(health), health.stdout + health.stderr

    helix_check = run_script("check_mock_helix.py", "--helix", helix)
    assert ok(helix_check), helix_check.stdout + helix_check.stderr

    sender = run_script(
        "send_tier_a.py", "--relay", urls["mock-eventsub"], "--secret", secret,
        "--name", CHARACTER,
    )  # fmt: skip
    assert ok(sender), sender.stdout + sender.stderr

    gate = run_script(
        "tier_a_gate.py", "--jwt", urls["mock-jwt"], "--backend", backend, "--name", CHARACTER
    )
    assert ok(gate), gate.stdout + gate.stderr
    assert "userId=e2e-viewer-1" in gate.stdout

    tier_b = run_script(
        "run_e2e_tier_b.py", "--backend", backend, "--desktop", urls["synthetic-desktop"],
        "--helix", helix, "--jwt", urls["mock-jwt"], "--api-key", api_key, "--name", CHARACTER,
    )  # fmt: skip
    assert ok(tier_b), tier_b.stdout + tier_b.stderr
    assert f"Награда отправлена персонажу {CHARACTER} на почту" in tier_b.stdout


def test_a_wrong_secret_makes_the_mgm_sender_fail(
    up_stack: tuple[EnvkitSettings, dict[str, str]],
) -> None:
    """The relay really verifies: the sender's exit code is not 0 for a body signed wrongly."""
    _, urls = up_stack
    sender = run_script(
        "send_tier_a.py", "--relay", urls["mock-eventsub"], "--secret", "not-the-secret",
        "--name", "Jaina", "--user-id", "e2e-viewer-2",
    )  # fmt: skip
    assert sender.returncode == 1
    assert "FAILED: the relay answered 40" in sender.stdout


def test_a_viewer_that_never_enrolled_fails_the_mgm_gate(
    up_stack: tuple[EnvkitSettings, dict[str, str]],
) -> None:
    _, urls = up_stack
    gate = run_script(
        "tier_a_gate.py", "--jwt", urls["mock-jwt"], "--backend", urls["backend"],
        "--name", "Nobody", "--user-id", "e2e-viewer-never",
    )  # fmt: skip
    assert gate.returncode == 1
    assert "FAILED: the viewer is not enrolled" in gate.stdout


def test_the_mgm_scripts_run_as_the_scenario_of_an_isolated_tier_b(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient
) -> None:
    """`tier-b --scenario` runs the project's own Tier A and Tier B scripts as its steps."""
    DEFAULT_STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"
    from envkit.scenario.runner import run_isolated

    settings = sandbox()
    scenario = Path(__file__).resolve().parents[1] / "mgm_project" / "scenario.toml"
    outcome, where = run_isolated(settings, DEFAULT_STACK, scenario_ref=str(scenario))
    assert outcome.verdict == "passed", outcome.failure
    assert [s.name for s in outcome.steps] == [
        "health-verifier", "mock-helix-verifier", "tier-a-sender", "tier-a-gate",
        "tier-b-orchestrator",
    ]  # fmt: skip
    log = (where / "mgm-tier-b-orchestrator.log").read_text()
    assert "Награда отправлена персонажу Thrall на почту, проверяй ящик!" in log
    api_key = settings.mgm.api_key.get_secret_value()
    secret = settings.twitch.eventsub_secret.get_secret_value()
    for artifact in (p for p in where.rglob("*") if p.is_file()):  # the replay bundle too
        text = artifact.read_text(errors="replace")
        assert api_key not in text, artifact.name
        assert secret not in text, artifact.name
    assert leftovers(engine, outcome.run_id) == []
