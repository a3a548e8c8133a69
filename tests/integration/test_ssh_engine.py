"""envkit on an engine reached over `ssh://`, end to end, through the real command line.

The engine is the session's second dockerd (a network namespace of its own, see
`engines.SecondEngine`); an sshd runs in that namespace (`engines.SshServer`), so
`DOCKER_HOST=ssh://root@<namespace address>:<port>` reaches it the way a user reaches a
remote build host: the docker SDK runs `ssh … docker system dial-stdio`, and the docker CLI
on the "remote" side talks to the engine's own socket.

A real user needs nothing of this scaffolding: key-based ssh to the host (a key in
ssh-agent or named in ~/.ssh/config, the host key in ~/.ssh/known_hosts), and the docker
CLI on the remote host, on the PATH of a non-interactive ssh session, allowed to use the
engine there (`ssh -p PORT user@host docker version` must work without a prompt). The test
must not read or change this machine's ~/.ssh, so its child processes find an `ssh`
wrapper first on PATH that runs /usr/bin/ssh with a config of the server's own (its client
key, a known_hosts holding its host key, strict host key checking, batch mode).

An ssh engine's reaper is given the engine host's /var/run/docker.sock unless
TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE names another path: here that path would be the
*session's own* engine (the namespace shares this machine's files), so the runs set the
override to the second engine's socket, and one case shows what happens without it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from testcontainers.core.labels import LABEL_SESSION_ID

from envkit.engines.images import ImageResult
from envkit.lifecycle.containers import OWNER_PID, RUN
from envkit.lifecycle.hold import REAPER_LABEL

from .conftest import SshEngine, sandbox_environ
from .engines import Sampler, listeners

ROOT = Path(__file__).resolve().parents[2]
UP_PORTS = 29700  # this module's fixed `up` ports: 29700-29705 (on the namespace's address)
WRONG_PORT = 29718  # in the namespace: nothing listens there
SOCKET_OVERRIDE = "TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE"


def _env(tmp: Path, ssh: SshEngine, url: str, shared: bool = False, **extra: str) -> dict[str, str]:
    """A child's environment: this one's, minus any engine or envkit setting, pointed at
    `url`, with the ssh wrapper first on PATH (`shared`: the one sharing a connection) and
    artifacts and history under `tmp`."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ENVKIT_", "TESTCONTAINERS_", "RYUK_", "DOCKER_")) and k != "TC_HOST"
    }
    return {
        **inherited, **ssh.server.client_env(inherited, shared), **sandbox_environ(tmp),
        "DOCKER_HOST": url, **extra,
    }  # fmt: skip


def _invoke(
    env: dict[str, str], *args: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, text=True,
        capture_output=True, timeout=timeout, check=False,
    )  # fmt: skip


@dataclass
class Seen:
    """What an engine held of one child process while it ran (sampled from the list API)."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # container id -> its row
    reapers: dict[str, dict[str, Any]] = field(default_factory=dict)
    published: dict[str, set[str]] = field(default_factory=dict)  # id -> every address seen


class Watch(Sampler):
    """Samples both engines while a child runs: its containers, and every reaper."""

    join_seconds = 30.0

    def __init__(self, engines: dict[str, docker.DockerClient]) -> None:
        super().__init__()
        self.engines = engines
        self.seen = {name: Seen() for name in engines}
        self.pid = 0

    def sample(self) -> None:
        """Record the child's containers and the reapers on each engine."""
        if not self.pid:
            return
        for name, client in self.engines.items():
            # sparse: the listing alone (it has labels, ports and mounts), nothing to
            # inspect that may be removed meanwhile
            mine = {"label": f"{OWNER_PID}={self.pid}"}
            for c in client.containers.list(all=True, sparse=True, filters=mine):
                self.seen[name].runs[c.id] = c.attrs
                # a stopped container lists no ports: keep what each one ever published
                addresses = {p["IP"] for p in c.attrs["Ports"] or [] if p.get("PublicPort")}
                self.seen[name].published.setdefault(c.id, set()).update(addresses)
            reapers = {"label": REAPER_LABEL}
            for c in client.containers.list(all=True, sparse=True, filters=reapers):
                self.seen[name].reapers[c.id] = c.attrs


def _run_watched(
    env: dict[str, str], engines: dict[str, docker.DockerClient], out: Path
) -> tuple[int, float, Watch]:
    """`invoke tier-b` in a child while `Watch` samples the engines; (exit code, seconds)."""
    with Watch(engines) as watch, out.open("w") as sink:
        began = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "invoke", "tier-b"], cwd=ROOT, env=env, text=True,
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        watch.pid = child.pid
        code = child.wait(timeout=900)
        took = time.monotonic() - began
    return code, took, watch


def _left(client: docker.DockerClient, label: str) -> list[str]:
    found = [c.name for c in client.containers.list(all=True, filters={"label": label})]
    return found + [n.name for n in client.networks.list(filters={"label": label})]


