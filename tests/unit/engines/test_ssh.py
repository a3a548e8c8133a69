"""An ssh engine as the `ssh` command sees it: its command line, and the causes users read."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.engines import engine
from envkit.engines.ssh import ssh_cause, ssh_hint, ssh_target


def test_the_host_is_named_for_ssh_as_the_docker_sdk_names_it() -> None:
    assert ssh_target("ssh://ci@10.4.5.6:2222") == ["-l", "ci", "-p", "2222", "10.4.5.6"]
    assert ssh_target("ssh://build-box") == ["build-box"]
    assert ssh_hint("ssh://ci@10.4.5.6:2222") == "ssh -p 2222 ci@10.4.5.6 docker version"
    assert ssh_hint("ssh://build-box") == "ssh build-box docker version"


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` first on PATH; each test writes what it says (stderr) and its exit status."""
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return tmp_path / "ssh"


def _says(fake: Path, stderr: str, status: int = 255) -> None:
    fake.write_text(f"#!/bin/sh\necho \"$*\" > {fake}.args\necho '{stderr}' >&2\nexit {status}\n")
    fake.chmod(0o755)


@pytest.mark.parametrize(
    ("said", "cause"),
    [
        ("ssh: connect to host 10.4.5.6 port 2222: Connection refused",
         "connection refused: no ssh server listens there"),
        ("ssh: connect to host 10.4.5.6 port 2222: Connection timed out",
         "no answer within 3 s"),
        ("ssh: Could not resolve hostname gone-box: Name or service not known",
         "the host name does not resolve"),
        ("Host key verification failed.", "its host key is not in known_hosts (or has changed)"),
        ("ci@10.4.5.6: Permission denied (publickey).",
         "the ssh login was refused: no key the host accepts"),
        ("bash: line 1: docker: command not found", "the docker CLI is not on the remote PATH"),
        ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker "
         "daemon running?", "the remote docker CLI reaches no engine there"),
        ("kex_exchange_identification: read: Connection reset by peer",
         "ssh says: kex_exchange_identification: read: Connection reset by peer"),
    ],
)  # fmt: skip
def test_what_ssh_says_becomes_the_cause_users_read(fake_ssh: Path, said: str, cause: str) -> None:
    _says(fake_ssh, said)
    assert ssh_cause("ssh://ci@10.4.5.6:2222", 3.0) == cause
    args = Path(f"{fake_ssh}.args").read_text().split()
    # never a prompt; ssh's own timeout; then the host as the SDK names it, and a docker call
    assert args[:4] == ["-o", "BatchMode=yes", "-o", "ConnectTimeout=3"]
    assert args[4:9] == ["-l", "ci", "-p", "2222", "10.4.5.6"]
    assert args[9:11] == ["docker", "version"]


def test_an_ssh_that_works_gives_no_cause(fake_ssh: Path) -> None:
    _says(fake_ssh, "", status=0)
    assert ssh_cause("ssh://ci@10.4.5.6", 3.0) == ""


def test_no_ssh_command_is_named_with_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ssh_cause("ssh://ci@10.4.5.6", 3.0) == (
        "the `ssh` command is not installed here (Debian: `apt-get install openssh-client`)"
    )


def test_an_unreachable_ssh_engine_is_one_error_with_ssh_s_reason_and_the_command_to_try(
    fake_ssh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _says(fake_ssh, "ssh: connect to host 10.4.5.6 port 2222: Connection refused")
    monkeypatch.setenv("DOCKER_HOST", "ssh://ci@10.4.5.6:2222")
    with pytest.raises(engine.EngineError) as info:
        engine.ensure_engine(timeout=60)
    assert str(info.value) == (
        "No Docker engine answers at ssh://ci@10.4.5.6:2222 (from DOCKER_HOST): connection "
        "refused: no ssh server listens there. Fix: check that the host is reachable and that "
        "`ssh -p 2222 ci@10.4.5.6 docker version` works without a password prompt (a key ssh "
        "offers by itself, the docker CLI on that host); or point DOCKER_HOST at a reachable "
        "engine, or unset it to use the local one. envkit does not start a local engine when "
        "DOCKER_HOST points elsewhere."
    )
