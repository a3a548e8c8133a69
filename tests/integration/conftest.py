"""Integration fixtures: a real Docker engine, envkit's images, a real PostgreSQL.

Nothing here skips: without an engine the tests fail, so CI can never pass
them by not running them.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
from psycopg import sql

from envkit.engines.debian import ensure_command
from envkit.engines.engine import (
    configure_testcontainers,
    docker_client,
    engine_host,
    ensure_engine,
)
from envkit.engines.images import ImageResult, ensure_images
from envkit.spec.settings import EnvkitSettings, known_env_names, load_settings
from envkit.spec.stack import load_stack
from tests.integration.engines import (
    PodmanService,
    SecondEngine,
    SshServer,
    engine_processes_left,
    install_openssh_server,
    install_podman,
    listeners,
    pointed_at,
)

TEST_LABEL = "envkit.run"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> EnvkitSettings:
    """The default (demo) settings of the MGM stack, ignoring the developer's .env."""
    return load_settings(env_file=None, environ={}, stack=MGM_STACK)


@pytest.fixture(scope="session")
def engine(settings: EnvkitSettings) -> Iterator[docker.DockerClient]:
    """A client for a real, reachable engine (started here when that is allowed)."""
    ensure_engine(settings.timeouts.engine_start_seconds)
    configure_testcontainers()
    client = docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def images(settings: EnvkitSettings, engine: docker.DockerClient) -> dict[str, ImageResult]:
    """envkit's images for the current inputs (built on first use, then reused)."""
    return ensure_images(settings, engine)


@dataclass(frozen=True)
class ExtraEngine:
    """An engine a test session started, with envkit's images produced on it."""

    url: str
    client: docker.DockerClient
    images: dict[str, ImageResult]
    start_seconds: float
    image_seconds: float


def _with_images(settings: EnvkitSettings, url: str, started: float) -> ExtraEngine:
    """envkit's own image step against the engine at `url` (it starts with no images)."""
    client = docker.DockerClient(base_url=url, timeout=120)
    began = time.monotonic()
    with pointed_at(url):
        made = ensure_images(settings, client)
    return ExtraEngine(url, client, made, started, time.monotonic() - began)


@pytest.fixture(scope="session")
def second_engine(
    settings: EnvkitSettings, engine: docker.DockerClient
) -> Iterator[tuple[SecondEngine, ExtraEngine]]:
    """A second dockerd in a network namespace of its own, on tcp, with envkit's images; all
    of it (dockerd, namespace, veth pair, data) removed at the end, whatever happened."""
    # `engine` first: on a fresh machine the session's own engine step installs dockerd.
    for command, package in (
        ("dockerd", "docker.io"),
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
    ):
        ensure_command(command, package, "the second-engine tests need it")
    second = SecondEngine()
    try:
        second.start(settings.timeouts.engine_start_seconds)
        assert second.start_seconds is not None
        extra = _with_images(settings, second.url, second.start_seconds)
        try:
            yield second, extra
        finally:
            extra.client.close()
    finally:
        second.stop()
    assert engine_processes_left(second) == []  # no namespace, mount, process or cgroup left


@dataclass(frozen=True)
class SshEngine:
    """The second engine reached over `ssh://` (sshd in its namespace), and the setup's cost."""

    server: SshServer
    engine: SecondEngine
    extra: ExtraEngine
    install_seconds: float | None  # None: openssh-server was installed already


@pytest.fixture(scope="module")
def ssh_engine(second_engine: tuple[SecondEngine, ExtraEngine]) -> Iterator[SshEngine]:
    """An sshd in the second engine's namespace whose sessions reach that engine; Debian's
    openssh-server installed first if missing, with no sshd started on this machine."""
    ensure_command("ssh-keygen", "openssh-client", "the ssh engine tests need it")
    installed = install_openssh_server()
    # apt must not have started a system sshd: this machine listens on no ssh port.
    assert listeners(22) == [], "an sshd listens on port 22 of this machine"
    second, extra = second_engine
    server = SshServer(second)
    try:
        yield SshEngine(server.start(), second, extra, installed)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def podman(settings: EnvkitSettings) -> Iterator[ExtraEngine]:
    """Podman's Docker-compatible API on a socket of its own, with envkit's images."""
    install_podman()
    began = time.monotonic()
    service = PodmanService().start()
    try:
        extra = _with_images(settings, service.url, time.monotonic() - began)
        try:
            yield extra
        finally:
            # The reaper there outlives the service (conmon keeps it) and, once it exits,
            # Podman keeps it and its netns: remove it while the API still answers (this
            # Podman service is the session's own, so every reaper on it is ours).
            from envkit.lifecycle.hold import REAPER_LABEL

            with contextlib.suppress(docker.errors.DockerException):
                for reaper in extra.client.containers.list(
                    all=True, filters={"label": REAPER_LABEL}
                ):
                    reaper.remove(force=True)
            extra.client.close()
    finally:
        service.stop()


