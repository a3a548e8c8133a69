"""ProbeWaitStrategy against a fake testcontainers container: port mapping, policy, evidence."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import WaitStrategy

from envkit.healthchecks import (
    HttpProbe,
    Probe,
    ProbeAborted,
    ProbeFailed,
    ProbeTimeout,
    ProbeWaitStrategy,
    RetryPolicy,
    TcpProbe,
)


class FakeContainer:
    """What a wait strategy may ask of a container (testcontainers' `WaitStrategyTarget`)."""

    def __init__(self, host: str = "127.0.0.1", ports: dict[int, int] | None = None) -> None:
        self.host = host
        self.ports = ports if ports is not None else {8080: 49153}
        self.statuses = ["running"]  # one per reload; the last one sticks
        self.reloads = 0
        self.asked: list[int] = []
        self.stdout = b"booting\nlistening on :8080\n"
        self.stderr = b""

    def get_container_host_ip(self) -> str:
        return self.host

    def get_exposed_port(self, port: int) -> int:
        self.asked.append(port)
        return self.ports[port]

    def get_wrapped_container(self) -> Any:
        return SimpleNamespace(name="envkit-test-web")

    def get_logs(self) -> tuple[bytes, bytes]:
        return self.stdout, self.stderr

    def reload(self) -> None:
        self.reloads += 1

    @property
    def status(self) -> str:
        return self.statuses[min(self.reloads, len(self.statuses)) - 1]


class Clock:
    """A fake monotonic clock: time passes only when the strategy sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Probed:
    """A probe that fails `failures` times with `error`, then passes; records where it points."""

    kind = "fake"

    def __init__(self, host: str, port: int, failures: int, error: Exception | None) -> None:
        self.where = (host, port)
        self.failures = failures
        self.error = error or ProbeFailed("connection refused")
        self.calls = 0

    def describe(self) -> str:
        return f"fake probe of {self.where[0]}:{self.where[1]}"

    def check(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


def strategy(
    clock: Clock,
    failures: int = 0,
    error: Exception | None = None,
    policy: RetryPolicy | None = None,
    service: str | None = None,
) -> tuple[ProbeWaitStrategy, list[Probed]]:
    """A strategy whose factory records every probe it builds."""
    built: list[Probed] = []

    def factory(host: str, port: int) -> Probe:
        built.append(Probed(host, port, failures, error))
        return built[-1]

    made = ProbeWaitStrategy(
        8080, factory, policy or RetryPolicy(timeout=5), service=service,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    return made, built


def test_probe_is_built_from_the_host_and_mapped_port_and_waited_on() -> None:
    clock, container = Clock(), FakeContainer(host="10.0.0.7", ports={8080: 32801})
    made, built = strategy(clock, failures=2)

    made.wait_until_ready(container)

    assert container.asked == [8080]
    assert [p.where for p in built] == [("10.0.0.7", 32801)]
    assert built[0].calls == 3


def test_it_is_a_testcontainers_wait_strategy() -> None:
    made = ProbeWaitStrategy.tcp(5432)
    assert isinstance(made, WaitStrategy)
    # A fixed API version keeps the Docker SDK from asking an engine for it: a unit test
    # needs none.
    never_started = DockerContainer("envkit-never-started", docker_client_kw={"version": "1.41"})
    container = never_started.waiting_for(made)
    assert isinstance(container, DockerContainer)  # waiting_for accepts it


def test_http_and_tcp_shortcuts_build_the_probes_for_the_mapped_address() -> None:
    http = ProbeWaitStrategy.http(8080, "health", expect_status=204, body_contains="ok")
    assert http.probe_factory("::1", 49153) == HttpProbe(
        "http://[::1]:49153/health", expect_status=204, body_contains="ok"
    )
    assert ProbeWaitStrategy.tcp(5432).probe_factory("127.0.0.1", 5999) == TcpProbe(
        "127.0.0.1", 5999
    )


def test_timeout_names_the_container_and_endpoint_and_notes_its_log() -> None:
    clock, container = Clock(), FakeContainer()
    made, _ = strategy(clock, failures=10_000, policy=RetryPolicy(timeout=3))

    with pytest.raises(ProbeTimeout) as caught:
        made.wait_until_ready(container)

    message = str(caught.value)
    assert message.startswith(
        "container envkit-test-web did not become ready within 3.0 s: "
        "fake probe of 127.0.0.1:49153 failed "
    )
    assert "last error: connection refused" in message
    assert caught.value.__notes__ == [
        "container status: running\nlast lines of its stdout:\n  | booting\n  | listening on :8080"
    ]
    assert clock.now == pytest.approx(3.0)


def test_a_container_that_stops_aborts_the_wait_at_once() -> None:
    clock, container = Clock(), FakeContainer()
    container.statuses = ["running", "exited"]
    container.stdout, container.stderr = b"", b"fatal: no config\n"
    made, _ = strategy(clock, failures=10_000, service="web")

    with pytest.raises(ProbeAborted) as caught:
        made.wait_until_ready(container)

    assert caught.value.reason == "the container is exited"
    assert str(caught.value).startswith("web will not become ready: the container is exited.")
    assert clock.now < 1.0  # well before the 5 s deadline
    assert caught.value.__notes__ == [
        "container status: exited\nlast lines of its stderr:\n  | fatal: no config"
    ]


def test_startup_timeout_and_poll_interval_replace_the_policy() -> None:
    clock = Clock()
    made, _ = strategy(clock, failures=10_000)

    made.with_startup_timeout(timedelta(seconds=2)).with_poll_interval(0.5)

    assert made.policy == RetryPolicy(timeout=2, initial_delay=0.5, max_delay=0.5, multiplier=1)
    with pytest.raises(ProbeTimeout):
        made.wait_until_ready(FakeContainer())
    assert clock.sleeps == [0.5, 0.5, 0.5, 0.5]


def test_transient_exceptions_are_retried_only_when_listed() -> None:
    made, built = strategy(Clock(), failures=2, error=ConnectionResetError("reset by peer"))
    with pytest.raises(ConnectionResetError):
        made.wait_until_ready(FakeContainer())
    assert built[0].calls == 1

    made, built = strategy(Clock(), failures=2, error=ConnectionResetError("reset by peer"))
    made.with_transient_exceptions(ConnectionResetError).wait_until_ready(FakeContainer())
    assert built[0].calls == 3
