"""mock-jwt's pydantic model: the query string of `GET /token`.

Imported by the routes on first use, never at start-up, so the service starts without
loading pydantic (see `tests/unit/services/test_lazy_start.py`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .claims import Role

DEFAULT_TTL_SECONDS = 7200
MAX_TTL_SECONDS = 86_400


class TokenQuery(BaseModel):
    """The query string of `GET /token`; parameters it does not know are ignored."""

    model_config = ConfigDict(extra="ignore")

    userId: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,100}$")]
    displayName: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    role: Role = "viewer"
    ttl: Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)] = DEFAULT_TTL_SECONDS
