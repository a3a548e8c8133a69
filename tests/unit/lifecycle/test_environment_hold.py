"""A held run starts beside its reaper and is handed over only once the reaper holds it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

import docker
import pytest

from envkit.engines.engine import Endpoint
from envkit.errors import ReaperError, StackAborted
from envkit.evidence.redact import Redactor
from envkit.lifecycle import environment
from envkit.lifecycle.environment import Environment
from envkit.lifecycle.hold import ReaperHold
from envkit.spec.settings import load_settings
from envkit.spec.stack import load_stack, resolve_stack

WAIT = 10.0  # seconds a fake waits for the other side before it gives up (never reached)


class FakeReaper:
    """A reaper whose hold blocks until `release` is set, then succeeds or raises."""

    def __init__(self, order: list[str], release: threading.Event, error: str = "") -> None:
        self.order = order
        self.release = release
        self.error = error

    def hold(self, client: object) -> None:
        self.order.append("hold begins")
        if not self.release.wait(WAIT):
            self.order.append("hold gave up: nothing of the run started meanwhile")
            return
        if self.error:
            raise ReaperError(self.error)
        self.order.append("held")


def held_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reaper: FakeReaper, bring_up: Any
) -> Environment:
    stack_file = tmp_path / "two.toml"
    stack_file.write_text(
        '[stack]\nname = "two"\n\n'
        '[services.a]\nimage = "redis:7"\nlog = "a.log"\n\n'
        '[services.b]\nimage = "redis:7"\nlog = "b.log"\n'
    )
    stack = load_stack(stack_file)
    services = resolve_stack(stack, load_settings(env_file=None, environ={}))
    monkeypatch.setattr(
        environment, "run_network", lambda engine, labels: reaper.order.append("network")
    )
    monkeypatch.setattr(Environment, "_bring_up", bring_up)
    return Environment(
        stack, services, {"a": "redis:7", "b": "redis:7"},
        run_id="two-1", artifact_dir=tmp_path / "run", redactor=Redactor([]),
        client=cast(docker.DockerClient, object()), reaper=cast(ReaperHold, reaper),
        endpoint=Endpoint("unix:///nowhere.sock", "test"),
    )  # fmt: skip


def test_the_run_starts_while_the_reaper_starts_and_waits_for_its_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    release = threading.Event()
    reaper = FakeReaper(order, release)

    def bring_up(self: Environment, name: str) -> None:
        order.append(f"start {name}")
        release.set()  # a hold taken before the run would still be waiting for this

    held_environment(tmp_path, monkeypatch, reaper, bring_up).start()
    order.append("start returned")
    assert "network" in order
    assert "held" in order
    assert order.index("held") < order.index("start returned")
    assert {"start a", "start b"} <= set(order)


def test_a_reaper_that_fails_to_hold_fails_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    release = threading.Event()
    reaper = FakeReaper(order, release, error="the reaper did not acknowledge")

    def bring_up(self: Environment, name: str) -> None:
        release.set()

    env = held_environment(tmp_path, monkeypatch, reaper, bring_up)
    with pytest.raises(ReaperError, match="did not acknowledge"):
        env.start()


def test_a_service_that_fails_is_reported_without_waiting_for_the_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    release = threading.Event()  # never set: the hold would block for WAIT seconds
    reaper = FakeReaper(order, release)

    def bring_up(self: Environment, name: str) -> None:
        raise StackAborted(f"{name} could not start")

    env = held_environment(tmp_path, monkeypatch, reaper, bring_up)
    with pytest.raises(StackAborted, match="could not start"):
        env.start()
    assert "held" not in order
    release.set()  # let the fake's thread end
