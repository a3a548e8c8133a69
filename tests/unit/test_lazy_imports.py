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


def loaded(code: str, names: tuple[str, ...]) -> set[str]:
    """Which of `names` (or a module under one) are in sys.modules after `code` runs."""
    script = (
        f"import json, sys\n{code}\nprint(json.dumps([n for n in {names!r} if any("
        "m == n or m.startswith(n + '.') for m in sys.modules)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


# Everything `invoke up` runs before its first container create that needs no engine: the
# tasks and their modules, the settings and the stack, a client for a local socket, and a
# service's container object.
BEFORE_FIRST_CONTAINER = """
import tasks
from envkit.lifecycle import commands, environment
from envkit.lifecycle.containers import EngineClient, ServiceContainer
from envkit.spec.settings import load_settings
from envkit.spec.stack import load_stack, resolve_stack
root = commands.Path.cwd()
stack = load_settings(None, root=root, strict=False).workspace.default_stack
resolve_stack(load_stack(stack), load_settings(None, root=root, stack=stack))
client = commands.docker.DockerClient(base_url="unix:///nowhere.sock", version="1.41")
ServiceContainer("postgres:16-alpine", EngineClient(client), (5432, "127.0.0.1", None))
"""


def test_up_loads_no_report_code_and_no_ssh_library_before_its_first_container() -> None:
    # The evidence modules other than the redactor (reports, history, bundles) and rich (the
    # spinner and tables) come after the stack is up; paramiko (ssh:// engines), filelock
    # (builds) and httpx (https probes) only when used.
    later = (
        "envkit.evidence.outcome", "envkit.evidence.markdown", "envkit.evidence.artifacts",
        "envkit.evidence.bundle", "envkit.evidence.history", "envkit.evidence.timeline",
        "envkit.scenario", "paramiko.client", "cryptography", "nacl", "filelock", "httpx",
        "psycopg", "rich",
    )  # fmt: skip
    assert loaded(BEFORE_FIRST_CONTAINER, later) == set()
    assert loaded(BEFORE_FIRST_CONTAINER, ("docker", "testcontainers", "envkit.evidence.redact"))


def test_paramiko_is_loaded_whole_when_an_ssh_engine_needs_it() -> None:
    # docker-py's own ssh transport (no `ssh` command) uses paramiko's client: it must load
    # on that first use. Nothing listens on port 1, so paramiko's connect error shows it ran.
    code = (
        "import envkit, docker\n"
        "from docker.transport.sshconn import SSHHTTPAdapter\n"
        "assert 'paramiko.client' not in sys.modules\n"
        "try:\n    SSHHTTPAdapter('ssh://nobody@127.0.0.1:1')\n"
        "except Exception as exc:\n    print(type(exc).__module__)\n"
    )
    script = f"import sys\n{code}"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split()[-1].startswith("paramiko")


def test_paramiko_imported_before_envkit_stays_as_it_was() -> None:
    code = "import paramiko, envkit, docker\nassert paramiko.SSHClient\n"
    assert loaded(code, ("paramiko.client",)) == {"paramiko.client"}
