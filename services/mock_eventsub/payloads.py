"""EventSub message bodies in the shape Twitch documents for the webhook transport.

Key order and field set follow Twitch's published `channel.chat.message` v1
example; bodies are serialised compactly in UTF-8, as Twitch sends them.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

CHAT_MESSAGE = "channel.chat.message"

if TYPE_CHECKING:
    from .models import ChallengeRequest, EmitRequest


@dataclass
class Subscriptions:
    """The mock's pretend subscriptions: one stable id per type, all created at start-up."""

    callback: str
    created_at: str
    ids: dict[str, str] = field(default_factory=dict)

    def describe(
        self, sub_type: str, broadcaster_user_id: str, status: str = "enabled"
    ) -> dict[str, Any]:
        """Return the `subscription` object Twitch attaches to every message of this type."""
        sub_id = self.ids.setdefault(sub_type, str(uuid.uuid4()))
        condition: dict[str, str] = {"broadcaster_user_id": broadcaster_user_id}
        if sub_type == CHAT_MESSAGE:
            # The chat subscription is made on behalf of a user reading chat: the broadcaster.
            condition["user_id"] = broadcaster_user_id
        return {
            "id": sub_id,
            "status": status,
            "type": sub_type,
            "version": "1",
            "condition": condition,
            "transport": {"method": "webhook", "callback": self.callback},
            "created_at": self.created_at,
            "cost": 0,
        }


def chat_message_event(request: EmitRequest, broadcaster_user_id: str) -> dict[str, Any]:
    """Build a `channel.chat.message` v1 event with every documented field."""
    from .models import DEFAULT_BADGES  # loaded with `EmitRequest` by now

    login = request.chatterLogin or f"viewer{request.chatterUserId}"
    badges = DEFAULT_BADGES if request.badges is None else request.badges
    return {
        "broadcaster_user_id": broadcaster_user_id,
        "broadcaster_user_login": "streamer",
        "broadcaster_user_name": "Streamer",
        "chatter_user_id": request.chatterUserId,
        "chatter_user_login": login,
        "chatter_user_name": request.chatterName or login,
        "message_id": str(uuid.uuid4()),
        "message": {
            "text": request.text,
            "fragments": [
                {
                    "type": "text",
                    "text": request.text,
                    "cheermote": None,
                    "emote": None,
                    "mention": None,
                }
            ],
        },
        "color": "#00FF7F",
        "badges": [badge.model_dump() for badge in badges],
        "message_type": "text",
        "cheer": None,
        "reply": None,
        "channel_points_custom_reward_id": None,
        "source_broadcaster_user_id": None,
        "source_broadcaster_user_login": None,
        "source_broadcaster_user_name": None,
        "source_message_id": None,
        "source_badges": None,
    }


def notification_body(
    request: EmitRequest, subscriptions: Subscriptions, broadcaster_user_id: str
) -> dict[str, Any]:
    """Build the notification body: the subscription plus the event with overrides applied."""
    if request.type == CHAT_MESSAGE:
        event = chat_message_event(request, broadcaster_user_id)
    else:
        # Other types carry only what the caller supplies; the backend should ignore them.
        event = {"broadcaster_user_id": broadcaster_user_id}
    event.update(request.eventOverrides or {})
    return {
        "subscription": subscriptions.describe(request.type, broadcaster_user_id),
        "event": event,
    }


def challenge_body(
    request: ChallengeRequest, subscriptions: Subscriptions, broadcaster_user_id: str
) -> dict[str, Any]:
    """Build a `webhook_callback_verification` body with a random or given challenge."""
    subscription = subscriptions.describe(
        request.type, broadcaster_user_id, status="webhook_callback_verification_pending"
    )
    return {
        "challenge": request.challenge or secrets.token_urlsafe(24),
        "subscription": subscription,
    }


def serialise(body: dict[str, Any]) -> bytes:
    """Serialise a body compactly in UTF-8, the way Twitch puts it on the wire.

    Raises `ValueError` when the body holds text UTF-8 cannot carry (an unpaired
    surrogate) or a value JSON has no spelling for (NaN, Infinity).
    """
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")  # UnicodeEncodeError is a ValueError
