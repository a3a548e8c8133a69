"""The enrollment rules that need no database: command syntax, badges, character names.

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

_LATIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


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


def normalize_name(name: str) -> str:
    """Compose the name (NFC) so `й` typed as `и` + combining breve counts as one letter."""
    return unicodedata.normalize("NFC", name)


def is_cyrillic_letter(char: str) -> bool:
    """True for a letter of the Cyrillic block (U+0400-U+04FF)."""
    return "\u0400" <= char <= "\u04ff" and char.isalpha()


def is_valid_character_name(name: str) -> bool:
    """True when `name` is 2-12 letters, each Latin (A-Z, a-z) or Cyrillic."""
    if not NAME_MIN_LENGTH <= len(name) <= NAME_MAX_LENGTH:
        return False
    return all(char in _LATIN or is_cyrillic_letter(char) for char in name)


def name_key(name: str) -> str:
    """The case-insensitive form two names are compared by (also the unique key in the pool)."""
    return normalize_name(name).casefold()


def has_qualifying_badge(set_ids: Iterable[str]) -> bool:
    """True when the chatter carries a subscriber, founder or premium badge."""
    return any(set_id.strip().lower() in QUALIFYING_BADGES for set_id in set_ids)


def within_gold_cap(sent_gold: int) -> bool:
    """True when one more payout keeps the viewer's Sent gold within the cap."""
    return sent_gold + GOLD_PER_PAYOUT <= GOLD_CAP


def evaluate_message(text: str, badge_set_ids: Iterable[str]) -> Accepted | Ignored:
    """Apply the rules that need no database to one chat message."""
    token = parse_command(text)
    if token is None:
        if text.strip().lower().startswith(COMMAND):
            return Ignored("the command must be '!twgold' followed by exactly one name")
        return Ignored("not a !twgold command")
    if not has_qualifying_badge(badge_set_ids):
        return Ignored("the chatter has no subscriber, founder or premium badge")
    name = normalize_name(token)
    if not is_valid_character_name(name):
        return Ignored(
            f"the character name is not {NAME_MIN_LENGTH}-{NAME_MAX_LENGTH} Latin or Cyrillic "
            "letters"
        )
    return Accepted(name)
