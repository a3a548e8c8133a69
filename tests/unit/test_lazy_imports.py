"""What a command imports before it needs it: each check runs in a fresh interpreter.

Imports are most of the time `invoke up` takes before its first container: the engine's
client, testcontainers and httpx are loaded only by the code that uses them.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys

from envkit.healthchecks._probes import _verify

HEAVY = ("docker", "testcontainers", "httpx", "paramiko", "psycopg")


def loaded_after(code: str) -> set[str]:
    """Which of HEAVY are in sys.modules after running `code` in a new interpreter."""
    script = (
        f"import json, sys\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_the_command_line_imports_no_engine_client_or_http_library() -> None:
    assert loaded_after("import envkit.cli") == set()


def checked(url: str) -> str:
    """Code that checks an HttpProbe of `url` once (nothing listens there)."""
    return (
        "from envkit.healthchecks import HttpProbe, ProbeFailed\n"
        f"try:\n    HttpProbe({url!r}, timeout=0.5).check()\n"
        "except ProbeFailed:\n    pass"
    )


def test_the_probe_library_imports_httpx_only_for_an_https_check() -> None:
    assert "httpx" not in loaded_after("import envkit.healthchecks")
    assert "httpx" not in loaded_after(checked("http://127.0.0.1:1/health"))
    assert "httpx" in loaded_after(checked("https://127.0.0.1:1/health"))


def test_an_http_probe_builds_no_tls_context_and_an_https_probe_verifies() -> None:
    assert _verify("http://127.0.0.1:8080/health") is False
    context = _verify("HTTPS://example.invalid/health")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert _verify("https://other.invalid/") is context  # one shared context
