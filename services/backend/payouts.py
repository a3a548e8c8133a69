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


OPEN_STATUSES = frozenset({PayoutStatus.PENDING, PayoutStatus.IN_PROGRESS})

ALLOWED_TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PENDING: frozenset(
        {PayoutStatus.IN_PROGRESS, PayoutStatus.CANCELLED, PayoutStatus.FAILED}
    ),
    PayoutStatus.IN_PROGRESS: frozenset(
        {PayoutStatus.SENT, PayoutStatus.CANCELLED, PayoutStatus.FAILED, PayoutStatus.PENDING}
    ),
}


class IllegalTransitionError(Exception):
    """The state machine forbids moving a payout from `current` to `target`."""

    def __init__(self, current: PayoutStatus, target: PayoutStatus) -> None:
        super().__init__(f"A payout cannot move from {current} to {target}.")
        self.current = current
        self.target = target


def parse_status(value: str) -> PayoutStatus | None:
    """Return the state named by `value` (case-insensitive, `In_Progress`/`in progress` too)."""
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
    character_name: str
    amount: int
    status: PayoutStatus
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The API shape: `{id, twitchUserId, characterName, amount, status, …AtUtc}`."""
        return {
            "id": str(self.id),
            "twitchUserId": self.twitch_user_id,
            "characterName": self.character_name,
            "amount": self.amount,
            "status": self.status.value,
            "createdAtUtc": format_utc(self.created_at),
            "updatedAtUtc": format_utc(self.updated_at),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Payout:
        """Build a payout from a database row with the column names of the `payouts` table."""
        return cls(
            id=row["id"],
            twitch_user_id=row["twitch_user_id"],
            character_name=row["character_name"],
            amount=row["amount"],
            status=PayoutStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def announcement_text(payout: Payout) -> str:
    """The chat line announcing a Sent payout; it names the character."""
    return f"Payout sent: {payout.amount} gold to {payout.character_name}!"
