"""The probe library: HTTP, TCP, PostgreSQL and log-line probes, and one retry policy.

Build a probe for a service, then `wait_until_ready(probe, RetryPolicy(timeout=30),
service="backend", abort=...)`: it returns a `ReadyResult` or raises `ProbeTimeout` /
`ProbeAborted` (both `ProbeError`, an `EnvkitError`). `ProbeFailed` is the probes'
internal "not ready yet" signal and never escapes `wait_until_ready`.
"""

from __future__ import annotations

from envkit.errors import ProbeAborted, ProbeError, ProbeTimeout
from healthchecks._errors import ProbeFailed
from healthchecks._probes import HttpProbe, LogLineProbe, PostgresProbe, Probe, TcpProbe
from healthchecks._retry import ReadyResult, RetryPolicy, wait_until_ready

__all__ = [
    "HttpProbe",
    "LogLineProbe",
    "PostgresProbe",
    "Probe",
    "ProbeAborted",
    "ProbeError",
    "ProbeFailed",
    "ProbeTimeout",
    "ReadyResult",
    "RetryPolicy",
    "TcpProbe",
    "wait_until_ready",
]
