"""Any probe as a testcontainers wait strategy: `container.waiting_for(ProbeWaitStrategy(...))`.

Only testcontainers' public API is used: the `WaitStrategy` base class and the
`WaitStrategyTarget` protocol (host, mapped port, status, logs). This module is
imported on first use of `ProbeWaitStrategy`, so `import healthchecks` does not
need testcontainers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Self

from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from ._errors import ProbeError, ProbeFailed
from ._probes import HttpProbe, Probe, TcpProbe, _host_port, _one_line
from ._retry import RetryPolicy, wait_until_ready

ProbeFactory = Callable[[str, int], Probe]
"""Builds the probe from where the container's port is reached: (host, mapped port)."""

_STOPPED = frozenset(("exited", "dead", "removing"))
_STATUS_INTERVAL = 0.25  # seconds between status look-ups: each is an API call to the engine
_LOG_LINES = 20


class ProbeWaitStrategy(WaitStrategy):
    """A testcontainers wait strategy that polls a healthchecks probe under a `RetryPolicy`."""

    def __init__(
        self,
        port: int,
        probe_factory: ProbeFactory,
        policy: RetryPolicy | None = None,
        *,
        service: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.port = port
        self.probe_factory = probe_factory
        self.policy = policy if policy is not None else RetryPolicy()
        self.service = service
        self.clock = clock
        self.sleep = sleep
        self.transient: tuple[type[Exception], ...] = ()

    @classmethod
    def http(
        cls,
        port: int,
        path: str = "/",
        policy: RetryPolicy | None = None,
        *,
        expect_status: int = 200,
        body_contains: str | None = None,
        service: str | None = None,
    ) -> ProbeWaitStrategy:
        """Wait until GET `path` on the container's `port` answers `expect_status`."""
        suffix = path if path.startswith("/") else "/" + path

        def factory(host: str, mapped: int) -> Probe:
            url = f"http://{_host_port(host, mapped)}{suffix}"
            return HttpProbe(url, expect_status=expect_status, body_contains=body_contains)

        return cls(port, factory, policy, service=service)

    @classmethod
    def tcp(
        cls, port: int, policy: RetryPolicy | None = None, *, service: str | None = None
    ) -> ProbeWaitStrategy:
        """Wait until the container's `port` accepts a TCP connection."""
        return cls(port, TcpProbe, policy, service=service)

    def with_startup_timeout(self, timeout: int | float | timedelta) -> Self:
        """Replace the policy's timeout (seconds or a timedelta)."""
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        self.policy = replace(self.policy, timeout=seconds)
        return self

    def with_poll_interval(self, interval: float | timedelta) -> Self:
        """Poll at a fixed interval instead of the policy's growing backoff."""
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
        self.policy = replace(self.policy, initial_delay=seconds, max_delay=seconds, multiplier=1)
        return self

    def with_transient_exceptions(self, *transient_exceptions: type[Exception]) -> Self:
        """Also retry when the probe raises one of these (it always retries `ProbeFailed`)."""
        self.transient += transient_exceptions
        return self

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        """Build the probe for the container's mapped port and wait for it to pass.

        Raises `ProbeTimeout` at the policy's deadline and `ProbeAborted` as soon as
        the container stops; both carry a note with its status and last log lines.
        """
        host = container.get_container_host_ip()
        mapped = int(container.get_exposed_port(self.port))
        probe = self.probe_factory(host, mapped)
        if self.transient:
            probe = _Tolerant(probe, self.transient)
        try:
            wait_until_ready(
                probe,
                self.policy,
                abort=self._stopped(container),
                clock=self.clock,
                sleep=self.sleep,
                service=self.service or _name(container),
            )
        except ProbeError as exc:
            exc.add_note(_evidence(container))
            raise

    def _stopped(self, container: WaitStrategyTarget) -> Callable[[], str | None]:
        """An `abort` callback: the container's status once it has stopped, looked up sparingly."""
        last_look = -_STATUS_INTERVAL
        verdict: str | None = None

        def abort() -> str | None:
            nonlocal last_look, verdict
            now = self.clock()
            if now - last_look >= _STATUS_INTERVAL:
                last_look = now
                container.reload()
                status = container.status
                verdict = f"the container is {status}" if status in _STOPPED else None
            return verdict

        return abort


@dataclass(frozen=True)
class _Tolerant:
    """A probe whose listed exceptions count as "not ready yet", like `ProbeFailed`."""

    inner: Probe
    transient: tuple[type[Exception], ...]

    @property
    def kind(self) -> str:
        """The wrapped probe's kind."""
        return self.inner.kind

    def describe(self) -> str:
        """The wrapped probe's description."""
        return self.inner.describe()

    def check(self) -> None:
        """Check the wrapped probe; a transient exception becomes `ProbeFailed`."""
        try:
            self.inner.check()
        except self.transient as exc:
            raise ProbeFailed(_one_line(f"{type(exc).__name__}: {exc}")) from exc


def _name(container: WaitStrategyTarget) -> str:
    """E.g. "container envkit-test-1a2b"; "the container" when the engine gives no name."""
    name = getattr(container.get_wrapped_container(), "name", None)
    return f"container {name}" if name else "the container"


def _evidence(container: WaitStrategyTarget) -> str:
    """The container's status and the last lines of its output, for the error's note."""
    try:
        container.reload()
        status = container.status
        stdout, stderr = container.get_logs()
    except Exception as exc:  # evidence is best effort: the probe's error is what to report
        return f"The container's status and log could not be read: {type(exc).__name__}: {exc}"
    lines = [f"container status: {status}"]
    for stream, data in (("stdout", stdout), ("stderr", stderr)):
        tail = data.decode(errors="replace").splitlines()[-_LOG_LINES:]
        if tail:
            lines.append(f"last lines of its {stream}:")
            lines.extend(f"  | {line}" for line in tail)
    if len(lines) == 1:
        lines.append("its log is empty")
    return "\n".join(lines)
