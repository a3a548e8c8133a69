"""The probe library: HTTP, TCP, PostgreSQL and log-line probes, and one retry policy.

It stands alone: it needs tenacity (httpx for an https:// `HttpProbe`, psycopg for
`PostgresProbe`, testcontainers for `ProbeWaitStrategy`) and nothing from envkit.

Build a probe for a service, then `wait_until_ready(probe, RetryPolicy(timeout=30),
service="backend", abort=...)`: it returns a `ReadyResult` or raises `ProbeTimeout` /
`ProbeAborted`. Errors form their own tree, drawn in `healthchecks._errors`:

    HealthcheckError
    ├── ProbeFailed     a probe's "not ready yet"; never escapes `wait_until_ready`
    └── ProbeError      waiting failed, with the evidence
        ├── ProbeTimeout
        └── ProbeAborted

With testcontainers, a probe is a wait strategy: `DockerContainer(image)
.with_exposed_ports(8080).waiting_for(ProbeWaitStrategy.http(8080, "/health",
RetryPolicy(timeout=30)))`, or `ProbeWaitStrategy(port, lambda host, port: probe)`
for any probe built from the container's host and mapped port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    HealthcheckError,
    ProbeAborted,
    ProbeError,
    ProbeFailed,
    ProbeTimeout,
)
from ._probes import HttpProbe, LogLineProbe, PostgresProbe, Probe, TcpProbe
from ._retry import ReadyResult, RetryPolicy, wait_until_ready

if TYPE_CHECKING:
    from ._wait_strategy import ProbeWaitStrategy

__all__ = [
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


def __getattr__(name: str) -> Any:
    # testcontainers (and docker with it) is imported only when the adapter is asked for.
    if name == "ProbeWaitStrategy":
        from ._wait_strategy import ProbeWaitStrategy

        return ProbeWaitStrategy
    raise AttributeError(f"module 'healthchecks' has no attribute {name!r}")
