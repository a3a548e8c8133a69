"""One service's container: built with testcontainers, labelled, its port published on one
address of the engine's host (127.0.0.1 for a local engine, see `Endpoint.bind_address`)
or, for an isolated run whose network this machine reaches, not published at all.

Labels let envkit find everything a run made, even after the process that made
it was killed: `envkit.run` (run id), `envkit.stack`, `envkit.service`,
`envkit.mode` (`isolated`, `up` or `keep`), and the owner's host, pid and start time.
A held run's containers and network also carry testcontainers' session label, which
the engine's reaper matches (see `envkit.lifecycle.hold`); an unheld run's do not.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError
from docker.models.containers import Container
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient
from testcontainers.core.exceptions import ContainerStartException
from testcontainers.core.labels import LABEL_SESSION_ID, create_labels
from testcontainers.core.network import Network

RUN = "envkit.run"
STACK = "envkit.stack"
SERVICE = "envkit.service"
MODE = "envkit.mode"
OWNER_HOST = "envkit.owner_host"
OWNER_PID = "envkit.owner_pid"
OWNER_START = "envkit.owner_start"
# On an `up` run: the state directory its `up` records it in once every service is ready, so a
# run whose `up` was killed before that can be told from one left running on purpose.
STATE_DIR = "envkit.state_dir"

LOOPBACK = "127.0.0.1"


def process_start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot), to tell a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 else ""


def owner_labels(
    run_id: str,
    stack: str,
    mode: str,
    owner_pid: int | None = None,
    state_dir: Path | None = None,
) -> dict[str, str]:
    """Labels naming the run and the process that owns it (`owner_pid`, default this one),
    and for an `up` run the state directory its `up` records it in (`state_dir`)."""
    pid = os.getpid() if owner_pid is None else owner_pid
    labels = {
        RUN: run_id,
        STACK: stack,
        MODE: mode,
        OWNER_HOST: socket.gethostname(),
        OWNER_PID: str(pid),
        OWNER_START: process_start_time(pid),
    }
    if state_dir is not None:
        labels[STATE_DIR] = str(state_dir.resolve())
    return labels


def unheld_labels(image: str, labels: dict[str, str] | None) -> dict[str, str]:
    """testcontainers' labels for a resource, less the session label the reaper matches."""
    return {k: v for k, v in create_labels(image, labels).items() if k != LABEL_SESSION_ID}


class EngineClient(DockerClient):
    """testcontainers' Docker client over the docker-py client envkit already holds.

    `held`: what it creates carries testcontainers' session label (the engine's reaper
    removes it once this process is gone); unheld, it does not.
    """

    def __init__(self, client: docker.DockerClient, *, held: bool = False) -> None:
        # testcontainers' own __init__ opens a second client from the environment (and writes
        # DOCKER_HOST back into os.environ); envkit hands in the one it connected with instead.
        # `client` is the only state DockerClient's methods use.
        self.client = client
        self.held = held

    def create(
        self,
        image: str,
        command: str | list[str] | None = None,
        environment: dict[str, str] | None = None,
        ports: Mapping[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        detach: bool = False,
        **kwargs: Any,
    ) -> Container:
        """Create a container (testcontainers' way); unheld, without the session label."""
        if self.held:
            return super().create(image, command, environment, ports, labels, detach, **kwargs)
        # testcontainers' create less its two steps envkit never needs: the image is present
        # (produced before the run) and the container names its network (the run's).
        return self.client.containers.create(
            image, command=command, environment=environment, ports=ports,
            labels=unheld_labels(image, labels), detach=detach, **kwargs,
        )  # fmt: skip

    def client_networks_create(self, name: str, param: dict[str, Any]) -> Any:
        """Create a network (testcontainers' way); unheld, without the session label."""
        if self.held:
            return super().client_networks_create(name, param)
        return self.client.networks.create(
            name, **{**param, "labels": unheld_labels("", param.get("labels"))}
        )


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


def run_network(engine: EngineClient, labels: dict[str, str]) -> tuple[Network, str]:
    """A user-defined bridge network for one run (services reach each other by name), and
    its gateway address on the engine's host ("" when the engine names none).

    testcontainers' `Network` names it and hands the name to each container
    (`with_network`); the network itself is created through the run's client, so it
    carries the session label exactly when the run is held. envkit removes a run's
    network by its labels, never through this object.
    """
    # Network builds a client of its own (pinned to the engine's API version, so it asks
    # the engine nothing); its create() would label the network as held in every case.
    network = Network(docker_client_kw={"version": engine.client.api.api_version})
    created = engine.client_networks_create(network.name, {"labels": labels})
    # docker-py's create inspects the new network: its IPAM config is at hand, no extra call.
    configs = ((getattr(created, "attrs", None) or {}).get("IPAM") or {}).get("Config") or []
    # IPv4: the address a container's `IPAddress` is in (an IPv6 config may come alongside).
    gateway = next((str(c["Gateway"]) for c in configs if "." in str(c.get("Gateway"))), "")
    return network, gateway


def network_address(container: Container, network: str) -> str:
    """The container's IP address on `network` ("" when it has none, e.g. it has exited)."""
    networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
    return str((networks.get(network) or {}).get("IPAddress") or "")


@dataclass(frozen=True)
class ContainerState:
    """What the engine says about a container right now."""

    status: str
    exit_code: int | None
    error: str
    oom_killed: bool = False  # the kernel killed it for going over its memory limit

    def describe(self) -> str:
        """E.g. "exited (code 1)", "exited (code 137, OOM-killed)" or "running"."""
        if self.status in ("exited", "dead"):
            oom = ", OOM-killed" if self.oom_killed else ""
            text = f"{self.status} (code {self.exit_code}{oom})"
            return text + (f": {self.error}" if self.error else "")
        return self.status


def container_state(container: Any) -> ContainerState:
    """Reload and read a docker-py container's state (`gone` once removed)."""
    try:
        container.reload()
    except Exception:  # the container was removed, or the engine went away
        return ContainerState("gone", None, "")
    state = container.attrs.get("State", {})
    return ContainerState(
        str(state.get("Status", "unknown")),
        state.get("ExitCode"),
        str(state.get("Error") or ""),
        bool(state.get("OOMKilled")),
    )
