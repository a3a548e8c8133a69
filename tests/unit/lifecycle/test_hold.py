"""Holding a run on the engine's reaper: its switches, the session line, the errors users read."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, cast

import docker
import pytest
from docker.errors import APIError
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import Reaper
from testcontainers.core.labels import SESSION_ID

from envkit.errors import EngineError, ReaperError
from envkit.lifecycle import hold
from envkit.lifecycle.hold import ReaperHold, reaper_enabled, session_filter
from envkit.spec.settings import load_settings


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No reaper held by this process, testcontainers' config restored, no TC variable."""
    monkeypatch.setattr(hold, "_connection", None)
    monkeypatch.delenv("TESTCONTAINERS_RYUK_DISABLED", raising=False)
    image = testcontainers_config.ryuk_image
    timeout = testcontainers_config.ryuk_reconnection_timeout
    yield
    testcontainers_config.ryuk_image = image
    testcontainers_config.ryuk_reconnection_timeout = timeout


def test_the_reaper_is_on_by_default_and_either_switch_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert reaper_enabled(load_settings(env_file=None, environ={}))
    off = load_settings(env_file=None, environ={"ENVKIT_REAPER__ENABLED": "false"})
    assert not reaper_enabled(off)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    assert not reaper_enabled(load_settings(env_file=None, environ={}))


def test_a_grace_period_out_of_range_is_refused_with_the_settings_name() -> None:
    from envkit.errors import SettingsError

    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None, environ={"ENVKIT_REAPER__GRACE_SECONDS": "0"})
    assert "ENVKIT_REAPER__GRACE_SECONDS" in str(info.value)


def test_the_session_line_is_the_one_testcontainers_sends() -> None:
    assert session_filter() == f"label=org.testcontainers.session-id={SESSION_ID}\r\n".encode()
    assert hold.reaper_name() == f"testcontainers-ryuk-{SESSION_ID}"


def test_a_reaper_that_cannot_start_is_one_error_naming_the_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse() -> None:
        raise APIError("No such image: envkit/reaper:1")

    dropped: list[bool] = []
    monkeypatch.setattr(Reaper, "get_instance", staticmethod(refuse))
    monkeypatch.setattr(hold, "_drop_reaper", lambda: dropped.append(True))
    with pytest.raises(ReaperError) as info:
        ReaperHold("envkit/reaper:1", 5.0).hold(cast(docker.DockerClient, object()))
    assert isinstance(info.value, EngineError)
    assert str(info.value) == (
        "The reaper that removes this run if envkit is killed did not start on the engine "
        "(image envkit/reaper:1): No such image: envkit/reaper:1. Check the engine "
        "(`docker ps -a --filter name=testcontainers-ryuk` shows the reaper) and run again. "
        "To run without it (a killed run is then removed by the next envkit command, or "
        "`invoke clean`), set ENVKIT_REAPER__ENABLED=false or TESTCONTAINERS_RYUK_DISABLED=true."
    )
    assert dropped == [True]  # a half-started reaper is removed
    assert testcontainers_config.ryuk_image == "envkit/reaper:1"
    assert testcontainers_config.ryuk_reconnection_timeout == "5s"


class _Silent:
    """A reaper connection that never answers (like one a port proxy took and dropped)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def settimeout(self, value: float | None) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, size: int) -> bytes:
        return b""

    def close(self) -> None:
        pass


def test_a_reaper_that_never_acknowledges_is_an_error_not_a_silent_unheld_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    silent = _Silent()
    monkeypatch.setattr(Reaper, "get_instance", staticmethod(lambda: None))
    monkeypatch.setattr(hold, "_drop_reaper", lambda: None)
    monkeypatch.setattr(hold, "_connect", lambda client: silent)
    monkeypatch.setattr(hold, "ACK_SECONDS", 0.5)
    monkeypatch.setattr(hold.time, "sleep", lambda seconds: None)
    with pytest.raises(ReaperError) as info:
        ReaperHold("envkit/reaper:1", 5.0).hold(cast(docker.DockerClient, object()))
    assert str(info.value).startswith(
        "The reaper on the engine did not acknowledge this session within 0.5 s (no answer yet), "
        "so a killed run would not be removed. Check that the engine's published ports are "
        "reachable from here (TC_HOST names the engine's address)."
    )
    assert silent.sent[0] == session_filter()
    assert hold._connection is None


def test_an_acknowledged_connection_holds_every_later_run_of_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts: list[bool] = []
    ours, theirs = socket.socketpair()
    theirs.sendall(b"ACK\n")
    monkeypatch.setattr(Reaper, "get_instance", staticmethod(lambda: starts.append(True)))
    monkeypatch.setattr(hold, "_connect", lambda client: ours)
    client: Any = object()
    try:
        ReaperHold("envkit/reaper:1", 5.0).hold(client)
        ReaperHold("envkit/reaper:1", 5.0).hold(client)
        assert starts == [True]  # one reaper and one connection per process
        assert hold._connection is ours
        assert theirs.recv(100) == session_filter()
    finally:
        ours.close()
        theirs.close()


def test_a_process_whose_reaper_went_away_starts_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts: list[bool] = []
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    connections = iter([first, second])
    for peer in (first_peer, second_peer):
        peer.sendall(b"ACK\n")
    monkeypatch.setattr(Reaper, "get_instance", staticmethod(lambda: starts.append(True)))
    monkeypatch.setattr(hold, "_drop_reaper", lambda: None)
    monkeypatch.setattr(hold, "_connect", lambda client: next(connections))
    client: Any = object()
    try:
        ReaperHold("envkit/reaper:1", 5.0).hold(client)
        ReaperHold("envkit/reaper:1", 5.0).hold(client)  # still open: nothing to do
        assert starts == [True]
        first_peer.close()  # the reaper container was removed
        ReaperHold("envkit/reaper:1", 5.0).hold(client)
        assert starts == [True, True]
        assert hold._connection is second
    finally:
        for sock in (first, second, second_peer):
            sock.close()


def test_a_hold_begun_early_is_waited_for_and_never_started_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts: list[bool] = []
    ours, theirs = socket.socketpair()
    monkeypatch.setattr(Reaper, "get_instance", staticmethod(lambda: starts.append(True)))
    monkeypatch.setattr(hold, "_connect", lambda client: ours)
    client: Any = object()
    reaper = ReaperHold("envkit/reaper:1", 5.0)
    try:
        reaper.hold_soon(client)  # the reaper has not answered yet: the hold waits in a thread
        theirs.sendall(b"ACK\n")
        reaper.hold(client)  # returns once the early attempt holds the session
        assert hold._connection is ours
        assert starts == [True]
        assert theirs.recv(100) == session_filter()
    finally:
        ours.close()
        theirs.close()


def test_an_early_hold_that_failed_is_reported_by_hold_without_a_second_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts: list[bool] = []

    def refuse() -> None:
        starts.append(True)
        raise docker.errors.DockerException("the engine refused the reaper")

    monkeypatch.setattr(Reaper, "get_instance", staticmethod(refuse))
    monkeypatch.setattr(hold, "_drop_reaper", lambda: None)
    reaper = ReaperHold("envkit/reaper:1", 5.0)
    reaper.hold_soon(cast(docker.DockerClient, object()))
    with pytest.raises(ReaperError, match="the engine refused the reaper"):
        reaper.hold(cast(docker.DockerClient, object()))
    assert starts == [True]
