"""The enrollment rules that need no database (CONTRACT.md, "Enrollment").

The rules that need stored state (open payouts, the gold cap, a name held by
another viewer) are checked by `services.backend.store.enroll` with the
decisions below as constants and helpers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

COMMAND = "!twgold"
QUALIFYING_BADGES = frozenset({"subscriber", "founder", "premium"})
NAME_MIN_LENGTH = 2
NAME_MAX_LENGTH = 12
GOLD_PER_PAYOUT = 1000
GOLD_CAP = 10_000
# Viewer ids are indexed keys in PostgreSQL; Twitch's are at most 20 digits, and this
# bound keeps any id far below the index row limit.
MAX_VIEWER_ID_CHARS = 255

_LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
# The Unicode blocks a character name may draw its letters from (inclusive ranges).
NAME_BLOCKS: tuple[tuple[str, int, int], ...] = (
    ("Basic Latin", 0x0000, 0x007F),
    ("Latin-1 Supplement", 0x0080, 0x00FF),
    ("Latin Extended-A", 0x0100, 0x017F),
    ("Latin Extended-B", 0x0180, 0x024F),
    ("Latin Extended Additional", 0x1E00, 0x1EFF),
    ("Latin Extended-C", 0x2C60, 0x2C7F),
    ("Latin Extended-D", 0xA720, 0xA7FF),
    ("Cyrillic", 0x0400, 0x04FF),
    ("Cyrillic Supplement", 0x0500, 0x052F),
    ("Cyrillic Extended-A", 0x2DE0, 0x2DFF),
    ("Cyrillic Extended-B", 0xA640, 0xA69F),
    ("Cyrillic Extended-C", 0x1C80, 0x1C8F),
)


@dataclass(frozen=True)
class Accepted:
    """A chat message that passes every rule that needs no database."""

    character_name: str


@dataclass(frozen=True)
class Ignored:
    """A chat message that does not enroll anyone, and why (safe to log)."""

    reason: str


def parse_command(text: str) -> str | None:
    """Return the name token of `!twgold <Name>` (any case, any whitespace), else None.

    The text is trimmed first; exactly one token must follow the command.
    """
    tokens = text.strip().split()
    if len(tokens) != 2 or tokens[0].lower() != COMMAND:
        return None
    return tokens[1]


def is_name_letter(char: str) -> bool:
    """True for a letter (by Unicode category) inside one of the Latin or Cyrillic `NAME_BLOCKS`."""
    if unicodedata.category(char) not in _LETTER_CATEGORIES:
        return False
    point = ord(char)
    return any(low <= point <= high for _, low, high in NAME_BLOCKS)


def is_valid_character_name(name: str) -> bool:
    """True when `name` is 2-12 letters from the Latin or Cyrillic blocks, taken as sent.

    Nothing is normalised: `Й` typed as `И` plus a combining breve is two code
    points, and the combining mark is not a letter, so the name is refused.
    """
    if not NAME_MIN_LENGTH <= len(name) <= NAME_MAX_LENGTH:
        return False
    return all(is_name_letter(char) for char in name)


def name_key(name: str) -> str:
    """The form two names are compared by (and the pool's unique key): the name exactly as sent.

    The comparison is case-sensitive, like the real backend's ordinal comparison:
    `Arthas` and `arthas` are two different names.
    """
    return name


def has_qualifying_badge(set_ids: Iterable[str]) -> bool:
    """True for a `subscriber`, `founder` or `premium` badge, spelt as Twitch sends it."""
    return any(set_id in QUALIFYING_BADGES for set_id in set_ids)


def within_gold_cap(sent_gold: int) -> bool:
    """True when one more payout keeps the viewer's Sent gold within the cap."""
    return sent_gold + GOLD_PER_PAYOUT <= GOLD_CAP


def storable_text(text: str) -> bool:
    """True when PostgreSQL can store `text`: no NUL, no unpaired surrogate (not UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_identity(message_id: str, viewer_id: str, display_name: str) -> Ignored | None:
    """Why a chat event's ids cannot enroll anyone, or None when they can.

    `message_id` and `chatter_user_id` may be any non-empty strings (the MGM
    scripts use `e2e-viewer-1`); only what the database cannot store is refused.
    """
    if not message_id:
        return Ignored("the event has no message_id")
    if not viewer_id:
        return Ignored("the event has no chatter_user_id")
    if len(viewer_id) > MAX_VIEWER_ID_CHARS:
        return Ignored(f"the chatter_user_id is longer than {MAX_VIEWER_ID_CHARS} characters")
    if not storable_text(viewer_id) or not storable_text(display_name):
        return Ignored("the chatter's id or login holds a NUL or an unpaired surrogate")
    return None


def evaluate_message(text: str, badge_set_ids: Iterable[str]) -> Accepted | Ignored:
    """Apply the rules that need no database to one chat message."""
    token = parse_command(text)
    if token is None:
        if text.strip().lower().startswith(COMMAND):
            return Ignored("the command must be '!twgold' followed by exactly one name")
        return Ignored("not a !twgold command")
    if not has_qualifying_badge(badge_set_ids):
        return Ignored("the chatter has no subscriber, founder or premium badge")
    if not is_valid_character_name(token):
        return Ignored(
            f"the character name is not {NAME_MIN_LENGTH}-{NAME_MAX_LENGTH} letters from the "
            "Latin or Cyrillic blocks"
        )
    return Accepted(token)
