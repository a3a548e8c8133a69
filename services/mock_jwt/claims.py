"""Twitch extension JWT claims and HS256 signing with the extension key.

Twitch documents these claims for the tokens the extension helper hands to the
front end: `exp`, `opaque_user_id`, `user_id`, `channel_id`, `role`,
`is_unlinked` and `pubsub_perms`. Like the MGM mock this one adds `unique_name`
(the display name) and, only when `Twitch__ExtensionClientId` is configured,
`aud` (the backend then requires it); it also adds `iat`, which Twitch omits
and verifiers ignore.

The key is the base64-decoded `Twitch__ExtensionSecret`, decoded by the
reference backend's own code; with no secret it is the backend's Development
key, so the mock started with only `ASPNETCORE_URLS` mints tokens that a
Development backend with an empty secret accepts.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt

from ..backend.config import (
    DEV_EXTENSION_KEY,
    DEV_EXTENSION_SECRET_SEED,
    EXTENSION_SECRET_VAR,
    MIN_EXTENSION_KEY_BYTES,
    decode_extension_secret,
)

Role = Literal["viewer", "broadcaster", "moderator", "external"]
ALGORITHM = "HS256"
DEFAULT_CHANNEL_ID = "1971641"


@dataclass(frozen=True)
class Settings:
    """mock-jwt configuration, read once from the environment (every variable optional)."""

    key: bytes = field(repr=False)
    channel_id: str
    client_id: str
    development_key: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the extension secret, broadcaster (channel) id and extension client id."""
        key = decode_extension_secret(env.get(EXTENSION_SECRET_VAR, ""))
        return cls(
            key=key or DEV_EXTENSION_KEY,
            channel_id=env.get("Twitch__BroadcasterUserId", "").strip() or DEFAULT_CHANNEL_ID,
            client_id=env.get("Twitch__ExtensionClientId", "").strip(),
            development_key=not key,
        )

    @property
    def key_warning(self) -> str | None:
        """What to warn about the signing key at start, or None when it is sound."""
        if self.development_key:
            return (
                f"{EXTENSION_SECRET_VAR} is not set: signing with the Development key "
                f"(SHA-256 of '{DEV_EXTENSION_SECRET_SEED}'), which a backend in Development "
                "with an empty secret accepts"
            )
        if len(self.key) < MIN_EXTENSION_KEY_BYTES:
            return (
                f"{EXTENSION_SECRET_VAR} decodes to {len(self.key)} bytes: the backends refuse "
                f"every token signed with fewer than {MIN_EXTENSION_KEY_BYTES}; use a longer "
                "secret (e.g. `openssl rand -base64 32`)"
            )
        return None


def pubsub_perms(role: Role, opaque_user_id: str) -> dict[str, list[str]]:
    """The PubSub topics Twitch grants each role."""
    if role == "external":
        return {"send": ["broadcast"]}
    listen = ["broadcast", f"whisper-{opaque_user_id}", "global"]
    send = ["broadcast", "whisper-*"] if role == "broadcaster" else []
    return {"listen": listen, "send": send}


def build_claims(
    settings: Settings,
    user_id: str,
    role: Role,
    ttl_seconds: int,
    now: int,
    display_name: str | None = None,
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
    # The MGM mock names the user with the display name, falling back to the id.
    claims["unique_name"] = display_name or user_id
    claims["iat"] = now
    if settings.client_id:
        claims["aud"] = settings.client_id
    return claims


def mint(settings: Settings, claims: Mapping[str, Any]) -> str:
    """Sign the claims with HS256 and the key."""
    with warnings.catch_warnings():
        # A short key was already reported at start; PyJWT would repeat it per token.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(dict(claims), settings.key, algorithm=ALGORITHM)


def fingerprint(token: str) -> str:
    """A short, non-reversible tag for a token, to correlate journals with logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]
