"""Holding a run on the engine's shared reaper: its name, its races, the errors users read.

The engine is a stand-in that keeps containers by name as the engine does (a second create
of a name is refused with 409); a reaper container that is "running" is envkit's real
reaper program (`envkit.reaperd`) serving on 127.0.0.1 in a thread of its own.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import docker
import pytest
import requests
from docker.errors import APIError, NotFound
from testcontainers.core.labels import SESSION_ID

from envkit.engines.engine import Endpoint
from envkit.errors import EngineError, ReaperError
from envkit.lifecycle import hold
from envkit.lifecycle.hold import (
    ReaperHold,
    reaper_enabled,
    reaper_for,
    reaper_name,
    session_filter,
)
from envkit.reaperd.protocol import Filter, Registry
from envkit.reaperd.server import Reaper
from envkit.spec.settings import load_settings

LOCAL = Endpoint("unix:///var/run/docker.sock", "test")
SECOND = Endpoint("tcp://10.99.3.2:2375", "test")
IMAGE = "envkit/reaper:1"
OURS = Filter((f"org.testcontainers.session-id={SESSION_ID}",))
DEADLINE = 30.0  # generous: the tests wait for events, never assert durations


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """No reaper held by this process, no TC variable, quick retries."""
    monkeypatch.setattr(hold, "_holds", {})
    monkeypatch.setattr(hold, "_RETRY_SECONDS", 0.01)
    monkeypatch.delenv("TESTCONTAINERS_RYUK_DISABLED", raising=False)


def _a_new_process() -> list[hold._Hold]:
    """What another envkit process has: no hold of its own yet (the same session id here).
    Returns the first process's holds: their connections stay open while referenced."""
    first = list(hold._holds.values())
    hold._holds.clear()
    return first


class LiveReaper:
    """envkit's reaper program serving on 127.0.0.1 in a thread, removing nothing."""

    def __init__(self, closing: bool = False, reaper: Reaper | None = None) -> None:
        self.reaper = reaper or Reaper(
            Registry(grace=3600, connect_timeout=3600, idle=3600), lambda flt: 0,
            host="127.0.0.1", port=0, tick=0.02,
        )  # fmt: skip
        self.reaper.closing = closing  # as once it decided to exit
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))
        self.listening = threading.Event()
        self.thread.start()
        assert self.listening.wait(DEADLINE)

    async def _run(self) -> None:
        served = asyncio.ensure_future(self.reaper.run())
        await self.reaper.listening()
        self.listening.set()
        await served

    @property
    def port(self) -> int:
        """Where it listens."""
        assert self.reaper.bound_port is not None
        return self.reaper.bound_port

    def holders(self, flt: Filter) -> set[int]:
        """The connections holding `flt` (asked in the reaper's own thread)."""

        async def ask() -> set[int]:
            return self.reaper.registry.holders(flt)

        return asyncio.run_coroutine_threadsafe(ask(), self.loop).result(DEADLINE)

    def stop(self) -> None:
        """Stop it (a stop removes nothing any client holds) and wait for its thread."""
        self.loop.call_soon_threadsafe(self.reaper.stop.set)
        self.thread.join(DEADLINE)
        self.loop.close()


def _api_error(status: int, text: str) -> APIError:
    response = requests.Response()
    response.status_code = status
    return APIError(text, response=response, explanation=text)


class FakeContainer:
    """A reaper container as the engine reports it."""

    def __init__(self, engine: FakeEngine, name: str, **options: Any) -> None:
        self.engine = engine
        self.name = name
        self.options = options
        self.status = "created"
        self.ports: dict[str, list[dict[str, str]]] = {}
        self.server: LiveReaper | None = None

    def start(self) -> None:
        self.engine.starts.append(self.name)
        if self.engine.refuse_start:
            raise _api_error(500, self.engine.refuse_start)
        if self.status == "created":
            self.run(LiveReaper())

    def run(self, server: LiveReaper) -> None:
        """Running, its port published."""
        self.server = server
        self.status = "running"
        self.ports = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(server.port)}]}

    def reload(self) -> None:
        pass

    def remove(self, force: bool = False) -> None:
        self.engine.removed.append(self.name)
        self.engine.by_name.pop(self.name, None)
        if self.server is not None:
            self.server.stop()


