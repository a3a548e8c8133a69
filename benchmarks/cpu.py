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
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Collection
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


def daemon_cpu() -> float:
    """CPU-seconds dockerd and containerd have used since they started (0 if not visible)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            if comm not in ("dockerd", "containerd"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


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
