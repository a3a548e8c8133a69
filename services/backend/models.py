"""The backend's pydantic models: EventSub bodies it reads and its JSON request bodies.

Imported by the routes on first use, never at start-up: the backend answers `/health`
and `/api/version` without loading pydantic (see `tests/unit/services/test_lazy_start.py`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Subscription(_Lenient):
    """The part of `subscription` we read."""

    type: str
    status: str = ""


class Envelope(_Lenient):
    """A notification or revocation body: the subscription and, for notifications, the event."""

    subscription: Subscription
    event: dict[str, Any] | None = None


class Challenge(_Lenient):
    """A `webhook_callback_verification` body."""

    challenge: str


class Badge(_Lenient):
    """One chat badge; only `set_id` matters for enrollment."""

    set_id: str


class ChatText(_Lenient):
    """The `message` object of a chat event."""

    text: str


class ChatMessageEvent(_Lenient):
    """The fields of a `channel.chat.message` event that enrollment uses.

    The MGM Tier A sender sends only `message_id`, `chatter_user_id`,
    `chatter_user_login`, `message.text` and `badges[].set_id`; nothing else is required.
    """

    message_id: str = ""
    chatter_user_id: str = ""
    chatter_user_login: str = ""
    chatter_user_name: str = ""
    message: ChatText | None = None
    badges: list[Badge] | None = None

    @property
    def display_name(self) -> str:
        """The display name: the login (what the real backend stores), else the name or id."""
        return self.chatter_user_login or self.chatter_user_name or self.chatter_user_id

    @property
    def text(self) -> str:
        """The chat text, empty when the event carries none."""
        return self.message.text if self.message is not None else ""

    @property
    def badge_set_ids(self) -> list[str]:
        """The badge set ids the chatter carries."""
        return [badge.set_id for badge in self.badges or []]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class ConfirmBody(_Body):
    """`POST /api/payouts/{id}/confirm-acceptance` body."""

    characterName: str


class StatusBody(_Body):
    """`PATCH /api/payouts/{id}/status` body: a state name or its integer 0-5."""

    status: str | int


class HarnessBody(_Body):
    """`POST /api/e2e/prepare-pending-payout` body."""

    twitchUserId: str
