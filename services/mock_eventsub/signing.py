"""EventSub header names and Twitch's timestamp format for the messages the mock signs.

Signing and verification themselves are the reference backend's
(`services.backend.eventsub`), so the relay accepts and refuses exactly what
the backend does. Twitch's timestamps are RFC 3339 in UTC with nanosecond
precision, e.g. `2023-11-06T18:11:47.492253549Z`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

HEADER_ID = "Twitch-Eventsub-Message-Id"
HEADER_TIMESTAMP = "Twitch-Eventsub-Message-Timestamp"
HEADER_SIGNATURE = "Twitch-Eventsub-Message-Signature"
HEADER_TYPE = "Twitch-Eventsub-Message-Type"
HEADER_RETRY = "Twitch-Eventsub-Message-Retry"
HEADER_SUB_TYPE = "Twitch-Eventsub-Subscription-Type"
HEADER_SUB_VERSION = "Twitch-Eventsub-Subscription-Version"


def twitch_timestamp(now_ns: int | None = None) -> str:
    """Format a time (default: now) as Twitch does: RFC 3339 UTC, nine fraction digits, `Z`."""
    ns = time.time_ns() if now_ns is None else now_ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    whole = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{fraction:09d}Z"
