"""Engine discovery decisions that need no engine: which endpoint, which host address, and
when envkit refuses to start one."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from envkit.engines import engine
from envkit.errors import EngineError


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No engine answers; records (instead of performing) any install or start."""
    actions: list[str] = []
    monkeypatch.setattr(engine, "ping", lambda timeout=3.0: None)
    monkeypatch.setattr(engine, "ask", lambda endpoint, timeout=3.0: "connection refused")
    monkeypatch.setattr(engine, "ensure_command", lambda *a: actions.append("install"))
    monkeypatch.setattr(engine, "_start_dockerd", lambda: actions.append("start"))
    return actions


def test_unreachable_docker_host_is_never_replaced_by_a_local_engine(
    monkeypatch: pytest.MonkeyPatch, no_engine: list[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    with pytest.raises(EngineError) as info:
        engine.ensure_engine(timeout=1)
    assert "No Docker engine answers at tcp://127.0.0.1:1 (from DOCKER_HOST)" in str(info.value)
    assert "does not start a local engine when DOCKER_HOST points elsewhere" in str(info.value)
    assert no_engine == []


def test_non_root_gets_instructions_instead_of_an_install(
    monkeypatch: pytest.MonkeyPatch, no_engine: list[str]
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    monkeypatch.setattr(engine, "can_install", lambda: False)
    with pytest.raises(EngineError) as info:
        engine.ensure_engine(timeout=1)
    assert "No Docker engine answers at unix:///var/run/docker.sock" in str(info.value)
    assert "Start a Docker engine and try again" in str(info.value)
    assert no_engine == []


def test_a_running_engine_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    info = engine.EngineInfo("unix:///x.sock", "99.0", "1.99", False)
    monkeypatch.setattr(engine, "ask", lambda endpoint, timeout=3.0: info)
    monkeypatch.setattr(engine, "_start_dockerd", lambda: pytest.fail("must not start dockerd"))
    assert engine.ensure_engine(timeout=1) == info


def test_root_on_debian_installs_then_starts_once(
    monkeypatch: pytest.MonkeyPatch, no_engine: list[str], tmp_path: object
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    monkeypatch.setattr(engine, "can_install", lambda: True)
    monkeypatch.setattr(engine, "LOCK_FILE", tmp_path / "engine.lock")  # type: ignore[operator]
    up = engine.EngineInfo("unix:///x.sock", "20.10", "1.41", True)
    monkeypatch.setattr(engine, "_wait_for_engine", lambda timeout: up)
    assert engine.ensure_engine(timeout=1) == up
    assert no_engine == ["install", "start"]


@pytest.mark.parametrize(
    ("environ", "url", "origin", "host", "bind"),
    [
        ({}, "unix:///var/run/docker.sock", "the default socket", "127.0.0.1", "127.0.0.1"),
        ({"DOCKER_HOST": "unix:///run/podman.sock"}, "unix:///run/podman.sock", "DOCKER_HOST",
         "127.0.0.1", "127.0.0.1"),
        ({"DOCKER_HOST": "tcp://10.1.2.3:2375"}, "tcp://10.1.2.3:2375", "DOCKER_HOST",
         "10.1.2.3", "10.1.2.3"),
        ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, "tcp://127.0.0.1:2375", "DOCKER_HOST",
         "127.0.0.1", "127.0.0.1"),
        ({"DOCKER_HOST": "tcp://localhost:2375"}, "tcp://localhost:2375", "DOCKER_HOST",
         "localhost", "127.0.0.1"),
        ({"DOCKER_HOST": "ssh://me@10.4.5.6:2222"}, "ssh://me@10.4.5.6:2222", "DOCKER_HOST",
         "10.4.5.6", "10.4.5.6"),
        ({"DOCKER_HOST": "tcp://10.1.2.3:2375", "TC_HOST": "10.7.7.7"}, "tcp://10.1.2.3:2375",
         "DOCKER_HOST", "10.7.7.7", "10.7.7.7"),
        ({"TC_HOST": "172.17.0.1"}, "unix:///var/run/docker.sock", "the default socket",
         "172.17.0.1", "172.17.0.1"),
    ],
)  # fmt: skip
def test_the_endpoint_and_the_host_address_follow_docker_host_and_tc_host(
    environ: dict[str, str], url: str, origin: str, host: str, bind: str, no_context: None
) -> None:
    endpoint = engine.current_endpoint(environ)
    assert (endpoint.url, endpoint.origin, endpoint.host) == (url, origin, host)
    assert endpoint.bind_address() == bind
    assert endpoint.bind_address() != "0.0.0.0"


def test_an_ssh_engines_host_name_is_resolved_for_the_binding(
    monkeypatch: pytest.MonkeyPatch, no_context: None
) -> None:
    answers = {"build-box": "10.20.30.40"}

    def resolve(name: str, *args: object) -> list[tuple[object, ...]]:
        if name not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[name], 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    endpoint = engine.current_endpoint({"DOCKER_HOST": "ssh://me@build-box"})
    assert endpoint.host == "build-box"
    assert endpoint.bind_address() == "10.20.30.40"

    lost = engine.current_endpoint({"DOCKER_HOST": "ssh://me@gone-box"})
    with pytest.raises(EngineError) as info:
        lost.bind_address()
    assert "gone-box, the host of the Docker engine at ssh://me@gone-box (from DOCKER_HOST)" in (
        str(info.value)
    )
    assert "set TC_HOST to an address of the engine's host" in str(info.value)


def test_an_ssh_endpoint_gets_a_client_that_shells_out_to_ssh(no_context: None) -> None:
    client = engine.current_endpoint({"DOCKER_HOST": "ssh://me@10.4.5.6"}).client(version="1.41")
    try:
        # docker-py's ssh adapter through the ssh command (paramiko is not installed)
        assert client.api.base_url == "http+docker://ssh"
        adapter = client.api.get_adapter("http+docker://ssh")
        assert type(adapter).__name__ == "SSHHTTPAdapter"
        assert adapter.ssh_client is None  # the ssh command and its config, not paramiko's client
    finally:
        client.close()


@pytest.fixture
def no_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty docker configuration directory (no context chosen, no contexts)."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    return tmp_path


def _context(config: Path, name: str, host: str) -> None:
    import hashlib

    meta = config / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}})
    )


