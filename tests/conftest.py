"""Shared test setup: no test sees the developer's own ENVKIT_ settings or .env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_envkit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("ENVKIT_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session", autouse=True)
def _project_history_untouched() -> Iterator[None]:
    """Tests record runs in their own temporary histories, never in the developer's."""
    history = ROOT / ".envkit-state" / "history.sqlite"

    def stamp() -> tuple[bool, float]:
        return (history.exists(), history.stat().st_mtime if history.exists() else 0.0)

    before = stamp()
    yield
    assert stamp() == before, f"a test wrote to the project's run history {history}"


@pytest.fixture(scope="session")
def modules_imported_before_pytester() -> None:
    """Import envkit and what it talks through before any test that uses `pytester`.

    pytester restores `sys.modules` after each such test, dropping every module first
    imported during it; importing one again later makes new classes that no longer match
    what was built from the old ones (httpx's map of httpcore errors, testcontainers'
    dispatch on container classes), and tests that run afterwards fail with raw httpcore
    errors. Session scope puts this before any function's `pytester` snapshot.
    """
    import importlib
    import pkgutil

    import envkit

    for module in ("httpcore", "httpx", "docker", "testcontainers.core.container"):
        importlib.import_module(module)
    skip = ("envkit.services", "envkit.reaperd", "envkit.pytest_plugin")
    for info in pkgutil.walk_packages(envkit.__path__, "envkit."):
        if not info.name.startswith(skip) and not info.name.endswith(".__main__"):
            importlib.import_module(info.name)


# Property-based tests (hypothesis): bounded everywhere; in CI derandomized, so a run is
# reproducible and cannot fail by luck. HYPOTHESIS_PROFILE=explore searches wider locally.
settings.register_profile(
    "dev", max_examples=60, deadline=timedelta(seconds=5), database=None, print_blob=True
)
settings.register_profile("ci", settings.get_profile("dev"), derandomize=True)
settings.register_profile("explore", settings.get_profile("dev"), max_examples=1000)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(scope="session")
def envkit_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built once per session (outside the repository)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "--quiet", "--disable-pip-version-check", "-w", str(out)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("envkit-*.whl")
    return built
