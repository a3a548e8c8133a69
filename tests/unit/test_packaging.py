"""The wheel is envkit alone: one top-level package carrying the services, the probe library,
the bundled stacks and the image inputs, and no top-level name a user's project could own."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Run inside the services image, where the services' code is the top-level `services`.
IN_CONTAINER = {ROOT / "tests" / "data" / "standin-backend"}


@pytest.fixture(scope="module")
def wheel(envkit_wheel: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(envkit_wheel)


def test_the_wheel_has_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"envkit"}
    top_level = next(n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt"))
    assert wheel.read(top_level).decode().split() == ["envkit"]


def test_the_wheel_carries_what_an_installed_envkit_needs(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    needed = {
        # image inputs: the services' code and requirements, the pins, the Dockerfiles
        "envkit/services/__main__.py",
        "envkit/services/backend/app.py",
        "envkit/services/requirements.txt",
        "envkit/constraints.txt",
        "envkit/engines/imagefiles/services.Dockerfile",
        "envkit/engines/imagefiles/postgres.Dockerfile",
        "envkit/engines/imagefiles/reaper.Dockerfile",
        "envkit/reaperd/requirements.txt",
        "envkit/reaperd/__main__.py",
        # the probe library
        "envkit/healthchecks/__init__.py",
        # the MGM stack: its files and its own modules
        "envkit/compose/tier-b.toml",
        "envkit/compose/mgm-smoke.toml",
        "envkit/compose/mgm_stack/settings.py",
        "envkit/compose/mgm_stack/scenario.py",
        "envkit/py.typed",
    }
    assert needed <= names, sorted(needed - names)
    # every file of the linked folders, byte for byte
    for folder in ("services", "healthchecks", "compose"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                inside = f"envkit/{path.relative_to(ROOT).as_posix()}"
                assert wheel.read(inside) == path.read_bytes(), inside


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_nothing_imports_services_or_healthchecks_as_top_level_packages() -> None:
    # Outside the image they are envkit.services and envkit.healthchecks; inside their
    # own packages they import themselves relatively, so both spellings work.
    folders = ["envkit", "services", "healthchecks", "compose", "tests", "benchmarks"]
    files = [ROOT / "tasks.py", *(p for folder in folders for p in (ROOT / folder).rglob("*.py"))]
    checked = [
        path
        for path in files
        if "__pycache__" not in path.parts and not any(p in IN_CONTAINER for p in path.parents)
    ]
    assert len(checked) > 100
    offenders = [
        str(path.relative_to(ROOT))
        for path in checked
        if _top_level_imports(path) & {"services", "healthchecks"}
    ]
    assert offenders == []