@pytest.fixture
def engines(ssh_engine: SshEngine, engine: docker.DockerClient) -> dict[str, docker.DockerClient]:
    """The second engine (over tcp, for looking) and the session's own engine."""
    return {"second": ssh_engine.extra.client, "local": engine}


# ssh-shared: the same, with the ssh processes sharing one connection (ControlMaster);
# tcp: the same engine over tcp, for comparison.
@pytest.mark.parametrize("transport", ["ssh", "ssh-shared", "tcp"])
def test_tier_b_passes_on_the_second_engine_held_by_a_reaper_there(
    transport: str,
    ssh_engine: SshEngine,
    engines: dict[str, docker.DockerClient],
    images: dict[str, ImageResult],
    tmp_path: Path,
) -> None:
    server, second = ssh_engine.server, ssh_engine.engine
    over_ssh = transport.startswith("ssh")
    url = server.url if over_ssh else second.url
    env = _env(
        tmp_path, ssh_engine, url, transport == "ssh-shared",
        **{SOCKET_OVERRIDE: str(server.engine_socket)},
    )  # fmt: skip
    calls_before = server.calls()
    code, took, watch = _run_watched(env, engines, tmp_path / "tier-b.out")
    assert code == 0, (tmp_path / "tier-b.out").read_text()[-4000:]
    ssh_calls = server.calls() - calls_before
    assert (ssh_calls > 0) == over_ssh  # the transport the run used, and only it

    [summary_path] = (tmp_path / "artifacts").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["verdict"] == "passed"
    assert summary["engine"] == url  # the report and history say which engine ran it
    where = summary_path.parent
    assert json.loads((where / "manifest.json").read_text())["engine"]["Endpoint"] == url
    assert f"on the engine at `{url}`" in (where / "report.md").read_text()

    # Every container of the run ran on the second engine, none on the session's own; each
    # published its port on the namespace's address only (never 0.0.0.0, never 127.0.0.1).
    run_id = str(summary["run_id"])
    seen, local = watch.seen["second"], watch.seen["local"]
    assert local.runs == {}
    ids = [i for i, r in seen.runs.items() if r["Labels"].get(RUN) == run_id]
    assert len(ids) == 6, [r["Names"] for r in seen.runs.values()]
    assert all(seen.published[i] == {second.address} for i in ids), seen.published
    rows = [seen.runs[i] for i in ids]

    # The run was held by the reaper on the second engine: its containers carry this
    # process's session label, and the engine's shared reaper for this way of reaching it
    # ran there (and not on the local one), reaching the second engine, never the local
    # engine's socket.
    assert len({r["Labels"][LABEL_SESSION_ID] for r in rows}) == 1
    mounted = (
        [(str(server.engine_socket), "/var/run/docker.sock")]
        if over_ssh
        else []  # a plain tcp engine is handed to the reaper as DOCKER_HOST: nothing mounted
    )
    ours = [r for r in seen.reapers.values() if _mounts(r) == mounted]
    assert len(ours) == 1, [r["Names"] for r in seen.reapers.values()]
    name = ours[0]["Labels"][REAPER_LABEL]
    assert [r for r in local.reapers.values() if r["Labels"][REAPER_LABEL] == name] == []
    assert all(
        _mounts(r) != [(str(server.engine_socket), "/var/run/docker.sock")]
        for r in local.reapers.values()
    )

    assert _left(engines["second"], f"{RUN}={run_id}") == []
    assert _left(engines["local"], f"{RUN}={run_id}") == []
    print(f"\n[ssh engine] tier-b over {transport}: {took:.1f} s wall time, {ssh_calls} ssh runs")
    if transport == "ssh" and ssh_engine.install_seconds is not None:
        print(f"[ssh engine] openssh-server installed in {ssh_engine.install_seconds:.1f} s")


