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

One reaper on an engine serves every envkit process there with the same settings (the live
run and the killed children share one). A case of its own starts two processes at once on
a reaper of their own (a short idle time), kills one and checks that only its run goes, and
that the reaper itself leaves once neither is connected.

The engine is a fixture parameter (`reaper_engine`): the local engine, and the second
engine of the session (a dockerd in a network namespace of its own, over tcp), whose runs
are held by a reaper on that engine.
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
ENGINES = ["local", "second"]
REAP_DEADLINE = 30.0  # seconds we give the reaper (grace 5 s + removal) on a noisy machine
START_DEADLINE = 180.0  # seconds a child may take to start its stack
UP_PORTS = 28900  # this module's fixed `up` ports: 28900-28905
REAPER_LABEL = "envkit.reaper"  # on every envkit reaper container
IDLE_SECONDS = 3  # the shared-reaper case's own idle time (so its reaper is its own)
IDLE_DEADLINE = 180.0  # seconds we give that reaper to leave once idle (noisy machine)
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
    """The engine under test: the local one, or the session's second engine (over tcp)."""
    if request.param == "local":
        return EngineUnderTest("local", engine)
    second, extra = request.getfixturevalue("second_engine")
    return EngineUnderTest("second", extra.client, {"DOCKER_HOST": second.url})


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


def test_a_zombie_owners_run_is_removed_while_the_zombie_remains(
    reaper_engine: EngineUnderTest,
    live_run: LiveRun,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    client = reaper_engine.client
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
    live_run.assert_untouched(client)


def _start_runner(tmp: Path, target: EngineUnderTest, **extra: str) -> subprocess.Popen[str]:
    """A held stack in stack_runner.py under CHILD_HOST (see above); it prints READY <run>."""
    rename = f'hostname {CHILD_HOST} && exec "$0" "$@"'
    runner = [sys.executable, str(HERE / "stack_runner.py"), str(MGM_STACK), str(tmp / "artifacts")]
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["unshare", "--uts", "sh", "-c", rename, *runner],
        env=_child_env(tmp, target, **extra), text=True,
        stdout=subprocess.PIPE, stderr=(tmp / "stderr").open("w"),
    )  # fmt: skip


def _ready(child: subprocess.Popen[str], tmp: Path, client: docker.DockerClient) -> LiveRun:
    """Wait for the runner's READY line; the run it started, as it is now."""
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("READY"), (tmp / "stderr").read_text()[-3000:]
    run_id = line.split()[1]
    label = {"label": f"{RUN}={run_id}"}
    return LiveRun(
        child, run_id,
        {c.id for c in client.containers.list(filters=label)},
        {n.id for n in client.networks.list(filters=label)},
    )  # fmt: skip


def _session(client: docker.DockerClient, run: LiveRun) -> str:
    """The testcontainers session label on every container of `run` (its process's)."""
    found = client.containers.list(all=True, sparse=True, filters={"label": f"{RUN}={run.run_id}"})
    sessions = {(c.attrs.get("Labels") or {}).get(LABEL_SESSION_ID) for c in found}
    assert len(sessions) == 1, sessions
    session = sessions.pop()
    assert session, "the run's containers carry no session label: it is not held"
    return str(session)


def _reapers_holding(client: docker.DockerClient, session: str) -> set[str]:
    """Ids of the reaper containers whose log says they took `session`'s filter."""
    wanted = f"holds label={LABEL_SESSION_ID}={session}"
    found = set()
    # sparse: other processes' reapers remove themselves; an inspect of one may find it gone
    for container in client.containers.list(sparse=True, filters={"label": REAPER_LABEL}):
        with contextlib.suppress(docker.errors.NotFound):
            if wanted in client.api.logs(container.id).decode(errors="replace"):
                found.add(container.id)
    return found


def test_one_shared_reaper_removes_only_the_killed_processs_run_and_leaves_when_idle(
    reaper_engine: EngineUnderTest,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    client = reaper_engine.client
    idle = {"ENVKIT_REAPER__IDLE_SECONDS": str(IDLE_SECONDS)}
    # Started at once: both look for the reaper, one creates it, the other uses it.
    first = _start_runner(tmp_path / "first", reaper_engine, **idle)
    second = _start_runner(tmp_path / "second", reaper_engine, **idle)
    try:
        killed_run = _ready(first, tmp_path / "first", client)
        live = _ready(second, tmp_path / "second", client)
        assert len(killed_run.containers) == len(live.containers) == 6
        holding = _reapers_holding(client, _session(client, killed_run))
        assert len(holding) == 1, "the first process's session is not held by one reaper"
        assert _reapers_holding(client, _session(client, live)) == holding  # the same one
        first.kill()  # SIGKILL: no teardown, no atexit
        killed = time.monotonic()
        first.wait(timeout=30)
        gone_after = _wait_until_gone(client, first.pid, killed)
        live.assert_untouched(client)  # same reaper, another connection: not touched
        second.send_signal(signal.SIGTERM)  # a normal ending: it tears its run down
        second.wait(timeout=120)
        assert _owned(client, second.pid) == []
        left = time.monotonic()
        while client.containers.list(all=True, sparse=True, filters={"id": list(holding)}):
            assert time.monotonic() - left < IDLE_DEADLINE, "the idle reaper never left"
            time.sleep(0.5)
        _report(
            record_property, "shared reaper", engine=reaper_engine.name,
            gone_after_s=round(gone_after, 2),
            reaper_left_after_s=round(time.monotonic() - left, 2), idle_s=IDLE_SECONDS,
        )  # fmt: skip
    finally:
        for child in (first, second):
            child.kill()
            child.wait(timeout=30)
            _remove_leftovers(client, child.pid)


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
