"""Fixtures shared by the unit tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tasks_module() -> ModuleType:
    """tasks.py, loaded from its file (it is not on sys.path under pytest's importlib mode)."""
    spec = importlib.util.spec_from_file_location("envkit_tasks_under_test", ROOT / "tasks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
