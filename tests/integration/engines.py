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
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

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


def _tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a daemon's log."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for(
    process: subprocess.Popen[bytes] | None,
    answers: Callable[[], str | None],
    timeout: float,
    failed: Callable[[str], str],
) -> None:
    """Ask `answers` (None: the daemon answered; else why not) every 0.2 s until it answers;
    if `process` exits or `timeout` passes first, raise `EngineSetupError` with the message
    `failed` makes of the last reason ("" when the daemon exited before giving one)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        assert process is not None
        if process.poll() is not None:
            break
        reason = answers()
        if reason is None:
            return
        last = reason
        time.sleep(0.2)
    raise EngineSetupError(failed(last))


class Sampler:
    """Calls `sample()` every `interval` seconds on a thread of its own while in a `with`."""

    interval = 0.2
    join_seconds = 10.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        """Take one sample (a subclass's)."""
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.join_seconds)


def _end(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM `process` (if it still runs) and wait; SIGKILL it after `timeout` seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _namespace_pids(netns: str) -> list[int]:
    """Every process in the network namespace `netns`."""
    found = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split() if pid.isdigit()]


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
            "--cgroup-parent", self.cgroup_parent,
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
        def answers() -> str | None:
            try:
                _ping(self.url)
            except DockerException as exc:
                return str(exc)
            return None

        _wait_for(self.process, answers, timeout, lambda last: (
            f"the second dockerd did not answer at {self.url} ({last or 'it exited'}); "
            f"its log ends:\n{self.log_tail()}"
        ))  # fmt: skip

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of dockerd's log."""
        return _tail(self.log_path, lines)

    def client(self) -> docker.DockerClient:
        """A docker-py client for this engine."""
        return docker.DockerClient(base_url=self.url, timeout=120)

    @property
    def cgroup_parent(self) -> str:
        """The cgroup this engine's containers live under (dockerd's default is the main
        engine's /docker), so what it started can be found even once it is dead."""
        return f"/ek-e2-{self.tag}"

    def container_pids(self) -> list[int]:
        """Processes of this engine's containers (by their cgroup), whether it runs or not."""
        marker = f":{self.cgroup_parent}/"
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                exited = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
                if not exited and marker in (proc / "cgroup").read_text():
                    pids.append(int(proc.name))
        return pids

    def stop(self) -> None:
        """Stop dockerd and remove the namespace, the veth pair and every file; never raises."""
        _end(self.process, 45)  # on SIGTERM dockerd stops its containers itself
        self._kill_namespace_processes()
        # A dockerd killed earlier (a test's engine-lost case) stopped nothing, and its
        # containers' processes outlive the shims just killed: end them too.
        for pid in self.container_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for path in (self.exec_root, self.work / "data"):
            self._unmount_below(path)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        self._remove_cgroups()

    def cgroup_dirs(self) -> list[Path]:
        """The cgroup directories of `cgroup_parent`, one per hierarchy (v1) or one (v2)."""
        name = self.cgroup_parent.lstrip("/")
        root = Path("/sys/fs/cgroup")
        return [d for d in (root / name, *root.glob(f"*/{name}")) if d.is_dir()]

    def _remove_cgroups(self) -> None:
        # dockerd leaves the parent behind (and, when it was killed, its containers' groups):
        # remove them deepest first; a process killed just before may take a moment to go.
        for _ in range(50):
            busy = False
            for top in self.cgroup_dirs():
                for directory, _dirs, _files in os.walk(top, topdown=False):
                    try:
                        os.rmdir(directory)
                    except FileNotFoundError:
                        pass
                    except OSError:
                        busy = True
            if not busy:
                return
            time.sleep(0.1)

    def _kill_namespace_processes(self) -> None:
        # containerd and its shims outlive a killed dockerd; every process in our own namespace
        # was started by this engine.
        for pid in _namespace_pids(self.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _unmount_below(path: Path) -> None:
        prefix = str(path) + "/"
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        # The path itself too: a killed dockerd leaves its data root bind-mounted on itself.
        mine = (m for m in mounts if m.startswith(prefix) or m == str(path))
        for mount in sorted(mine, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def engine_processes_left(engine: SecondEngine) -> list[str]:
    """What of `engine` is still there after `stop()` (empty when all is gone)."""
    left = []
    if engine.netns in _run("ip", "netns", "list"):
        left.append(f"netns {engine.netns}")
    if subprocess.run(["ip", "link", "show", engine.host_if], capture_output=True).returncode == 0:
        left.append(f"veth {engine.host_if}")
    left += [str(p) for p in (engine.work, engine.exec_root) if p.exists()]
    left += [f"container process {pid}" for pid in engine.container_pids()]
    left += [f"cgroup {d}" for d in engine.cgroup_dirs()]
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
        _end(self.process, 20)
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


SSHD = Path("/usr/sbin/sshd")
SSH = Path("/usr/bin/ssh")
SSHD_PORT = 29719  # in the namespace of the second engine, so nothing else can hold it
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
_NO_SERVICE_STARTS = (
    "#!/bin/sh\n# envkit's tests: no service starts during this install\nexit 101\n"
)


@contextlib.contextmanager
def services_held_back() -> Iterator[None]:
    """While apt runs: a policy-rc.d that forbids every service start (exit 101), so no
    package's postinst starts a daemon on the host; the previous one (or none) comes back."""
    saved = POLICY_RC_D.with_name("policy-rc.d.envkit-saved")
    had_one = POLICY_RC_D.exists()
    if had_one:
        os.replace(POLICY_RC_D, saved)  # a rename keeps its content, mode and times
    POLICY_RC_D.write_text(_NO_SERVICE_STARTS)
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        if had_one:
            os.replace(saved, POLICY_RC_D)
        else:
            POLICY_RC_D.unlink(missing_ok=True)


def listeners(port: int) -> list[str]:
    """What listens on tcp `port` in this machine's own network namespace (`ss` lines)."""
    return _run("ss", "-H", "-l", "-t", "-n", "sport", "=", f":{port}").splitlines()


def install_openssh_server() -> float | None:
    """Install Debian's openssh-server unless sshd is there, starting no sshd; return the
    seconds the install took (None: nothing to install)."""
    if SSHD.exists():
        return None
    env = ["env", "DEBIAN_FRONTEND=noninteractive"]
    with host_lock(debian.LOCK_FILE):
        if SSHD.exists():  # another session installed it meanwhile
            return None
        began = time.monotonic()
        with services_held_back():
            debian.run("apt-get update for openssh-server", [*env, "apt-get", "update", "-qq"])
            debian.run(
                "install openssh-server",
                [*env, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 "openssh-server"],
            )  # fmt: skip
        return time.monotonic() - began


@dataclass
class SshServer:
    """An sshd in the second engine's namespace: the way to that engine over `ssh://`.

    Everything lives in a temp dir of its own: the host key, the one client key it accepts
    (root, by key only), its config and log. A session's remote command gets DOCKER_HOST
    naming the second engine's socket, so `docker system dial-stdio` there (what the docker
    SDK runs over ssh) reaches that engine, as it would reach the local one on a real host.
    The client side never reads the user's ~/.ssh: `bin/ssh` runs /usr/bin/ssh with a config
    of this server's own (its key, a known_hosts holding its host key, strict checking); a
    client process puts `bin` first on its PATH (`client_env`).
    """

    engine: SecondEngine
    port: int = SSHD_PORT
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="envkit-sshd-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The engine's endpoint over ssh, as DOCKER_HOST takes it."""
        return f"ssh://root@{self.engine.address}:{self.port}"

    @property
    def engine_socket(self) -> Path:
        """The second engine's own socket: what the remote docker CLI (and a reaper) use."""
        return self.engine.work / "docker.sock"

    @property
    def bin_dir(self) -> Path:
        """Holds the `ssh` wrapper that uses this server's client config."""
        return self.work / "bin"

    @property
    def shared_bin_dir(self) -> Path:
        """Holds an `ssh` wrapper whose config also shares one connection between the ssh
        processes (OpenSSH's ControlMaster), as many users' ~/.ssh/config does."""
        return self.work / "bin-shared"

    @property
    def calls_log(self) -> Path:
        """The wrapper's record: one line (its arguments) per `ssh` it ran."""
        return self.work / "ssh-calls.log"

    def calls(self) -> int:
        """How many times the wrapper ran `ssh` so far."""
        try:
            return len(self.calls_log.read_text().splitlines())
        except FileNotFoundError:
            return 0

    def client_env(
        self, base: dict[str, str] | None = None, shared: bool = False
    ) -> dict[str, str]:
        """PATH with the `ssh` wrapper first (from `base`, default this process's PATH);
        `shared`: the wrapper whose ssh processes share one connection."""
        path = (base if base is not None else dict(os.environ)).get("PATH", os.defpath)
        first = self.shared_bin_dir if shared else self.bin_dir
        return {"PATH": f"{first}{os.pathsep}{path}"}

    def ssh(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run `command` on the server through the wrapper, as the docker SDK would."""
        return subprocess.run(
            [str(self.bin_dir / "ssh"), "-p", str(self.port), f"root@{self.engine.address}",
             *command],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def start(self, timeout: float = 30.0) -> SshServer:
        """Make the keys and configs, start sshd in the namespace, wait until a login works."""
        for name in ("host_key", "client_key"):
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                 "-f", str(self.work / name))  # fmt: skip
        (self.work / "authorized_keys").write_text((self.work / "client_key.pub").read_text())
        key_type, key = (self.work / "host_key.pub").read_text().split()[:2]
        (self.work / "known_hosts").write_text(
            f"[{self.engine.address}]:{self.port} {key_type} {key}\n"
        )
        (self.work / "sshd_config").write_text(self._server_config())
        self._wrapper(self.bin_dir, self._client_config())
        self._wrapper(self.shared_bin_dir, self._client_config() + self._sharing())
        # sshd refuses to start without its privilege separation directory (systemd makes it)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with (self.work / "sshd.log").open("ab") as out:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.engine.netns,
                 str(SSHD), "-D", "-e", "-f", str(self.work / "sshd_config")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self._wait(timeout)
        return self

    def _server_config(self) -> str:
        return "\n".join([
            f"ListenAddress {self.engine.address}:{self.port}",
            f"HostKey {self.work / 'host_key'}",
            f"PidFile {self.work / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.work / 'authorized_keys'}",
            "AllowUsers root",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",  # the key files live under /tmp, which is world-writable
            "PrintMotd no",
            f"SetEnv DOCKER_HOST=unix://{self.engine_socket}",
            "",
        ])  # fmt: skip

    def _client_config(self) -> str:
        return "\n".join([
            f"Host {self.engine.address}",
            f"  IdentityFile {self.work / 'client_key'}",
            "  IdentitiesOnly yes",
            "  IdentityAgent none",
            f"  UserKnownHostsFile {self.work / 'known_hosts'}",
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  BatchMode yes",
            "  ConnectTimeout 5",
            "  LogLevel ERROR",
            "",
        ])  # fmt: skip

    def _sharing(self) -> str:
        return "\n".join([
            "  ControlMaster auto",
            f"  ControlPath {self.work / 'mux-%C'}",
            "  ControlPersist 5",  # the master exits 5 s after its last session
            "",
        ])  # fmt: skip

    def _wrapper(self, where: Path, config: str) -> None:
        where.mkdir()
        (where / "ssh_config").write_text(config)
        wrapper = where / "ssh"
        wrapper.write_text(
            f'#!/bin/sh\necho "$*" >> {self.calls_log}\n'  # one line per ssh process
            f'exec {SSH} -F {where / "ssh_config"} "$@"\n'
        )
        wrapper.chmod(0o755)

    def _wait(self, timeout: float) -> None:
        def answers() -> str | None:
            done = self.ssh("docker", "version", "--format", "{{.Server.Version}}")
            return None if done.returncode == 0 else done.stderr.strip()

        _wait_for(self.process, answers, timeout, lambda last: (
            f"`ssh {self.url} docker version` did not answer ({last or 'sshd exited'}); "
            f"sshd's log ends:\n{self.log_tail()}"
        ))  # fmt: skip

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of sshd's log."""
        return _tail(self.work / "sshd.log", lines)

    def stop(self) -> None:
        """Stop sshd and every session it started, remove the temp dir; never raises."""
        if self.shared_bin_dir.exists():  # the shared connection's master, if one runs
            subprocess.run(
                [str(self.shared_bin_dir / "ssh"), "-O", "exit", "-p", str(self.port),
                 f"root@{self.engine.address}"],
                capture_output=True, timeout=30, check=False,
            )  # fmt: skip
        _end(self.process, 20)
        # A session's sshd outlives the listener; every sshd in the engine's own namespace
        # is this server's.
        for pid in _namespace_pids(self.engine.netns):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/exe") == str(SSHD):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.work, ignore_errors=True)
