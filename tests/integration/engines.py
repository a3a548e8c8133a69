"""Extra engines for the integration tests: a second `dockerd` in a network namespace, Podman.

`SecondEngine` starts `dockerd` the way DESIGN.md's recipe says: a network namespace
of its own (`ip netns add`), a veth pair (host end 10.99.N.1, namespace end 10.99.N.2),
and `nsenter --net=… dockerd` with its own data root, exec root, pidfile and sockets,
listening on tcp at the namespace's address. Each session takes a namespace name and a
subnet nobody else uses (a lock file serialises the choice between parallel sessions),
and `stop()` removes everything it made, whatever state the start reached.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import DockerException

from envkit.engines import debian
from envkit.engines.debian import host_lock

LOCK = Path("/tmp/envkit-test-netns.lock")
WORK_ROOT = Path("/var/tmp")  # data roots hold image layers: not a tmpfs
DOCKERD_PORT = 2375
SUBNETS = range(100, 250)  # 10.99.N.0/24 for N in this range


class EngineSetupError(RuntimeError):
    """A test engine could not be set up (the message says which step and why)."""


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EngineSetupError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
    return done.stdout


def _ping(url: str) -> None:
    """Raise DockerException unless an engine answers at `url` (the client asks at once)."""
    client = docker.DockerClient(base_url=url, timeout=3)
    try:
        client.ping()
    finally:
        client.close()


def _free_subnet() -> int:
    """An N with no 10.99.N.x address on this host (the veth host ends live here)."""
    used = _run("ip", "-4", "-o", "addr", "show")
    for n in SUBNETS:
        if f" 10.99.{n}." not in used:
            return n
    raise EngineSetupError("no free 10.99.N.0/24 subnet for a test engine's veth pair")


@dataclass
class SecondEngine:
    """A dockerd of its own in a network namespace of its own, reachable over tcp."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    subnet: int | None = None
    process: subprocess.Popen[bytes] | None = None
    start_seconds: float | None = None

    @property
    def netns(self) -> str:
        """The network namespace's name."""
        return f"envkit-e2-{self.tag}"

    @property
    def host_if(self) -> str:
        """The host end of the veth pair (IFNAMSIZ allows 15 characters)."""
        return f"ek{self.tag}h"

    @property
    def ns_if(self) -> str:
        """The namespace end of the veth pair."""
        return f"ek{self.tag}n"

    @property
    def address(self) -> str:
        """The namespace's address: dockerd listens there and publishes ports there."""
        return f"10.99.{self.subnet}.2"

    @property
    def url(self) -> str:
        """The engine's endpoint, as DOCKER_HOST takes it."""
        return f"tcp://{self.address}:{DOCKERD_PORT}"

    @property
    def work(self) -> Path:
        """Data root, pidfile, log and unix socket live under here."""
        return WORK_ROOT / f"envkit-e2-{self.tag}"

    @property
    def exec_root(self) -> Path:
        """Short (containerd's socket path lives under it, and unix paths are short)."""
        return Path(f"/run/ek-{self.tag}")

    @property
    def log_path(self) -> Path:
        """dockerd's own log."""
        return self.work / "dockerd.log"

    def start(self, timeout: float = 90.0) -> SecondEngine:
        """Create the namespace and veth pair, start dockerd in it and wait until it answers."""
        started = time.monotonic()
        with host_lock(LOCK):
            self.subnet = _free_subnet()
            _run("ip", "netns", "add", self.netns)
            _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _run("ip", "link", "set", self.ns_if, "netns", self.netns)
        inside = ("ip", "-n", self.netns)
        _run("ip", "addr", "add", f"10.99.{self.subnet}.1/24", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        _run(*inside, "addr", "add", f"{self.address}/24", "dev", self.ns_if)
        _run(*inside, "link", "set", self.ns_if, "up")
        _run(*inside, "link", "set", "lo", "up")
        self.work.mkdir(parents=True, exist_ok=True)
        command = [
            "nsenter", f"--net=/var/run/netns/{self.netns}",
            "dockerd",
            "--data-root", str(self.work / "data"),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.work / "dockerd.pid"),
            "-H", f"unix://{self.work / 'docker.sock'}",
            "-H", f"tcp://{self.address}:{DOCKERD_PORT}",
            "--tls=false",
        ]  # fmt: skip
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait(timeout)
        self.start_seconds = time.monotonic() - started
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            try:
                _ping(self.url)
                return
            except DockerException as exc:
                last = str(exc)
            time.sleep(0.2)
        raise EngineSetupError(
            f"the second dockerd did not answer at {self.url} ({last or 'it exited'}); "
            f"its log ends:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of dockerd's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def client(self) -> docker.DockerClient:
        """A docker-py client for this engine."""
        return docker.DockerClient(base_url=self.url, timeout=120)

    def stop(self) -> None:
        """Stop dockerd and remove the namespace, the veth pair and every file; never raises."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # dockerd stops its containers itself
            try:
                self.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._kill_namespace_processes()
        for path in (self.exec_root, self.work / "data"):
            self._unmount_below(path)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def _kill_namespace_processes(self) -> None:
        # containerd and its shims outlive a killed dockerd; every process in our own namespace
        # was started by this engine.
        pids = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)

    @staticmethod
    def _unmount_below(path: Path) -> None:
        prefix = str(path) + "/"
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def engine_processes_left(engine: SecondEngine) -> list[str]:
    """What of `engine` is still there after `stop()` (empty when all is gone)."""
    left = []
    if engine.netns in _run("ip", "netns", "list"):
        left.append(f"netns {engine.netns}")
    if subprocess.run(["ip", "link", "show", engine.host_if], capture_output=True).returncode == 0:
        left.append(f"veth {engine.host_if}")
    left += [str(p) for p in (engine.work, engine.exec_root) if p.exists()]
    return left


# Podman's own binary and the network stack its bridge networks need: netavark, and
# aardvark-dns, without which containers cannot reach each other by name. apt installs the
# last two only as recommendations, which envkit's installs leave out.
PODMAN_PARTS = {
    "podman": Path("/usr/bin/podman"),
    "netavark": Path("/usr/lib/podman/netavark"),
    "aardvark-dns": Path("/usr/lib/podman/aardvark-dns"),
}


def install_podman() -> None:
    """Install Debian's podman with the network stack it needs, unless all of it is there."""
    if all(path.exists() for path in PODMAN_PARTS.values()):
        return
    env = ["env", "DEBIAN_FRONTEND=noninteractive"]
    with host_lock(debian.LOCK_FILE):
        debian.run("apt-get update for podman", [*env, "apt-get", "update", "-qq"])
        debian.run(
            "install podman",
            [*env, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *PODMAN_PARTS],
        )


@dataclass
class PodmanService:
    """Podman's Docker-compatible API (`podman system service`) on a unix socket of its own."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    process: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        """Holds the socket and the service's log."""
        return Path(f"/run/ek-pm-{self.tag}")

    @property
    def url(self) -> str:
        """The engine's endpoint, as DOCKER_HOST takes it."""
        return f"unix://{self.run_dir / 'podman.sock'}"

    def start(self, timeout: float = 60.0) -> PodmanService:
        """Start the service (no idle timeout) and wait until it answers.

        Podman gives every container nofile and nproc limits above the ones its own service
        runs with, which a root without CAP_SYS_RESOURCE (as on these machines) cannot grant:
        every container start fails with "error setting rlimit … operation not permitted". A
        first start reads the service's own limits; the real one gives containers those.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        limits = self._own_limits(timeout)
        conf = self.run_dir / "containers.conf"
        conf.write_text(
            "[containers]\ndefault_ulimits = ["
            + ", ".join(f'"{name}={value}:{value}"' for name, value in limits.items())
            + "]\n"
        )
        self.process = self._spawn({"CONTAINERS_CONF": str(conf)})
        self._wait(timeout)
        return self

    def _spawn(self, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.run_dir / "service.log").open("ab") as out:
            return subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.url],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **extra_env},
            )  # fmt: skip

    def _own_limits(self, timeout: float) -> dict[str, int]:
        self.process = self._spawn({})
        try:
            self._wait(timeout)
            text = Path(f"/proc/{self.process.pid}/limits").read_text()
        finally:
            self._end()
        hard = {}
        for line in text.splitlines():
            for name, label in (("nofile", "Max open files"), ("nproc", "Max processes")):
                if line.startswith(label):
                    hard[name] = int(line[len(label) :].split()[1])
        return hard

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                break
            try:
                _ping(self.url)
                return
            except DockerException:
                time.sleep(0.2)
        log = (self.run_dir / "service.log").read_text(errors="replace")[-2000:]
        raise EngineSetupError(f"podman system service did not answer at {self.url}:\n{log}")

    def _end(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        (self.run_dir / "podman.sock").unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the service and remove its directory; never raises."""
        self._end()
        shutil.rmtree(self.run_dir, ignore_errors=True)


@contextlib.contextmanager
def pointed_at(url: str) -> Iterator[None]:
    """DOCKER_HOST names `url` (TC_HOST unset) inside the block; the session's own engine and
    testcontainers' configuration for it come back afterwards."""
    from envkit.engines.engine import configure_testcontainers

    saved = {name: os.environ.get(name) for name in ("DOCKER_HOST", "TC_HOST")}
    os.environ["DOCKER_HOST"] = url
    os.environ.pop("TC_HOST", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        configure_testcontainers()
