"""A red run's artifact `.zip`, replayed elsewhere: differences first, then the same class.

The zips are made as GitHub Actions' artifact download makes them (the run's files at
the root, or the run directory one level down); the replay runs in a `git clone` of this
checkout at another path, with its own project root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from envkit.errors import ReplayError
from envkit.scenario.faults import Fault
from envkit.scenario.replayer import replay
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

ROOT = Path(__file__).resolve().parents[2]
HARNESS_OFF = {"backend": {"Mgm__EnableE2eHarness": "false"}}


def github_zip(run_dir: Path, archive: Path, *, nested: bool) -> Path:
    """Zip `run_dir` as an artifact download: its files at the root, or under its own name."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(run_dir.rglob("*")):
            if path.is_file():
                name = path.relative_to(run_dir.parent if nested else run_dir).as_posix()
                zipped.write(path, name)
    return archive


def clone_of_this_checkout(where: Path) -> Path:
    """A `git clone` of this repository's committed tree at another path."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(where)], check=True)
    for key, value in (("user.email", "replay@example.invalid"), ("user.name", "replay")):
        subprocess.run(["git", "-C", str(where), "config", key, value], check=True)
    return where


@pytest.fixture
def red_run(sandbox: Callable[..., EnvkitSettings], tmp_path: Path) -> tuple[Path, str]:
    """A failed run (the E2E harness switched off) and its failure class."""
    settings = sandbox(ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS="30")
    outcome, where = run_isolated(settings, overrides=HARNESS_OFF, only="tier-b")
    assert outcome.failure is not None
    return where, outcome.failure.failure_class


def test_a_zip_replayed_in_another_clone_says_what_differs_then_reproduces_the_class(
    red_run: tuple[Path, str], tmp_path: Path
) -> None:
    where, failure_class = red_run
    bundle = json.loads((where / "manifest.json").read_text())["bundle"]
    assert bundle["stack"] == "compose/tier-b.toml"
    assert (where / "bundle" / "compose" / "tier-b.toml").is_file()
    assert (where / "bundle" / "compose" / "mgm_stack" / "scenario.py").is_file()
    archive = github_zip(where, tmp_path / "tier-b-artifacts.zip", nested=True)
    clone = clone_of_this_checkout(tmp_path / "elsewhere" / "envkit")
    with (clone / "compose" / "tier-b.toml").open("a") as stack:
        stack.write("# edited in the clone after the run\n")

    environ = {
        **os.environ,
        "ENVKIT_ARTIFACT_ROOT": str(tmp_path / "replays"),
        "ENVKIT_HISTORY_PATH": str(tmp_path / "replays.sqlite"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "envkit.cli", "replay", str(archive)],
        cwd=clone, env=environ, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    said = " ".join(result.stdout.split())  # the console wraps long lines at 140 columns
    assert result.returncode == 1, said + result.stderr  # the replayed run failed again
    changed = (
        "differs: stack content: compose/tier-b.toml differs from the recorded copy "
        "(the replay runs the bundled copy)"
    )
    assert changed in said, said
    verdict = f"{failure_class}, the same as the original ({failure_class})"
    assert verdict in said, said
    assert said.index(changed) < said.index(f"replay of {archive}")
    # The zip was unpacked next to it and the replay ran the bundled stack, not the clone's.
    (replayed,) = (tmp_path / "replays").iterdir()
    manifest = json.loads((replayed / "manifest.json").read_text())
    assert manifest["stack"]["file"] == "compose/tier-b.toml"
    assert manifest["bundle"]["files"] == bundle["files"]
    summary = json.loads((replayed / "summary.json").read_text())
    assert summary["failure"]["failure_class"] == failure_class
    assert (tmp_path / "tier-b-artifacts" / where.name / "manifest.json").is_file()


def test_strict_refuses_a_changed_commit_and_stack_before_anything_runs(
    red_run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where, _ = red_run
    archive = github_zip(where, tmp_path / "run.zip", nested=False)
    clone = clone_of_this_checkout(tmp_path / "other" / "envkit")
    (clone / "compose" / "tier-b.toml").write_text(
        (clone / "compose" / "tier-b.toml").read_text().replace('run_name = "tier-b"', "")
    )
    subprocess.run(["git", "-C", str(clone), "commit", "-qam", "drift"], check=True)
    monkeypatch.setenv("ENVKIT_ARTIFACT_ROOT", str(tmp_path / "replays"))
    monkeypatch.setenv("ENVKIT_HISTORY_PATH", str(tmp_path / "replays.sqlite"))
    said: list[str] = []
    with pytest.raises(ReplayError) as refused:
        replay(archive, root=clone, strict=True, say=said.append)
    message = str(refused.value)
    assert message.startswith(f"--strict: the replay of {tmp_path / 'run'} would differ")
    assert "  - stack content: compose/tier-b.toml differs from the recorded copy" in message
    assert "  - git commit: the run was made at " in message
    assert f"this checkout ({clone}) is at" in message
    assert message.endswith("or replay without --strict to run it anyway.")
    assert said
    assert all(line in message for line in said)
    assert not (tmp_path / "replays").exists()  # nothing ran


def test_a_recorded_helix_fault_is_replayed_at_the_same_step_with_the_same_class(
    sandbox: Callable[..., EnvkitSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sandbox(ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS="30")
    fault = Fault(at_step="desktop-sequence", kind="helix-status", args={"status": 500})
    outcome, where = run_isolated(settings, faults=[fault])
    assert outcome.failure is not None
    statuses = {s.name: s.status for s in outcome.steps}
    assert statuses["desktop-sequence"] != "skipped"
    assert statuses["helix-chat-message"] == "failed", statuses
    (event,) = outcome.events
    assert (event["at_step"], event["kind"], event["args"]) == (
        "desktop-sequence", "helix-status", {"status": 500}
    )  # fmt: skip
    assert isinstance(event["seed"], int)
    log = (where / "mgm-tier-b-orchestrator.log").read_text()
    assert "fault injected: helix-status status=500 before step 'desktop-sequence'" in log
    assert log.index("fault injected") < log.index("step tier-b/desktop-sequence: start")
    assert json.loads((where / "manifest.json").read_text())["faults"] == outcome.events

    monkeypatch.setenv("ENVKIT_ARTIFACT_ROOT", str(tmp_path / "replays"))
    monkeypatch.setenv("ENVKIT_HISTORY_PATH", str(tmp_path / "replays.sqlite"))
    again = replay(where, root=ROOT)
    assert again.same_class, (again.failure_class, again.original_class)
    assert again.failure_class == outcome.failure.failure_class
    (replayed,) = again.outcome.events
    assert {k: v for k, v in replayed.items() if k != "at"} == {
        k: v for k, v in event.items() if k != "at"
    }
    assert [s.status for s in again.outcome.steps] == [s.status for s in outcome.steps]
