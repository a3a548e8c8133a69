"""EventSub webhook verification (CONTRACT.md, "EventSub verification") and the payloads we read.

Twitch signs `message id + timestamp + raw body` with HMAC-SHA256 and sends
`sha256=<lowercase hex>`; the body is verified byte for byte as received, never
re-serialised. The rules here are also mock-eventsub's relay rules, so both
accept and refuse exactly the same requests:

* `Twitch-Eventsub-Message-Id`, `-Timestamp` and `-Signature` are required;
  `-Type` is optional, because the MGM relay does not forward it. Without it, a
  body carrying `challenge` is a callback verification and anything else a
  notification.
* The timestamp is RFC 3339 (Twitch: up to nine fraction digits) or Unix epoch
  seconds as digits (13 digits are milliseconds, as the MGM scripts send).
* A message more than ten minutes from the server clock, either way, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..common.http import parse_json

HEADER_ID = "twitch-eventsub-message-id"
HEADER_TIMESTAMP = "twitch-eventsub-message-timestamp"
HEADER_SIGNATURE = "twitch-eventsub-message-signature"
HEADER_TYPE = "twitch-eventsub-message-type"
REQUIRED_HEADERS = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)

TYPE_VERIFICATION = "webhook_callback_verification"
TYPE_NOTIFICATION = "notification"
TYPE_REVOCATION = "revocation"
CHAT_MESSAGE = "channel.chat.message"

MAX_MESSAGE_AGE = timedelta(minutes=10)
# Message ids are stored as a primary key; PostgreSQL cannot index arbitrarily long text,
# so longer ids are remembered by their digest instead (still exact, still "any string").
MAX_STORED_ID_CHARS = 200
REFUSAL_STATUS = 403

# RFC 3339 as Twitch writes it: up to 9 fractional digits, `Z` or a numeric offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:?\d{2})",
    re.ASCII,
)
# Unix time as the MGM scripts send it: seconds, or milliseconds when 13 digits long.
_EPOCH = re.compile(r"\d{1,13}", re.ASCII)
_EPOCH_MILLIS_DIGITS = 13


class VerificationError(Exception):
    """A webhook failed verification; `code` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VerifiedMessage:
    """The headers of a webhook whose signature and age checked out.

    `message_type` is the lower-cased `Twitch-Eventsub-Message-Type`, or None when
    the sender did not send one (see `message_type_of`).
    """

    message_id: str
    message_type: str | None
    timestamp: datetime


def compute_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """Return the `sha256=<hex>` header value Twitch would send for this message."""
    mac = hmac.new(_utf8(secret), digestmod=hashlib.sha256)
    mac.update(_utf8(message_id))
    mac.update(_utf8(timestamp))
    mac.update(body)
    return "sha256=" + mac.hexdigest()


def signature_matches(secret: str, message_id: str, timestamp: str, body: bytes, sent: str) -> bool:
    """Compare the sent signature with the expected one in constant time."""
    expected = compute_signature(secret, message_id, timestamp, body)
    return hmac.compare_digest(_utf8(expected), _utf8(sent.strip().lower()))


def _utf8(text: str) -> bytes:
    # Header values reach us as latin-1 text and JSON may carry lone surrogates:
    # neither may crash the comparison, they simply cannot match.
    return text.encode("utf-8", errors="surrogatepass")


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 time (up to 9 fraction digits) or Unix seconds/milliseconds, in UTC."""
    text = value.strip()
    if _EPOCH.fullmatch(text):
        seconds = int(text) / 1000 if len(text) == _EPOCH_MILLIS_DIGITS else int(text)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (ValueError, OverflowError, OSError) as exc:  # beyond year 9999
            raise ValueError(f"{value!r} is out of the range of dates") from exc
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{value!r} is neither an RFC 3339 time nor Unix seconds")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    offset = timedelta(0)
    if zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=UTC
        )
        return moment - offset
    except (ValueError, OverflowError) as exc:  # month 13, or year 1 minus an offset
        raise ValueError(f"{value!r} is not a valid date and time") from exc


def verify_message(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime
) -> VerifiedMessage:
    """Check headers, signature and age of one webhook; raise `VerificationError` otherwise.

    The signature is checked before the timestamp is parsed, so an unsigned
    request learns nothing about the accepted formats.
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
            "invalid_signature",
            "The EventSub signature does not match HMAC-SHA256(secret, id + timestamp + body).",
        )
    try:
        timestamp = parse_timestamp(raw_timestamp)
    except ValueError as exc:
        raise VerificationError(
            "invalid_timestamp",
            "The EventSub message timestamp is neither an RFC 3339 time nor Unix epoch seconds.",
        ) from exc
    if abs(now - timestamp) > MAX_MESSAGE_AGE:
        raise VerificationError(
            "stale_message",
            "The EventSub message timestamp is more than 10 minutes from the server's clock.",
        )
    sent_type = headers.get(HEADER_TYPE, "").strip().lower()
    return VerifiedMessage(message_id, sent_type or None, timestamp)


def message_type_of(message: VerifiedMessage, data: Any) -> str:
    """The message type: the header's, else inferred (`challenge` in the body → verification)."""
    if message.message_type is not None:
        return message.message_type
    if isinstance(data, dict) and "challenge" in data:
        return TYPE_VERIFICATION
    return TYPE_NOTIFICATION


def stored_message_id(message_id: str) -> str:
    """The key a message id is remembered by: itself, or a digest when it is too long to index."""
    if len(message_id) <= MAX_STORED_ID_CHARS:
        return message_id
    return "sha256:" + hashlib.sha256(_utf8(message_id)).hexdigest()


def load_json(raw: bytes) -> Any:
    """Parse a body as strict JSON (bounded depth, finite numbers), else answer 400.

    Lone surrogates pass here: the fields that are read check them and name the field.
    """
    return parse_json(raw, allow_surrogates=True)