class FakeEngine:
    """`client.containers` of an engine: containers by name, a second create refused (409)."""

    def __init__(self) -> None:
        self.by_name: dict[str, FakeContainer] = {}
        self.created: list[str] = []
        self.starts: list[str] = []
        self.removed: list[str] = []
        self.refuse_start = ""
        self.containers = self  # the client's `containers` collection is the engine itself

    def get(self, name: str) -> FakeContainer:
        if name not in self.by_name:
            raise NotFound(f"No such container: {name}")
        return self.by_name[name]

    def create(self, image: str, name: str, **options: Any) -> FakeContainer:
        if name in self.by_name:
            raise _api_error(409, f'Conflict. The container name "/{name}" is already in use')
        self.created.append(name)
        container = self.by_name[name] = FakeContainer(self, name, image=image, **options)
        return container

    def client(self) -> docker.DockerClient:
        """This engine as the client `hold` talks through."""
        return cast(docker.DockerClient, self)

    def close(self) -> None:
        """Stop every reaper still serving."""
        for container in list(self.by_name.values()):
            if container.server is not None:
                container.server.stop()


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    """An engine with no reaper on it yet."""
    fake = FakeEngine()
    yield fake
    fake.close()
    for held in hold._holds.values():
        if held.sock is not None:
            held.sock.close()


def _hold(endpoint: Endpoint = LOCAL, **options: Any) -> ReaperHold:
    return ReaperHold(IMAGE, 5.0, endpoint, **options)


def test_the_reaper_is_on_by_default_and_either_switch_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert reaper_enabled(load_settings(env_file=None, environ={}))
    off = load_settings(env_file=None, environ={"ENVKIT_REAPER__ENABLED": "false"})
    assert not reaper_enabled(off)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    assert not reaper_enabled(load_settings(env_file=None, environ={}))


@pytest.mark.parametrize("name", ["GRACE_SECONDS", "IDLE_SECONDS"])
def test_a_reaper_time_out_of_range_is_refused_with_the_settings_name(name: str) -> None:
    from envkit.errors import SettingsError

    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None, environ={f"ENVKIT_REAPER__{name}": "0"})
    assert f"ENVKIT_REAPER__{name}" in str(info.value)


def test_the_session_line_is_the_one_testcontainers_sends() -> None:
    assert session_filter() == f"label=org.testcontainers.session-id={SESSION_ID}\r\n".encode()


def test_processes_with_the_same_image_and_settings_share_a_name_and_others_do_not() -> None:
    name = reaper_name(IMAGE, 5.0, 60.0, LOCAL)
    assert name == _hold(idle_seconds=60.0).name()
    assert name.startswith("envkit-reaper-")
    assert len(name) == len("envkit-reaper-") + 12
    others = {
        reaper_name("envkit/reaper:2", 5.0, 60.0, LOCAL),  # another envkit version
        reaper_name(IMAGE, 10.0, 60.0, LOCAL),  # another grace period
        reaper_name(IMAGE, 5.0, 3.0, LOCAL),  # another idle time
        reaper_name(IMAGE, 5.0, 60.0, Endpoint("unix:///var/tmp/e2/docker.sock", "test")),
        reaper_name(IMAGE, 5.0, 60.0, SECOND),
    }
    assert name not in others
    assert len(others) == 5


