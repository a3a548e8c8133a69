"""The installed `envkit` console script serves the project in the current directory.

A temporary directory outside the repository is the project: `envkit up` starts the
notes stack (tests/integration/stacks/notes) on ports of this test's own, `status`
shows it, `orchestrate` runs its scenario, `down` removes it; the `up` state and the
artifacts land in the project directory, and every hint the script
prints (and the replay command in report.md) names `envkit`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker

from envkit.engines.images import ImageResult

ROOT = Path(__file__).resolve().parents[2]
NOTES = ROOT / "tests" / "integration" / "stacks" / "notes" / "stack.toml"
SECRETS = {
    "ENVKIT_NOTES__API_TOKEN": "console-test-token-51c2",
    "ENVKIT_NOTES__WEBHOOK_SECRET": "console-test-webhook-8e07",
    "ENVKIT_NOTES__DB_PASSWORD": "console-test-db-pw-2a9d",
}
PORTS = {"ENVKIT_NOTES__API_PORT": "28810", "ENVKIT_NOTES__AUDIT_PORT": "28811",
         "ENVKIT_NOTES__DB_PORT": "28812"}  # fmt: skip
# The script pip installed next to this interpreter (`./inv` installs the package editable).
ENVKIT = Path(sys.executable).parent / "envkit"


def _run(args: list[str], project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENVKIT), *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _containers(engine: docker.DockerClient, run_id: str) -> list[str]:
    found = engine.containers.list(all=True, filters={"label": f"envkit.run={run_id}"})
    return [c.name for c in found]


def test_up_status_orchestrate_and_down_from_a_project_directory(
    tmp_path: Path, images: dict[str, ImageResult], engine: docker.DockerClient
) -> None:
    assert ENVKIT.is_file(), f"{ENVKIT} is missing: run ./inv once to install the package"
    project = tmp_path / "project"
    project.mkdir()
    # Nothing of the developer's envkit settings: the paths must default to the project.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVKIT_")}
    # No registry here: the team's Dockerfiles start FROM envkit's local Python image.
    env.update({**SECRETS, **PORTS, "ENVKIT_NOTES__BASE_IMAGE": images["services"].ref})

    started = _run(["up", "--stack", str(NOTES)], project, env)
    state_file = project / ".envkit-cache" / "state" / "up.json"
    run_id = json.loads(state_file.read_text())["run_id"] if state_file.is_file() else None
    try:
        assert started.returncode == 0, started.stderr
        assert run_id is not None
        assert "remove with `envkit down`" in started.stdout
        assert "(live: `envkit logs`)" in started.stdout
        assert (project / "artifacts" / run_id).is_dir()

        shown = _run(["status"], project, env)
        assert shown.returncode == 0, shown.stderr
        assert f"run {run_id}" in shown.stdout
        assert "http://127.0.0.1:28810" in shown.stdout

        checked = _run(["orchestrate"], project, env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        reports = sorted((project / "artifacts").glob("*/report.md"))
        assert len(reports) == 1, reports
        assert "```sh\nenvkit orchestrate\n```" in reports[0].read_text()
    finally:
        stopped = _run(["down"], project, env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"removed run {run_id}: 3 containers" in stopped.stdout
    assert not state_file.exists()
    assert _containers(engine, run_id) == []
    kept = sorted(p.name for p in (project / "artifacts" / run_id).iterdir())
    assert {"notes-api.log", "notes-audit.log", "notes-db.log"} <= set(kept)
    for path in (p for p in project.rglob("*") if p.is_file() and "artifacts" in p.parts):
        text = path.read_bytes().decode("utf-8", "replace")
        for secret in SECRETS.values():
            assert secret not in text, f"{secret!r} leaked into {path}"
    assert not (ROOT / "artifacts" / run_id).exists()
