"""CPU accounting shared by the load benchmarks: envkit's processes and their containers.

A benchmark starts envkit commands as child processes and wants the CPU-seconds they
and the containers they started used, not the whole machine's (other work shares it).

* Processes: each child's own rusage from `os.wait4` (it covers the descendants it waited
  for), so the `docker inspect` calls this accounting makes never count.
* Containers: the engine's cgroup of each container (cgroup v1 `cpuacct.usage` or v2
  `cpu.stat`), sampled while it exists; a container is counted when its labels name
  one of our children as owner (`envkit.owner_pid`), or it is the reaper of one of our
  children's sessions (an older envkit's, named after the session label its run's
  containers carry), or a shared reaper (`envkit-reaper-*`) that appeared while our
  children ran (one of them started it; a shared reaper that was already running is not
  counted: it mostly waits), or a caller-given name prefix matches (e.g. a Compose
  project's containers).
* The engine's own daemons (dockerd, containerd) are reported apart: they also serve
  whatever else runs on the engine meanwhile; so is the whole machine's busy CPU
  (`/proc/stat`), which says how much of the cores others took.
* The engine's whole work (`EngineCpu`): dockerd, containerd and everything they start
  (containerd-shim, runc, dockerd's helper re-executions, iptables, docker-proxy), but
  not the containers' own processes, counted in a cgroup of their own. It needs root, a
  local engine, and a cgroup v1 `cpuacct` hierarchy mounted without the `cpu` controller
  (moving the engine there then changes no scheduling); elsewhere it reports nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import threading
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

CGROUP_ROOTS = (
    Path("/sys/fs/cgroup/cpuacct/docker"),  # v1, cgroupfs driver
    Path("/sys/fs/cgroup/cpu,cpuacct/docker"),
    Path("/sys/fs/cgroup/system.slice"),  # v2, systemd driver: docker-<id>.scope
    Path("/sys/fs/cgroup/docker"),  # v2, cgroupfs driver
)
SESSION = "org.testcontainers.session-id"


def wait_cpu(child: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for `child`; return its exit code and the CPU-seconds it (and the descendants it
    waited for) used."""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_utime + usage.ru_stime


def _cgroup_usage(container_id: str) -> float | None:
    for root in CGROUP_ROOTS:
        for directory in (root / container_id, root / f"docker-{container_id}.scope"):
            v1 = directory / "cpuacct.usage"
            if v1.is_file():
                try:
                    return int(v1.read_text()) / 1e9
                except (OSError, ValueError):
                    return None
            v2 = directory / "cpu.stat"
            if v2.is_file():
                try:
                    for line in v2.read_text().splitlines():
                        if line.startswith("usage_usec "):
                            return int(line.split()[1]) / 1e6
                except (OSError, ValueError):
                    return None
    return None


def _container_ids() -> set[str]:
    ids: set[str] = set()
    for root in CGROUP_ROOTS:
        if root.is_dir():
            for entry in root.iterdir():
                name = entry.name.removeprefix("docker-").removesuffix(".scope")
                if len(name) == 64 and entry.is_dir():
                    ids.add(name)
    return ids


