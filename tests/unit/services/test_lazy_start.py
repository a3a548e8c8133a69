"""Each service starts without pydantic or httpx; what its routes import later still resolves.

The services load their pydantic models and httpx on the first request that needs
them (start-up CPU is scarce when one machine starts a whole stack). These tests
keep that true, and make sure a deferred import cannot hide a broken name until a
route runs: every import inside a function of the services' code is resolved here.
"""

from __future__ import annotations

import ast
import base64
import gc
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import envkit.services
from envkit.services.__main__ import SERVICES
from envkit.services.__main__ import main as services_main

SERVICES_DIR = Path(envkit.services.__file__).parent
DEFERRED = ("pydantic", "httpx")
ENV = {
    "ASPNETCORE_URLS": "http://+:8080",
    "ConnectionStrings__PostgreSQL": "Host=127.0.0.1;Port=1;Database=mgm;Username=u;Password=p",
    "Backend__BaseUrl": "http://127.0.0.1:8080",
    "Twitch__EventSubSecret": "lazy-start-secret",
    "Twitch__BroadcasterUserId": "1971641",
    "Twitch__ExtensionSecret": base64.b64encode(b"k" * 32).decode(),
}

_BUILD = """
import importlib, json, sys
from envkit.services.__main__ import SERVICES
module = importlib.import_module(SERVICES[sys.argv[1]], "envkit.services")
app = module.create_app(json.loads(sys.argv[2]))
paths = sorted({route.path for route in app.routes})
print(json.dumps({"paths": paths, "loaded": [m for m in sys.argv[3:] if m in sys.modules]}))
"""


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_service_builds_its_app_without_pydantic_or_httpx(name: str) -> None:
    found = subprocess.run(
        [sys.executable, "-c", _BUILD, name, json.dumps(ENV), *DEFERRED],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    built = json.loads(found.stdout.splitlines()[-1])
    assert "/health" in built["paths"]
    assert built["loaded"] == [], f"{name} imports {built['loaded']} at start-up"


def _deferred_imports() -> list[tuple[str, str, int, str, str | None]]:
    """(file, module to import, line, name or '', package) for each import inside a function."""
    found = []
    for path in sorted(SERVICES_DIR.rglob("*.py")):
        relative = path.relative_to(SERVICES_DIR).with_suffix("")
        parts = ["envkit", "services", *relative.parts]
        package = ".".join(parts if relative.name == "__init__" else parts[:-1])
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                where = str(path.relative_to(SERVICES_DIR))
                if isinstance(node, ast.Import):
                    found += [(where, a.name, node.lineno, "", None) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    module = "." * node.level + (node.module or "")
                    for alias in node.names:
                        found.append((where, module, node.lineno, alias.name, package))
    return found


def test_the_services_defer_imports_to_their_routes() -> None:
    """The check below has something to check: the models are imported by the routes."""
    modules = {module for _, module, _, _, _ in _deferred_imports()}
    assert {".models", "pydantic", "httpx"} <= modules


@pytest.mark.parametrize(
    ("where", "module", "line", "name", "package"),
    _deferred_imports(),
    ids=lambda value: str(value),
)
def test_every_deferred_import_resolves(
    where: str, module: str, line: int, name: str, package: str | None
) -> None:
    loaded = importlib.import_module(module, package)
    if name and not hasattr(loaded, name):  # `from . import models`: a submodule
        submodule = module + name if module.endswith(".") else f"{module}.{name}"
        try:
            importlib.import_module(submodule, package)
        except ModuleNotFoundError as exc:
            raise AssertionError(f"{where}:{line} imports {name} from {module}: {exc}") from exc


def test_a_refused_start_leaves_garbage_collection_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main` turns collection off while it loads; a start it refuses must turn it back on."""
    monkeypatch.setenv("ASPNETCORE_URLS", "http://+:notaport")
    assert gc.isenabled()
    assert services_main(["mock-helix"]) == 2
    assert gc.isenabled()
