"""One service's container: built with testcontainers, labelled, bound to 127.0.0.1 only.

Labels let envkit find everything a run made, even after the process that made
it was killed: `envkit.run` (run id), `envkit.stack`, `envkit.service`,
`envkit.mode` (`isolated` or `up`), and the owner's host, pid and start time.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

RUN = "envkit.run"
STACK = "envkit.stack"
SERVICE = "envkit.service"
MODE = "envkit.mode"
OWNER_HOST = "envkit.owner_host"
OWNER_PID = "envkit.owner_pid"
OWNER_START = "envkit.owner_start"


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


class ServiceContainer(DockerContainer):
    """A testcontainers container whose ports are published on 127.0.0.1 only."""

    def publish_on_loopback(self, container_port: int, host_port: int | None = None) -> None:
        """Publish `container_port` on 127.0.0.1 (a random port unless `host_port` is given)."""
        # docker-py's (address, port) form: testcontainers' with_bind_ports cannot name an address.
        self.ports[f"{container_port}/tcp"] = ("127.0.0.1", host_port)  # type: ignore[assignment]

    def create_and_start(self) -> ServiceContainer:
        """Start; if the engine created the container but could not start it, remove it."""
        try:
            self.start()
        except Exception:
            if self._container is not None:
                self._container.remove(force=True)
            raise
        return self

    @property
    def wrapped(self) -> Any:
        """The docker-py container (None before start)."""
        return self._container


def run_network(name: str, labels: dict[str, str]) -> Network:
    """A user-defined bridge network for one run (services reach each other by name)."""
    network = Network(docker_network_kw={"labels": labels})
    network.name = name
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