def test_the_active_docker_context_is_used_when_docker_host_is_unset(no_context: Path) -> None:
    _context(no_context, "builder", "tcp://10.9.8.7:2375")
    (no_context / "config.json").write_text(json.dumps({"currentContext": "builder"}))
    endpoint = engine.current_endpoint({})
    assert (endpoint.url, endpoint.origin) == ("tcp://10.9.8.7:2375", "docker context 'builder'")
    assert endpoint.host == "10.9.8.7"
    # DOCKER_CONTEXT wins over the configuration file, DOCKER_HOST over both
    assert engine.current_endpoint({"DOCKER_CONTEXT": "default"}).origin == "the default socket"
    assert engine.current_endpoint({"DOCKER_HOST": "tcp://10.1.1.1:2375"}).host == "10.1.1.1"


def test_a_missing_docker_context_is_named_with_the_fix(no_context: Path) -> None:
    with pytest.raises(EngineError) as info:
        engine.current_endpoint({"DOCKER_CONTEXT": "nowhere"})
    assert "The docker context 'nowhere' (from DOCKER_CONTEXT) does not exist" in str(info.value)
    assert "`docker context ls` lists the contexts" in str(info.value)


def test_a_closed_tcp_port_is_one_clear_error_at_once(
    monkeypatch: pytest.MonkeyPatch, no_context: None
) -> None:
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(EngineError) as info:
            engine.ensure_engine(timeout=60)
        elapsed = time.monotonic() - started
    message = str(info.value)
    assert message.startswith(
        f"No Docker engine answers at tcp://127.0.0.1:{port} (from DOCKER_HOST): "
        "connection refused: nothing listens there."
    )
    assert f"`docker -H tcp://127.0.0.1:{port} version` must answer" in message
    assert "point DOCKER_HOST at a reachable engine, or unset it to use the local one" in message
    assert elapsed < 60  # the engine-start timeout was never waited for


def test_podman_is_told_apart_by_its_version_info() -> None:
    podman = {"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}], "Version": "4.3.1"}
    docker_engine = {"Components": [{"Name": "Engine", "Version": "20.10.24"}]}
    assert engine.engine_kind(podman) == "podman"
    assert engine.engine_kind(docker_engine) == "docker"
    assert engine.engine_kind({}) == "docker"


def test_an_unreachable_context_names_the_context_and_how_to_switch(
    monkeypatch: pytest.MonkeyPatch, no_context: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
        _context(no_context, "builder", url)
        (no_context / "config.json").write_text("{}")  # docker-py finds contexts beside it
        monkeypatch.delenv("DOCKER_HOST", raising=False)
        monkeypatch.setenv("DOCKER_CONTEXT", "builder")
        with pytest.raises(EngineError) as info:
            engine.ensure_engine(timeout=60)
    message = str(info.value)
    assert message.startswith(f"No Docker engine answers at {url} (from docker context 'builder')")
    assert "point docker context 'builder' at a reachable engine (`docker context update`)" in (
        message
    )
    assert "switch with `docker context use default` or DOCKER_HOST" in message


def test_an_unreachable_ssh_engine_says_to_check_ssh_itself() -> None:
    endpoint = engine.Endpoint("ssh://ci@build-box", "DOCKER_HOST")
    message = engine.unreachable(endpoint, "no answer within 3 s")
    assert message.startswith(
        "No Docker engine answers at ssh://ci@build-box (from DOCKER_HOST): no answer within 3 s."
    )
    assert "`ssh ci@build-box docker version` works without a password prompt" in message


@pytest.mark.parametrize(
    ("environ", "gateway", "reached"),
    [
        ({}, "127.0.0.1", True),  # local socket, gateway on this machine
        ({}, "127.0.0.2", True),  # any 127/8 address is this machine's
        ({}, "192.0.2.1", False),  # TEST-NET-1: on no interface here (Docker Desktop's VM, a netns)
        ({}, "", False),  # the engine named no gateway
        ({}, "not-an-address", False),
        ({"TC_HOST": "172.17.0.1"}, "127.0.0.1", False),  # the user says where ports are reached
        ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, "127.0.0.1", False),  # tcp: treated as remote
        ({"DOCKER_HOST": "ssh://me@build-box"}, "127.0.0.1", False),
        ({"DOCKER_HOST": "unix:///run/podman/podman.sock"}, "127.0.0.1", True),
    ],
)
def test_container_addresses_are_used_only_on_a_local_engine_whose_gateway_is_ours(
    environ: dict[str, str], gateway: str, reached: bool, no_context: None
) -> None:
    endpoint = engine.current_endpoint(environ)
    assert engine.reaches_containers(endpoint, gateway) is reached


def test_a_gateway_taken_on_every_port_is_still_an_address_of_this_machine(
    no_context: None,
) -> None:
    # binding to port 0 tests the address, not a port: a busy listener there changes nothing
    with socket.socket() as busy:
        busy.bind(("127.0.0.2", 0))
        busy.listen()
        assert engine.reaches_containers(engine.current_endpoint({}), "127.0.0.2")