def test_an_ssh_engines_reaper_given_another_engines_socket_refuses_and_the_run_stops(
    ssh_engine: SshEngine,
    engines: dict[str, docker.DockerClient],
    images: dict[str, ImageResult],
    tmp_path: Path,
) -> None:
    # No override: the reaper on the second engine is given /var/run/docker.sock of the
    # engine's host, which on this machine is the session's own engine.
    env = _env(tmp_path, ssh_engine, ssh_engine.server.url)
    code, _, watch = _run_watched(env, engines, tmp_path / "tier-b.out")
    raw = (tmp_path / "tier-b.out").read_text()
    output = " ".join(raw.split())  # the console wraps long lines
    assert code != 0, raw[-4000:]
    assert (
        f"The reaper on the engine at {ssh_engine.server.url} refused to hold this session: the "
        "engine this reaper reaches at unix:///var/run/docker.sock does not run it (no "
        "container there carries envkit.reaper.token="
    ) in output, raw[-4000:]
    assert (
        "It was given /var/run/docker.sock on the engine's host as that engine's socket: if the "
        "engine's socket is elsewhere there, set TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE to its "
        "path."
    ) in output
    # The refusing reaper ran on the second engine with the local engine's socket; the run
    # stopped before it started anything, on either engine, and the local engine never ran
    # a reaper of that session.
    given = [
        r for r in watch.seen["second"].reapers.values()
        if _mounts(r) == [("/var/run/docker.sock", "/var/run/docker.sock")]
    ]  # fmt: skip
    assert len(given) == 1
    name = given[0]["Labels"][REAPER_LABEL]
    assert [
        r for r in watch.seen["local"].reapers.values() if r["Labels"][REAPER_LABEL] == name
    ] == []
    assert watch.seen["second"].runs == {}
    assert watch.seen["local"].runs == {}
    [summary] = (tmp_path / "artifacts").glob("*/summary.json")
    assert json.loads(summary.read_text())["verdict"] == "failed"


def test_up_status_and_down_over_ssh(
    ssh_engine: SshEngine, engines: dict[str, docker.DockerClient], tmp_path: Path
) -> None:
    server, second = ssh_engine.server, ssh_engine.engine
    env = {
        **_env(tmp_path, ssh_engine, server.url, **{SOCKET_OVERRIDE: str(server.engine_socket)}),
        **sandbox_environ(tmp_path, UP_PORTS),
    }
    client = engines["second"]
    up = _invoke(env, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = _invoke(env, "status", timeout=120)
        assert status.returncode == 0, status.stdout + status.stderr
        said = " ".join(status.stdout.split())
        found = re.search(r"run (\S+) \(up since [^)]* on (\S+)\)", said)
        assert found is not None, status.stdout
        run_id, where = found.groups()
        assert where == server.url
        label = f"{RUN}={run_id}"
        running = client.containers.list(filters={"label": label})
        assert len(running) == 6
        assert all(LABEL_SESSION_ID not in c.labels for c in running)  # `up` is never reaped
        bound = {
            (b["HostIp"], int(b["HostPort"]))
            for c in running for v in c.ports.values() for b in v or []
        }  # fmt: skip
        assert bound == {(second.address, UP_PORTS + n) for n in range(6)}
        assert engines["local"].containers.list(all=True, filters={"label": label}) == []
    finally:
        down = _invoke(env, "down", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"removed run {run_id}: 6 containers" in down.stdout
    assert _left(client, label) == []


def test_an_ssh_endpoint_where_no_sshd_listens_is_one_clear_error(
    ssh_engine: SshEngine, tmp_path: Path
) -> None:
    address = ssh_engine.engine.address
    url = f"ssh://root@{address}:{WRONG_PORT}"
    began = time.monotonic()
    result = _invoke(_env(tmp_path, ssh_engine, url), "tier-b", timeout=120)
    took = time.monotonic() - began
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert (
        f"No Docker engine answers at {url} (from DOCKER_HOST): connection refused: no ssh "
        "server listens there. Fix: check that the host is reachable and that "
        f"`ssh -p {WRONG_PORT} root@{address} docker version` works without a password prompt"
    ) in " ".join(output.split()), output
    [summary_path] = (tmp_path / "artifacts").glob("*/summary.json")  # recorded, as failed
    summary = json.loads(summary_path.read_text())
    assert (summary["verdict"], summary["engine"]) == ("failed", url)
    assert summary["failure"]["message"].startswith(f"No Docker engine answers at {url} ")
    print(f"\n[ssh engine] wrong endpoint: `invoke tier-b` failed after {took:.2f} s")


def test_this_machine_listens_on_no_ssh_port_and_the_wrapper_never_reads_home(
    ssh_engine: SshEngine,
) -> None:
    assert listeners(22) == []
    assert listeners(ssh_engine.server.port) == []  # sshd listens in the namespace only
    wrapper = ssh_engine.server.bin_dir / "ssh"
    done = subprocess.run(  # -G: the configuration ssh would use for that host, and no login
        [str(wrapper), "-G", ssh_engine.engine.address], capture_output=True, text=True, check=True
    )
    config = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert config["userknownhostsfile"] == str(ssh_engine.server.work / "known_hosts")
    assert config["identityfile"] == str(ssh_engine.server.work / "client_key")
    assert config["stricthostkeychecking"] == "true"


def _mounts(reaper: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, destination) of each mount of a reaper container, as the engine lists it."""
    return [(m["Source"], m["Destination"]) for m in reaper["Mounts"]]


@pytest.fixture(autouse=True)
def _nothing_left(ssh_engine: SshEngine) -> Iterator[None]:
    yield
    left = ssh_engine.extra.client.containers.list(filters={"label": "envkit.run"})
    assert [c.name for c in left if not c.name.startswith("envkit-reaper-")] == []
