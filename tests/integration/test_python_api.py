"""The Python API on a real engine: open a stack, start or attach, read it, run its scenario.

The README's "Python API" example is executed as it is written, so the doc and the code
cannot drift apart.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import docker
import httpx
import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

import envkit
from envkit.engines.images import ImageResult

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "tests" / "data" / "plugin-stack" / "stack.toml"
SECRET = "api-test-token-81f0c2d7"


@pytest.fixture
def environ(tmp_path: Path, images: dict[str, ImageResult]) -> dict[str, str]:
    """Settings for the small stack whose artifacts, history and `up` state live in tmp."""
    ref = images["services"].ref
    return {
        "ENVKIT_IMAGES__OVERRIDE": f"helix={ref},eventsub={ref}",
        "ENVKIT_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ENVKIT_HISTORY_PATH": str(tmp_path / "history.sqlite"),
        "ENVKIT_CACHE_DIR": str(tmp_path / "cache"),
        "ENVKIT_PLUGIN__HELIX_TOKEN": SECRET,
    }


def labelled(engine: docker.DockerClient, run_id: str) -> list[str]:
    found = engine.containers.list(all=True, filters={"label": f"envkit.run={run_id}"})
    return [c.name for c in found]


def test_start_gives_urls_settings_redacted_logs_and_the_scenario(
    environ: dict[str, str], engine: docker.DockerClient, tmp_path: Path
) -> None:
    stack = envkit.open_stack(STACK, environ=environ, env_file=tmp_path / "none.env")
    assert stack.name == "plugin"
    with stack.start() as running:
        assert sorted(running.endpoints) == ["eventsub", "helix"]
        assert httpx.get(running.url("helix") + "/health", timeout=10).status_code == 200
        assert running.settings.plugin.helix_token.get_secret_value() == SECRET
        httpx.get(f"{running.url('helix')}/leak-{SECRET}", timeout=10)
        # the service logs the request after answering it: wait for the line, not a race
        for attempt in Retrying(stop=stop_after_delay(30), wait=wait_fixed(0.2), reraise=True):
            with attempt:
                assert "GET /leak-*** -> 404" in running.logs("helix")
        assert "GET /leak-*** -> 404" in running.log_tail("helix", lines=3)
        assert len(running.log_tail("helix", lines=1).splitlines()) == 1
        assert SECRET not in running.logs("helix")
        assert SECRET not in repr(running)
        with pytest.raises(envkit.EnvkitError) as bad:
            running.url("backend")
        assert str(bad.value) == (
            f"No service 'backend' in stack plugin ({STACK}); it has: eventsub, helix."
        )
        outcome, where = running.run_scenario(only="smoke")
        assert outcome.verdict == "passed", outcome.failure
        assert [s.name for s in outcome.steps] == ["both-answer"]
        written = {p.name for p in where.iterdir()}
        assert {"summary.json", "report.md", "plugin-helix.log"} <= written
        run_id = running.run_id
        assert len(labelled(engine, run_id)) == 2  # the scenario left the stack running
    assert labelled(engine, run_id) == []
    artifacts = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert artifacts
    assert all(SECRET not in p.read_text(errors="replace") for p in artifacts)


def test_a_bad_tier_is_refused_naming_the_tiers(
    environ: dict[str, str], engine: docker.DockerClient
) -> None:
    refused = pytest.raises(envkit.EnvkitError, match=r"--only 'tier-z' is not a tier .* smoke")
    with envkit.open_stack(STACK, environ=environ).start() as running, refused:
        running.run_scenario(only="tier-z")


def test_attach_uses_the_up_stack_and_leaves_it_running(
    environ: dict[str, str], engine: docker.DockerClient, tmp_path: Path
) -> None:
    stack = envkit.open_stack(STACK, environ=environ)
    with pytest.raises(envkit.EnvkitError, match="No stack is up"):
        stack.attach()
    state = envkit.up(stack.settings, STACK)
    try:
        running = stack.attach()
        assert running.run_id == state.run_id
        assert httpx.get(running.url("eventsub") + "/health", timeout=10).status_code == 200
        assert "mock-eventsub delivers to" in running.logs("eventsub")
        copy = tmp_path / "stack.toml"  # the same stack from another file is another stack
        copy.write_text(STACK.read_text())
        with pytest.raises(envkit.EnvkitError) as wrong:
            envkit.open_stack(copy, environ=environ).attach()
        assert f"was started from {STACK}, not {copy}" in str(wrong.value)
        assert len(labelled(engine, state.run_id)) == 2
    finally:
        envkit.down(stack.settings)
    assert labelled(engine, state.run_id) == []


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "the Python API section has one runnable example"
    return str(blocks[0])


def test_the_readme_example_runs_as_written(
    tmp_path: Path, images: dict[str, ImageResult], engine: docker.DockerClient
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVKIT_")}
    env |= {
        "ENVKIT_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ENVKIT_HISTORY_PATH": str(tmp_path / "history.sqlite"),
        "ENVKIT_CACHE_DIR": str(tmp_path / "cache"),
    }
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    result = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "passed" in result.stdout
    runs = [p for p in (tmp_path / "artifacts").iterdir() if p.is_dir()]
    assert len(runs) == 2  # the stack's own run and its scenario run
    leftover = [labelled(engine, p.name) for p in runs]
    assert leftover == [[], []]
