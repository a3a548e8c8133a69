"""healthchecks' own error tree, and that the library imports nothing else of envkit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import envkit.errors
from envkit import healthchecks
from envkit.errors import EnvkitError
from envkit.healthchecks import (
    HealthcheckError,
    ProbeAborted,
    ProbeError,
    ProbeFailed,
    ProbeTimeout,
)

ROOT = Path(__file__).resolve().parents[3]

_LOADED = """
import json, sys
from envkit import healthchecks
def loaded(roots):
    return sorted(
        m for m in sys.modules
        if m.split(".")[0] in roots and m != "envkit" and not m.startswith("envkit.healthchecks")
    )
before = loaded({"envkit", "testcontainers"})
healthchecks.ProbeWaitStrategy
after = loaded({"envkit"})
print(json.dumps({"file": healthchecks.__file__, "before": before, "after": after}))
"""


def test_the_tree_has_its_own_root_outside_envkit() -> None:
    assert issubclass(ProbeTimeout, ProbeError)
    assert issubclass(ProbeAborted, ProbeError)
    assert issubclass(ProbeError, HealthcheckError)
    assert issubclass(ProbeFailed, HealthcheckError)
    assert not issubclass(ProbeFailed, ProbeError)
    assert not issubclass(HealthcheckError, EnvkitError)
    assert ProbeFailed("connection refused").reason == "connection refused"


def test_envkit_errors_reexports_the_same_classes() -> None:
    # envkit code catching envkit.errors.ProbeError catches what healthchecks raises.
    for name in ("HealthcheckError", "ProbeError", "ProbeTimeout", "ProbeAborted", "ProbeFailed"):
        assert getattr(envkit.errors, name) is getattr(healthchecks, name)


def test_importing_healthchecks_loads_no_other_envkit_module_nor_testcontainers() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LOADED],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    loaded = json.loads(result.stdout)

    # envkit.healthchecks is the repository's top-level healthchecks/ folder
    assert Path(loaded["file"]).resolve() == ROOT / "healthchecks" / "__init__.py"
    assert loaded["before"] == []
    assert loaded["after"] == []  # the testcontainers adapter needs no envkit either


def test_timeout_message_names_the_service_the_probe_and_the_fix() -> None:
    exc = ProbeTimeout("backend", "HTTP GET http://127.0.0.1:1/health expecting 200", 2.04, 3, "x")

    assert str(exc) == (
        "backend did not become ready within 2.0 s: HTTP GET http://127.0.0.1:1/health "
        "expecting 200 failed 3 times; last error: x. Check the service's log for why it is "
        "not ready, or raise its readiness timeout if it is only slow to start."
    )
    assert (exc.service, exc.elapsed, exc.attempts, exc.last_error) == ("backend", 2.04, 3, "x")
