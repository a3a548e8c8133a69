"""Find the Docker engine envkit talks to, or start Debian's `dockerd` when that is safe.

The engine is the one the Docker CLI would use: `DOCKER_HOST` (unix, tcp or ssh, with
`DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`), else the active docker context (`DOCKER_CONTEXT`
or `docker context use`), else the default socket. Published ports are reached at
`TC_HOST`, else the endpoint's host (a remote engine), else 127.0.0.1, and bound to that
address on the engine's host; an isolated run on a local engine whose networks this machine
reaches publishes none (`reaches_containers`). An engine that already answers is never
touched. Only when nothing answers at the default socket, the process is root and the
system is Debian does envkit install `docker.io` (if missing) and start `dockerd` in the background.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
from docker.constants import MINIMUM_DOCKER_API_VERSION
from docker.context import ContextAPI
from docker.context.config import get_current_context_name
from docker.errors import DockerException
from docker.utils import kwargs_from_env

from envkit.engines.debian import can_install, ensure_command, host_lock
from envkit.engines.ssh import ssh_cause, ssh_hint
from envkit.errors import EngineError
from envkit.logs import log

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_ORIGIN = "the default socket"
DOCKERD_LOG = Path("/var/log/envkit-dockerd.log")
LOCK_FILE = Path("/tmp/envkit-engine.lock")  # one engine start at a time, across processes
LOOPBACK = "127.0.0.1"
PING_SECONDS = 3.0  # an engine that does not answer within this is reported, not waited for
_LOCAL_SCHEMES = ("unix", "npipe", "http+unix")
_NO_ENGINE_HINT = (
    "Start a Docker engine and try again: e.g. `sudo systemctl start docker`, Docker Desktop, "
    "or point DOCKER_HOST at a reachable engine (e.g. DOCKER_HOST=ssh://user@host). "
    "envkit starts one itself only when it runs as root on Debian with no DOCKER_HOST set."
)
# What a failed connection says, mapped to words a user acts on (first match wins).
_CAUSES = (
    ("Connection refused", "connection refused: nothing listens there"),
    ("timed out", "no answer within {seconds:.0f} s"),
    ("No route to host", "no route to that host"),
    ("Network is unreachable", "that network is unreachable"),
    ("Name or service not known", "the host name does not resolve"),
    ("Temporary failure in name resolution", "the host name does not resolve"),
    ("No such file or directory", "no such socket"),
    ("Permission denied", "permission denied: this user may not use that socket"),
)


@dataclass(frozen=True)
class Endpoint:
    """Which engine envkit talks to, where its settings came from, and how to reach its ports."""

    url: str  # as DOCKER_HOST takes it: unix:///…, tcp://host:port, ssh://user@host
    origin: str  # "DOCKER_HOST", "docker context 'NAME'" or DEFAULT_ORIGIN
    tls: Any = None  # docker.tls.TLSConfig when the endpoint uses TLS
    tc_host: str = ""  # TC_HOST: where published ports are reached, when set

    @property
    def scheme(self) -> str:
        """`unix`, `tcp`, `ssh`, …"""
        return urlsplit(self.url).scheme or "unix"

    @property
    def is_remote(self) -> bool:
        """True unless the engine is reached through a local socket."""
        return self.scheme not in _LOCAL_SCHEMES

    @property
    def host(self) -> str:
        """Where the client reaches published ports: TC_HOST, the endpoint's host, or loopback."""
        if self.tc_host:
            return self.tc_host
        if self.is_remote and (name := urlsplit(self.url).hostname):
            return name
        return LOOPBACK

    def bind_address(self) -> str:
        """The address of the engine's host that published ports are bound to (never 0.0.0.0:
        loopback for a local engine, else the address `host` resolves to)."""
        name = self.host
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            try:
                found = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                raise EngineError(
                    f"{name}, the host of the Docker engine at {self.describe()}, does not "
                    f"resolve ({exc.strerror or exc}). Published ports are bound to that "
                    "host's address: set TC_HOST to an address of the engine's host that this "
                    "machine reaches."
                ) from exc
            address = ipaddress.ip_address(found[0][4][0])
        if address.is_loopback or address.is_unspecified:
            return LOOPBACK
        return str(address)

    def describe(self) -> str:
        """E.g. `tcp://10.0.0.5:2375 (from DOCKER_HOST)`."""
        return f"{self.url} (from {self.origin})"

    def client(self, timeout: float = 120.0, version: str | None = None) -> docker.DockerClient:
        """A docker-py client for this engine (ssh through the `ssh` command, as the CLI does)."""
        return docker.DockerClient(
            base_url=self.url,
            tls=self.tls or False,
            timeout=int(max(timeout, 1)),
            version=version,
            use_ssh_client=self.scheme == "ssh",
        )


