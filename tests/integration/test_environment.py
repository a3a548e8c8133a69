"""The composer against a real engine: order, failure evidence, teardown, isolation, reaping."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from envkit.engines.images import ImageResult
from envkit.errors import ServiceNotReady
from envkit.lifecycle.commands import clean, down, running_stack, up
from envkit.lifecycle.environment import remove_run
from envkit.lifecycle.state import state_path
from envkit.spec.settings import EnvkitSettings

from .conftest import sandbox_environ, sandbox_settings

DEFAULT_STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"  # the MGM stack

HERE = Path(__file__).resolve().parent
MINI = HERE / "stacks" / "mini.toml"


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def isolated_settings(sandbox: Callable[..., EnvkitSettings]) -> EnvkitSettings:
    """Default settings with artifacts and history under tmp (images come from the session)."""
    return sandbox()


@pytest.fixture
def mini_settings(sandbox: Callable[..., EnvkitSettings]) -> EnvkitSettings:
    """Settings for the mini stack (its own [settings] table), artifacts under tmp."""
    return sandbox(stack=MINI)


def leftovers(engine: docker.DockerClient, **labels: str) -> list[str]:
    """Names of containers and networks still carrying all these labels."""
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    names = [c.name for c in engine.containers.list(all=True, filters=filters)]
    return names + [n.name for n in engine.networks.list(filters=filters)]


def variant(tmp_path: Path, old: str, new: str, name: str = "variant.toml") -> Path:
    """A copy of the mini stack with one piece of text replaced."""
    text = MINI.read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


def test_mgm_stack_starts_in_dependency_order(
    isolated_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    with running_stack(isolated_settings, DEFAULT_STACK) as env:
        rows = env.endpoints()
        run_id = env.run_id
        for name, row in rows.items():
            assert row["state"] == "running", name
        backend = httpx.get(rows["backend"]["host_url"] + "/health/ready", timeout=5)
        assert backend.status_code == 200
        assert rows["backend"]["created_s"] >= rows["postgres"]["ready_s"]
        independent = ["mock-eventsub", "mock-jwt", "mock-helix", "synthetic-desktop"]
        assert all(rows[n]["created_s"] < rows["postgres"]["ready_s"] for n in independent)
        assert (env.artifact_dir / "mgm-backend.log").read_text().strip()
        postgres = env.runs["postgres"].container
        assert postgres is not None
        data_fs = postgres.wrapped.exec_run(["sh", "-c", 'stat -f -c %T "$PGDATA"'])
        assert data_fs.output.decode().strip() == "tmpfs"  # the stack file's tmpfs mount
        for run in env.runs.values():
            assert run.container is not None
            run.container.wrapped.reload()
            attrs = run.container.wrapped.attrs
            # an isolated run on this machine's engine is reached at the container's address
            # on its network, at the container's port: nothing is published
            bindings = attrs["NetworkSettings"]["Ports"]
            assert [b for port in bindings.values() for b in port or []] == [], run.name
            assert not attrs["HostConfig"].get("PortBindings"), run.name
            assert env.network is not None
            address = attrs["NetworkSettings"]["Networks"][env.network.name]["IPAddress"]
            scheme = "postgresql" if run.name == "postgres" else "http"
            assert rows[run.name]["host_url"] == f"{scheme}://{address}:{run.container_port}"
    assert leftovers(engine, **{"envkit.run": run_id}) == []


def test_a_crashing_service_gives_evidence_and_leaves_nothing(
    mini_settings: EnvkitSettings, engine: docker.DockerClient, tmp_path: Path
) -> None:
    stack = variant(tmp_path, 'command = ["mock-jwt"]', 'command = ["no-such-service"]')
    with pytest.raises(ServiceNotReady) as info, running_stack(mini_settings, stack):
        pytest.fail("the stack must not start")
    error = info.value
    message = str(error)
    assert message.startswith("api never became ready.")
    assert "container:  exited (code 2)" in message
    assert re.search(r"probe:      HTTP GET http://\d+\.\d+\.\d+\.\d+:8080/", message), message
    assert "usage: python -m services <name>" in message  # the log tail is quoted
    assert "hint: The container stopped by itself." in message
    assert error.exit_code == 2
    assert error.log_path.is_file()
    assert "usage: python -m services" in error.log_path.read_text()  # the log is kept
    run_id = error.log_path.parent.name
    assert leftovers(engine, **{"envkit.run": run_id}) == []


def test_a_probe_that_never_passes_times_out_with_evidence(
    mini_settings: EnvkitSettings, engine: docker.DockerClient, tmp_path: Path
) -> None:
    stack = variant(tmp_path, 'path = "/health"', 'path = "/never"\n')
    # Long enough for a loaded machine to start the service, so the last error is its 404.
    stack.write_text(
        stack.read_text().replace('log = "api.log"', 'log = "api.log"\nready_timeout = 20')
    )
    started = time.monotonic()
    with pytest.raises(ServiceNotReady) as info, running_stack(mini_settings, stack):
        pytest.fail("the stack must not start")
    assert time.monotonic() - started < 60
    message = str(info.value)
    assert "api never became ready." in message
    assert "waited:     20." in message
    assert "last error: HTTP 404" in message
    assert "container:  running" in message
    assert "raise ready_timeout for 'api'" in message
    assert info.value.attempts > 5  # backoff starts in tens of milliseconds
    assert leftovers(engine, **{"envkit.run": info.value.log_path.parent.name}) == []


def _start_child(stack: Path, artifacts: Path, held: bool = True) -> subprocess.Popen[str]:
    # Unheld: the engine's reaper stays off, so what the host-side reaper finds is only its own
    # to remove (test_engine_reaper.py covers the engine's).
    env = {**os.environ, "ENVKIT_REAPER__ENABLED": "true" if held else "false"}
    return subprocess.Popen(
        [sys.executable, str(HERE / "stack_runner.py"), str(stack), str(artifacts)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _wait_for_containers(engine: docker.DockerClient, pid: int, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = engine.containers.list(filters={"label": f"envkit.owner_pid={pid}"})
        if len(running) >= count:
            return
        time.sleep(0.2)
    pytest.fail(f"the child never had {count} containers running")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_leaves_nothing_running(
    engine: docker.DockerClient, images: dict[str, ImageResult], tmp_path: Path, sig: int
) -> None:
    # The api's probe never passes, so the child is still starting when the signal lands.
    stack = variant(tmp_path, 'path = "/health"', 'path = "/never"')
    child = _start_child(stack, tmp_path / "artifacts")
    try:
        _wait_for_containers(engine, child.pid, 2)
        child.send_signal(sig)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    assert leftovers(engine, **{"envkit.owner_pid": str(child.pid)}) == []


def _killed_run(tmp_path: Path, engine: docker.DockerClient) -> str:
    """Start the mini stack in a child, SIGKILL it once ready, return the run it left."""
    child = _start_child(MINI, tmp_path / "artifacts", held=False)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("READY"), child.stderr.read() if child.stderr else line
    child.kill()  # SIGKILL: no teardown runs
    child.wait(timeout=30)
    run_id = line.split()[1]
    assert len(leftovers(engine, **{"envkit.run": run_id})) == 3  # 2 containers + network
    return run_id


def test_clean_removes_what_a_killed_run_left(
    engine: docker.DockerClient, isolated_settings: EnvkitSettings, tmp_path: Path
) -> None:
    dead_run = _killed_run(tmp_path, engine)
    report = clean(isolated_settings)
    assert dead_run in report.runs
    assert report.containers >= 2
    assert leftovers(engine, **{"envkit.run": dead_run}) == []


def test_an_up_killed_before_it_was_ready_goes_with_the_next_clean_and_a_finished_one_stays(
    engine: docker.DockerClient, images: dict[str, ImageResult], tmp_path: Path
) -> None:
    # The api's probe never passes: the child's `up` is still starting when it is killed, so
    # it never recorded its run in its state directory. 29780-29781: this test's `up` ports.
    stack = variant(tmp_path, 'path = "/health"', 'path = "/never"')
    child = subprocess.Popen(
        [sys.executable, "-m", "invoke", "up", "--stack", str(stack)],
        cwd=HERE.parents[1], env={**os.environ, **sandbox_environ(tmp_path, 29780, stack)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_containers(engine, child.pid, 2)
    finally:
        child.kill()  # SIGKILL: no teardown runs
        child.wait(timeout=30)
    settings = sandbox_settings(tmp_path, 29780, stack)
    assert not state_path(settings.workspace.state).exists()
    owned = {"envkit.owner_pid": str(child.pid)}
    try:
        assert len(leftovers(engine, **owned)) == 3  # 2 containers + network, as `up` leaves
        killed_run = engine.networks.list(filters={"label": f"envkit.owner_pid={child.pid}"})[0]
        run_id = killed_run.attrs["Labels"]["envkit.run"]

        report = clean(settings)  # without --all: an `up` that finished would stay

        assert run_id in report.runs
        assert leftovers(engine, **owned) == []
    finally:
        for network in engine.networks.list(filters={"label": f"envkit.owner_pid={child.pid}"}):
            remove_run(engine, network.attrs["Labels"]["envkit.run"])  # whatever the test left
    state = up(settings, MINI)
    try:
        report = clean(settings)
        assert state.run_id in report.kept_live
        assert state.run_id not in report.runs
        assert len(leftovers(engine, **{"envkit.run": state.run_id})) == 3
    finally:
        down(settings)


def test_the_next_run_reaps_leftovers_but_never_a_live_run(
    engine: docker.DockerClient, mini_settings: EnvkitSettings, tmp_path: Path
) -> None:
    dead_run = _killed_run(tmp_path, engine)
    with running_stack(mini_settings, MINI) as live:
        assert leftovers(engine, **{"envkit.run": dead_run}) == []  # reaped at start
        report = clean(mini_settings)
        assert live.run_id in report.kept_live
        assert live.run_id not in report.runs
        assert len(leftovers(engine, **{"envkit.run": live.run_id})) == 3


def test_two_stacks_at_once_do_not_collide(
    mini_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    results: dict[int, Any] = {}
    release = threading.Event()

    def run(index: int) -> None:
        try:
            with running_stack(mini_settings, MINI) as env:
                rows = env.endpoints()
                results[index] = (env.run_id, rows, httpx.get(rows["api"]["host_url"] + "/health"))
                release.wait(60)
        except Exception as exc:  # reported below
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    release.set()
    for thread in threads:
        thread.join(60)
    for value in results.values():
        assert not isinstance(value, Exception), value
    (run_a, rows_a, health_a), (run_b, rows_b, health_b) = results[0], results[1]
    assert run_a != run_b
    assert health_a.status_code == health_b.status_code == 200
    # each run on its own network: the same container ports at different addresses
    assert rows_a["api"]["host_url"] != rows_b["api"]["host_url"]
    assert rows_a["db"]["host_url"] != rows_b["db"]["host_url"]
    assert leftovers(engine, **{"envkit.run": run_a}) == []
    assert leftovers(engine, **{"envkit.run": run_b}) == []


@pytest.fixture
def up_settings(sandbox: Callable[..., EnvkitSettings]) -> EnvkitSettings:
    """Settings for `up` with its own state dir and ports unlikely to be taken here."""
    return sandbox(ports_from=29050, stack=MINI)


def test_up_status_logs_down(up_settings: EnvkitSettings, engine: docker.DockerClient) -> None:
    from envkit.errors import EnvkitError
    from envkit.lifecycle.commands import down, logs, status, up

    state = up(up_settings, MINI)
    try:
        assert state.services["api"].host_url == "http://127.0.0.1:29051"
        assert state.services["db"].host_port == 29050
        assert httpx.get("http://127.0.0.1:29051/health", timeout=5).status_code == 200
        shown = status(up_settings)
        assert {n: r.state for n, r in shown.services.items()} == {
            "db": "running",
            "api": "running",
        }
        lines = list(logs(up_settings, "api", follow=False))
        assert any("GET /health -> 200" in line for line in lines)
        assert all(line.startswith("api | ") for line in lines)
        with pytest.raises(EnvkitError, match="A stack is already up"):
            up(up_settings, MINI)
    finally:
        result = down(up_settings)
    assert result.removed == 2
    assert leftovers(engine, **{"envkit.run": state.run_id}) == []
    assert any(Path(p).name == "api.log" and Path(p).read_text() for p in result.logs)
    with pytest.raises(EnvkitError, match="No stack is up"):
        status(up_settings)


def _own_up_containers(engine: docker.DockerClient) -> set[str]:
    """This process's `up` containers: another session's stack may come and go meanwhile."""
    ours = ["envkit.mode=up", f"envkit.owner_pid={os.getpid()}"]
    return {c.id for c in engine.containers.list(all=True, filters={"label": ours})}


def test_up_refuses_a_taken_fixed_port_before_creating_anything(
    up_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    import socket

    from envkit.errors import PortInUseError
    from envkit.lifecycle.commands import up

    before = _own_up_containers(engine)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 29051))
        holder.listen()
        with pytest.raises(PortInUseError) as info:
            up(up_settings, MINI)
    message = str(info.value)
    assert (
        "Port 29051 on 127.0.0.1, the fixed port of api (ENVKIT_PORTS__API), is taken." in message
    )
    assert "choose another port with ENVKIT_PORTS__API" in message
    assert _own_up_containers(engine) == before


def test_up_sweeps_a_killed_runs_leftovers_while_it_starts_but_never_a_live_run(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient, tmp_path: Path
) -> None:
    from envkit.lifecycle.commands import down, up

    settings = sandbox(ports_from=29770, stack=MINI)
    with running_stack(settings, MINI) as live:  # this process's own isolated run
        dead_run = _killed_run(tmp_path, engine)
        state = up(settings, MINI)
        try:
            assert leftovers(engine, **{"envkit.run": dead_run}) == []
            assert len(leftovers(engine, **{"envkit.run": live.run_id})) == 3
            assert len(leftovers(engine, **{"envkit.run": state.run_id})) == 3
        finally:
            down(settings)
    assert leftovers(engine, **{"envkit.run": state.run_id}) == []


def test_an_image_that_cannot_be_had_leaves_no_network_of_the_run(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient
) -> None:
    from envkit.errors import ImageError
    from envkit.lifecycle.commands import up

    # A registry on a port where nothing listens: the pull fails at once, and locally.
    settings = sandbox(
        ports_from=29770, stack=MINI, ENVKIT_IMAGES__OVERRIDE="api=127.0.0.1:1/absent:0"
    )
    mine = {"envkit.owner_pid": str(os.getpid()), "envkit.mode": "up", "envkit.stack": "mini"}
    before = leftovers(engine, **mine)
    with pytest.raises(ImageError) as info:
        up(settings, MINI)
    assert "needs image 127.0.0.1:1/absent:0" in str(info.value)
    assert leftovers(engine, **mine) == before
