"""mock-eventsub's pydantic models: the bodies of `POST /emit` and `POST /emit-challenge`.

Imported by the routes on first use, never at start-up, so the service starts without
loading pydantic (see `tests/unit/services/test_lazy_start.py`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .payloads import CHAT_MESSAGE

# Twitch ids are digits, but the MGM scripts use ids such as `e2e-viewer-1`: any string will do.
AnyId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# These travel as HTTP header values, which carry visible ASCII only.
HeaderText = Annotated[str, StringConstraints(pattern=r"^[!-~](?:[ -~]*[!-~])?$", max_length=200)]
SubscriptionType = Annotated[
    str, StringConstraints(pattern=r"^[a-z_]+(\.[a-z_]+)+$", max_length=100)
]


class Badge(BaseModel):
    """One chat badge as Twitch sends it in `event.badges`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    set_id: ShortText
    id: Annotated[str, StringConstraints(max_length=100)]
    info: Annotated[str, StringConstraints(max_length=100)] = ""


DEFAULT_BADGES = (Badge(set_id="subscriber", id="0", info="1"),)


class EmitRequest(BaseModel):
    """The body of `POST /emit`; every field is optional."""

    model_config = ConfigDict(strict=True, extra="forbid")

    type: SubscriptionType = CHAT_MESSAGE
    text: Annotated[str, StringConstraints(max_length=500)] = "Hi chat"
    chatterUserId: AnyId = "4145994"
    chatterLogin: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    chatterName: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    # None means "the default subscriber badge"; an explicit [] means "no badges at all".
    badges: Annotated[list[Badge], Field(max_length=20)] | None = None
    broadcasterUserId: AnyId | None = None
    messageId: HeaderText | None = None
    timestamp: HeaderText | None = None
    signWith: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    eventOverrides: dict[str, Any] | None = None


class ChallengeRequest(BaseModel):
    """The body of `POST /emit-challenge`; every field is optional."""

    model_config = ConfigDict(strict=True, extra="forbid")

    type: SubscriptionType = CHAT_MESSAGE
    challenge: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    broadcasterUserId: AnyId | None = None
    messageId: HeaderText | None = None
    timestamp: HeaderText | None = None
    signWith: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
