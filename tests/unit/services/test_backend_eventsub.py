"""EventSub signature and timestamp checks, Twitch's published example and the MGM sender's form."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envkit.services.backend.eventsub import (
    MAX_STORED_ID_CHARS,
    TYPE_NOTIFICATION,
    TYPE_VERIFICATION,
    VerificationError,
    VerifiedMessage,
    compute_signature,
    load_json,
    message_type_of,
    parse_timestamp,
    signature_matches,
    stored_message_id,
    verify_message,
)
from envkit.services.backend.models import ChatMessageEvent
from envkit.services.common import ApiError

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
        "twitch-eventsub-message-type": "Notification",
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
    for sent in ("", "sha256=", "d10f5bd9", "sha1=" + EXAMPLE_SIGNATURE[7:], "ünïcode", "\ud800"):
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
    ("text", "expected"),
    [
        ("1699294307", datetime(2023, 11, 6, 18, 11, 47, tzinfo=UTC)),
        ("1699294307492", datetime(2023, 11, 6, 18, 11, 47, 492000, tzinfo=UTC)),
        (" 1699294307 ", datetime(2023, 11, 6, 18, 11, 47, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_reads_the_mgm_senders_unix_seconds_and_milliseconds(
    text: str, expected: datetime
) -> None:
    """The MGM Tier A sender sends `str(int(time.time()))`; 13 digits are milliseconds."""
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
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "16992943070000",
        "-1699294307",
        "1699294307.5",
        "1.7e9",
        "\u0661\u0666\u0669\u0669",
        "999999999999",
    ],
)
def test_parse_timestamp_rejects_what_is_neither_rfc3339_nor_unix_time(text: str) -> None:
    with pytest.raises(ValueError, match=r"neither an RFC 3339|not a valid date|out of the range"):
        parse_timestamp(text)


def _signed(
    body: bytes, timestamp: str, secret: str = "s", message_type: str | None = "notification"
) -> dict[str, str]:
    headers = {
        "twitch-eventsub-message-id": "id-1",
        "twitch-eventsub-message-timestamp": timestamp,
        "twitch-eventsub-message-signature": compute_signature(secret, "id-1", timestamp, body),
    }
    if message_type is not None:
        headers["twitch-eventsub-message-type"] = message_type
    return headers


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
@pytest.mark.parametrize("form", ["rfc3339", "unix-seconds", "unix-millis"])
def test_messages_more_than_ten_minutes_off_are_refused_in_every_timestamp_form(
    offset: timedelta, ok: bool, form: str
) -> None:
    moment = NOW + offset
    stamp = {
        "rfc3339": moment.strftime("%Y-%m-%dT%H:%M:%S.%f000Z"),
        "unix-seconds": str(int(moment.timestamp())),
        "unix-millis": str(int(moment.timestamp() * 1000)),
    }[form]
    headers = _signed(b"{}", stamp)
    if ok:
        verify_message("s", headers, b"{}", NOW)
    else:
        with pytest.raises(VerificationError) as caught:
            verify_message("s", headers, b"{}", NOW)
        assert caught.value.code == "stale_message"
        assert "more than 10 minutes" in caught.value.message


def test_the_mgm_relay_forwards_no_type_header_and_still_verifies() -> None:
    """MGM's relay and Tier A sender send Id, Timestamp and Signature only."""
    body = (EXAMPLES / "mgm_tier_a_chat_message.json").read_bytes()
    stamp = str(int(NOW.timestamp()))
    verified = verify_message("s", _signed(body, stamp, message_type=None), body, NOW)
    assert verified.message_type is None
    assert message_type_of(verified, json.loads(body)) == TYPE_NOTIFICATION


@pytest.mark.parametrize(
    ("sent_type", "data", "expected"),
    [
        (None, {"challenge": "abc", "subscription": {}}, TYPE_VERIFICATION),
        (None, {"challenge": None}, TYPE_VERIFICATION),
        (None, {"subscription": {"type": "channel.follow"}}, TYPE_NOTIFICATION),
        (None, ["challenge"], TYPE_NOTIFICATION),
        (None, None, TYPE_NOTIFICATION),
        ("revocation", {"challenge": "abc"}, "revocation"),
        ("notification", {"challenge": "abc"}, TYPE_NOTIFICATION),
    ],
)
def test_message_type_is_the_header_else_inferred_from_the_body(
    sent_type: str | None, data: object, expected: str
) -> None:
    message = VerifiedMessage("id", sent_type, NOW)
    assert message_type_of(message, data) == expected


