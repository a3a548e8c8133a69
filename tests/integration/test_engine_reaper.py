"""The engine's reaper: a dead owner's run is removed with no later envkit command.

Each case starts a sandboxed `invoke tier-b` in a child process and kills it with
SIGKILL at a given moment after its start (or kills it and leaves it a zombie, its
parent never reaping it), then waits, running no envkit code, until nothing labelled
with that owner is left on the engine. A second run, started by the test and alive
all along, must be untouched. An `up` stack, which must outlive `invoke up`, is still
running after the reaper's delay, until `down`.

Every other envkit process on this host removes runs whose owner on this host is dead
(the host-side label reaper, at the start of each run), and other test sessions share
the engine: so each killed child runs under a host name of its own (a UTS namespace),
and only the engine's reaper may judge its runs.

The engine is a fixture parameter (`reaper_engine`): a second engine joins the list
once envkit reaches remote engines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
from testcontainers.core.labels import LABEL_SESSION_ID

from envkit.engines.images import ImageResult
from envkit.lifecycle.commands import down, status
from envkit.lifecycle.containers import OWNER_HOST, OWNER_PID, RUN
from envkit.lifecycle.environment import remove_run
from envkit.lifecycle.reaper import process_state
from envkit.spec.settings import EnvkitSettings

from .conftest import MGM_STACK, sandbox_environ

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ENGINES = ["local"]
REAP_DEADLINE = 30.0  # seconds we give the reaper (grace 5 s + removal) on a noisy machine
START_DEADLINE = 180.0  # seconds a child may take to start its stack
UP_PORTS = 28900  # this module's fixed `up` ports: 28900-28905
REAPER_NAME = "testcontainers-ryuk-"
CHILD_HOST = f"envkit-reaper-test-{os.getpid()}"  # the killed children's own host name


@dataclass(frozen=True)
class EngineUnderTest:
    """An engine the reaper is tested on: a client and what a child process needs to reach it."""

    name: str
    client: docker.DockerClient
    env: dict[str, str] = field(default_factory=dict)  # DOCKER_HOST, TC_HOST, …


@pytest.fixture(scope="module", params=ENGINES)
def reaper_engine(
    request: pytest.FixtureRequest,
    engine: docker.DockerClient,
    images: dict[str, ImageResult],  # envkit's images, the reaper's among them
) -> EngineUnderTest:
    """The engine under test (only the local one so far)."""
    assert request.param == "local"
    return EngineUnderTest("local", engine)


def _child_env(tmp: Path, target: EngineUnderTest, **extra: str) -> dict[str, str]:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ENVKIT_", "TESTCONTAINERS_", "RYUK_"))
    }
    return {**inherited, **target.env, **sandbox_environ(tmp), **extra}


def _owned(client: docker.DockerClient, pid: int, host: str = CHILD_HOST) -> list[str]:
    """Containers and networks whose owner is `pid` on `host`, as `kind id (run)`."""
    filters = {"label": [f"{OWNER_PID}={pid}", f"{OWNER_HOST}={host}"]}
    # sparse: the listing alone, nothing to inspect that the reaper may remove meanwhile
    found = [
        f"container {c.short_id} ({(c.attrs.get('Labels') or {}).get(RUN)})"
        for c in client.containers.list(all=True, sparse=True, filters=filters)
    ]
    found += [
        f"network {n.name} ({(n.attrs.get('Labels') or {}).get(RUN)})"
        for n in client.networks.list(filters=filters)
    ]
    return sorted(found)


def _reapers(client: docker.DockerClient) -> set[str]:
    # sparse: no inspect per container, which fails when a reaper exits meanwhile (every
    # envkit process on the engine has one, and they come and go)
    listed = client.containers.list(all=True, sparse=True, filters={"name": REAPER_NAME})
    return {c.id for c in listed}


def _wait_until_gone(client: docker.DockerClient, pid: int, since: float) -> float:
    """Poll (no envkit code) until nothing of `pid` is left; return the seconds since `since`."""
    deadline = since + REAP_DEADLINE
    while True:
        left = _owned(client, pid)
        now = time.monotonic()
        if not left:
            return now - since
        if now > deadline:
            pytest.fail(f"{REAP_DEADLINE:.0f} s after its owner died, the engine still has {left}")
        time.sleep(0.1)


def _remove_leftovers(client: docker.DockerClient, pid: int) -> None:
    """After a failed case: remove what the child left (no envkit process would, see above)."""
    filters = {"label": [f"{OWNER_PID}={pid}", f"{OWNER_HOST}={CHILD_HOST}"]}
    runs = {
        (c.attrs.get("Labels") or {}).get(RUN)
        for c in client.containers.list(all=True, sparse=True, filters=filters)
    } | {(n.attrs.get("Labels") or {}).get(RUN) for n in client.networks.list(filters=filters)}
    for run_id in runs - {None}:
        remove_run(client, str(run_id))


def _retire_reapers(client: docker.DockerClient, ours: set[str]) -> None:
    """Wait for the child's reapers to finish and exit; remove one that never got a client."""
    deadline = time.monotonic() + REAP_DEADLINE
    while ours & _reapers(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    for container_id in ours & _reapers(client):  # killed before it connected: it would wait 60 s
        with contextlib.suppress(docker.errors.NotFound):  # it exited meanwhile after all
            client.containers.get(container_id).remove(force=True)


@dataclass
class LiveRun:
    """A run started by the test and alive through every case."""

    child: subprocess.Popen[str]
    run_id: str
    containers: set[str]
    networks: set[str]

    def assert_untouched(self, client: docker.DockerClient) -> None:
        """Every container of the run still runs, and its network is still there."""
        label = {"label": f"{RUN}={self.run_id}"}
        running = {c.id for c in client.containers.list(filters=label)}
        assert running == self.containers, "the live run lost containers"
        assert {n.id for n in client.networks.list(filters=label)} == self.networks


@pytest.fixture(scope="module")
def live_run(
    reaper_engine: EngineUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveRun]:
    """The MGM stack held by a live process of the test's own (stack_runner.py)."""
    tmp = tmp_path_factory.mktemp("live")
    child = subprocess.Popen(
        [sys.executable, str(HERE / "stack_runner.py"), str(MGM_STACK), str(tmp / "artifacts")],
        stdout=subprocess.PIPE, stderr=(tmp / "stderr").open("w"), text=True,
        env=_child_env(tmp, reaper_engine),
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("READY"), (tmp / "stderr").read_text()[-3000:]
        run_id = line.split()[1]
        label = {"label": f"{RUN}={run_id}"}
        client = reaper_engine.client
        live = LiveRun(
            child, run_id,
            {c.id for c in client.containers.list(filters=label)},
            {n.id for n in client.networks.list(filters=label)},
        )  # fmt: skip
        assert len(live.containers) == 6
        assert len(live.networks) == 1
        yield live
    finally:
        child.send_signal(signal.SIGTERM)  # a normal ending: envkit tears its run down
        child.wait(timeout=120)
    assert _owned(reaper_engine.client, child.pid, socket.gethostname()) == []


def _start_tier_b(tmp: Path, target: EngineUnderTest) -> subprocess.Popen[str]:
    """`invoke tier-b` under CHILD_HOST; `exec` keeps the pid the one its labels name."""
    rename = f'hostname {CHILD_HOST} && exec "$0" "$@"'
    return subprocess.Popen(
        ["unshare", "--uts", "sh", "-c", rename, sys.executable, "-m", "invoke", "tier-b"],
        cwd=ROOT, env=_child_env(tmp, target), text=True,
        stdout=subprocess.DEVNULL, stderr=(tmp / "stderr").open("w"),
    )  # fmt: skip


def _report(record_property: Callable[[str, object], None], case: str, **facts: object) -> None:
    record_property(case, facts)
    print(f"\n[engine reaper] {case}: " + ", ".join(f"{k}={v}" for k, v in facts.items()))


@pytest.mark.parametrize("after", [1.0, 2.0, 3.0, 4.0], ids=lambda s: f"kill-9-at-{s:.0f}s")
def test_a_killed_tier_b_leaves_nothing_once_the_reaper_is_done(
    after: float,
    reaper_engine: EngineUnderTest,
    live_run: LiveRun,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    client = reaper_engine.client
    reapers_before = _reapers(client)
    child = _start_tier_b(tmp_path, reaper_engine)
    try:
        time.sleep(after)  # the moment of the kill is the case, not an assertion
    finally:
        child.kill()  # SIGKILL: no teardown, no atexit
        killed = time.monotonic()
        child.wait(timeout=30)
    try:
        left = _owned(client, child.pid)
        gone_after = _wait_until_gone(client, child.pid, killed)
        _report(
            record_property, f"kill -9 at {after:.0f} s", engine=reaper_engine.name,
            left_at_kill=len(left), gone_after_s=round(gone_after, 2),
        )  # fmt: skip
        live_run.assert_untouched(client)
    finally:
        _remove_leftovers(client, child.pid)
        _retire_reapers(client, _reapers(client) - reapers_before)


def test_a_zombie_owners_run_is_removed_while_the_zombie_remains(
    reaper_engine: EngineUnderTest,
    live_run: LiveRun,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    client = reaper_engine.client
    reapers_before = _reapers(client)
    child = _start_tier_b(tmp_path, reaper_engine)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while sum(s.startswith("container") for s in _owned(client, child.pid)) < 3:
            assert time.monotonic() < deadline, (tmp_path / "stderr").read_text()[-3000:]
            assert process_state(child.pid) not in ("Z", ""), "tier-b ended before its stack"
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)  # and, unlike Popen.kill() + wait(), never reap it
        killed = time.monotonic()
        while process_state(child.pid) != "Z":
            assert time.monotonic() - killed < 30, "the killed child never became a zombie"
            time.sleep(0.05)
        left = _owned(client, child.pid)
        assert left, "the zombie's run was gone before the reaper could act"
        gone_after = _wait_until_gone(client, child.pid, killed)
        assert process_state(child.pid) == "Z"  # still a zombie: the owner never "went away"
        _report(
            record_property, "zombie owner", engine=reaper_engine.name,
            left_at_kill=len(left), gone_after_s=round(gone_after, 2),
        )  # fmt: skip
    finally:
        child.kill()
        child.wait(timeout=30)  # now reap it
        _remove_leftovers(client, child.pid)
        _retire_reapers(client, _reapers(client) - reapers_before)
    live_run.assert_untouched(client)


def test_the_up_stack_outlives_invoke_up_and_the_reapers_delay_until_down(
    reaper_engine: EngineUnderTest,
    sandbox: Callable[..., EnvkitSettings],
    tmp_path: Path,
) -> None:
    settings = sandbox(ports_from=UP_PORTS)
    env = {**_child_env(tmp_path, reaper_engine), **sandbox_environ(tmp_path, UP_PORTS)}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "up"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    client = reaper_engine.client
    run_id = status(settings).run_id
    label = {"label": f"{RUN}={run_id}"}
    try:
        started = {c.id for c in client.containers.list(filters=label)}
        assert len(started) == 6
        for container in client.containers.list(filters=label):
            assert LABEL_SESSION_ID not in container.labels  # nothing for a reaper to match
        # `invoke up` has exited; wait out a reaper's whole delay before looking again.
        time.sleep(settings.reaper.grace_seconds + REAP_DEADLINE / 3)
        assert {c.id for c in client.containers.list(filters=label)} == started
        assert len(client.networks.list(filters=label)) == 1
        assert all(row.state == "running" for row in status(settings).services.values())
    finally:
        down(settings)
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []
