"""Twitch extension JWT claims and HS256 signing with the base64-decoded extension secret.

Twitch documents these claims for the tokens the extension helper hands to the
front end: `exp`, `opaque_user_id`, `user_id`, `channel_id`, `role`,
`is_unlinked` and `pubsub_perms`. Twitch's own tokens carry no `aud`; this mock
adds `aud` (the extension client id) only when `Twitch__ExtensionClientId` is
configured, because the backend then requires it. It also adds `iat`, which
Twitch omits and verifiers ignore.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt

Role = Literal["viewer", "broadcaster", "moderator", "external"]
ALGORITHM = "HS256"


def decode_secret(value: str) -> bytes:
    """Decode the base64 extension secret (standard or URL-safe, padding optional).

    Accepts exactly what the reference backend accepts, so a secret one side takes the
    other does too.
    """
    text = "".join(value.split())
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in padded or "_" in padded:
            key = base64.urlsafe_b64decode(padded)
        else:
            key = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "Twitch__ExtensionSecret is not valid base64; copy the secret exactly as the "
            "Twitch developer console shows it."
        ) from exc
    if not key:
        raise ValueError("Twitch__ExtensionSecret decodes to zero bytes; set a real secret.")
    return key


@dataclass(frozen=True)
class Settings:
    """mock-jwt configuration, read once from the environment."""

    key: bytes = field(repr=False)
    channel_id: str
    client_id: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the extension secret, broadcaster (channel) id and extension client id."""
        secret = env.get("Twitch__ExtensionSecret", "").strip()
        if not secret:
            raise ValueError(
                "mock-jwt needs Twitch__ExtensionSecret (base64); set it in the environment."
            )
        channel_id = env.get("Twitch__BroadcasterUserId", "").strip()
        if not channel_id.isdigit():
            raise ValueError(
                f"mock-jwt needs Twitch__BroadcasterUserId as a numeric Twitch user id, "
                f"got {channel_id!r}."
            )
        return cls(
            key=decode_secret(secret),
            channel_id=channel_id,
            client_id=env.get("Twitch__ExtensionClientId", "").strip(),
        )


def pubsub_perms(role: Role, opaque_user_id: str) -> dict[str, list[str]]:
    """The PubSub topics Twitch grants each role."""
    if role == "external":
        return {"send": ["broadcast"]}
    listen = ["broadcast", f"whisper-{opaque_user_id}", "global"]
    send = ["broadcast", "whisper-*"] if role == "broadcaster" else []
    return {"listen": listen, "send": send}


def build_claims(
    settings: Settings, user_id: str, role: Role, ttl_seconds: int, now: int
) -> dict[str, Any]:
    """Build the claim set for a linked user (or an EBS-style `external` token)."""
    claims: dict[str, Any] = {"exp": now + ttl_seconds}
    if role == "external":
        claims.update(user_id=user_id, channel_id=settings.channel_id, role=role)
    else:
        opaque = f"U{user_id}"
        claims.update(
            opaque_user_id=opaque,
            user_id=user_id,
            channel_id=settings.channel_id,
            role=role,
            is_unlinked=False,
        )
    claims["pubsub_perms"] = pubsub_perms(role, claims.get("opaque_user_id", ""))
    claims["iat"] = now
    if settings.client_id:
        claims["aud"] = settings.client_id
    return claims


def mint(settings: Settings, claims: Mapping[str, Any]) -> str:
    """Sign the claims with HS256 and the decoded secret."""
    return jwt.encode(dict(claims), settings.key, algorithm=ALGORITHM)


def fingerprint(token: str) -> str:
    """A short, non-reversible tag for a token, to correlate journals with logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]
