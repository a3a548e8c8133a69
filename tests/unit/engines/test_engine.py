"""Engine discovery decisions that need no engine: when envkit refuses to start one."""

from __future__ import annotations

import pytest

from envkit.engines import engine
from envkit.errors import EngineError


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No engine answers; records (instead of performing) any install or start."""
    actions: list[str] = []
    monkeypatch.setattr(engine, "ping", lambda timeout=3.0: None)
    monkeypatch.setattr(engine, "ensure_command", lambda *a: actions.append("install"))
    monkeypatch.setattr(engine, "_start_dockerd", lambda: actions.append("start"))
    return actions


def test_unreachable_docker_host_is_never_replaced_by_a_local_engine(
    monkeypatch: pytest.MonkeyPatch, no_engine: list[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    with pytest.raises(EngineError) as info:
        engine.ensure_engine(timeout=1)
    assert "No Docker engine answers at DOCKER_HOST=tcp://127.0.0.1:1" in str(info.value)
    assert "does not start a local engine when DOCKER_HOST points elsewhere" in str(info.value)
    assert no_engine == []


def test_non_root_gets_instructions_instead_of_an_install(
    monkeypatch: pytest.MonkeyPatch, no_engine: list[str]
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "can_install", lambda: False)
    with pytest.raises(EngineError) as info:
        engine.ensure_engine(timeout=1)
    assert "No Docker engine answers at unix:///var/run/docker.sock" in str(info.value)
    assert "Start a Docker engine and try again" in str(info.value)
    assert no_engine == []


def test_a_running_engine_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    info = engine.EngineInfo("unix:///x.sock", "99.0", "1.99", False)
    monkeypatch.setattr(engine, "ping", lambda timeout=3.0: info)
    monkeypatch.setattr(engine, "_start_dockerd", lambda: pytest.fail("must not start dockerd"))
    assert engine.ensure_engine(timeout=1) == info


def test_root_on_debian_installs_then_starts_once(
    monkeypatch: pytest.MonkeyPatch, no_engine: list[str], tmp_path: object
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "can_install", lambda: True)
    monkeypatch.setattr(engine, "LOCK_FILE", tmp_path / "engine.lock")  # type: ignore[operator]
    up = engine.EngineInfo("unix:///x.sock", "20.10", "1.41", True)
    monkeypatch.setattr(engine, "_wait_for_engine", lambda timeout: up)
    assert engine.ensure_engine(timeout=1) == up
    assert no_engine == ["install", "start"]


@pytest.mark.parametrize(
    ("docker_host", "tc_host", "expected"),
    [
        ("", "", "127.0.0.1"),
        ("unix:///var/run/docker.sock", "", "127.0.0.1"),
        ("tcp://10.1.2.3:2375", "", "10.1.2.3"),
        ("ssh://me@build-box", "", "build-box"),
        ("tcp://10.1.2.3:2375", "localhost", "localhost"),
    ],
)
def test_engine_host_follows_the_endpoint(
    monkeypatch: pytest.MonkeyPatch, docker_host: str, tc_host: str, expected: str
) -> None:
    for name, value in (("DOCKER_HOST", docker_host), ("TC_HOST", tc_host)):
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    assert engine.engine_host() == expected
