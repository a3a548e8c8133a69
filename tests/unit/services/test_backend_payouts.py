"""The payout state machine, status parsing, the payout JSON shape and the announcement text."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from envkit.services.backend.payouts import (
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
        (0, P.PENDING),
        (1, P.IN_PROGRESS),
        (2, P.SENT),
        (3, P.FAILED),
        (4, P.CANCELLED),
        (5, P.EXPIRED),
        (6, None),
        (-1, None),
        (True, None),
        (2.0, None),
        (None, None),
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
def test_parse_status_takes_a_name_in_any_case_or_the_real_enum_number(
    text: object, status: P | None
) -> None:
    """The desktop app may send the state's name or its integer (the real backend's enum)."""
    assert parse_status(text) is status


def test_state_numbers_follow_the_real_backends_enum_order() -> None:
    assert [s.number for s in P] == [0, 1, 2, 3, 4, 5]
    names = ["Pending", "InProgress", "Sent", "Failed", "Cancelled", "Expired"]
    assert [s.value for s in P] == names


def test_parse_payout_id() -> None:
    value = uuid.uuid4()
    assert parse_payout_id(str(value)) == value
    assert parse_payout_id(str(value).upper()) == value
    for bad in ("", "42", "not-a-uuid", "\x00", "x" * 500):
        assert parse_payout_id(bad) is None


def _payout(**changes: object) -> Payout:
    created = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    fields: dict[str, object] = {
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "twitch_user_id": "e2e-viewer-1",
        "twitch_display_name": "e2e_viewer_1",
        "character_name": "Thrall",
        "gold_amount": 1000,
        "enrollment_request_id": uuid.UUID("87654321-4321-8765-4321-876543218765"),
        "status": P.IN_PROGRESS,
        "created_at": created,
        "announced": False,
    }
    fields.update(changes)
    return Payout(**fields)  # type: ignore[arg-type]


def test_payout_json_carries_the_real_backends_field_names() -> None:
    """MGM clients read the real backend's names: goldAmount, createdAt, isRewardSent…"""
    assert _payout().to_json() == {
        "id": "12345678-1234-5678-1234-567812345678",
        "twitchUserId": "e2e-viewer-1",
        "twitchDisplayName": "e2e_viewer_1",
        "characterName": "Thrall",
        "goldAmount": 1000,
        "enrollmentRequestId": "87654321-4321-8765-4321-876543218765",
        "status": "InProgress",
        "createdAt": "2024-05-01T12:00:00.123456Z",
        "isRewardSentAnnouncedToChat": False,
    }
    shown = _payout(enrollment_request_id=None, announced=True, status=P.SENT).to_json()
    assert (shown["enrollmentRequestId"], shown["isRewardSentAnnouncedToChat"]) == (None, True)


def test_announcement_is_exactly_the_text_the_mgm_orchestrator_compares() -> None:
    """MGM's Tier B orchestrator compares the chat message character for character."""
    assert announcement_text(_payout()) == (
        "Награда отправлена персонажу Thrall на почту, проверяй ящик!"
    )
    assert announcement_text(_payout(character_name="Артас")) == (
        "Награда отправлена персонажу Артас на почту, проверяй ящик!"
    )


def test_format_utc_converts_offsets() -> None:
    moment = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_utc(moment) == "2024-05-01T12:00:00Z"
