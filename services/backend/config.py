"""The backend's settings, built once from the .NET-style environment and passed down.

Only the variable names in CONTRACT.md are read. Secrets are kept out of `repr`
so a settings object can be logged or shown in a traceback without leaking them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import VERSION

DEFAULT_HELIX_BASE_URL = "https://api.twitch.tv/"
DEFAULT_PG_PORT = 5432
DEFAULT_CONNECT_TIMEOUT_S = 5
EXTENSION_SECRET_VAR = "Twitch__ExtensionSecret"
# The real backend's Development fallback when Twitch__ExtensionSecret is empty: the JWT
# key is the SHA-256 digest of this UTF-8 string. mock-jwt uses it too.
DEV_EXTENSION_SECRET_SEED = "mgm-dev-extension-secret-change-me"
DEV_EXTENSION_KEY = hashlib.sha256(DEV_EXTENSION_SECRET_SEED.encode("utf-8")).digest()
# HS256 keys shorter than 256 bits are refused by the real backend's JWT library.
MIN_EXTENSION_KEY_BYTES = 32
CONNECTION_STRING_VAR = "ConnectionStrings__PostgreSQL"
_CONNECTION_STRING_HINT = "use the form 'Host=...;Port=5432;Database=...;Username=...;Password=...'"

# Npgsql keyword (lower case, spaces removed) -> our field; Npgsql accepts these aliases too.
_NPGSQL_KEYS = {
    "host": "host",
    "server": "host",
    "port": "port",
    "database": "dbname",
    "db": "dbname",
    "username": "user",
    "userid": "user",
    "user": "user",
    "password": "password",
    "pwd": "password",
    "timeout": "timeout",
    "sslmode": "sslmode",
}
_SSL_MODES = {
    "disable": "disable",
    "allow": "allow",
    "prefer": "prefer",
    "require": "require",
    "verifyca": "verify-ca",
    "verifyfull": "verify-full",
}


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; the message names it and the fix."""


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the backend's PostgreSQL is, parsed from an Npgsql connection string."""

    host: str
    dbname: str
    user: str
    password: str = field(default="", repr=False)
    port: int = DEFAULT_PG_PORT
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S
    sslmode: str | None = None
    ignored_keys: tuple[str, ...] = ()

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `psycopg.connect` (includes the password: never log them)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "connect_timeout": self.connect_timeout,
            "application_name": "mgm-reference-backend",
        }
        if self.sslmode is not None:
            kwargs["sslmode"] = self.sslmode
        return kwargs

    def describe(self) -> str:
        """Say where the database is, without the password, for log lines."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


@dataclass(frozen=True)
class VersionSettings:
    """What `GET /api/version` reports, from the `Version__*` variables.

    Defaults: `Version__CurrentVersion` is the reference backend's own version,
    `Version__ReleaseNotesUrl` is empty, and each `Version__Minimum*Version` is
    "0.0.0" (every client version is accepted).
    """

    current_version: str = VERSION
    release_notes_url: str = ""
    minimum_desktop_version: str = "0.0.0"
    minimum_addon_version: str = "0.0.0"
    minimum_extension_version: str = "0.0.0"

    def to_json(self) -> dict[str, str]:
        """The `GET /api/version` fields, named as the real backend names them."""
        return {
            "version": self.current_version,
            "releaseNotesUrl": self.release_notes_url,
            "minimumDesktopVersion": self.minimum_desktop_version,
            "minimumAddonVersion": self.minimum_addon_version,
            "minimumExtensionVersion": self.minimum_extension_version,
        }


def load_version_settings(env: Mapping[str, str]) -> VersionSettings:
    """Read the `Version__*` variables; an unset or blank one keeps its default."""
    defaults = VersionSettings()
    names = {
        "current_version": "Version__CurrentVersion",
        "release_notes_url": "Version__ReleaseNotesUrl",
        "minimum_desktop_version": "Version__MinimumDesktopVersion",
        "minimum_addon_version": "Version__MinimumAddonVersion",
        "minimum_extension_version": "Version__MinimumExtensionVersion",
    }
    values = {
        attr: env.get(var, "").strip() or getattr(defaults, attr) for attr, var in names.items()
    }
    return VersionSettings(**values)


@dataclass(frozen=True)
class BackendConfig:
    """Every setting the backend uses; see CONTRACT.md for the variable of each."""

    database: DatabaseSettings
    environment: str = "Production"
    api_key: str = field(default="", repr=False)
    harness_flag: bool = False
    eventsub_secret: str = field(default="", repr=False)
    # The JWT key in effect: the decoded secret, the Development key, or b"" (refuse all).
    extension_secret: bytes = field(default=b"", repr=False)
    extension_key_source: str = "configured"
    extension_client_id: str = ""
    helix_base_url: str = DEFAULT_HELIX_BASE_URL
    broadcaster_access_token: str = field(default="", repr=False)
    broadcaster_user_id: str = ""
    helix_client_id: str = ""
    version: VersionSettings = field(default_factory=VersionSettings)

    @property
    def harness_enabled(self) -> bool:
        """The E2E harness runs only in Development with `Mgm__EnableE2eHarness=true`."""
        return self.environment.lower() == "development" and self.harness_flag

    @property
    def extension_key_warning(self) -> str | None:
        """What to warn about the extension JWT key at start, or None when it is sound."""
        if self.extension_key_source == "development":
            return (
                f"{EXTENSION_SECRET_VAR} is empty: using the Development JWT key "
                f"(SHA-256 of '{DEV_EXTENSION_SECRET_SEED}'), like the real backend; "
                "set the extension's base64 secret for anything but local tests"
            )
        if not self.extension_secret:
            return (
                f"{EXTENSION_SECRET_VAR} is empty outside Development: every extension JWT "
                "will be refused; set the extension's base64 secret"
            )
        if len(self.extension_secret) < MIN_EXTENSION_KEY_BYTES:
            return (
                f"{EXTENSION_SECRET_VAR} decodes to {len(self.extension_secret)} bytes; HS256 "
                f"needs at least {MIN_EXTENSION_KEY_BYTES}, so every extension JWT will be "
                "refused (the real backend refuses them too). Use the secret the Twitch "
                "developer console shows, or 32 random bytes in base64 "
                "(e.g. `openssl rand -base64 32`)"
            )
        return None

    @property
    def helix_chat_url(self) -> str:
        """The chat-message endpoint under the configured Helix root."""
        return self.helix_base_url.rstrip("/") + "/helix/chat/messages"


def load_config(env: Mapping[str, str]) -> BackendConfig:
    """Build the settings from `env`, raising `ConfigError` that names the bad variable."""
    raw_cs = env.get(CONNECTION_STRING_VAR, "")
    if not raw_cs.strip():
        raise ConfigError(f"{CONNECTION_STRING_VAR} is not set; {_CONNECTION_STRING_HINT}.")
    environment = env.get("ASPNETCORE_ENVIRONMENT", "").strip() or "Production"
    extension_key, key_source = extension_signing_key(
        env.get(EXTENSION_SECRET_VAR, ""), development=environment.lower() == "development"
    )
    return BackendConfig(
        database=parse_connection_string(raw_cs),
        environment=environment,
        api_key=env.get("Mgm__ApiKey", ""),
        harness_flag=env.get("Mgm__EnableE2eHarness", "").strip().lower() == "true",
        eventsub_secret=env.get("Twitch__EventSubSecret", ""),
        extension_secret=extension_key,
        extension_key_source=key_source,
        extension_client_id=env.get("Twitch__ExtensionClientId", "").strip(),
        helix_base_url=_helix_base_url(env.get("Twitch__HelixApiBaseUrl", "")),
        broadcaster_access_token=env.get("Twitch__BroadcasterAccessToken", "").strip(),
        broadcaster_user_id=env.get("Twitch__BroadcasterUserId", "").strip(),
        helix_client_id=env.get("Twitch__HelixClientId", "").strip(),
        version=load_version_settings(env),
    )


def extension_signing_key(secret: str, *, development: bool) -> tuple[bytes, str]:
    """The JWT key for a base64 secret and where it came from: "configured", "development", "none".

    An empty secret means the Development key in Development and no key (every
    token refused) anywhere else, as in the real backend.
    """
    key = decode_extension_secret(secret)
    if key:
        return key, "configured"
    if development:
        return DEV_EXTENSION_KEY, "development"
    return b"", "none"


def decode_extension_secret(value: str) -> bytes:
    """Decode the base64 extension secret (standard or URL-safe, padding optional)."""
    text = "".join(value.split())
    if not text:
        return b""
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in padded or "_" in padded:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(
            f"{EXTENSION_SECRET_VAR} is not valid base64; paste the extension secret exactly "
            "as the Twitch developer console shows it."
        ) from exc


def _helix_base_url(value: str) -> str:
    url = value.strip() or DEFAULT_HELIX_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"Twitch__HelixApiBaseUrl={url!r} is not an http(s) URL; use the Helix root, "
            "e.g. 'https://api.twitch.tv/' or 'http://mock-helix:9053/'."
        )
    return url


def parse_connection_string(value: str) -> DatabaseSettings:
    """Parse an Npgsql `Key=Value;…` connection string (keys case-insensitive, values quotable)."""
    pairs = _split_pairs(value)
    fields: dict[str, str] = {}
    ignored: list[str] = []
    for key, val in pairs:
        normalized = key.replace(" ", "").lower()
        target = _NPGSQL_KEYS.get(normalized)
        if target is None:
            ignored.append(key)
        else:
            fields[target] = val
    missing = [name for name in ("host", "dbname", "user") if not fields.get(name)]
    if missing:
        labels = {"host": "Host", "dbname": "Database", "user": "Username"}
        names = ", ".join(labels[m] for m in missing)
        raise ConfigError(f"{CONNECTION_STRING_VAR} has no {names}; {_CONNECTION_STRING_HINT}.")
    return DatabaseSettings(
        host=fields["host"],
        dbname=fields["dbname"],
        user=fields["user"],
        password=fields.get("password", ""),
        port=_int_field(fields, "port", "Port", DEFAULT_PG_PORT, 1, 65535),
        connect_timeout=_int_field(
            fields, "timeout", "Timeout", DEFAULT_CONNECT_TIMEOUT_S, 1, 3600
        ),
        sslmode=_ssl_mode(fields.get("sslmode")),
        ignored_keys=tuple(ignored),
    )


def _int_field(
    fields: Mapping[str, str], name: str, label: str, default: int, low: int, high: int
) -> int:
    raw = fields.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(
            f"{CONNECTION_STRING_VAR} has {label}={raw!r}; "
            f"it must be a number from {low} to {high}."
        )
    return int(raw)


def _ssl_mode(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    mode = _SSL_MODES.get(raw.strip().replace("-", "").lower())
    if mode is None:
        raise ConfigError(
            f"{CONNECTION_STRING_VAR} has SSL Mode={raw!r}; use one of Disable, Allow, Prefer, "
            "Require, VerifyCA, VerifyFull."
        )
    return mode


def _split_pairs(text: str) -> list[tuple[str, str]]:
    """Split `k=v;k2="v;2"` into pairs; quotes may wrap a value and are doubled to escape."""
    pairs: list[tuple[str, str]] = []
    i, n, index = 0, len(text), 0
    while i < n:
        end_of_key = text.find("=", i)
        next_semicolon = text.find(";", i)
        if end_of_key == -1 or (next_semicolon != -1 and next_semicolon < end_of_key):
            segment_end = n if next_semicolon == -1 else next_semicolon
            if text[i:segment_end].strip():
                # Do not echo the segment: it may be part of a password.
                raise ConfigError(
                    f"{CONNECTION_STRING_VAR} part {index + 1} has no '='; "
                    f"{_CONNECTION_STRING_HINT}."
                )
            i = segment_end + 1
            continue
        key = text[i:end_of_key].strip()
        if not key:
            raise ConfigError(
                f"{CONNECTION_STRING_VAR} part {index + 1} has an empty key; "
                f"{_CONNECTION_STRING_HINT}."
            )
        value, i = _read_value(text, end_of_key + 1, key)
        pairs.append((key, value))
        index += 1
    return pairs


def _read_value(text: str, start: int, key: str) -> tuple[str, int]:
    """Read one value from `start`; return it and the index just past its `;`."""
    n = len(text)
    i = start
    while i < n and text[i] in " \t":
        i += 1
    if i < n and text[i] in "\"'":
        quote = text[i]
        i += 1
        chars: list[str] = []
        while True:
            if i >= n:
                raise ConfigError(
                    f"{CONNECTION_STRING_VAR} has an unterminated quote in the value of {key}."
                )
            if text[i] == quote:
                if i + 1 < n and text[i + 1] == quote:
                    chars.append(quote)
                    i += 2
                    continue
                i += 1
                break
            chars.append(text[i])
            i += 1
        rest_end = text.find(";", i)
        rest_end = n if rest_end == -1 else rest_end
        if text[i:rest_end].strip():
            raise ConfigError(
                f"{CONNECTION_STRING_VAR} has text after the closing quote of {key}'s value."
            )
        return "".join(chars), rest_end + 1
    end = text.find(";", i)
    end = n if end == -1 else end
    return text[i:end].strip(), end + 1
