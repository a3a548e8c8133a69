"""Each engine's reaper reaches that engine, not the first one on the machine."""

from __future__ import annotations

import pytest
from testcontainers.core.config import testcontainers_config

from envkit.engines.engine import Endpoint
from envkit.lifecycle.hold import ENGINE_SOCKET, reaper_access


def test_a_local_engine_on_a_socket_of_its_own_has_that_socket_mounted() -> None:
    env, volumes = reaper_access(Endpoint("unix:///var/tmp/envkit-e2-ab12/docker.sock", "test"))
    assert env == {}
    assert volumes == {"/var/tmp/envkit-e2-ab12/docker.sock": {"bind": ENGINE_SOCKET, "mode": "rw"}}


def test_a_plain_tcp_engine_is_handed_to_the_reaper_as_docker_host() -> None:
    env, volumes = reaper_access(Endpoint("tcp://10.99.3.2:2375", "test"))
    assert env == {"DOCKER_HOST": "tcp://10.99.3.2:2375"}
    assert volumes == {}


def test_an_ssh_engine_mounts_the_socket_on_its_host_or_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ssh = Endpoint("ssh://ci@build-2", "test")
    monkeypatch.setattr(testcontainers_config, "ryuk_docker_socket", "")
    assert reaper_access(ssh) == ({}, {ENGINE_SOCKET: {"bind": ENGINE_SOCKET, "mode": "rw"}})
    monkeypatch.setattr(testcontainers_config, "ryuk_docker_socket", "/run/user/1000/docker.sock")
    assert reaper_access(ssh)[1] == {
        "/run/user/1000/docker.sock": {"bind": ENGINE_SOCKET, "mode": "rw"}
    }
