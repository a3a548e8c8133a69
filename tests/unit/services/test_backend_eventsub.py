"""EventSub signature and timestamp checks, including Twitch's published signature example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.backend.eventsub import (
    ChatMessageEvent,
    VerificationError,
    compute_signature,
    parse_timestamp,
    signature_matches,
    verify_message,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "twitch"
EXAMPLE_ID = "ae2ff348-e102-16be-a3eb-6830c1bf38d2"
EXAMPLE_TIMESTAMP = "2021-02-19T23:47:00.8091512Z"
EXAMPLE_SIGNATURE = "sha256=d10f5bd9474b7ac7bd7105eb79c2d52768b4d0cd2a135982c3bf5a1d59a78823"


def _example_body() -> bytes:
    return (EXAMPLES / "signature_vector_channel_follow.json").read_bytes()


def test_signature_matches_twitchs_published_example() -> None:
    body = _example_body()
    assert compute_signature("secretabcd", EXAMPLE_ID, EXAMPLE_TIMESTAMP, body) == EXAMPLE_SIGNATURE
    assert signature_matches("secretabcd", EXAMPLE_ID, EXAMPLE_TIMESTAMP, body, EXAMPLE_SIGNATURE)


def test_published_example_verifies_at_its_own_time() -> None:
    headers = {
        "twitch-eventsub-message-id": EXAMPLE_ID,
        "twitch-eventsub-message-timestamp": EXAMPLE_TIMESTAMP,
        "twitch-eventsub-message-signature": EXAMPLE_SIGNATURE,
        "twitch-eventsub-message-type": "notification",
    }
    now = datetime(2021, 2, 19, 23, 50, tzinfo=UTC)
    verified = verify_message("secretabcd", headers, _example_body(), now)
    assert verified.message_id == EXAMPLE_ID
    assert verified.message_type == "notification"
    assert verified.timestamp == datetime(2021, 2, 19, 23, 47, 0, 809151, tzinfo=UTC)


@pytest.mark.parametrize(
    ("secret", "message_id", "timestamp", "body"),
    [
        ("secretabcd!", EXAMPLE_ID, EXAMPLE_TIMESTAMP, None),
        ("secretabcd", EXAMPLE_ID.upper(), EXAMPLE_TIMESTAMP, None),
        ("secretabcd", EXAMPLE_ID, "2021-02-19T23:47:00.8091513Z", None),
        ("secretabcd", EXAMPLE_ID, EXAMPLE_TIMESTAMP, b" "),
    ],
)
def test_any_change_breaks_the_signature(
    secret: str, message_id: str, timestamp: str, body: bytes | None
) -> None:
    payload = _example_body() + (body or b"")
    assert not signature_matches(secret, message_id, timestamp, payload, EXAMPLE_SIGNATURE)


def test_signature_header_case_and_garbage() -> None:
    body = _example_body()
    assert signature_matches(
        "secretabcd", EXAMPLE_ID, EXAMPLE_TIMESTAMP, body, EXAMPLE_SIGNATURE.upper()
    )
    for sent in ("", "sha256=", "d10f5bd9", "sha1=" + EXAMPLE_SIGNATURE[7:], "ünïcode"):
        assert not signature_matches("secretabcd", EXAMPLE_ID, EXAMPLE_TIMESTAMP, body, sent)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-02-19T23:47:00.8091512Z", datetime(2021, 2, 19, 23, 47, 0, 809151, tzinfo=UTC)),
        ("2023-11-06T18:11:47.492253549Z", datetime(2023, 11, 6, 18, 11, 47, 492253, tzinfo=UTC)),
        ("2023-11-06T18:11:47Z", datetime(2023, 11, 6, 18, 11, 47, tzinfo=UTC)),
        ("2023-11-06t18:11:47.1z", datetime(2023, 11, 6, 18, 11, 47, 100000, tzinfo=UTC)),
        ("2023-11-06T20:11:47.5+02:00", datetime(2023, 11, 6, 18, 11, 47, 500000, tzinfo=UTC)),
        ("2023-11-06T16:41:47-0130", datetime(2023, 11, 6, 18, 11, 47, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_handles_twitch_precision_and_offsets(
    text: str, expected: datetime
) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2023-11-06T18:11:47",
        "2023-11-06T18:11:47.1234567890Z",
        "2023-13-06T18:11:47Z",
        "2023-11-06T25:11:47Z",
        "1700000000",
    ],
)
def test_parse_timestamp_rejects_non_rfc3339(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def _signed(body: bytes, timestamp: str, secret: str = "s") -> dict[str, str]:
    return {
        "twitch-eventsub-message-id": "id-1",
        "twitch-eventsub-message-timestamp": timestamp,
        "twitch-eventsub-message-signature": compute_signature(secret, "id-1", timestamp, body),
        "twitch-eventsub-message-type": "notification",
    }


NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (timedelta(0), True),
        (timedelta(minutes=-9, seconds=-59), True),
        (timedelta(minutes=-10, seconds=-1), False),
        (timedelta(hours=-5), False),
        (timedelta(minutes=9), True),
        (timedelta(minutes=11), False),
    ],
)
def test_messages_older_than_ten_minutes_are_refused(offset: timedelta, ok: bool) -> None:
    stamp = (NOW + offset).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    headers = _signed(b"{}", stamp)
    if ok:
        verify_message("s", headers, b"{}", NOW)
    else:
        with pytest.raises(VerificationError) as caught:
            verify_message("s", headers, b"{}", NOW)
        assert caught.value.code == "stale_message"


def test_missing_headers_are_named() -> None:
    headers = _signed(b"{}", "2024-05-01T12:00:00Z")
    del headers["twitch-eventsub-message-signature"]
    headers["twitch-eventsub-message-type"] = "  "
    with pytest.raises(VerificationError) as caught:
        verify_message("s", headers, b"{}", NOW)
    assert caught.value.code == "missing_eventsub_headers"
    assert "twitch-eventsub-message-signature" in caught.value.message
    assert "twitch-eventsub-message-type" in caught.value.message


def test_no_secret_configured_refuses_everything() -> None:
    headers = _signed(b"{}", "2024-05-01T12:00:00Z", secret="")
    with pytest.raises(VerificationError) as caught:
        verify_message("", headers, b"{}", NOW)
    assert caught.value.code == "eventsub_not_configured"


def test_bad_signature_is_checked_before_the_timestamp() -> None:
    headers = _signed(b"{}", "garbage")
    headers["twitch-eventsub-message-signature"] = "sha256=00"
    with pytest.raises(VerificationError) as caught:
        verify_message("s", headers, b"{}", NOW)
    assert caught.value.code == "invalid_signature"


def test_chat_event_model_reads_a_twitch_shaped_example() -> None:
    import json

    body = json.loads((EXAMPLES / "channel_chat_message.json").read_bytes())
    event = ChatMessageEvent.model_validate(body["event"])
    assert event.chatter_user_id == "5520117"
    assert event.display_name == "goldfan"
    assert event.message.text == "hello there"
    assert event.badge_set_ids == ["vip", "subscriber"]
