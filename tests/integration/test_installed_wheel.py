"""A fresh venv outside the repository installs the built wheel and serves another team.

The wheel is built from this checkout and installed (with the pinned dependencies) into a
new virtualenv in a temporary directory; the team's project is another temporary
directory holding a copy of the notes stack (tests/integration/stacks/notes) and a small
pytest suite of its own. With nothing of this repository on the path, the installed
`envkit` brings the stack up and down, and the team's suite runs against it through
envkit's pytest plugin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

import docker
import pytest

from envkit.engines.images import ImageResult

ROOT = Path(__file__).resolve().parents[2]
NOTES = ROOT / "tests" / "integration" / "stacks" / "notes"
SECRETS = {
    "ENVKIT_NOTES__API_TOKEN": "wheel-test-token-9b17",
    "ENVKIT_NOTES__WEBHOOK_SECRET": "wheel-test-webhook-44de",
    "ENVKIT_NOTES__DB_PASSWORD": "wheel-test-db-pw-c3a0",
}
PORTS = {"ENVKIT_NOTES__API_PORT": "28300", "ENVKIT_NOTES__AUDIT_PORT": "28301",
         "ENVKIT_NOTES__DB_PORT": "28302"}  # fmt: skip
# The notes team's own tests, written against the plugin's fixture; one fails on purpose.
TEAM_SUITE = """
import httpx


def test_the_api_is_healthy(envkit_stack):
    assert httpx.get(envkit_stack.url("api") + "/health", timeout=10).status_code == 200


def test_a_note_needs_the_token(envkit_stack):
    answer = httpx.post(envkit_stack.url("api") + "/notes", json={"title": "x"}, timeout=10)
    assert answer.status_code == 401


def test_the_audit_service_is_healthy(envkit_stack):
    assert httpx.get(envkit_stack.url("audit") + "/health", timeout=10).status_code == 200
    print("team-saw-run", envkit_stack.run_id)


def test_fails_on_purpose(envkit_stack):
    assert httpx.get(envkit_stack.url("api") + "/no-such-route", timeout=10).status_code == 200
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, envkit_wheel: Path) -> Path:
    """The bin directory of a new venv with the wheel of this checkout installed."""
    work = tmp_path_factory.mktemp("installed")
    assert not work.is_relative_to(ROOT)
    wheel = envkit_wheel
    venv.create(work / "venv", with_pip=True)
    python = work / "venv" / "bin" / "python"
    installing = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), str(wheel), "pytest", "httpx"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert installing.returncode == 0, installing.stderr[-3000:]
    return python.parent


@pytest.fixture
def project(tmp_path: Path, images: dict[str, ImageResult]) -> tuple[Path, dict[str, str]]:
    """A team's project directory (the notes stack copied in) and its environment."""
    where = tmp_path / "notes-project"
    shutil.copytree(NOTES, where / "stack", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVKIT_", "PYTHON"))}
    # No registry here: the team's Dockerfiles start FROM envkit's local Python image.
    env.update({**SECRETS, **PORTS, "ENVKIT_NOTES__BASE_IMAGE": images["services"].ref})
    return where, env


def _run(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _labelled(engine: docker.DockerClient, run_id: str) -> list[str]:
    found = engine.containers.list(all=True, filters={"label": f"envkit.run={run_id}"})
    return [c.name for c in found]


def test_the_wheel_installs_envkit_alone_with_its_console_script(installed: Path) -> None:
    site = next((installed.parent / "lib").glob("python3*/site-packages"))
    assert (site / "envkit" / "services" / "backend" / "app.py").is_file()
    assert (site / "envkit" / "compose" / "tier-b.toml").is_file()
    assert not (site / "services").exists()
    assert not (site / "healthchecks").exists()
    shown = _run([str(installed / "envkit"), "--version"], installed, dict(os.environ))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"envkit {_version(installed)}"


_TAGS = """
import pathlib, envkit
from envkit.engines.images import reaper_tag, services_tag
home = pathlib.Path(envkit.__file__).parent
print(services_tag("base", "sha256:0", "3.11", home), reaper_tag("base", "sha256:0", "3.11", home))
"""


def test_the_installed_envkit_builds_the_same_images_as_this_checkout(installed: Path) -> None:
    from envkit.engines.images import reaper_tag, services_tag
    from envkit.spec.workspace import Workspace

    asked = subprocess.run(
        [str(installed / "python"), "-c", _TAGS],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    home = Workspace.envkit_home  # this checkout's envkit package (the linked folders)
    here = [
        services_tag("base", "sha256:0", "3.11", home),
        reaper_tag("base", "sha256:0", "3.11", home),
    ]
    assert asked.stdout.split() == here  # same inputs, so the same tags: images are shared


def _version(installed: Path) -> str:
    asked = subprocess.run(
        [str(installed / "python"), "-c", "import envkit; print(envkit.__version__)"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return asked.stdout.strip()


def test_envkit_up_and_down_of_the_second_stack_from_the_installed_wheel(
    installed: Path, project: tuple[Path, dict[str, str]], engine: docker.DockerClient
) -> None:
    where, env = project
    envkit = str(installed / "envkit")
    started = _run([envkit, "up", "--stack", "stack/stack.toml"], where, env)
    state_file = where / ".envkit-cache" / "state" / "up.json"
    run_id = json.loads(state_file.read_text())["run_id"] if state_file.is_file() else None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert run_id is not None
        assert len(_labelled(engine, run_id)) == 3
        assert "remove with `envkit down`" in started.stdout
        shown = _run([envkit, "status"], where, env)
        assert shown.returncode == 0, shown.stderr
        assert "http://127.0.0.1:28300" in shown.stdout
    finally:
        stopped = _run([envkit, "down"], where, env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert run_id is not None
    assert _labelled(engine, run_id) == []
    # what envkit wrote is in the project, with no secret in it
    written = [p for p in (where / "artifacts" / run_id).rglob("*") if p.is_file()]
    assert written
    for path in written:
        text = path.read_text(errors="replace")
        assert not any(secret in text for secret in SECRETS.values()), path


def test_the_teams_pytest_suite_runs_on_its_stack_through_the_plugin(
    installed: Path, project: tuple[Path, dict[str, str]], engine: docker.DockerClient
) -> None:
    where, env = project
    (where / "tests").mkdir()
    (where / "tests" / "test_notes.py").write_text(TEAM_SUITE)
    ran = _run(
        [str(installed / "python"), "-m", "pytest", "-rA", "-s", "-p", "no:cacheprovider",
         "--envkit-stack", "stack/stack.toml", "tests"],
        where, env,
    )  # fmt: skip
    output = ran.stdout + ran.stderr
    assert ran.returncode == 1, output  # one test fails on purpose, the others pass
    assert "1 failed, 3 passed" in output, output[-3000:]
    assert "FAILED tests/test_notes.py::test_fails_on_purpose" in output
    # the failing test's report carries every service's log tail and the artifacts' path
    for service in ("db", "audit", "api"):
        assert f"envkit: {service} log" in output, output[-4000:]
    (run_id,) = set(re.findall(r"team-saw-run (\S+)", output))
    assert str(where / "artifacts" / run_id) in output
    assert not any(secret in output for secret in SECRETS.values())
    assert _labelled(engine, run_id) == []  # the session's stack is gone
