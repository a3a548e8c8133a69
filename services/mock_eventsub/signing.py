"""EventSub webhook signing and verification, as Twitch documents it.

The signature header is `sha256=` followed by the lowercase hex HMAC-SHA256 of
message id + timestamp + raw body, keyed with the subscription's secret. The
timestamp is RFC3339 in UTC with nanosecond precision, e.g.
`2023-11-06T18:11:47.492253549Z`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HEADER_ID = "Twitch-Eventsub-Message-Id"
HEADER_TIMESTAMP = "Twitch-Eventsub-Message-Timestamp"
HEADER_SIGNATURE = "Twitch-Eventsub-Message-Signature"
HEADER_TYPE = "Twitch-Eventsub-Message-Type"
HEADER_RETRY = "Twitch-Eventsub-Message-Retry"
HEADER_SUB_TYPE = "Twitch-Eventsub-Subscription-Type"
HEADER_SUB_VERSION = "Twitch-Eventsub-Subscription-Version"

# Twitch tells receivers to drop messages older than this; the relay also refuses the future.
MAX_MESSAGE_AGE = timedelta(minutes=10)


def sign(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """Return the `sha256=<hex>` signature Twitch would send for this message."""
    message = message_id.encode() + timestamp.encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def twitch_timestamp(now_ns: int | None = None) -> str:
    """Format a time (default: now) as Twitch does: RFC3339 UTC, nine fraction digits, `Z`."""
    ns = time.time_ns() if now_ns is None else now_ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    whole = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{fraction:09d}Z"


def parse_timestamp(value: str) -> datetime | None:
    """Parse an RFC3339 timestamp (any fraction length); None when it is not one."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking an incoming message: ok, or the reason it was refused."""

    ok: bool
    code: str = ""
    reason: str = ""


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> Verdict:
    """Check the signature and age of an incoming EventSub request."""
    message_id = headers.get(HEADER_ID, "")
    timestamp = headers.get(HEADER_TIMESTAMP, "")
    signature = headers.get(HEADER_SIGNATURE, "")
    missing = [
        name
        for name, value in (
            (HEADER_ID, message_id),
            (HEADER_TIMESTAMP, timestamp),
            (HEADER_SIGNATURE, signature),
        )
        if not value
    ]
    if missing:
        return Verdict(False, "missing_headers", f"Missing header(s): {', '.join(missing)}.")
    expected = sign(secret, message_id, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return Verdict(
            False,
            "bad_signature",
            "The signature does not match HMAC-SHA256(secret, id + timestamp + body).",
        )
    sent_at = parse_timestamp(timestamp)
    if sent_at is None:
        return Verdict(False, "bad_timestamp", f"The timestamp {timestamp!r} is not RFC3339.")
    skew = abs((now or datetime.now(UTC)) - sent_at)
    if skew > MAX_MESSAGE_AGE:
        return Verdict(
            False,
            "stale_message",
            f"The message timestamp is {int(skew.total_seconds())} s from this service's clock; "
            "more than 10 minutes either way is refused.",
        )
    return Verdict(True)