def test_the_first_process_starts_the_reaper_and_later_ones_only_connect(
    engine: FakeEngine,
) -> None:
    first = _hold()
    first.hold(engine.client())
    assert engine.created == [first.name()]
    reaper = engine.by_name[first.name()]
    options = reaper.options
    assert options["auto_remove"] is True
    # A fresh token, as a variable and as its container's label: the reaper finds its own
    # container by it on the engine it reaches (else it refuses; see the refusal test).
    token = options["environment"]["ENVKIT_REAPER_TOKEN"]
    assert len(token) == 32
    assert options["labels"] == {
        "envkit.reaper": first.name().removeprefix("envkit-reaper-"),
        "envkit.reaper.token": token,
    }
    assert options["environment"] == {
        "RYUK_RECONNECTION_TIMEOUT": "5s",
        "REAPER_IDLE_TIMEOUT": "60s",
        "ENVKIT_REAPER_TOKEN": token,
    }
    assert options["ports"] == {"8080/tcp": ("127.0.0.1", None)}
    first.hold(engine.client())  # the same process: its connection is still open
    first_process = _a_new_process()
    _hold().hold(engine.client())
    assert engine.created == [first.name()]  # one reaper for both
    assert reaper.server is not None
    assert len(reaper.server.holders(OURS)) == 2  # each process on a connection of its own
    for held in first_process:
        assert held.sock is not None
        held.sock.close()


def test_threads_of_one_process_share_one_connection(engine: FakeEngine) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _hold().hold(engine.client())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert errors == []
    assert engine.created == [_hold().name()]
    server = engine.by_name[_hold().name()].server
    assert server is not None
    assert len(server.holders(OURS)) == 1


def test_a_process_that_loses_the_race_for_the_name_uses_the_winners_reaper(
    engine: FakeEngine,
) -> None:
    name = _hold().name()
    create = engine.create

    def lose(image: str, name: str, **options: Any) -> FakeContainer:
        create(image, name, **options).run(LiveReaper())  # another process got there first
        return create(image, name, **options)  # ...so this one is refused: 409

    engine.create = lose  # type: ignore[method-assign]
    _hold().hold(engine.client())
    assert engine.created == [name]  # only the winner's
    assert engine.starts == []  # nor did this process start anything
    server = engine.by_name[name].server
    assert server is not None
    assert server.holders(OURS) != set()


def test_a_reaper_whose_creator_died_before_starting_it_is_started_by_the_next_process(
    engine: FakeEngine,
) -> None:
    name = _hold().name()
    engine.create(IMAGE, name)  # created, never started: its process was killed in between
    _hold().hold(engine.client())
    assert engine.starts == [name]
    assert engine.by_name[name].status == "running"


def test_an_exited_reaper_left_by_an_engine_without_auto_remove_is_replaced(
    engine: FakeEngine,
) -> None:
    name = _hold().name()
    engine.create(IMAGE, name).status = "exited"
    _hold().hold(engine.client())
    assert engine.removed == [name]
    assert engine.created == [name, name]
    assert engine.by_name[name].status == "running"


def test_a_reaper_that_is_exiting_is_not_trusted_and_a_new_one_holds_the_session(
    engine: FakeEngine,
) -> None:
    name = _hold().name()
    exiting = engine.create(IMAGE, name)
    exiting.run(LiveReaper(closing=True))  # it went idle just as this process connects
    get = engine.get
    seen: list[str] = []

    def get_then_gone(wanted: str) -> FakeContainer:
        found = get(wanted)
        if found is exiting and seen:  # the engine auto-removed it once it exited
            found.remove()
            return get(wanted)
        seen.append(wanted)
        return found

    engine.get = get_then_gone  # type: ignore[method-assign]
    _hold().hold(engine.client())
    assert engine.created == [name, name]
    fresh = engine.by_name[name]
    assert fresh is not exiting
    assert fresh.server is not None
    assert fresh.server.holders(OURS) != set()


