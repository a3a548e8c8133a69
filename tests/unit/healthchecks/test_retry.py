"""wait_until_ready: backoff, deadline, abort and errors, on a fake clock (no real waiting)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from envkit import healthchecks
from envkit.healthchecks import (
    ProbeAborted,
    ProbeFailed,
    ProbeTimeout,
    ReadyResult,
    RetryPolicy,
    TcpProbe,
    wait_until_ready,
)


class FakeClock:
    """A clock that only moves when the code under test sleeps (or a probe takes time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.sleep_ends: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.sleep_ends.append(self.now)


class ScriptedProbe:
    """Fails `failures` times (then passes), optionally taking `cost` fake seconds per check."""

    kind = "fake"

    def __init__(
        self,
        failures: int,
        clock: FakeClock,
        cost: float = 0.0,
        reason: str = "HTTP 503: down",
    ) -> None:
        self.failures = failures
        self.clock = clock
        self.cost = cost
        self.reason = reason
        self.calls = 0
        self.raised: list[ProbeFailed] = []

    def describe(self) -> str:
        return "fake probe"

    def check(self) -> None:
        self.calls += 1
        self.clock.now += self.cost
        if self.calls <= self.failures:
            exc = ProbeFailed(f"{self.reason} (#{self.calls})")
            self.raised.append(exc)
            raise exc


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_succeeds_after_failures_counting_attempts_and_fake_elapsed(clock: FakeClock) -> None:
    probe = ScriptedProbe(failures=3, clock=clock)

    result = wait_until_ready(probe, RetryPolicy(), clock=clock, sleep=clock.sleep)

    assert result == ReadyResult(attempts=4, elapsed=pytest.approx(0.02 + 0.032 + 0.0512))
    assert clock.sleeps == pytest.approx([0.02, 0.032, 0.0512])


def test_first_attempt_success_does_not_sleep(clock: FakeClock) -> None:
    result = wait_until_ready(
        ScriptedProbe(0, clock), RetryPolicy(), clock=clock, sleep=clock.sleep
    )

    assert result == ReadyResult(attempts=1, elapsed=0.0)
    assert clock.sleeps == []


def test_delays_grow_from_initial_delay_are_capped_and_end_at_the_deadline(
    clock: FakeClock,
) -> None:
    probe = ScriptedProbe(failures=10_000, clock=clock)
    start = clock.now

    with pytest.raises(ProbeTimeout):
        wait_until_ready(probe, RetryPolicy(timeout=3.0), clock=clock, sleep=clock.sleep)

    growing = [0.02 * 1.6**n for n in range(7)]  # 0.02 … 0.3355, the next would pass 0.5
    assert clock.sleeps[:7] == pytest.approx(growing)
    assert clock.sleeps[7:11] == pytest.approx([0.5] * 4)
    assert clock.sleeps[11] == pytest.approx(3.0 - sum(growing) - 2.0)  # clamped last pause
    assert len(clock.sleeps) == 12
    assert max(clock.sleeps) <= 0.5
    assert clock.now == pytest.approx(start + 3.0)
    assert probe.calls == 13


def test_last_sleep_is_clamped_when_checks_themselves_take_time(clock: FakeClock) -> None:
    probe = ScriptedProbe(failures=10_000, clock=clock, cost=0.3)
    deadline = clock.now + 1.0

    with pytest.raises(ProbeTimeout) as caught:
        wait_until_ready(probe, RetryPolicy(timeout=1.0), clock=clock, sleep=clock.sleep)

    # t=0 check→0.3, sleep 0.02, check→0.62, sleep 0.032, check→0.952, sleep 0.048 (not 0.0512)
    assert clock.sleeps == pytest.approx([0.02, 0.032, 0.048])
    assert all(end <= deadline + 1e-9 for end in clock.sleep_ends)
    assert caught.value.attempts == 4
    assert caught.value.elapsed == pytest.approx(1.3)


def test_zero_timeout_tries_exactly_once(clock: FakeClock) -> None:
    probe = ScriptedProbe(failures=1, clock=clock)

    with pytest.raises(ProbeTimeout) as caught:
        wait_until_ready(probe, RetryPolicy(timeout=0), clock=clock, sleep=clock.sleep)

    assert caught.value.attempts == 1
    assert clock.sleeps == []


def test_timeout_names_service_probe_attempts_elapsed_and_last_error(clock: FakeClock) -> None:
    probe = ScriptedProbe(failures=10_000, clock=clock)

    with pytest.raises(ProbeTimeout) as caught:
        wait_until_ready(
            probe, RetryPolicy(timeout=1.0), clock=clock, sleep=clock.sleep, service="backend"
        )

    exc = caught.value
    assert str(exc) == (
        f"backend did not become ready within 1.0 s: fake probe failed {probe.calls} times; "
        f"last error: HTTP 503: down (#{probe.calls}). Check the service's log for why it is "
        "not ready, or raise its readiness timeout if it is only slow to start."
    )
    assert exc.service == "backend"
    assert exc.probe_description == "fake probe"
    assert exc.attempts == probe.calls == len(clock.sleeps) + 1
    assert exc.elapsed == pytest.approx(1.0)
    assert exc.last_error == f"HTTP 503: down (#{probe.calls})"
    assert exc.__cause__ is probe.raised[-1]


def test_timeout_message_for_a_single_attempt_and_no_service_name(clock: FakeClock) -> None:
    probe = ScriptedProbe(failures=1, clock=clock, reason="connection refused")

    with pytest.raises(ProbeTimeout) as caught:
        wait_until_ready(probe, RetryPolicy(timeout=0), clock=clock, sleep=clock.sleep)

    assert str(caught.value).startswith(
        "The service did not become ready within 0.0 s: fake probe failed 1 time; "
        "last error: connection refused (#1)."
    )


def test_abort_before_the_first_attempt_stops_at_once(clock: FakeClock) -> None:
    probe = ScriptedProbe(failures=10_000, clock=clock)

    with pytest.raises(ProbeAborted) as caught:
        wait_until_ready(
            probe,
            RetryPolicy(),
            abort=lambda: "container exited with code 1",
            clock=clock,
            sleep=clock.sleep,
            service="backend",
        )

    exc = caught.value
    assert probe.calls == 0
    assert clock.sleeps == []
    assert (exc.attempts, exc.elapsed, exc.reason, exc.last_error) == (
        0,
        0.0,
        "container exited with code 1",
        None,
    )
    assert exc.__cause__ is None
    assert str(exc) == (
        "backend will not become ready: container exited with code 1. Stopped waiting after "
        "0.0 s; fake probe was not tried. Check the service's log for why it stopped."
    )


def test_abort_after_failures_keeps_the_last_probe_error_as_cause(clock: FakeClock) -> None:
    probe = ScriptedProbe(failures=10_000, clock=clock)
    abort_calls = 0

    def abort() -> str | None:
        nonlocal abort_calls
        abort_calls += 1
        return "container exited with code 1" if probe.calls >= 3 else None

    with pytest.raises(ProbeAborted) as caught:
        wait_until_ready(
            probe, RetryPolicy(), abort=abort, clock=clock, sleep=clock.sleep, service="db"
        )

    exc = caught.value
    assert exc.attempts == probe.calls == 3
    assert abort_calls == 4  # once before every attempt, and the fourth stopped it
    assert exc.elapsed == pytest.approx(0.02 + 0.032 + 0.0512)
    assert exc.__cause__ is probe.raised[-1]
    assert str(exc) == (
        "db will not become ready: container exited with code 1. Stopped waiting after 0.1 s; "
        "fake probe had failed 3 times; last error: HTTP 503: down (#3). Check the service's "
        "log for why it stopped."
    )


def test_abort_is_asked_before_every_attempt(clock: FakeClock) -> None:
    probe = ScriptedProbe(failures=4, clock=clock)
    asked: list[int] = []

    def abort() -> str | None:
        asked.append(probe.calls)
        return None

    result = wait_until_ready(probe, RetryPolicy(), abort=abort, clock=clock, sleep=clock.sleep)

    assert result.attempts == 5
    assert asked == [0, 1, 2, 3, 4]


def test_other_exceptions_are_not_retried(clock: FakeClock) -> None:
    class Broken(ScriptedProbe):
        def check(self) -> None:
            self.calls += 1
            raise RuntimeError("bug in the probe")

    probe = Broken(0, clock)

    with pytest.raises(RuntimeError, match="bug in the probe"):
        wait_until_ready(probe, RetryPolicy(), clock=clock, sleep=clock.sleep)

    assert probe.calls == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, "timeout must be 0 or more seconds, not -1"),
        ({"initial_delay": 0}, "initial_delay must be positive, not 0"),
        ({"max_delay": 0.01}, "max_delay (0.01) must be at least initial_delay (0.02)"),
        ({"multiplier": 0.5}, "multiplier must be 1 or more, not 0.5"),
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        RetryPolicy(**kwargs)
    assert message in str(caught.value)