def machine_busy() -> float:
    """CPU-seconds every core of the machine has spent not idle since boot (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu(comms: Collection[str]) -> tuple[float, float]:
    """CPU-seconds of every process named one of `comms` (/proc's comm): (their own, the
    children they reaped, e.g. dockerd's helpers, iptables and proxies)."""
    own = reaped = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() not in comms:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        reaped += (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime
    return own, reaped


def median_known(values: Iterable[float | None]) -> float | None:
    """The median of the values that were measured (None where a figure was not countable)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def daemon_cpu() -> float:
    """CPU-seconds dockerd and containerd have used since they started (0 if not visible)."""
    return process_cpu(("dockerd", "containerd"))[0]


# comm names (cut at 15 characters) of the engine's processes that outlive a request;
# what they fork is born in their cgroup
ENGINE_COMMS = ("dockerd", "containerd", "containerd-shim", "docker-proxy")


def _cpuacct_root() -> Path | None:
    """Where a cgroup v1 `cpuacct` hierarchy without the `cpu` controller is mounted."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) < 4 or fields[2] != "cgroup":
            continue
        options = fields[3].split(",")
        if "cpuacct" in options and "cpu" not in options:
            return Path(fields[1])
    return None


def _cpuacct_group(pid: int) -> str | None:
    """The cpuacct cgroup `pid` sits in ("/" for the root), None when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return path
    return None


def _engine_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() in ENGINE_COMMS:
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


class EngineCpu:
    """The CPU-seconds a local engine spends on its own (see the module's docstring).

    While entered, every local dockerd, containerd, containerd-shim and docker-proxy sits
    in the cpuacct cgroup `envkit-bench-engine`; what they fork meanwhile is born there
    (runc moves a container's own processes to the container's cgroup). On exit every
    process in it goes back where it was (new ones to dockerd's group) and the group is
    removed. `seconds` is None when this machine cannot count it so.
    """

    NAME = "envkit-bench-engine"

    def __init__(self) -> None:
        root = _cpuacct_root() if os.geteuid() == 0 else None
        self._root = root
        self._group = root / self.NAME if root is not None else None
        self._home: dict[int, str] = {}
        self._start = 0.0
        self.seconds: float | None = None

    def __enter__(self) -> EngineCpu:
        group = self._group
        if group is None:
            return self
        try:
            group.mkdir(exist_ok=True)
            for pid in _engine_pids():
                home = _cpuacct_group(pid)
                if home is not None:
                    self._home[pid] = home
                    self._move(pid, group)
            self._start = self._usage()
        except OSError:
            self._restore()
            self._group = None
        if not self._home:
            self._restore()
            self._group = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._group is not None:
            self.seconds = self._usage() - self._start
            self._restore()

    def _usage(self) -> float:
        assert self._group is not None
        return int((self._group / "cpuacct.usage").read_text()) / 1e9

    @staticmethod
    def _move(pid: int, group: Path) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            (group / "cgroup.procs").write_text(str(pid))

    def _restore(self) -> None:
        group, root = self._group, self._root
        if group is None or root is None or not group.is_dir():
            return
        default = next(iter(self._home.values()), "/")
        for _ in range(20):  # what is forked while moving back is born here: go again
            try:
                pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                home = root / self._home.get(pid, default).lstrip("/")
                self._move(pid, home if home.is_dir() else root)
            try:
                group.rmdir()
                return
            except OSError:
                continue


class ContainerCpu:
    """Samples the cgroup CPU of the containers our child processes start (a thread)."""

    def __init__(
        self, owners: Callable[[], Collection[int]], name_prefixes: tuple[str, ...] = ()
    ) -> None:
        self._owners = owners
        self._prefixes = name_prefixes
        self._seen: dict[str, float] = {}  # ours: last usage read
        self._foreign: set[str] = set()
        self._sessions: set[str] = set()
        self._reapers: dict[str, str] = {}  # container id -> session, for reapers seen early
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._known = _container_ids()  # already there before we started: never ours

    def __enter__(self) -> ContainerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        """CPU-seconds our containers used (up to their last sample)."""
        return sum(self._seen.values())

    @property
    def containers(self) -> int:
        """How many of our containers were seen."""
        return len(self._seen)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def _sample(self) -> None:
        new = _container_ids() - self._known - self._foreign - set(self._seen)
        if new:
            self._classify(new)
        for cid in list(self._seen):
            usage = _cgroup_usage(cid)
            if usage is not None:
                self._seen[cid] = max(self._seen[cid], usage)
        for cid, session in list(self._reapers.items()):
            if session in self._sessions:
                self._seen[cid] = _cgroup_usage(cid) or 0.0
                del self._reapers[cid]

    def _classify(self, ids: set[str]) -> None:
        found = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=False
        )
        try:
            infos = json.loads(found.stdout or "[]")
        except json.JSONDecodeError:
            return
        owners = {str(pid) for pid in self._owners()}
        for info in infos:
            cid = info["Id"]
            labels = info["Config"].get("Labels") or {}
            name = info["Name"].lstrip("/")
            if labels.get("envkit.owner_pid") in owners or name.startswith(self._prefixes):
                self._seen[cid] = _cgroup_usage(cid) or 0.0
                if SESSION in labels:
                    self._sessions.add(labels[SESSION])
            elif name.startswith("envkit-reaper-"):
                self._seen[cid] = _cgroup_usage(cid) or 0.0
            elif name.startswith("testcontainers-ryuk-"):
                self._reapers[cid] = name.removeprefix("testcontainers-ryuk-")
            else:
                self._foreign.add(cid)