def test_a_reaper_that_cannot_start_is_one_error_naming_the_switch_and_left_no_stuck_reaper(
    engine: FakeEngine,
) -> None:
    engine.refuse_start = "driver failed programming external connectivity"
    with pytest.raises(ReaperError) as info:
        _hold().hold(engine.client())
    assert isinstance(info.value, EngineError)
    assert str(info.value) == (
        "The reaper that removes this run if envkit is killed did not start on the engine "
        "at unix:///var/run/docker.sock (image envkit/reaper:1): driver failed programming "
        "external connectivity. Check the engine (`docker ps -a --filter label=envkit.reaper` "
        "shows the reaper) and run again. To run without it (a killed run is then removed by "
        "the next envkit command, or `invoke clean`), set ENVKIT_REAPER__ENABLED=false or "
        "TESTCONTAINERS_RYUK_DISABLED=true."
    )
    assert engine.removed == [_hold().name()]  # created, never started: removed
    engine.refuse_start = ""
    _hold().hold(engine.client())  # the error was reported: the next run tries anew
    assert engine.by_name[_hold().name()].status == "running"


def test_a_failure_in_the_background_is_raised_by_the_hold_that_waits_for_it(
    engine: FakeEngine,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise _api_error(404, "No such image: envkit/reaper:1")

    engine.create = refuse  # type: ignore[assignment]
    reaper = _hold()
    reaper.begin(engine.client())  # as `reaper_for` does, before the images are checked
    with pytest.raises(ReaperError, match=r"\(image envkit/reaper:1\): No such image"):
        reaper.hold(engine.client())  # as `Environment.start` does, before the network


class _Silent:
    """A connection a port proxy took while the reaper was starting: it never answers."""

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
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = _Silent()
    monkeypatch.setattr(hold.socket, "create_connection", lambda address, timeout: silent)
    reaper = _hold(start_seconds=0.5)
    engine.create(IMAGE, reaper.name()).ports = {"8080/tcp": [{"HostPort": "1"}]}
    engine.by_name[reaper.name()].status = "running"
    with pytest.raises(ReaperError) as info:
        reaper.hold(engine.client())
    assert str(info.value).startswith(
        f"The reaper {reaper.name()} on the engine did not acknowledge this session within "
        "0.5 s (no answer yet), so a killed run would not be removed. Check that the engine's "
        "published ports are reachable from here (TC_HOST names the engine's address)."
    )
    assert silent.sent[0] == session_filter()


def test_a_process_whose_connection_dropped_holds_anew(engine: FakeEngine) -> None:
    reaper = _hold()
    reaper.hold(engine.client())
    engine.by_name[reaper.name()].remove()  # removed by hand: the connection drops
    reaper.hold(engine.client())
    assert engine.created == [reaper.name(), reaper.name()]
    server = engine.by_name[reaper.name()].server
    assert server is not None
    assert server.holders(OURS) != set()


def test_runs_on_two_engines_are_held_by_a_reaper_on_each() -> None:
    # the second engine's published ports reached on this machine (TC_HOST), for the test
    second_endpoint = Endpoint(SECOND.url, "test", tc_host="127.0.0.1")
    local, second = FakeEngine(), FakeEngine()
    try:
        ReaperHold(IMAGE, 5.0, LOCAL).hold(local.client())
        ReaperHold(IMAGE, 5.0, second_endpoint).hold(second.client())
        ReaperHold(IMAGE, 5.0, second_endpoint).hold(second.client())
        # each reaper started once, through its own engine's client, reaching that engine
        assert local.created == [reaper_name(IMAGE, 5.0, 60.0, LOCAL)]
        assert second.created == [reaper_name(IMAGE, 5.0, 60.0, second_endpoint)]
        started = second.by_name[second.created[0]]
        assert started.options["environment"]["DOCKER_HOST"] == SECOND.url
        assert started.options["volumes"] == {}
        assert local.by_name[local.created[0]].options["volumes"] == {
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}
        }
        assert {key[0] for key in hold._holds} == {LOCAL.url, SECOND.url}
    finally:
        local.close()
        second.close()


