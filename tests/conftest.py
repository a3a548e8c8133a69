"""Shared test setup: no test sees the developer's own ENVKIT_ settings or .env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _clean_envkit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("ENVKIT_"):
            monkeypatch.delenv(key)
