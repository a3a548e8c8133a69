"""The workspace: relative settings resolve against the project root, not the cwd."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from envkit.spec.settings import load_settings
from envkit.spec.workspace import Workspace

ROOT = Path(__file__).resolve().parents[3]
PATH_SETTINGS = {
    "ENVKIT_ARTIFACT_ROOT": "out/artifacts",
    "ENVKIT_CACHE_DIR": "cache",
    "ENVKIT_HISTORY_PATH": "state/runs.sqlite",
}


def test_relative_settings_resolve_against_the_given_root_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    workspace = load_settings(None, PATH_SETTINGS, root=project).workspace
    assert workspace.root == project
    assert workspace.artifacts == project / "out" / "artifacts"
    assert workspace.cache == project / "cache"
    assert workspace.state == project / "cache" / "state"
    assert workspace.history == project / "state" / "runs.sqlite"
    assert workspace.env_file == project / ".env"


def test_the_default_stack_is_the_projects_own_else_the_bundled_mgm_stack(
    tmp_path: Path,
) -> None:
    workspace = load_settings(None, {}, root=tmp_path).workspace
    assert workspace.default_stack == ROOT / "envkit" / "compose" / "tier-b.toml"
    own = tmp_path / "compose" / "tier-b.toml"
    own.parent.mkdir()
    own.write_text("[stack]\nname = 'own'\n")
    assert workspace.default_stack == own


def test_absolute_settings_stay_where_they_point(tmp_path: Path) -> None:
    environ = {
        "ENVKIT_ARTIFACT_ROOT": str(tmp_path / "a"),
        "ENVKIT_CACHE_DIR": str(tmp_path / "c"),
        "ENVKIT_HISTORY_PATH": str(tmp_path / "h.sqlite"),
    }
    workspace = load_settings(None, environ, root=tmp_path / "project").workspace
    assert (workspace.artifacts, workspace.cache, workspace.history) == (
        tmp_path / "a", tmp_path / "c", tmp_path / "h.sqlite",
    )  # fmt: skip


def test_without_a_root_the_current_directory_at_build_time_is_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, {})
    monkeypatch.chdir(ROOT)  # moving later does not move the workspace
    assert settings.workspace.root == tmp_path.resolve()
    assert settings.workspace.artifacts == tmp_path.resolve() / "artifacts"


def test_the_root_survives_a_copy_of_the_settings(tmp_path: Path) -> None:
    from envkit.spec.settings import with_image_overrides

    settings = load_settings(None, {}, root=tmp_path)
    copied = with_image_overrides(settings, ["api=./api"], tmp_path)
    assert copied is not settings
    assert copied.workspace.root == tmp_path


def test_envkit_image_inputs_are_envkits_own_not_the_projects(tmp_path: Path) -> None:
    workspace = load_settings(None, {}, root=tmp_path).workspace
    assert workspace.envkit_home == ROOT / "envkit"
    # the repository's top-level folders, linked into the package as a wheel carries them
    assert (workspace.envkit_home / "services").resolve() == ROOT / "services"
    assert (workspace.envkit_home / "services" / "requirements.txt").is_file()
    assert (workspace.envkit_home / "constraints.txt").resolve() == ROOT / "constraints.txt"
    assert (workspace.envkit_home / "compose" / "tier-b.toml").is_file()


def test_display_is_relative_inside_the_root_and_absolute_outside(tmp_path: Path) -> None:
    workspace = Workspace.of(load_settings(None, {}), tmp_path / "project")
    assert workspace.display(tmp_path / "project" / "artifacts" / "r-1") == "artifacts/r-1"
    assert workspace.display(tmp_path / "other") == str(tmp_path / "other")
    assert workspace.resolve("compose/x.toml") == tmp_path / "project" / "compose" / "x.toml"
    assert workspace.resolve(tmp_path / "x.toml") == tmp_path / "x.toml"


def test_no_module_of_envkit_reads_a_project_root_constant() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "envkit").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bPROJECT_ROOT\b", line)
    ]
    assert found == []


def test_tasks_never_change_directory() -> None:
    tree = ast.parse((ROOT / "tasks.py").read_text())
    calls = [
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    ]
    assert "chdir" not in calls
    assert "chdir" not in (ROOT / "tasks.py").read_text()