def test_public_api_is_curated() -> None:
    assert sorted(healthchecks.__all__) == [
        "HealthcheckError",
        "HttpProbe",
        "LogLineProbe",
        "PostgresProbe",
        "Probe",
        "ProbeAborted",
        "ProbeError",
        "ProbeFailed",
        "ProbeTimeout",
        "ProbeWaitStrategy",
        "ReadyResult",
        "RetryPolicy",
        "TcpProbe",
        "wait_until_ready",
    ]
    for name in healthchecks.__all__:
        assert getattr(healthchecks, name).__doc__


@pytest.fixture
def late_listener() -> Iterator[int]:
    """A port that starts accepting connections about 0.15 s from now."""
    probe_sock = socket.socket()
    probe_sock.bind(("127.0.0.1", 0))
    port: int = probe_sock.getsockname()[1]
    probe_sock.close()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    timer = threading.Timer(0.15, lambda: (server.bind(("127.0.0.1", port)), server.listen()))
    timer.start()
    try:
        yield port
    finally:
        timer.cancel()
        timer.join()
        server.close()


def test_real_clock_and_sleep_by_default(late_listener: int) -> None:
    result = wait_until_ready(TcpProbe("127.0.0.1", late_listener), RetryPolicy(timeout=5))

    assert result.attempts > 1
    # The listener appears after 0.15 s, so the real clock measured at least that (a lower
    # bound the machine's load cannot break; no upper bound is asserted).
    assert result.elapsed > 0.1
