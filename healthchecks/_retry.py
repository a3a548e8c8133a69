"""One retry policy for every probe, built on tenacity with an injectable clock and sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception_type
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential

from ._errors import ProbeAborted, ProbeFailed, ProbeTimeout
from ._probes import Probe


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep probing and how the pause between attempts grows."""

    timeout: float = 60.0
    initial_delay: float = 0.02
    max_delay: float = 0.5
    multiplier: float = 1.6

    def __post_init__(self) -> None:
        problems = []
        if not self.timeout >= 0:
            problems.append(f"timeout must be 0 or more seconds, not {self.timeout!r}")
        if not self.initial_delay > 0:
            problems.append(f"initial_delay must be positive, not {self.initial_delay!r}")
        if not self.max_delay >= self.initial_delay:
            problems.append(
                f"max_delay ({self.max_delay!r}) must be at least initial_delay "
                f"({self.initial_delay!r})"
            )
        if not self.multiplier >= 1:
            problems.append(f"multiplier must be 1 or more, not {self.multiplier!r}")
        if problems:
            raise ValueError("Invalid RetryPolicy: " + "; ".join(problems) + ".")


@dataclass(frozen=True)
class ReadyResult:
    """How many attempts readiness took and how long, by the injected clock."""

    attempts: int
    elapsed: float


class _Aborted(Exception):
    """Raised inside an attempt when `abort()` gives a reason; tenacity does not retry it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _StopAtDeadline(stop_base):
    """Stop once the injected clock reaches the deadline."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() >= self.deadline


class _WaitUntilDeadline(wait_base):
    """Wait as `inner` says, but never past the deadline."""

    def __init__(self, inner: wait_base, deadline: float, clock: Callable[[], float]) -> None:
        self.inner = inner
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> float:
        return max(0.0, min(self.inner(retry_state), self.deadline - self.clock()))


def wait_until_ready(
    probe: Probe,
    policy: RetryPolicy,
    *,
    abort: Callable[[], str | None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    service: str = "",
) -> ReadyResult:
    """Check `probe` until it passes; raise `ProbeTimeout` at the deadline, `ProbeAborted` early."""
    description = probe.describe()
    start = clock()
    deadline = start + policy.timeout
    attempts = 0
    last_error: ProbeFailed | None = None

    def attempt() -> None:
        nonlocal attempts, last_error
        reason = abort()
        if reason is not None:
            raise _Aborted(reason)
        attempts += 1
        try:
            probe.check()
        except ProbeFailed as exc:
            last_error = exc
            raise

    retrying = Retrying(
        retry=retry_if_exception_type(ProbeFailed),
        stop=_StopAtDeadline(deadline, clock),
        wait=_WaitUntilDeadline(
            wait_exponential(
                multiplier=policy.initial_delay, exp_base=policy.multiplier, max=policy.max_delay
            ),
            deadline,
            clock,
        ),
        sleep=sleep,
        reraise=True,
    )
    try:
        retrying(attempt)
    except _Aborted as exc:
        raise ProbeAborted(
            service,
            description,
            clock() - start,
            attempts,
            exc.reason,
            last_error.reason if last_error else None,
        ) from last_error
    except ProbeFailed as exc:
        raise ProbeTimeout(service, description, clock() - start, attempts, exc.reason) from exc
    return ReadyResult(attempts=attempts, elapsed=clock() - start)
