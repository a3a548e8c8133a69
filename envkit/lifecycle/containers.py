"""One service's container: built with testcontainers, labelled, its port published on one
address of the engine's host (127.0.0.1 for a local engine, see `Endpoint.bind_address`).

Labels let envkit find everything a run made, even after the process that made
it was killed: `envkit.run` (run id), `envkit.stack`, `envkit.service`,
`envkit.mode` (`isolated` or `up`), and the owner's host, pid and start time.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError
from docker.models.containers import Container
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.exceptions import ContainerStartException
from testcontainers.core.network import Network

RUN = "envkit.run"
STACK = "envkit.stack"
SERVICE = "envkit.service"
MODE = "envkit.mode"
OWNER_HOST = "envkit.owner_host"
OWNER_PID = "envkit.owner_pid"
OWNER_START = "envkit.owner_start"

LOOPBACK = "127.0.0.1"


def process_start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot), to tell a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 else ""


def owner_labels(run_id: str, stack: str, mode: str) -> dict[str, str]:
    """Labels naming the run and the process that owns it."""
    pid = os.getpid()
    return {
        RUN: run_id,
        STACK: stack,
        MODE: mode,
        OWNER_HOST: socket.gethostname(),
        OWNER_PID: str(pid),
        OWNER_START: process_start_time(pid),
    }


class EngineClient(DockerClient):
    """testcontainers' Docker client over the docker-py client envkit already holds."""

    def __init__(self, client: docker.DockerClient) -> None:
        # testcontainers' own __init__ opens a second client from the environment (and writes
        # DOCKER_HOST back into os.environ); envkit hands in the one it connected with instead.
        # `client` is the only state DockerClient's methods use.
        self.client = client


class ServiceContainer(DockerContainer):
    """A testcontainers container that talks to the engine through one shared client."""

    def __init__(
        self, image: str, engine: EngineClient, publish: tuple[int, str, int | None] | None = None
    ) -> None:
        """`publish` is (container port, address of the engine's host, host port or None for
        one the engine picks)."""
        # DockerContainer has no parameter for an existing client and always builds one; pinning
        # the API version keeps that unused one from asking the engine for it.
        super().__init__(image, docker_client_kw={"version": engine.client.api.api_version})
        self.engine = engine
        if publish is not None:
            # with_bind_ports takes no host address; docker-py's (address, port) form, which
            # testcontainers hands over as it is, does. Every engine honours it (a bridge
            # network's default-address option is Docker's alone).
            port, address, host_port = publish
            self.ports[f"{port}/tcp"] = (address, host_port)  # type: ignore[assignment]

    def get_docker_client(self) -> DockerClient:
        """The shared client: every engine call testcontainers makes goes through this method."""
        return self.engine

    def create_and_start(self) -> ServiceContainer:
        """Start; if the engine created the container but could not start it, remove it."""
        # Not `with container:`, whose exit is `stop()`: that also closes the (shared) client,
        # and the container must outlive this call. The cleanup is the same remove.
        try:
            self.start()
        except Exception:
            with contextlib.suppress(ContainerStartException, APIError):  # the start error matters
                self.get_wrapped_container().remove(force=True, v=True)
            raise
        return self

    @property
    def wrapped(self) -> Container:
        """The docker-py container (after `create_and_start`)."""
        return self.get_wrapped_container()


def run_network(engine: EngineClient, labels: dict[str, str]) -> Network:
    """A user-defined bridge network for one run (services reach each other by name)."""
    # testcontainers names it (a uuid): envkit finds a run's network by its labels, not its name.
    # Network takes no existing client either; it builds one, pinned to the engine's API version.
    network = Network(
        docker_client_kw={"version": engine.client.api.api_version},
        docker_network_kw={"labels": labels},
    )
    return network.create()


@dataclass(frozen=True)
class ContainerState:
    """What the engine says about a container right now."""

    status: str
    exit_code: int | None
    error: str

    def describe(self) -> str:
        """E.g. "exited (code 1)" or "running"."""
        if self.status == "exited":
            return f"exited (code {self.exit_code})" + (f": {self.error}" if self.error else "")
        return self.status


def container_state(container: Any) -> ContainerState:
    """Reload and read a docker-py container's state (`gone` once removed)."""
    try:
        container.reload()
    except Exception:  # the container was removed, or the engine went away
        return ContainerState("gone", None, "")
    state = container.attrs.get("State", {})
    return ContainerState(
        str(state.get("Status", "unknown")), state.get("ExitCode"), str(state.get("Error") or "")
    )
