"""synthetic-desktop's pydantic model: the body of `POST /run-sequence`.

Imported by the routes on first use, never at start-up, so the service starts without
loading pydantic (see `tests/unit/services/test_lazy_start.py`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator


class RunRequest(BaseModel):
    """The body of `POST /run-sequence`."""

    # Extra fields are ignored: MGM's orchestrator may send more than these two.
    model_config = ConfigDict(strict=True, extra="ignore")

    # The backend's ids may be numbers or strings; either way they become one path segment.
    payoutId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    characterName: Annotated[str, StringConstraints(min_length=1, max_length=64)]

    @field_validator("payoutId", mode="before")
    @classmethod
    def _number_to_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value
