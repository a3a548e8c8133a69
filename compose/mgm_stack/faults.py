"""The MGM stack's runtime fault kinds: mock-helix's fault plans (`POST /admin/faults`).

Used as `--fault STEP:helix-status:status=500` (or `run_isolated(..., faults=[Fault(...)])`):
just before STEP runs, mock-helix answers Helix requests with the status (`count=` of them,
all when absent; each with probability `rate=`, drawn from the fault's seed), or, for
`helix-latency`, answers them `ms=` milliseconds late. A fault set before
`reset-journals` would be cleared by its `POST /reset`, so name a later step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envkit.errors import FaultError
from envkit.scenario.faults import FaultKind, FaultTarget

HELIX = "mock-helix"


def _plan(args: Mapping[str, Any], seed: int) -> dict[str, Any]:
    rate = args.get("rate", 1.0)
    count = args.get("count")
    if not (isinstance(rate, int | float) and 0 <= rate <= 1):
        raise FaultError(f"rate={rate!r} is not a number from 0 to 1.")
    if count is not None and not (isinstance(count, int) and count >= 1):
        raise FaultError(f"count={count!r} is not a whole number of at least 1.")
    plan: dict[str, Any] = {"failureRate": float(rate), "seed": seed}
    return plan if count is None else {**plan, "count": count}


def _status(target: FaultTarget, args: Mapping[str, Any], seed: int) -> None:
    status = args["status"]
    if not (isinstance(status, int) and 400 <= status <= 599):
        raise FaultError(f"status={status!r} is not an HTTP error status from 400 to 599.")
    target.post_json(str(args.get("service", HELIX)), "/admin/faults",
                     {**_plan(args, seed), "status": status})  # fmt: skip


def _latency(target: FaultTarget, args: Mapping[str, Any], seed: int) -> None:
    ms = args["ms"]
    if not (isinstance(ms, int) and 1 <= ms <= 60_000):
        raise FaultError(f"ms={ms!r} is not a whole number of milliseconds from 1 to 60000.")
    target.post_json(str(args.get("service", HELIX)), "/admin/faults",
                     {**_plan(args, seed), "latencyMs": ms})  # fmt: skip


_TAKES = frozenset({"count", "rate", "service"})
FAULTS = {
    "helix-status": FaultKind(_status, _TAKES | {"status"}, frozenset({"status"})),
    "helix-latency": FaultKind(_latency, _TAKES | {"ms"}, frozenset({"ms"})),
}
