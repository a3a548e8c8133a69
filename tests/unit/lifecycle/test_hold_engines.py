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


class _Refusing:
    """A reaper connection whose reaper refuses the session (it reaches another engine)."""

    def __init__(self) -> None:
        self.attempts = 0

    def settimeout(self, value: float | None) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.attempts += 1

    def recv(self, size: int) -> bytes:
        return b"ERR the engine this reaper reaches does not run it\n"

    def close(self) -> None:
        pass


def test_a_reaper_that_refuses_is_one_error_at_once_naming_its_socket_and_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typing import Any

    from envkit.errors import ReaperError
    from envkit.lifecycle import hold

    refusing = _Refusing()
    monkeypatch.setattr(hold, "_connections", {})
    monkeypatch.setattr(hold, "_start_reaper", lambda *args: None)
    monkeypatch.setattr(hold, "_drop_reaper", lambda client: None)
    monkeypatch.setattr(hold, "_connect", lambda client, endpoint: refusing)
    monkeypatch.setattr(testcontainers_config, "ryuk_docker_socket", "")
    client: Any = object()
    with pytest.raises(ReaperError) as info:
        hold.ReaperHold("envkit/reaper:1", 5.0, Endpoint("ssh://ci@build-2", "test")).hold(client)
    assert refusing.attempts == 1  # a refusal is final: no retries until the deadline
    assert str(info.value).startswith(
        "The reaper on the engine at ssh://ci@build-2 refused to hold this session: the engine "
        "this reaper reaches does not run it. It was given /var/run/docker.sock on the engine's "
        "host as that engine's socket: if the engine's socket is elsewhere there, set "
        "TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE to its path. To run without it"
    )
    assert hold._connections == {}


def test_each_reaper_gets_a_token_as_a_variable_and_as_its_containers_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typing import Any

    from envkit.lifecycle import hold

    class _Containers:
        def __init__(self) -> None:
            self.runs: list[dict[str, Any]] = []

        def run(self, image: str, **options: Any) -> None:
            self.runs.append(options)

    class _Client:
        containers = _Containers()

    client: Any = _Client()
    endpoint = Endpoint("tcp://10.99.3.2:2375", "test")
    for _ in range(2):
        hold._start_reaper(client, endpoint, "envkit/reaper:1", 5.0)
    tokens = []
    for options in client.containers.runs:
        token = options["environment"]["ENVKIT_REAPER_TOKEN"]
        assert options["labels"]["envkit.reaper.token"] == token
        assert options["environment"]["DOCKER_HOST"] == endpoint.url
        tokens.append(token)
    assert len(set(tokens)) == 2  # a new one each time
    assert all(len(t) >= 32 for t in tokens)