def test_reaper_for_starts_the_reaper_before_the_run_waits_for_its_hold(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Images:
        """The reaper image, present."""

        def __init__(self, *args: object) -> None:
            pass

        def ensure(self, roles: list[str]) -> dict[str, Any]:
            return {"reaper": SimpleNamespace(ref=IMAGE)}

    created = threading.Event()
    create = engine.create

    def create_and_tell(image: str, name: str, **options: Any) -> FakeContainer:
        created.set()
        return create(image, name, **options)

    engine.create = create_and_tell  # type: ignore[method-assign]
    monkeypatch.setattr(hold, "ImageBuilder", Images)
    settings = load_settings(env_file=None, environ={"ENVKIT_REAPER__IDLE_SECONDS": "7"})
    reaper = reaper_for(settings, engine.client(), endpoint=LOCAL)
    assert reaper is not None
    assert created.wait(DEADLINE)  # under way while the run checks its images
    reaper.hold(engine.client())
    assert engine.created == [reaper.name()]
    assert engine.by_name[reaper.name()].options["environment"]["REAPER_IDLE_TIMEOUT"] == "7s"


def test_a_failed_attempt_nobody_waited_for_is_tried_anew_by_the_next_run(
    engine: FakeEngine,
) -> None:
    engine.refuse_start = "the engine is busy"
    reaper = _hold()
    reaper.begin(engine.client())  # this run then failed before it waited (its images)
    (attempt,) = hold._holds.values()
    assert attempt.done.wait(DEADLINE)
    assert isinstance(attempt.error, ReaperError)
    engine.refuse_start = ""
    reaper.begin(engine.client())  # the next run of the process
    reaper.hold(engine.client())
    assert engine.by_name[reaper.name()].status == "running"


def test_a_reaper_that_reaches_another_engine_is_one_error_at_once_naming_the_override(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envkit.reaperd.protocol import FilterError

    monkeypatch.setattr(hold.testcontainers_config, "ryuk_docker_socket", "")

    async def elsewhere() -> None:
        raise FilterError("the engine this reaper reaches does not run it")

    refusing = Reaper(
        Registry(grace=3600, connect_timeout=3600, idle=3600), lambda flt: 0,
        host="127.0.0.1", port=0, tick=0.02, engine_check=elsewhere,
    )  # fmt: skip
    server = LiveReaper(reaper=refusing)
    ssh = Endpoint("ssh://ci@127.0.0.1", "test")
    held = _hold(ssh)
    container = engine.create(IMAGE, held.name())
    container.run(server)
    with pytest.raises(ReaperError) as info:
        held.hold(engine.client())
    assert str(info.value).startswith(
        "The reaper on the engine at ssh://ci@127.0.0.1 refused to hold this session: the engine "
        "this reaper reaches does not run it. It was given /var/run/docker.sock on the engine's "
        "host as that engine's socket: if the engine's socket is elsewhere there, set "
        "TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE to its path. To run without it"
    )
    assert engine.removed == []  # a refusing reaper is left for the others to be told the same


def test_held_connections_are_closed_at_exit_without_a_resource_warning(tmp_path: Any) -> None:
    script = (
        "import socket\n"
        "from envkit.lifecycle import hold\n"
        "ours, reapers_end = socket.socketpair()\n"
        "held = hold._Hold(sock=ours)\n"
        "held.done.set()\n"
        "hold._holds[('unix:///var/run/docker.sock', 'envkit-reaper-1')] = held\n"
        "reapers_end.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr


def test_releasing_the_holds_closes_each_held_connection() -> None:
    ours, reapers_end = socket.socketpair()
    held = hold._Hold(sock=ours)
    held.done.set()
    hold._holds[("unix:///var/run/docker.sock", "envkit-reaper-1")] = held
    hold._holds[("tcp://10.99.3.2:2375", "envkit-reaper-2")] = hold._Hold()  # never connected
    hold._release_holds()
    assert ours.fileno() == -1
    assert reapers_end.recv(1) == b""  # the reaper's end sees the client leave
    reapers_end.close()
