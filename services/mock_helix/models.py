"""mock-helix's pydantic model: a fault plan (`POST /admin/faults`, `MockHelix__Faults`).

Imported by the routes on first use, never at start-up, so the service starts without
loading pydantic (see `tests/unit/services/test_lazy_start.py`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FaultPlan(BaseModel):
    """The body of `POST /admin/faults`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    status: Annotated[int, Field(ge=400, le=599)] | None = None
    latencyMs: Annotated[int, Field(ge=0, le=60_000)] | None = None
    failureRate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    count: Annotated[int, Field(ge=1, le=100_000)] | None = None
    ratelimitResetSeconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _coherent(self) -> FaultPlan:
        if self.status is None and not self.latencyMs:
            raise ValueError("set status (400-599) or latencyMs (> 0); this plan would do nothing")
        if self.ratelimitResetSeconds is not None and self.status != 429:
            raise ValueError("ratelimitResetSeconds only applies when status is 429")
        return self
