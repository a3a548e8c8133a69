"""The `envkit` console script: Invoke's Program over envkit's own collection of commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import envkit
from envkit.cli import namespace, program
from envkit.program import command, program_name, running_as

ROOT = Path(__file__).resolve().parents[3]
COMMANDS = {
    "config", "engine", "images", "up", "down", "status", "logs", "clean", "run", "tier-b",
    "orchestrate", "replay", "history", "diff", "health-report", "alert", "demo",
}  # fmt: skip
# One service on a public image: enough for settings and the `up` state lookup, no Docker.
STACK = '[stack]\nname = "tiny"\n\n[services.web]\nimage = "nginx:1"\nport = 80\nlog = "web.log"\n'


def _envkit(args: list[str], cwd: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    # DOCKER_HOST names a closed port: a command that reached for the engine would say so.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVKIT_")}
    env.update(environ, DOCKER_HOST="tcp://127.0.0.1:9")
    return subprocess.run(
        [sys.executable, "-m", "envkit.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _listed(text: str) -> set[str]:
    """The command names of an Invoke listing (indented rows after a header)."""
    return {
        line.split()[0] for line in text.splitlines() if line.startswith("  ") and line[2] != " "
    }


def test_version_names_the_program_and_the_installed_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    program.run(["envkit", "--version"], exit=False)
    assert capsys.readouterr().out == f"envkit {envkit.__version__}\n"


def test_help_shows_the_envkit_usage_and_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    program.run(["envkit", "--help"], exit=False)
    out = capsys.readouterr().out
    assert out.startswith("Usage: envkit [--core-opts] <subcommand> [--subcommand-opts] ...\n")
    subcommands = out[out.index("Subcommands:") :]
    assert _listed(subcommands) >= COMMANDS


def test_list_names_every_command_and_nothing_of_the_repository(
    capsys: pytest.CaptureFixture[str],
) -> None:
    program.run(["envkit", "--list"], exit=False)
    assert _listed(capsys.readouterr().out) == COMMANDS


def test_a_command_has_the_same_flags_as_the_repository_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    program.run(["envkit", "--help", "tier-b"], exit=False)
    out = capsys.readouterr().out
    assert out.startswith("Usage: envkit [--core-opts] tier-b [--options] [other tasks here ...]")
    for flag in ("--stack", "--only", "--keep", "--repeat", "--override", "--scenario", "--image"):
        assert flag in out, flag


def test_the_repository_namespace_is_the_packages_plus_its_own_tasks(
    tasks_module: object,
) -> None:
    ns = tasks_module.ns  # type: ignore[attr-defined]
    assert set(ns.task_names) == COMMANDS | {"test"}
    assert ns.configuration()["envkit"]["root"] == str(ROOT)
    # The package's collection is built anew each time: the repository's `test` stays out.
    assert set(namespace().task_names) == COMMANDS


def test_a_missing_stack_file_is_a_clear_error_without_a_traceback(tmp_path: Path) -> None:
    result = _envkit(["up", "--stack", "/no/such/file.toml"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "envkit: 1 problem in the stack:\n"
        "  - /no/such/file.toml: no such stack file; check the path\n"
    )


def test_an_unknown_command_is_refused(tmp_path: Path) -> None:
    result = _envkit(["upp"], cwd=tmp_path)
    assert result.returncode == 1
    assert "No idea what 'upp' is!" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_project_is_the_current_directory_and_hints_name_envkit(tmp_path: Path) -> None:
    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "tier-b.toml").write_text(STACK)
    result = _envkit(["status"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "envkit: No stack is up. Start one with `envkit up`.\n"


def test_an_unknown_name_in_the_projects_env_file_is_refused_naming_envkit_config(
    tmp_path: Path,
) -> None:
    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "tier-b.toml").write_text(STACK)
    (tmp_path / ".env").write_text("ENVKIT_ZZQQXX=1\n")
    result = _envkit(["config"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "envkit: 1 setting is invalid:\n"
        f"  - ENVKIT_ZZQQXX (in {tmp_path / '.env'}) is not an envkit setting; "
        "`envkit config` and .env.example list the accepted names\n"
    )


def test_config_reads_the_projects_env_file_and_default_stack(tmp_path: Path) -> None:
    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "tier-b.toml").write_text(STACK)
    (tmp_path / ".env").write_text("ENVKIT_ARTIFACT_ROOT=runs\n")
    result = _envkit(["config"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"stack {tmp_path / 'compose' / 'tier-b.toml'}" in result.stdout
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert rows["ENVKIT_ARTIFACT_ROOT"].split("│")[2].strip() == "runs"


def test_the_program_name_is_set_for_the_run_and_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "tier-b.toml").write_text(STACK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    for name in [k for k in os.environ if k.startswith("ENVKIT_")]:
        monkeypatch.delenv(name)
    program.run(["envkit", "status"], exit=False)
    assert capsys.readouterr().err == "envkit: No stack is up. Start one with `envkit up`.\n"
    assert program_name() == "./inv"


def test_hints_name_the_repository_wrapper_unless_told_otherwise() -> None:
    assert command("replay artifacts/run-1") == "./inv replay artifacts/run-1"
    with running_as("envkit"):
        assert command("down") == "envkit down"
        with running_as("inv"):
            assert program_name() == "inv"
        assert program_name() == "envkit"
    assert command("down") == "./inv down"


def test_an_installed_envkit_names_the_console_script_by_default(tmp_path: Path) -> None:
    import importlib.util
    import shutil

    import envkit.program

    # The same module where a wheel puts it: site-packages/envkit/program.py, no `./inv` nearby.
    copy = tmp_path / "site-packages" / "envkit" / "program.py"
    copy.parent.mkdir(parents=True)
    shutil.copy(envkit.program.__file__, copy)
    spec = importlib.util.spec_from_file_location("installed_program", copy)
    assert spec is not None
    assert spec.loader is not None
    installed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installed)

    assert installed.DEFAULT_PROGRAM == "envkit"
    assert installed.command("down") == "envkit down"
    assert envkit.program.DEFAULT_PROGRAM == "./inv"  # this checkout
