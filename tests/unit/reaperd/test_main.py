"""The reaper's own checks before it holds anything: the engine it reaches must run it."""

from __future__ import annotations

from typing import Any

import pytest

from envkit.reaperd.__main__ import Engine, check_engine
from envkit.reaperd.protocol import FilterError

TOKEN = "5b1c0e"


class _Container:
    def __init__(self, name: str) -> None:
        self.name = name


class _Containers:
    def __init__(self, by_token: dict[str, list[_Container]]) -> None:
        self.by_token = by_token
        self.asked: list[dict[str, Any]] = []

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[_Container]:
        self.asked.append(filters or {})
        label = (filters or {})["label"]
        return self.by_token.get(label.removeprefix("envkit.reaper.token="), [])


class _Engine(Engine):
    """An engine stand-in: the containers it runs, or the error it answers with."""

    def __init__(self, running: dict[str, list[_Container]], error: Exception | None = None):
        self.running = _Containers(running)
        self.error = error

    @property
    def client(self) -> Any:
        if self.error is not None:
            raise self.error
        return self

    @property
    def containers(self) -> _Containers:
        return self.running


def test_a_reaper_on_the_engine_it_reaches_finds_its_own_container_by_its_token() -> None:
    engine = _Engine({TOKEN: [_Container("envkit-reaper-0f3a9c2e51b7")]})
    check_engine(engine, TOKEN)  # no refusal
    assert engine.running.asked == [{"label": f"envkit.reaper.token={TOKEN}"}]


def test_a_reaper_started_without_a_token_does_not_ask_the_engine() -> None:
    engine = _Engine({}, AssertionError("the engine was asked"))
    check_engine(engine, "")


def test_a_reaper_that_reaches_another_engine_refuses_naming_that_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    # That engine runs reapers, but not this one (another token: another engine's reaper).
    engine = _Engine({"other": [_Container("envkit-reaper-0f3a9c2e51b7")]})
    with pytest.raises(FilterError) as info:
        check_engine(engine, TOKEN)
    assert str(info.value) == (
        "the engine this reaper reaches at unix:///var/run/docker.sock does not run it (no "
        f"container there carries envkit.reaper.token={TOKEN}): that is another engine, where "
        "it would never remove this session; it needs the socket of the engine it runs on"
    )


def test_a_reaper_that_reaches_no_engine_refuses_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.99.3.2:2375")
    engine = _Engine({}, ConnectionRefusedError("connection refused"))
    with pytest.raises(FilterError) as info:
        check_engine(engine, TOKEN)
    assert str(info.value) == (
        "this reaper reaches no engine at tcp://10.99.3.2:2375 (connection refused), so it "
        "could remove nothing"
    )
