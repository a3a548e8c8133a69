"""envkit's curated public API: what `__all__` promises, that it loads, and that it is cheap."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import envkit

ROOT = Path(__file__).resolve().parents[2]

PUBLIC = {
    "__version__",
    # the short way in
    "open_stack", "Stack", "RunningStack",
    # settings
    "load_settings", "EnvkitSettings", "Workspace",
    # the stack
    "load_stack", "resolve_stack", "StackSpec",
    # the environment
    "running_stack", "Environment", "up", "status", "logs", "down", "clean",
    # the scenario
    "run_isolated", "orchestrate", "replay", "Fault", "Scenario", "Step", "StepContext",
    # the results
    "RunOutcome", "StepResult", "Failure",
    # errors
    "EnvkitError", "SettingsError", "StackError", "ScenarioError", "EngineError",
    "ImageError", "ServiceNotReady",
}  # fmt: skip


def test_all_is_exactly_the_curated_api() -> None:
    assert set(envkit.__all__) == PUBLIC
    assert len(envkit.__all__) == len(PUBLIC)  # no name listed twice


def test_every_public_name_loads_and_is_the_modules_own_object() -> None:
    from envkit import errors
    from envkit.scenario import runner
    from envkit.spec import settings

    for name in envkit.__all__:
        assert getattr(envkit, name) is not None, name
    assert envkit.run_isolated is runner.run_isolated
    assert envkit.load_settings is settings.load_settings
    assert issubclass(envkit.ServiceNotReady, errors.EnvkitError)
    assert sorted(dir(envkit)) == sorted(envkit.__all__)


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="module 'envkit' has no attribute 'no_such_thing'"):
        envkit.no_such_thing  # noqa: B018


def test_the_lazy_table_and_all_agree() -> None:
    assert set(envkit._WHERE) | {"__version__"} == set(envkit.__all__)


def test_version_is_the_installed_distributions() -> None:
    assert envkit.__version__ == importlib.metadata.version("envkit")


def test_importing_envkit_loads_neither_docker_nor_testcontainers() -> None:
    code = (
        "import sys, envkit; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('docker', 'testcontainers', 'httpx', 'pydantic')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
