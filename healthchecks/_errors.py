"""Every error the probe library raises, in one small hierarchy of its own.

    HealthcheckError        root: catch it to catch anything healthchecks raises on purpose
    ├── ProbeFailed         one check found the service not ready (yet); `reason` says why.
    │                       `wait_until_ready` retries it and never lets it escape
    └── ProbeError          waiting for readiness failed; carries the service, the probe,
        │                   the elapsed time, the attempts and the last probe error
        ├── ProbeTimeout    the probe kept failing until the deadline
        └── ProbeAborted    waiting stopped early (e.g. the container exited); `reason` says why

The library needs nothing from envkit: envkit re-exports these classes from
`envkit.errors` and turns a `ProbeError` into its own `ServiceNotReady`.
Invalid arguments (a negative timeout, a bad regex) raise `ValueError` or
`re.error` as usual. Messages are whole sentences that say what to do next.
"""

from __future__ import annotations


class HealthcheckError(Exception):
    """Root of every error the probe library raises on purpose."""


class ProbeFailed(HealthcheckError):
    """A probe found its service not ready (yet); `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ProbeError(HealthcheckError):
    """Waiting for a service's probe to pass failed; carries the probe's evidence."""

    def __init__(
        self,
        message: str,
        *,
        service: str,
        probe_description: str,
        elapsed: float,
        attempts: int,
        last_error: str | None,
    ) -> None:
        self.service = service
        self.probe_description = probe_description
        self.elapsed = elapsed
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(message)


class ProbeTimeout(ProbeError):
    """A service's probe kept failing until the readiness deadline passed."""

    def __init__(
        self,
        service: str,
        probe_description: str,
        elapsed: float,
        attempts: int,
        last_error: str | None,
    ) -> None:
        who = service or "The service"
        message = (
            f"{who} did not become ready within {elapsed:.1f} s: {probe_description} failed "
            f"{_tries(attempts, last_error)}. Check the service's log for why it "
            "is not ready, or raise its readiness timeout if it is only slow to start."
        )
        super().__init__(
            message,
            service=service,
            probe_description=probe_description,
            elapsed=elapsed,
            attempts=attempts,
            last_error=last_error,
        )


class ProbeAborted(ProbeError):
    """Waiting for a service stopped early because it can no longer become ready."""

    def __init__(
        self,
        service: str,
        probe_description: str,
        elapsed: float,
        attempts: int,
        reason: str,
        last_error: str | None,
    ) -> None:
        self.reason = reason
        who = service or "The service"
        if attempts == 0:
            tried = f"{probe_description} was not tried"
        else:
            tried = f"{probe_description} had failed {_tries(attempts, last_error)}"
        message = (
            f"{who} will not become ready: {reason}. Stopped waiting after {elapsed:.1f} s; "
            f"{tried}. Check the service's log for why it stopped."
        )
        super().__init__(
            message,
            service=service,
            probe_description=probe_description,
            elapsed=elapsed,
            attempts=attempts,
            last_error=last_error,
        )


def _tries(attempts: int, last_error: str | None) -> str:
    """E.g. "3 times; last error: connection refused"."""
    times = "1 time" if attempts == 1 else f"{attempts} times"
    return times + (f"; last error: {last_error}" if last_error else "")
