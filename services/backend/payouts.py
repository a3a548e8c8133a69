"""Payouts as data: the states, the allowed transitions, and the JSON a payout is shown as."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class PayoutStatus(StrEnum):
    """The life of a payout; the value is how it is stored and shown."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    SENT = "Sent"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"

    @property
    def number(self) -> int:
        """The state's integer (0-5), as the real backend's enum numbers it."""
        return _NUMBERED.index(self)


_NUMBERED = tuple(PayoutStatus)  # declaration order is the real backend's enum order

OPEN_STATUSES = frozenset({PayoutStatus.PENDING, PayoutStatus.IN_PROGRESS})

ALLOWED_TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PENDING: frozenset(
        {PayoutStatus.IN_PROGRESS, PayoutStatus.CANCELLED, PayoutStatus.FAILED}
    ),
    PayoutStatus.IN_PROGRESS: frozenset(
        {PayoutStatus.SENT, PayoutStatus.CANCELLED, PayoutStatus.FAILED, PayoutStatus.PENDING}
    ),
}

ANNOUNCEMENT = "Награда отправлена персонажу {character} на почту, проверяй ящик!"


class IllegalTransitionError(Exception):
    """The state machine forbids moving a payout from `current` to `target`."""

    def __init__(self, current: PayoutStatus, target: PayoutStatus) -> None:
        super().__init__(f"A payout cannot move from {current} to {target}.")
        self.current = current
        self.target = target


def parse_status(value: object) -> PayoutStatus | None:
    """The state named by `value`: a name in any case (`In_Progress` too) or its integer 0-5."""
    if isinstance(value, bool):  # JSON true/false are not state numbers
        return None
    if isinstance(value, int):
        return _NUMBERED[value] if 0 <= value < len(_NUMBERED) else None
    if not isinstance(value, str):
        return None
    wanted = value.strip().replace("_", "").replace(" ", "").replace("-", "").lower()
    for status in PayoutStatus:
        if status.value.lower() == wanted:
            return status
    return None


def can_transition(current: PayoutStatus, target: PayoutStatus) -> bool:
    """True when the state machine allows `current` → `target`."""
    return target in ALLOWED_TRANSITIONS.get(current, frozenset())


def check_transition(current: PayoutStatus, target: PayoutStatus) -> None:
    """Raise `IllegalTransitionError` unless `current` → `target` is allowed."""
    if not can_transition(current, target):
        raise IllegalTransitionError(current, target)


def parse_payout_id(value: str) -> uuid.UUID | None:
    """Return the UUID in a path segment, or None when it is not one."""
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def format_utc(moment: datetime) -> str:
    """Render an aware datetime as ISO 8601 in UTC with a `Z` suffix."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Payout:
    """One stored payout."""

    id: uuid.UUID
    twitch_user_id: str
    twitch_display_name: str
    character_name: str
    gold_amount: int
    enrollment_request_id: uuid.UUID | None
    status: PayoutStatus
    created_at: datetime
    announced: bool = False

    def to_json(self) -> dict[str, Any]:
        """The API shape, with the real backend's field names."""
        return {
            "id": str(self.id),
            "twitchUserId": self.twitch_user_id,
            "twitchDisplayName": self.twitch_display_name,
            "characterName": self.character_name,
            "goldAmount": self.gold_amount,
            "enrollmentRequestId": (
                str(self.enrollment_request_id) if self.enrollment_request_id else None
            ),
            "status": self.status.value,
            "createdAt": format_utc(self.created_at),
            "isRewardSentAnnouncedToChat": self.announced,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Payout:
        """Build a payout from a database row with the column names of the `payouts` table."""
        return cls(
            id=row["id"],
            twitch_user_id=row["twitch_user_id"],
            twitch_display_name=row["twitch_display_name"],
            character_name=row["character_name"],
            gold_amount=row["amount"],
            enrollment_request_id=row["enrollment_request_id"],
            status=PayoutStatus(row["status"]),
            created_at=row["created_at"],
            announced=row["is_reward_sent_announced_to_chat"],
        )


def announcement_text(payout: Payout) -> str:
    """The chat line announcing a Sent payout, exactly as the real backend words it."""
    return ANNOUNCEMENT.format(character=payout.character_name)
