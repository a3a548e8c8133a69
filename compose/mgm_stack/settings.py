"""The MGM stack's settings: every value two MGM services must agree on, defined once.

`compose/tier-b.toml` names this model (`[stack] settings =
"mgm_stack.settings:MgmSettings"`). envkit adds its sections to its own core
settings, so they are read like envkit's: `ENVKIT_<SECTION>__<FIELD>` from the
environment and `.env` (environment wins), e.g. `ENVKIT_TWITCH__HELIX_BASE_URL`,
validated before anything starts, secrets (`SecretStr`) redacted everywhere.
The defaults are safe demo values, also documented in `.env.example`.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr, field_validator, model_validator

from envkit.errors import SettingsError
from envkit.spec.settings import EnvkitSettings

MIN_EXTENSION_SECRET_BYTES = 32  # the MGM backend's HS256 key-length rule (CONTRACT.md)


def _require_text(value: SecretStr | str, what: str) -> None:
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not raw.strip():
        raise ValueError(f"{what} is empty; set a non-empty value (see .env.example)")


class MgmSection(BaseModel):
    """The desktop API key and the backend's E2E harness switch."""

    api_key: SecretStr = SecretStr("demo-desktop-api-key-0001")
    enable_e2e_harness: bool = True
    environment: str = "Development"

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, v: SecretStr) -> SecretStr:
        _require_text(v, "the desktop API key")
        return v


class TwitchSection(BaseModel):
    """EventSub and extension secrets, Helix location and broadcaster identity."""

    eventsub_secret: SecretStr = SecretStr("demo-eventsub-secret-0001")
    extension_secret: SecretStr = SecretStr(
        base64.b64encode(b"envkit-demo-extension-secret-32b").decode()
    )
    extension_client_id: str = "envkitdemoextension"
    helix_base_url: str = "http://mock-helix:8080"
    helix_client_id: str = "envkitdemoclientid"
    broadcaster_access_token: SecretStr = SecretStr("demo-broadcaster-token-0001")
    broadcaster_user_id: str = "1971641"

    @field_validator("eventsub_secret", "broadcaster_access_token")
    @classmethod
    def _non_empty_secret(cls, v: SecretStr) -> SecretStr:
        _require_text(v, "this secret")
        return v

    @field_validator("helix_client_id", "broadcaster_user_id")
    @classmethod
    def _non_empty_text(cls, v: str) -> str:
        _require_text(v, "this value")
        return v.strip()

    @field_validator("extension_secret")
    @classmethod
    def _base64(cls, v: SecretStr) -> SecretStr:
        _require_text(v, "the extension secret")
        try:
            decoded = base64.b64decode(v.get_secret_value().strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(
                "is not valid base64; Twitch shows the extension secret base64-encoded, "
                "paste it as shown (e.g. the output of `printf my-secret | base64`)"
            ) from exc
        if len(decoded) < MIN_EXTENSION_SECRET_BYTES:
            raise ValueError(
                f"decodes to {len(decoded)} bytes, fewer than {MIN_EXTENSION_SECRET_BYTES}: the "
                "MGM backend refuses every JWT signed with a shorter key; use the extension "
                "secret Twitch shows, or a random one (e.g. `openssl rand -base64 32`)"
            )
        return v

    @field_validator("helix_base_url")
    @classmethod
    def _helix_root(cls, v: str) -> str:
        url = v.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be an http:// or https:// URL with a host, e.g. 'http://mock-helix:8080'"
            )
        path = parts.path.rstrip("/")
        if path.lower().endswith("/helix"):
            raise ValueError(
                "ends in /helix; give the Helix root URL without it "
                f"(e.g. '{parts.scheme}://{parts.netloc}'): the backend appends /helix/... itself"
            )
        if path or parts.query or parts.fragment:
            raise ValueError(
                "carries a path, query or fragment; give only scheme, host and port "
                f"(e.g. '{parts.scheme}://{parts.netloc}')"
            )
        return url


class PostgresSection(BaseModel):
    """Credentials of the stack's PostgreSQL database."""

    db: str = "mgm"
    user: str = "mgm"
    password: SecretStr = SecretStr("demo-postgres-password-0001")

    @field_validator("db", "user")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", v):
            raise ValueError(
                "must be a plain identifier (letters, digits, underscore; at most 63 characters)"
            )
        return v

    @field_validator("password")
    @classmethod
    def _password(cls, v: SecretStr) -> SecretStr:
        _require_text(v, "the database password")
        if ";" in v.get_secret_value():
            raise ValueError("must not contain ';' (it would break the connection string)")
        return v


class PortsSection(BaseModel):
    """The fixed host ports `invoke up` publishes on 127.0.0.1 (the stack's `fixed_port`s)."""

    backend: int = 8080
    mock_eventsub: int = 9051
    mock_jwt: int = 9052
    mock_helix: int = 9053
    synthetic_desktop: int = 9054
    postgres: int = 5432

    @field_validator("*")
    @classmethod
    def _port_range(cls, v: int) -> int:
        if not 1 <= v <= 65535:
            raise ValueError(f"port {v} is out of range; use a number from 1 to 65535")
        return v

    @model_validator(mode="after")
    def _distinct(self) -> PortsSection:
        seen: dict[int, str] = {}
        for name, port in self.model_dump().items():
            if port in seen:
                raise ValueError(
                    f"ENVKIT_PORTS__{seen[port].upper()} and ENVKIT_PORTS__{name.upper()} "
                    f"are both {port}; give each service its own port"
                )
            seen[port] = name
        return self


class MgmSettings(BaseModel):
    """The MGM stack's settings: backend, Twitch, PostgreSQL and the fixed `up` ports."""

    mgm: MgmSection = MgmSection()
    twitch: TwitchSection = TwitchSection()
    postgres: PostgresSection = PostgresSection()
    ports: PortsSection = PortsSection()


def mgm_settings(settings: EnvkitSettings) -> MgmSettings:
    """The MGM sections of a settings object built for the MGM stack (a clear error if not)."""
    if not isinstance(settings, MgmSettings):
        raise SettingsError(
            [
                "these settings were built without the MGM stack's settings; build them with "
                "load_settings(..., stack=Path('compose/tier-b.toml'))"
            ]
        )
    return settings
