"""Replay without an engine: artifact zips in GitHub's layouts, and what differs before a run."""

from __future__ import annotations

import hashlib
import importlib.metadata
import subprocess
import zipfile
from pathlib import Path

import pytest

from envkit.errors import ReplayError
from envkit.evidence.bundle import role_inputs, write_bundle
from envkit.evidence.manifest import ImageRecord, Manifest, StackRecord, write_manifest
from envkit.evidence.redact import Redactor
from envkit.scenario.replayer import open_artifact, plan_replay, replay
from envkit.spec.settings import load_settings

STACK = """[stack]
name = "web"

[services.web]
image = "services"
command = ["mock-jwt"]
port = 8080
log = "web.log"
"""


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return done.stdout.decode().strip()


def _project(root: Path) -> str:
    root.mkdir(parents=True)
    (root / "stack.toml").write_text(STACK)
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", ".")
    _git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "s")
    return _git(root, "rev-parse", "HEAD")


def _run(tmp_path: Path, *, inputs: str | None = None, version: str | None = None) -> Path:
    """A recorded run of the project's stack, made at the project's commit."""
    project = tmp_path / "project"
    commit = _project(project)
    run = tmp_path / "artifacts" / "web-20261201T120000-1a2b3c4d"
    run.mkdir(parents=True)
    record = write_bundle(run, project / "stack.toml", project, Redactor([]))
    settings = load_settings(None, {}, stack=project / "stack.toml", root=project)
    manifest = Manifest(
        StackRecord("stack.toml", hashlib.sha256(STACK.encode()).hexdigest()),
        envkit_version=version or importlib.metadata.version("envkit"),
        git_commit=commit,
        images={"web": ImageRecord("envkit/services:1", id="sha256:a", source="role",
                                   inputs=inputs or role_inputs("services", settings))},
        bundle=record,
    )  # fmt: skip
    write_manifest(manifest, run, lambda text: text)
    (run / "summary.json").write_text('{"failure": {"failure_class": "step-failed:x"}}')
    return run


def _zip(run: Path, archive: Path, *, nested: bool) -> Path:
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in run.rglob("*"):
            if path.is_file():
                zipped.write(path, path.relative_to(run.parent if nested else run).as_posix())
    return archive


@pytest.mark.parametrize("nested", [False, True], ids=["files-at-root", "run-dir-inside"])
def test_a_github_artifact_zip_opens_in_either_layout(tmp_path: Path, nested: bool) -> None:
    run = _run(tmp_path)
    (tmp_path / "downloads").mkdir()
    archive = _zip(run, tmp_path / "downloads" / "tier-b-artifacts.zip", nested=nested)
    found = open_artifact(archive)
    unpacked = tmp_path / "downloads" / "tier-b-artifacts"
    assert found == (unpacked / run.name if nested else unpacked)
    assert (found / "bundle" / "stack.toml").read_text() == STACK
    assert open_artifact(archive) == found  # unpacked once, found again
    assert open_artifact(run) == run
    assert open_artifact(run.parent) == run  # one level down


def test_a_zip_with_another_content_unpacks_beside_the_first(tmp_path: Path) -> None:
    run = _run(tmp_path)
    archive = _zip(run, tmp_path / "a.zip", nested=False)
    first = open_artifact(archive)
    (run / "extra.log").write_text("more\n")
    second = open_artifact(_zip(run, archive, nested=False))
    assert second != first
    assert (second / "extra.log").is_file()


def test_what_is_not_a_run_is_refused_with_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="does not exist: give a run's artifact directory"):
        open_artifact(tmp_path / "nothing.zip")
    (tmp_path / "notes.zip").write_text("not a zip")
    with pytest.raises(ReplayError, match=r"is neither a directory nor a zip file: give a run"):
        open_artifact(tmp_path / "notes.zip")
    for name in ("one", "two"):
        (tmp_path / "many" / name).mkdir(parents=True)
        (tmp_path / "many" / name / "manifest.json").write_text("{}")
    with pytest.raises(ReplayError, match=r"holds 2 runs \(one, two\); give the directory"):
        open_artifact(tmp_path / "many")


def test_an_unchanged_checkout_replays_exactly(tmp_path: Path) -> None:
    plan = plan_replay(_run(tmp_path), root=tmp_path / "project")
    assert plan.differences == []
    assert plan.exact
    assert plan.stack_file == plan.run_dir / "bundle" / "stack.toml"


def test_a_changed_stack_commit_version_and_image_inputs_are_each_named(tmp_path: Path) -> None:
    run = _run(tmp_path, inputs="0123456789abcdef", version="0.0.1")
    project = tmp_path / "project"
    (project / "stack.toml").write_text(STACK + "# changed\n")
    before = _git(project, "rev-parse", "HEAD")
    _git(project, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit",
         "-qam", "drift")  # fmt: skip
    plan = plan_replay(run, root=project)
    now = role_inputs("services", plan.settings)
    assert [str(d) for d in plan.differences] == [
        f"envkit version: the run used 0.0.1, this is {importlib.metadata.version('envkit')}",
        f"git commit: the run was made at {before[:12]}, this checkout ({project}) is at "
        f"{_git(project, 'rev-parse', 'HEAD')[:12]}",
        "stack content: stack.toml differs from the recorded copy (the replay runs the "
        "bundled copy)",
        f"image inputs: web: built from other inputs (inputs 0123456789abcdef then, inputs "
        f"{now} now)",
    ]
    assert not plan.exact
    assert plan.stack_file.read_text() == STACK  # the recorded copy, not the edited one


def test_strict_refuses_before_anything_starts(tmp_path: Path) -> None:
    run = _run(tmp_path, version="0.0.1")
    said: list[str] = []
    with pytest.raises(ReplayError) as refused:
        replay(run, root=tmp_path / "project", strict=True, say=said.append)
    assert str(refused.value) == (
        f"--strict: the replay of {run} would differ from the recorded run:\n"
        f"  - envkit version: the run used 0.0.1, this is {importlib.metadata.version('envkit')}"
        "\nCheck out the recorded commit (and envkit version), or replay without --strict to "
        "run it anyway."
    )
    assert said == [str(refused.value).splitlines()[1].removeprefix("  - ")]
