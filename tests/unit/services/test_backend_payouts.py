"""The payout state machine, status parsing and the payout JSON shape."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.backend.payouts import (
    IllegalTransitionError,
    Payout,
    PayoutStatus,
    announcement_text,
    can_transition,
    check_transition,
    format_utc,
    parse_payout_id,
    parse_status,
)

P = PayoutStatus
ALLOWED = {
    (P.PENDING, P.IN_PROGRESS),
    (P.PENDING, P.CANCELLED),
    (P.PENDING, P.FAILED),
    (P.IN_PROGRESS, P.SENT),
    (P.IN_PROGRESS, P.CANCELLED),
    (P.IN_PROGRESS, P.FAILED),
    (P.IN_PROGRESS, P.PENDING),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(P, P)))
def test_transition_matrix_matches_the_contract(current: P, target: P) -> None:
    allowed = (current, target) in ALLOWED
    assert can_transition(current, target) is allowed
    if allowed:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransitionError) as caught:
            check_transition(current, target)
        assert str(caught.value) == f"A payout cannot move from {current} to {target}."
        assert (caught.value.current, caught.value.target) == (current, target)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Pending", P.PENDING),
        ("pending", P.PENDING),
        ("INPROGRESS", P.IN_PROGRESS),
        ("In_Progress", P.IN_PROGRESS),
        (" in progress ", P.IN_PROGRESS),
        ("sent", P.SENT),
        ("Failed", P.FAILED),
        ("cancelled", P.CANCELLED),
        ("EXPIRED", P.EXPIRED),
        ("Canceled", None),
        ("", None),
        ("3", None),
    ],
)
def test_parse_status(text: str, status: P | None) -> None:
    assert parse_status(text) is status


def test_parse_payout_id() -> None:
    value = uuid.uuid4()
    assert parse_payout_id(str(value)) == value
    assert parse_payout_id(str(value).upper()) == value
    for bad in ("", "42", "not-a-uuid", "\x00", "x" * 500):
        assert parse_payout_id(bad) is None


def test_payout_json_shape() -> None:
    created = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    payout = Payout(
        id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        twitch_user_id="42",
        character_name="Thrall",
        amount=1000,
        status=P.IN_PROGRESS,
        created_at=created,
        updated_at=created + timedelta(seconds=1),
    )
    assert payout.to_json() == {
        "id": "12345678-1234-5678-1234-567812345678",
        "twitchUserId": "42",
        "characterName": "Thrall",
        "amount": 1000,
        "status": "InProgress",
        "createdAtUtc": "2024-05-01T12:00:00.123456Z",
        "updatedAtUtc": "2024-05-01T12:00:01.123456Z",
    }
    assert announcement_text(payout) == "Payout sent: 1000 gold to Thrall!"


def test_format_utc_converts_offsets() -> None:
    moment = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_utc(moment) == "2024-05-01T12:00:00Z"
