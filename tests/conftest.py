"""Shared test setup: no test sees the developer's own ENVKIT_ settings or .env."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