def current_endpoint(environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the Docker CLI would use: DOCKER_HOST, else the docker context, else the
    default socket; TC_HOST (when set) is where its published ports are reached."""
    env = os.environ if environ is None else environ
    tc_host = env.get("TC_HOST", "")
    # kwargs_from_env reads os.environ when given an empty mapping: ask it only with a host.
    params = kwargs_from_env(environment=env) if env.get("DOCKER_HOST") else {}
    if url := params.get("base_url"):
        return Endpoint(url, "DOCKER_HOST", params.get("tls"), tc_host)
    name = env.get("DOCKER_CONTEXT") or get_current_context_name()
    if name and name != "default":
        try:
            context = ContextAPI.get_context(name)
        except Exception as exc:  # docker-py raises a bare Exception for a malformed context
            raise EngineError(
                f"The docker context '{name}' cannot be read ({exc}). Repair it (`docker "
                "context inspect` shows it), or choose another with `docker context use` or "
                "DOCKER_HOST."
            ) from exc
        if context is None or not context.Host:
            raise EngineError(
                f"The docker context '{name}' (from "
                f"{'DOCKER_CONTEXT' if env.get('DOCKER_CONTEXT') else '~/.docker/config.json'}) "
                "does not exist or names no Docker endpoint. `docker context ls` lists the "
                "contexts; choose one with `docker context use NAME` or set DOCKER_HOST."
            )
        return Endpoint(context.Host, f"docker context '{name}'", context.TLSConfig, tc_host)
    return Endpoint(f"unix://{DEFAULT_SOCKET}", DEFAULT_ORIGIN, None, tc_host)


@dataclass(frozen=True)
class EngineInfo:
    """What answered: where, which version, which kind, and whether envkit started it."""

    endpoint: str
    server_version: str
    api_version: str
    started_here: bool
    kind: str = "docker"  # "docker" or "podman"

    @property
    def client_version(self) -> str | None:
        """The API version a client can pin so it need not ask the engine (None: ask it)."""
        return self.api_version if re.fullmatch(r"\d+\.\d+", self.api_version) else None


def engine_kind(version: Mapping[str, Any]) -> str:
    """`podman` when the engine's version info names Podman, else `docker`."""
    names = [str(c.get("Name", "")) for c in version.get("Components") or []]
    names.append(str((version.get("Platform") or {}).get("Name", "")))
    return "podman" if any("podman" in n.lower() for n in names) else "docker"


def reaches_containers(endpoint: Endpoint, gateway: str) -> bool:
    """True when this process reaches a network's containers at their own addresses: the
    engine is local (a unix socket, no TC_HOST) and the network's `gateway` is an address of
    this machine (binding a socket to it succeeds), as with Docker's bridges on Linux.
    Docker Desktop's bridge lives in a VM, a remote engine's on another host and rootless
    Podman's in a namespace of its own; rootful Podman 4 creates its bridge only with the
    network's first container: there the gateway is not (yet) ours, and ports are published."""
    if endpoint.is_remote or endpoint.tc_host or not gateway:
        return False
    try:
        address = ipaddress.ip_address(gateway)
    except ValueError:
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))  # port 0: nothing is taken, the address is tested
    except OSError:
        return False
    return True


def ask(endpoint: Endpoint, timeout: float = PING_SECONDS) -> EngineInfo | str:
    """The engine's details if it answers at `endpoint`, else why not (in a user's words)."""
    try:
        # A pinned API version keeps the client from asking the engine anything by itself;
        # one unversioned GET /version then both proves it answers and says what it speaks.
        client = endpoint.client(timeout=timeout, version=MINIMUM_DOCKER_API_VERSION)
    except DockerException as exc:
        return _why(endpoint, exc, timeout)
    try:
        version = client.api.version(api_version=False)
    except (DockerException, OSError) as exc:
        return _why(endpoint, exc, timeout)
    finally:
        client.close()
    return EngineInfo(
        endpoint.url,
        str(version.get("Version")),
        str(version.get("ApiVersion")),
        False,
        engine_kind(version),
    )


