"""Find a reachable Docker engine, or start Debian's `dockerd` when that is safe.

An engine that already answers is never touched. Only when nothing answers,
`DOCKER_HOST` is unset, the process is root and the system is Debian does
envkit install `docker.io` (if missing) and start `dockerd` in the background.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import docker
from docker.errors import DockerException

from envkit.engines.debian import can_install, ensure_command, host_lock
from envkit.errors import EngineError
from envkit.logs import log

DEFAULT_SOCKET = "/var/run/docker.sock"
DOCKERD_LOG = Path("/var/log/envkit-dockerd.log")
LOCK_FILE = Path("/tmp/envkit-engine.lock")  # one engine start at a time, across processes
_NO_ENGINE_HINT = (
    "Start a Docker engine and try again: e.g. `sudo systemctl start docker`, Docker Desktop, "
    "or point DOCKER_HOST at a reachable engine (e.g. DOCKER_HOST=ssh://user@host). "
    "envkit starts one itself only when it runs as root on Debian with no DOCKER_HOST set."
)


@dataclass(frozen=True)
class EngineInfo:
    """What answered: where, which version, and whether envkit started it."""

    endpoint: str
    server_version: str
    api_version: str
    started_here: bool


def ping(timeout: float = 3.0) -> EngineInfo | None:
    """Return the engine's details if one answers at DOCKER_HOST or the default socket."""
    try:
        client = docker.from_env(timeout=int(max(timeout, 1)))
    except DockerException:
        return None
    try:
        client.ping()
        version = client.version()
    except (DockerException, OSError):
        return None
    finally:
        client.close()
    endpoint = os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    return EngineInfo(endpoint, str(version.get("Version")), str(version.get("ApiVersion")), False)


def ensure_engine(timeout: float = 90.0) -> EngineInfo:
    """Return a reachable engine, starting Debian's dockerd here if none answers and it is safe."""
    info = ping()
    if info is not None:
        log.debug("Docker engine {} answers at {}", info.server_version, info.endpoint)
        return info
    if os.environ.get("DOCKER_HOST"):
        raise EngineError(
            f"No Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']}. "
            "envkit does not start a local engine when DOCKER_HOST points elsewhere. "
            + _NO_ENGINE_HINT
        )
    if not can_install():
        raise EngineError(
            f"No Docker engine answers at unix://{DEFAULT_SOCKET}. " + _NO_ENGINE_HINT
        )
    with host_lock(LOCK_FILE):
        info = ping()  # another envkit process may have started it while we waited
        if info is not None:
            return info
        ensure_command("dockerd", "docker.io", "no Docker engine answers here")
        _start_dockerd()
        return _wait_for_engine(timeout)


def _start_dockerd() -> None:
    log.info("Starting dockerd in the background (its log: {})", DOCKERD_LOG)
    with DOCKERD_LOG.open("ab") as out:
        subprocess.Popen(
            ["dockerd"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this process, like a service would
        )


def _wait_for_engine(timeout: float) -> EngineInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = ping(timeout=2.0)
        if info is not None:
            log.info("dockerd {} is up", info.server_version)
            return EngineInfo(info.endpoint, info.server_version, info.api_version, True)
        time.sleep(0.25)
    tail = _tail(DOCKERD_LOG, 20)
    raise EngineError(
        f"dockerd was started but did not answer within {timeout:.0f} s.\n"
        f"--- last lines of {DOCKERD_LOG} ---\n{tail}\n"
        "Check that log; raise ENVKIT_TIMEOUTS__ENGINE_START_SECONDS if the machine is slow."
    )


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def docker_client() -> docker.DockerClient:
    """A client for the engine `ensure_engine` found (DOCKER_HOST or the default socket)."""
    return docker.from_env(timeout=120)


def engine_host() -> str:
    """Where published ports are reached: TC_HOST, else DOCKER_HOST's host, else 127.0.0.1."""
    if override := os.environ.get("TC_HOST"):
        return override
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host.startswith(("tcp://", "ssh://", "http://", "https://")):
        host = urlsplit(docker_host).hostname
        if host:
            return host
    return "127.0.0.1"


def configure_testcontainers() -> None:
    """Set testcontainers' runtime configuration for the engine envkit uses (reaper, host).

    testcontainers does for envkit: build each service's container (image, command,
    environment, tmpfs, name, labels, network and alias, published port), create and start
    it, find its published port, create the run's network, and hold an isolated run on a
    reaper (its Ryuk mechanism, with envkit's own reaper image: `envkit.lifecycle.hold`).
    envkit does itself: the Docker client (one per command, handed to every container),
    logs streamed from start, readiness probes with a stop signal, stop and removal by the
    run's label, and the host-side label reaper behind the engine's one.

    Only `testcontainers_config`, which testcontainers documents as settable at run time,
    is touched: `ryuk_disabled` (TESTCONTAINERS_RYUK_DISABLED) is set so testcontainers
    never starts its reaper by itself (envkit starts it once, before a held run, see
    `envkit.lifecycle.hold`, which also sets `ryuk_image`), `tc_host_override` (TC_HOST)
    so its wait strategies and its reaper connection reach ports where envkit does, and
    `connection_mode_override` (TESTCONTAINERS_CONNECTION_MODE) so it reads mapped ports,
    not container IPs: it would otherwise take /.dockerenv as a sign it runs inside a
    container. testcontainers reads the variables once, at import; envkit sets the fields
    when it connects instead.
    """
    from testcontainers.core import testcontainers_config
    from testcontainers.core.config import ConnectionMode

    testcontainers_config.ryuk_disabled = True
    testcontainers_config.tc_host_override = engine_host()
    testcontainers_config.connection_mode_override = ConnectionMode.docker_host
