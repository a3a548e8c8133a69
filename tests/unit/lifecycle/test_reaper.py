"""Which runs the reaper counts as orphaned, and what it removes, against a fake engine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, NotFound

from envkit.lifecycle.containers import (
    MODE,
    OWNER_HOST,
    OWNER_PID,
    OWNER_START,
    RUN,
    STATE_DIR,
    owner_labels,
    process_start_time,
)
from envkit.lifecycle.reaper import owner_alive, reap
from envkit.lifecycle.state import UpState, write_state

HOST = socket.gethostname()


def labels_of(pid: int, *, start: str | None = None, host: str = HOST) -> dict[str, str]:
    """Owner labels naming `pid` on `host` (its real start time unless `start` is given)."""
    return {
        OWNER_HOST: host,
        OWNER_PID: str(pid),
        OWNER_START: process_start_time(pid) if start is None else start,
    }


@pytest.fixture
def exited_pid() -> int:
    """The pid of a child that has exited and been reaped (no process has it now)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def zombie_pid() -> Iterator[int]:
    """The pid of a child that has exited but was not reaped yet: state Z in /proc."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # WNOWAIT waits for the exit but leaves the child unreaped, so it stays a zombie.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    yield child.pid
    child.wait()


def test_this_live_process_is_alive() -> None:
    assert owner_alive(labels_of(os.getpid()))


def test_an_exited_owner_is_gone(exited_pid: int) -> None:
    assert not owner_alive(labels_of(exited_pid, start="1"))


def test_a_reused_pid_with_another_start_time_is_gone() -> None:
    real = process_start_time(os.getpid())
    assert real  # /proc is readable, or this test proves nothing
    assert not owner_alive(labels_of(os.getpid(), start=str(int(real) + 1)))


def test_a_zombie_owner_is_gone(zombie_pid: int) -> None:
    with open(f"/proc/{zombie_pid}/stat") as stat:
        assert stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    assert not owner_alive(labels_of(zombie_pid))


def test_an_owner_without_a_start_time_label_is_judged_by_pid_alone(exited_pid: int) -> None:
    assert owner_alive(labels_of(os.getpid(), start=""))
    assert not owner_alive(labels_of(exited_pid, start=""))


def test_a_missing_or_malformed_pid_counts_as_gone() -> None:
    assert not owner_alive({OWNER_HOST: HOST})
    assert not owner_alive(labels_of(os.getpid()) | {OWNER_PID: "12x"})


def test_owners_on_other_hosts_are_never_judged_from_here(exited_pid: int) -> None:
    assert owner_alive(labels_of(exited_pid, start="1", host=HOST + "-elsewhere"))
    assert owner_alive({})  # no owner host at all: not ours to judge


# A fake of the part of docker-py's client the reaper and `remove_run` use.


def matches(labels: dict[str, str], filters: dict[str, str] | None) -> bool:
    wanted = (filters or {}).get("label")
    if wanted is None:
        return True
    key, _, value = wanted.partition("=")
    return key in labels and (not value or labels[key] == value)


@dataclass
class FakeContainer:
    name: str
    labels: dict[str, str]
    engine: FakeEngine
    removed_by_someone_else: bool = False  # gone between `docker ps` and its inspect
    state: str = "running"
    created: float = 0.0

    @property
    def id(self) -> str:
        return self.name

    @property
    def attrs(self) -> dict[str, Any]:
        """What a sparse listing carries: labels, state, creation time, no inspect."""
        return {"Labels": self.labels, "State": self.state, "Created": self.created}

    def remove(self, force: bool = False, v: bool = False) -> None:
        assert force, "the reaper must force-remove running containers"
        self.engine.containers.items.remove(self)


@dataclass
class FakeNetwork:
    name: str
    attrs: dict[str, Any]
    engine: FakeEngine

    def remove(self) -> None:
        self.engine.networks.items.remove(self)


@dataclass
class FakeCollection:
    items: list[Any] = field(default_factory=list)

    def list(
        self, all: bool = False, filters: dict[str, str] | None = None, sparse: bool = False
    ) -> list[Any]:
        status = (filters or {}).get("status")
        found = [
            item
            for item in self.items
            if matches(item.attrs["Labels"], filters)
            and (status is None or item.attrs.get("State") == status)
        ]
        if not sparse and any(getattr(item, "removed_by_someone_else", False) for item in found):
            # docker-py inspects each listed container unless sparse: a vanished one is a 404.
            raise NotFound("No such container")
        return [item for item in found if not getattr(item, "removed_by_someone_else", False)]


@dataclass
class FakeEngine:
    containers: FakeCollection = field(default_factory=FakeCollection)
    networks: FakeCollection = field(default_factory=FakeCollection)

    def add_run(self, run_id: str, owner: dict[str, str], mode: str, containers: int) -> None:
        labels = owner | {RUN: run_id, MODE: mode}
        for index in range(containers):
            self.containers.items.append(FakeContainer(f"{run_id}-{index}", labels, self))
        self.networks.items.append(FakeNetwork(run_id, {"Labels": labels}, self))

    def run_ids(self) -> set[str]:
        return {c.labels[RUN] for c in self.containers.items} | {
            n.attrs["Labels"][RUN] for n in self.networks.items
        }


@pytest.fixture
def engine(exited_pid: int) -> FakeEngine:
    """Runs of every kind: live and dead owners, isolated and left running on purpose."""
    fake = FakeEngine()
    fake.add_run("live", labels_of(os.getpid()), "isolated", 2)
    fake.add_run("orphan", labels_of(exited_pid, start="1"), "isolated", 3)
    fake.add_run("up", labels_of(exited_pid, start="1"), "up", 2)
    fake.add_run("kept", labels_of(os.getpid()), "keep", 1)
    fake.add_run("remote", labels_of(exited_pid, start="1", host=HOST + "-b"), "isolated", 1)
    return fake


def test_reap_removes_only_runs_whose_owner_is_gone(engine: FakeEngine) -> None:
    report = reap(engine)
    assert report.runs == ["orphan"]
    assert report.containers == 3
    assert report.kept_live == ["kept", "live", "remote", "up"]
    assert engine.run_ids() == {"live", "up", "kept", "remote"}


def test_a_dry_run_counts_but_removes_nothing(engine: FakeEngine) -> None:
    report = reap(engine, dry_run=True)
    assert (report.runs, report.containers) == (["orphan"], 3)
    assert engine.run_ids() == {"live", "orphan", "up", "kept", "remote"}


def test_including_up_removes_the_stacks_left_on_purpose_but_never_a_live_run(
    engine: FakeEngine,
) -> None:
    report = reap(engine, include_up=True)
    assert report.runs == ["kept", "orphan", "up"]
    assert report.containers == 1 + 3 + 2
    assert report.kept_live == ["live", "remote"]
    assert engine.run_ids() == {"live", "remote"}


# -- an `up` killed before it recorded its run -------------------------------------------------


def _recorded(root: Path, run_id: str) -> None:
    write_state(root, UpState(run_id, root / "stack.toml", "2026-12-01T00:00:00", root, {}))


def _up_runs(owner: dict[str, str], state_dir: Path) -> FakeEngine:
    fake = FakeEngine()
    fake.add_run("mgm-a", owner | {STATE_DIR: str(state_dir)}, "up", 2)
    fake.add_run("mgm-b", owner | {STATE_DIR: str(state_dir)}, "up", 1)
    return fake


def test_an_up_killed_before_it_recorded_its_run_is_removed(
    exited_pid: int, tmp_path: Path
) -> None:
    fake = _up_runs(labels_of(exited_pid, start="1"), tmp_path)  # no state file: none recorded
    report = reap(fake)
    assert (sorted(report.runs), report.containers) == (["mgm-a", "mgm-b"], 3)
    assert fake.run_ids() == set()


def test_the_up_its_state_directory_records_stays_and_an_unrecorded_one_goes(
    exited_pid: int, tmp_path: Path
) -> None:
    _recorded(tmp_path, "mgm-b")
    fake = _up_runs(labels_of(exited_pid, start="1"), tmp_path)
    report = reap(fake)
    assert (report.runs, report.kept_live) == (["mgm-a"], ["mgm-b"])
    assert fake.run_ids() == {"mgm-b"}


@pytest.mark.parametrize("case", ["live owner", "other host", "state dir gone", "damaged state"])
def test_an_unrecorded_up_is_kept_when_nothing_here_can_tell(
    case: str, exited_pid: int, tmp_path: Path
) -> None:
    owner = labels_of(exited_pid, start="1")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    if case == "live owner":  # its `up` is still starting
        owner = labels_of(os.getpid())
    elif case == "other host":
        owner = labels_of(exited_pid, start="1", host=HOST + "-b")
    elif case == "state dir gone":
        state_dir = tmp_path / "removed-checkout" / "state"
    else:
        (state_dir / "up.json").write_text("{not json")
    fake = _up_runs(owner, state_dir)
    report = reap(fake)
    assert (report.runs, report.kept_live) == ([], ["mgm-a", "mgm-b"])
    assert fake.run_ids() == {"mgm-a", "mgm-b"}


def test_only_up_runs_carry_their_state_directory(tmp_path: Path) -> None:
    up = owner_labels("mgm-a", "mgm", "up", state_dir=tmp_path / "." / "state")
    assert up[STATE_DIR] == str((tmp_path / "state").resolve())
    assert STATE_DIR not in owner_labels("mgm-b", "mgm", "isolated")


def test_a_run_left_with_only_its_network_is_removed(exited_pid: int) -> None:
    fake = FakeEngine()
    fake.add_run("bare", labels_of(exited_pid, start="1"), "isolated", 0)
    report = reap(fake)
    assert (report.runs, report.containers) == (["bare"], 0)
    assert fake.run_ids() == set()


def test_a_container_another_run_removes_meanwhile_does_not_stop_the_reaper(
    engine: FakeEngine,
) -> None:
    """Several runs share an engine: one may remove its containers while `clean` lists them."""
    vanishing = next(c for c in engine.containers.items if c.labels[RUN] == "live")
    vanishing.removed_by_someone_else = True
    report = reap(engine)
    assert report.runs == ["orphan"]
    assert "orphan" not in engine.run_ids()


def test_a_reaper_container_created_but_never_started_is_removed_after_a_minute() -> None:
    from envkit.lifecycle.reaper import remove_stuck_reapers

    fake = FakeEngine()
    label = {"envkit.image": "reaper"}
    now = 10_000.0
    stuck = FakeContainer("stuck", label, fake, state="created", created=now - 61)
    starting = FakeContainer("starting", label, fake, state="created", created=now - 2)
    working = FakeContainer("working", label, fake, state="running", created=now - 600)
    other = FakeContainer("other", {"x": "y"}, fake, state="created", created=now - 600)
    fake.containers.items += [stuck, starting, working, other]

    assert remove_stuck_reapers(fake, now=now) == 1  # type: ignore[arg-type]
    assert [c.name for c in fake.containers.items] == ["starting", "working", "other"]


def test_reap_also_removes_stuck_reapers_unless_a_dry_run(engine: FakeEngine) -> None:
    labels = {"envkit.image": "reaper"}
    stuck = FakeContainer("stuck", labels, engine, state="created", created=1.0)
    engine.containers.items.append(stuck)  # created long ago
    assert reap(engine, dry_run=True).containers == 3
    assert stuck in engine.containers.items
    report = reap(engine)
    assert report.containers == 3 + 1
    assert stuck not in engine.containers.items


# The sweep: the same reap on a thread of its own while a run starts.


def test_the_background_sweep_removes_a_dead_owners_run_and_never_a_live_one(
    engine: FakeEngine,
) -> None:
    from envkit.lifecycle.reaper import Sweep

    report = Sweep(engine).wait()  # type: ignore[arg-type]
    assert report is not None
    assert report.runs == ["orphan"]
    assert "live" in report.kept_live
    assert engine.run_ids() == {"live", "up", "kept", "remote"}


class BrokenContainers:
    def list(self, **kwargs: Any) -> list[Any]:
        raise APIError("engine said no")


@dataclass
class BrokenEngine:
    containers: BrokenContainers = field(default_factory=BrokenContainers)


def test_a_failed_sweep_is_reported_once_as_a_warning_not_lost() -> None:
    from envkit.evidence.redact import Redactor
    from envkit.lifecycle.reaper import Sweep
    from envkit.logs import configure_logging, log
    from envkit.program import command

    lines: list[str] = []
    configure_logging(Redactor([]))
    sink = log.add(lambda message: lines.append(str(message)), level="WARNING", format="{message}")
    try:
        sweep = Sweep(BrokenEngine())  # type: ignore[arg-type]
        assert sweep.wait() is None
        assert sweep.wait() is None  # waiting again reports nothing new
    finally:
        log.remove(sink)
        configure_logging(Redactor([]))
    assert isinstance(sweep.error, APIError)
    assert len(lines) == 1
    assert "could not remove the runs of killed processes (APIError: engine said no)" in lines[0]
    assert f"`{command('clean')}` tries again" in lines[0]