def _why(endpoint: Endpoint, exc: BaseException, seconds: float) -> str:
    # Over ssh the SDK sees only a closed connection; ssh itself says why.
    return (endpoint.scheme == "ssh" and ssh_cause(endpoint.url, seconds)) or _cause(exc, seconds)


def _cause(exc: BaseException, seconds: float) -> str:
    text = str(exc)
    for needle, words in _CAUSES:
        if needle in text:
            return words.format(seconds=seconds)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return f"something answered, but not as a Docker engine (HTTP {status})"
    return text[:300]


def ping(timeout: float = PING_SECONDS) -> EngineInfo | None:
    """Return the engine's details if one answers at the current endpoint."""
    answer = ask(current_endpoint(), timeout)
    return answer if isinstance(answer, EngineInfo) else None


def ensure_engine(timeout: float = 90.0) -> EngineInfo:
    """Return a reachable engine, starting Debian's dockerd here if none answers and it is safe."""
    endpoint = current_endpoint()
    answer = ask(endpoint)
    if isinstance(answer, EngineInfo):
        log.debug("{} engine {} answers at {}", answer.kind, answer.server_version, endpoint.url)
        return answer
    if endpoint.origin != DEFAULT_ORIGIN:
        raise EngineError(unreachable(endpoint, answer))
    if not can_install():
        raise EngineError(
            f"No Docker engine answers at unix://{DEFAULT_SOCKET} ({answer}). " + _NO_ENGINE_HINT
        )
    with host_lock(LOCK_FILE):
        info = ping()  # another envkit process may have started it while we waited
        if info is not None:
            return info
        ensure_command("dockerd", "docker.io", "no Docker engine answers here")
        _start_dockerd()
        return _wait_for_engine(timeout)


def ensure_endpoint(endpoint: Endpoint | None, timeout: float = 90.0) -> Endpoint:
    """`endpoint` once its engine answers (None: the current engine, see `ensure_engine`)."""
    return answering(endpoint, timeout)[0]


def answering(endpoint: Endpoint | None, timeout: float = 90.0) -> tuple[Endpoint, EngineInfo]:
    """`endpoint` (None: the current engine, see `ensure_engine`) once its engine answers,
    and what it said."""
    if endpoint is None or endpoint == current_endpoint():
        return endpoint or current_endpoint(), ensure_engine(timeout)
    answer = ask(endpoint)
    if not isinstance(answer, EngineInfo):
        raise EngineError(unreachable(endpoint, answer))
    return endpoint, answer


def unreachable(endpoint: Endpoint, cause: str) -> str:
    """The one error for an engine that does not answer: the endpoint, why, and the fix."""
    how = (
        f"check that the host is reachable and that `{ssh_hint(endpoint.url)}` works "
        "without a password prompt (a key ssh offers by itself, the docker CLI on that host)"
        if endpoint.scheme == "ssh"
        else f"check that the engine runs and listens there (`docker -H {endpoint.url} version` "
        "must answer)"
    )
    if endpoint.origin == "DOCKER_HOST":
        change = "point DOCKER_HOST at a reachable engine, or unset it to use the local one"
    elif endpoint.origin.startswith("docker context"):
        change = (
            f"point {endpoint.origin} at a reachable engine (`docker context update`), or "
            "switch with `docker context use default` or DOCKER_HOST"
        )
    else:  # the --engine flag or the pool setting
        change = f"remove it from {endpoint.origin} or name a reachable engine there"
    return (
        f"No Docker engine answers at {endpoint.url} (from {endpoint.origin}): {cause}. "
        f"Fix: {how}; or {change}. envkit does not start a local engine when "
        f"{endpoint.origin} points elsewhere."
    )


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


def docker_client(version: str | None = None) -> docker.DockerClient:
    """A client for the engine `ensure_engine` found (see `current_endpoint`); given the API
    `version` it speaks (`EngineInfo.api_version`), the client need not ask the engine."""
    return current_endpoint().client(timeout=120, version=version)


def engine_host() -> str:
    """Where published ports are reached: TC_HOST, else the remote endpoint's host, else
    127.0.0.1."""
    return current_endpoint().host


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
    never starts its reaper by itself (envkit holds a run on the engine's shared reaper,
    its own image, before the run starts: `envkit.lifecycle.hold`), `tc_host_override` (TC_HOST)
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