@dataclass(frozen=True)
class PostgresServer:
    """Where the session's PostgreSQL answers, and as whom to log in."""

    host: str
    port: int
    user: str
    password: str

    def conninfo(self, dbname: str) -> str:
        """libpq key/value connection string for `dbname`."""
        return psycopg.conninfo.make_conninfo(
            host=self.host, port=self.port, dbname=dbname, user=self.user, password=self.password
        )


@pytest.fixture(scope="session")
def postgres_server(images: dict[str, ImageResult]) -> Iterator[PostgresServer]:
    """One PostgreSQL container from envkit's image for the whole session, on 127.0.0.1."""
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(
        images["postgres"].ref, username="envkit", password="test-pw-" + uuid.uuid4().hex[:8],
        dbname="envkit", driver=None,
    )  # fmt: skip
    container.with_command("postgres -c fsync=off -c synchronous_commit=off")
    # Publish on 127.0.0.1 only; testcontainers' with_bind_ports cannot name a host address,
    # docker-py's (address, port) form can.
    container.ports = {"5432/tcp": ("127.0.0.1", None)}
    container.with_kwargs(
        labels={TEST_LABEL: f"pytest-{os.getpid()}", "envkit.owner_pid": str(os.getpid())}
    )
    container.start()
    try:
        yield PostgresServer(
            engine_host(), int(container.get_exposed_port(5432)), "envkit", container.password
        )
    finally:
        container.stop()


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = "test_" + uuid.uuid4().hex[:12]
    admin = postgres_server.conninfo("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres_server.conninfo(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


MGM_STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"


def sandbox_environ(
    tmp: Path, ports_from: int | None = None, stack: Path = MGM_STACK, **environ: str
) -> dict[str, str]:
    """The ENVKIT_ variables of `sandbox_settings` (for a child process: `./inv up`, …)."""
    env = {
        "ENVKIT_ARTIFACT_ROOT": str(tmp / "artifacts"),
        "ENVKIT_HISTORY_PATH": str(tmp / "history.sqlite"),
        **environ,
    }
    if ports_from is not None:
        env["ENVKIT_CACHE_DIR"] = str(tmp / "cache")
        names = [n for n in known_env_names(load_stack(stack).settings_class) if "_PORTS__" in n]
        for offset, name in enumerate(names):
            env[name] = str(ports_from + offset)
    return env


def sandbox_settings(
    tmp: Path, ports_from: int | None = None, stack: Path = MGM_STACK, **environ: str
) -> EnvkitSettings:
    """Settings for `stack` whose artifacts, history (and with `ports_from`, `up` state) live
    under `tmp`.

    `ports_from=N` moves the stack's fixed `up` ports (its `ports` settings section) to N,
    N+1, … (away from the documented ones a developer's own `invoke up` may hold) and gives
    the `up` state file its own directory.
    """
    env = sandbox_environ(tmp, ports_from, stack, **environ)
    return load_settings(env_file=None, environ=env, stack=stack)


@pytest.fixture(scope="session")
def sandbox_in(images: dict[str, ImageResult]) -> Callable[..., EnvkitSettings]:
    """`sandbox_settings` for fixtures wider than one test (they bring their own tmp dir)."""
    return sandbox_settings


@pytest.fixture
def sandbox(tmp_path: Path, images: dict[str, ImageResult]) -> Callable[..., EnvkitSettings]:
    """Make settings whose artifacts, history (and with `ports_from`, `up` state) live in tmp."""

    def make(
        ports_from: int | None = None, stack: Path = MGM_STACK, **environ: str
    ) -> EnvkitSettings:
        return sandbox_settings(tmp_path, ports_from, stack, **environ)

    return make


@pytest.fixture(scope="session")
def wait_for_http() -> Callable[..., None]:
    """Wait until a container's URL answers 200, with envkit's own probe library.

    Fails the test with the probe's evidence and the container's log tail when the
    container exits or the URL is not ready within `timeout` seconds.
    """
    from envkit.healthchecks import HttpProbe, ProbeError, RetryPolicy, wait_until_ready

    def wait(url: str, container: Any, timeout: float = 60.0) -> None:
        def exited() -> str | None:
            container.reload()
            return f"{container.name} exited" if container.status == "exited" else None

        try:
            wait_until_ready(
                HttpProbe(url), RetryPolicy(timeout=timeout), abort=exited, service=container.name
            )
        except ProbeError as exc:
            logs = container.logs().decode(errors="replace")[-2000:]
            pytest.fail(f"{exc}\nlog of {container.name}:\n{logs}")

    return wait
