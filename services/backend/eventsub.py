"""EventSub webhook verification (HMAC signature, message age) and the payload shapes we read.

Twitch signs `message id + timestamp + raw body` with HMAC-SHA256 and sends
`sha256=<lowercase hex>`. The body must be verified byte for byte as received,
never re-serialised.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

HEADER_ID = "twitch-eventsub-message-id"
HEADER_TIMESTAMP = "twitch-eventsub-message-timestamp"
HEADER_SIGNATURE = "twitch-eventsub-message-signature"
HEADER_TYPE = "twitch-eventsub-message-type"
REQUIRED_HEADERS = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE, HEADER_TYPE)

TYPE_VERIFICATION = "webhook_callback_verification"
TYPE_NOTIFICATION = "notification"
TYPE_REVOCATION = "revocation"
CHAT_MESSAGE = "channel.chat.message"

MAX_MESSAGE_AGE = timedelta(minutes=10)

# RFC 3339 as Twitch writes it: up to 9 fractional digits, `Z` or a numeric offset.
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:?\d{2})$"
)


class VerificationError(Exception):
    """A webhook failed verification; `code` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VerifiedMessage:
    """The headers of a webhook whose signature and age checked out."""

    message_id: str
    message_type: str
    timestamp: datetime


def compute_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """Return the `sha256=<hex>` header value Twitch would send for this message."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    mac.update(message_id.encode("utf-8"))
    mac.update(timestamp.encode("utf-8"))
    mac.update(body)
    return "sha256=" + mac.hexdigest()


def signature_matches(secret: str, message_id: str, timestamp: str, body: bytes, sent: str) -> bool:
    """Compare the sent signature with the expected one in constant time."""
    expected = compute_signature(secret, message_id, timestamp, body)
    return hmac.compare_digest(expected.encode("utf-8"), sent.strip().lower().encode("utf-8"))


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with up to 9 fractional digits into an aware UTC datetime."""
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=UTC
    )
    return moment - offset


def verify_message(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime
) -> VerifiedMessage:
    """Check headers, signature and age of one webhook; raise `VerificationError` otherwise.

    Messages more than ten minutes older (or newer, which only a forged or
    badly skewed sender produces) than `now` are refused as replays.
    """
    missing = [name for name in REQUIRED_HEADERS if not headers.get(name, "").strip()]
    if missing:
        raise VerificationError(
            "missing_eventsub_headers",
            "The request lacks the EventSub header(s) " + ", ".join(missing) + ".",
        )
    if not secret:
        raise VerificationError(
            "eventsub_not_configured",
            "Twitch__EventSubSecret is not set, so no webhook can be verified.",
        )
    message_id = headers[HEADER_ID]
    raw_timestamp = headers[HEADER_TIMESTAMP]
    if not signature_matches(secret, message_id, raw_timestamp, body, headers[HEADER_SIGNATURE]):
        raise VerificationError(
            "invalid_signature", "The EventSub signature does not match the message."
        )
    try:
        timestamp = parse_timestamp(raw_timestamp)
    except ValueError as exc:
        raise VerificationError(
            "invalid_timestamp", "The EventSub message timestamp is not an RFC 3339 time."
        ) from exc
    if abs(now - timestamp) > MAX_MESSAGE_AGE:
        raise VerificationError(
            "stale_message",
            "The EventSub message timestamp is more than 10 minutes from the server's clock.",
        )
    return VerifiedMessage(message_id, headers[HEADER_TYPE].strip().lower(), timestamp)


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
    """The fields of a `channel.chat.message` event that enrollment uses."""

    chatter_user_id: str
    chatter_user_login: str = ""
    chatter_user_name: str = ""
    message: ChatText
    badges: list[Badge] | None = None

    @property
    def display_name(self) -> str:
        """The chatter's display name, falling back to the login and then the id."""
        return self.chatter_user_name or self.chatter_user_login or self.chatter_user_id

    @property
    def badge_set_ids(self) -> list[str]:
        """The badge set ids the chatter carries."""
        return [badge.set_id for badge in self.badges or []]
