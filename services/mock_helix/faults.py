"""Fault injection for `/helix/...`: error statuses, latency and a failure rate.

A plan covers the next `count` Helix requests (every request until cleared when
`count` is absent). Each covered request is faulted with probability
`failureRate` (default 1): a faulted request waits `latencyMs`, then answers
`status` if one is set, or is served normally (just late) if not. The random
draw comes from a `random.Random` seeded with the plan's `seed`, else
`MockHelix__Seed`, so a failure-rate scenario repeats exactly.

`MockHelix__Faults` (a plan as JSON) is the standing plan: in force from the
start and again after every `POST /reset`, so a fault set through the service's
environment (an override) holds for a whole scenario run that resets journals.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import FaultPlan

DEFAULT_RATELIMIT_RESET_SECONDS = 1


STANDING_PLAN = "MockHelix__Faults"


def standing_plan(env: Mapping[str, str]) -> FaultPlan | None:
    """The plan `MockHelix__Faults` sets (JSON, as `POST /admin/faults` takes), or None."""
    raw = env.get(STANDING_PLAN, "").strip()
    if not raw:
        return None
    from pydantic import ValidationError  # only a service given a standing plan loads pydantic

    from .models import FaultPlan

    try:
        return FaultPlan.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors())
        raise ValueError(
            f"{STANDING_PLAN} is not a fault plan ({problems}); use the body of "
            'POST /admin/faults, e.g. {"status": 503}.'
        ) from None


@dataclass(frozen=True)
class Fault:
    """What to do to one request: wait, then perhaps answer an error status."""

    status: int | None
    latency_ms: int
    ratelimit_reset_seconds: int


class FaultInjector:
    """Holds the active plan and decides, request by request, whether to fault."""

    def __init__(self, default_seed: int | None = None, standing: FaultPlan | None = None) -> None:
        self._default_seed = default_seed
        self._standing = standing
        self._plan: FaultPlan | None = None
        self._rng = random.Random(default_seed)
        self._remaining: int | None = None
        self._seen = 0
        self._injected = 0
        self.reset()

    def reset(self) -> bool:
        """Clear the active plan and put the standing one back; return whether one was active."""
        had_plan = self.clear()
        if self._standing is not None:
            self.set(self._standing)
        return had_plan

    def set(self, plan: FaultPlan) -> None:
        """Replace the active plan (and restart its random sequence)."""
        self._plan = plan
        self._rng = random.Random(plan.seed if plan.seed is not None else self._default_seed)
        self._remaining = plan.count
        self._seen = 0
        self._injected = 0

    def clear(self) -> bool:
        """Remove the active plan; return whether there was one."""
        had_plan = self._plan is not None
        self._plan = None
        self._remaining = None
        return had_plan

    def describe(self) -> dict[str, Any]:
        """The active plan and its progress, for `GET /admin/faults`."""
        if self._plan is None:
            return {"active": False, "plan": None}
        return {
            "active": self._remaining is None or self._remaining > 0,
            "plan": self._plan.model_dump(exclude_none=True),
            "remaining": self._remaining,
            "seen": self._seen,
            "injected": self._injected,
        }

    def draw(self) -> Fault | None:
        """Decide the fault for the next Helix request, or None to serve it normally."""
        plan = self._plan
        if plan is None or self._remaining == 0:
            return None
        if self._remaining is not None:
            self._remaining -= 1
        self._seen += 1
        if self._rng.random() >= plan.failureRate:
            return None
        self._injected += 1
        return Fault(
            status=plan.status,
            latency_ms=plan.latencyMs or 0,
            ratelimit_reset_seconds=(
                DEFAULT_RATELIMIT_RESET_SECONDS
                if plan.ratelimitResetSeconds is None
                else plan.ratelimitResetSeconds
            ),
        )