def test_missing_headers_are_named_and_the_type_header_is_not_required() -> None:
    headers = _signed(b"{}", "2024-05-01T12:00:00Z", message_type=None)
    del headers["twitch-eventsub-message-signature"]
    headers["twitch-eventsub-message-id"] = "  "
    with pytest.raises(VerificationError) as caught:
        verify_message("s", headers, b"{}", NOW)
    assert caught.value.code == "missing_eventsub_headers"
    assert caught.value.message == (
        "The request lacks the EventSub header(s) twitch-eventsub-message-id, "
        "twitch-eventsub-message-signature."
    )


def test_a_blank_type_header_counts_as_absent() -> None:
    headers = _signed(b"{}", "2024-05-01T12:00:00Z", message_type="  ")
    assert verify_message("s", headers, b"{}", NOW).message_type is None


def test_no_secret_configured_refuses_everything() -> None:
    headers = _signed(b"{}", "2024-05-01T12:00:00Z", secret="")
    with pytest.raises(VerificationError) as caught:
        verify_message("", headers, b"{}", NOW)
    assert caught.value.code == "eventsub_not_configured"
    assert "Twitch__EventSubSecret is not set" in caught.value.message


def test_bad_signature_is_checked_before_the_timestamp() -> None:
    headers = _signed(b"{}", "garbage")
    headers["twitch-eventsub-message-signature"] = "sha256=00"
    with pytest.raises(VerificationError) as caught:
        verify_message("s", headers, b"{}", NOW)
    assert caught.value.code == "invalid_signature"


def test_signed_garbage_timestamp_is_named() -> None:
    headers = _signed(b"{}", "garbage")
    with pytest.raises(VerificationError) as caught:
        verify_message("s", headers, b"{}", NOW)
    assert caught.value.code == "invalid_timestamp"
    assert "neither an RFC 3339 time nor Unix epoch seconds" in caught.value.message


def test_latin1_header_values_do_not_break_verification() -> None:
    stamp = "2024-05-01T12:00:00Z"
    headers = _signed(b"{}", stamp)
    headers["twitch-eventsub-message-id"] = "idé\xff"
    headers["twitch-eventsub-message-signature"] = compute_signature("s", "idé\xff", stamp, b"{}")
    assert verify_message("s", headers, b"{}", NOW).message_id == "idé\xff"


def test_long_message_ids_are_remembered_by_digest() -> None:
    short = "x" * MAX_STORED_ID_CHARS
    assert stored_message_id(short) == short
    long_a, long_b = "a" * 20_000, "a" * 19_999 + "b"
    assert stored_message_id(long_a).startswith("sha256:")
    assert len(stored_message_id(long_a)) == len("sha256:") + 64
    assert stored_message_id(long_a) != stored_message_id(long_b)
    assert stored_message_id(long_a) == stored_message_id("a" * 20_000)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": -Infinity}', "not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b"\xff\xfe\x00", "not valid JSON"),
    ],
)
def test_load_json_refuses_hostile_bodies_with_a_400(raw: bytes, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        load_json(raw)
    assert (caught.value.status, caught.value.code) == (400, "malformed_json")
    assert fragment in caught.value.message


def test_chat_event_model_reads_a_twitch_shaped_example() -> None:
    body = json.loads((EXAMPLES / "channel_chat_message.json").read_bytes())
    event = ChatMessageEvent.model_validate(body["event"])
    assert event.chatter_user_id == "5520117"
    assert event.message_id == "8f0c2a44-73d1-4e9b-b5a0-6c2d91e7f318"
    assert event.display_name == "goldfan"
    assert event.text == "hello there"
    assert event.badge_set_ids == ["vip", "subscriber"]


def test_chat_event_model_reads_the_mgm_senders_minimal_event() -> None:
    """The MGM Tier A sender's event has five fields and a string viewer id."""
    body = json.loads((EXAMPLES / "mgm_tier_a_chat_message.json").read_bytes())
    event = ChatMessageEvent.model_validate(body["event"])
    assert (event.message_id, event.chatter_user_id) == (
        "6b0e8f8e-2f55-4a53-9d0c-8a4c1e0f2b11",
        "e2e-viewer-1",
    )
    assert event.display_name == "e2eviewer1"
    assert event.text == "!twgold Etoehero"
    assert event.badge_set_ids == ["subscriber"]


def test_chat_event_without_login_falls_back_to_name_then_id() -> None:
    assert ChatMessageEvent(chatter_user_id="7", chatter_user_name="Seven").display_name == "Seven"
    assert ChatMessageEvent(chatter_user_id="7").display_name == "7"
    assert ChatMessageEvent().text == ""
