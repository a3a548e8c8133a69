"""The backend's extension JWT key: the configured secret, the Development key, or none."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
from collections.abc import Iterator

import jwt
import pytest

from envkit.services.backend.app import build_app
from envkit.services.backend.config import (
    DEV_EXTENSION_KEY,
    BackendConfig,
    load_config,
)
from envkit.services.backend.jwt_auth import verify_extension_jwt
from envkit.services.common import ApiError, log


def _env(**extra: str) -> dict[str, str]:
    return {"ConnectionStrings__PostgreSQL": "Host=db;Database=mgm;Username=u", **extra}


def _token(key: bytes, user_id: str = "e2e-viewer-1") -> str:
    return jwt.encode({"user_id": user_id, "exp": int(time.time()) + 600}, key, algorithm="HS256")


def test_development_key_is_the_real_backends_sha256_of_its_seed() -> None:
    expected = hashlib.sha256(b"mgm-dev-extension-secret-change-me").digest()
    assert expected == DEV_EXTENSION_KEY


def test_development_with_an_empty_secret_accepts_tokens_signed_with_the_development_key() -> None:
    """The MGM workflow runs the backend in Development without Twitch__ExtensionSecret."""
    config = load_config(_env(ASPNETCORE_ENVIRONMENT="Development", Twitch__ExtensionSecret=""))
    assert config.extension_secret == DEV_EXTENSION_KEY
    assert config.extension_key_source == "development"
    assert verify_extension_jwt(_token(DEV_EXTENSION_KEY), config.extension_secret).user_id == (
        "e2e-viewer-1"
    )
    assert config.extension_key_warning is not None
    assert "Twitch__ExtensionSecret is empty: using the Development JWT key" in (
        config.extension_key_warning
    )
    assert "mgm-dev-extension-secret-change-me" in config.extension_key_warning


@pytest.mark.parametrize("environment", ["Production", "Staging", ""])
def test_outside_development_an_empty_secret_refuses_every_token(environment: str) -> None:
    config = load_config(_env(ASPNETCORE_ENVIRONMENT=environment))
    assert config.extension_secret == b""
    with pytest.raises(ApiError) as caught:
        verify_extension_jwt(_token(DEV_EXTENSION_KEY), config.extension_secret)
    assert (caught.value.status, caught.value.code) == (401, "jwt_not_configured")
    assert config.extension_key_warning == (
        "Twitch__ExtensionSecret is empty outside Development: every extension JWT will be "
        "refused; set the extension's base64 secret"
    )


def test_a_configured_secret_wins_over_the_development_key() -> None:
    key = b"a-real-extension-secret-of-32-by"
    config = load_config(
        _env(
            ASPNETCORE_ENVIRONMENT="Development",
            Twitch__ExtensionSecret=base64.b64encode(key).decode(),
        )
    )
    assert config.extension_secret == key
    assert config.extension_key_warning is None
    with pytest.raises(ApiError):
        verify_extension_jwt(_token(DEV_EXTENSION_KEY), config.extension_secret)


def test_a_secret_shorter_than_32_bytes_is_named_with_the_fix_and_refuses_tokens() -> None:
    short = b"only-twenty-bytes!!!"
    config = load_config(_env(Twitch__ExtensionSecret=base64.b64encode(short).decode()))
    warning = config.extension_key_warning
    assert warning is not None
    assert warning.startswith("Twitch__ExtensionSecret decodes to 20 bytes; HS256 needs at least")
    assert "every extension JWT will be refused" in warning
    assert "openssl rand -base64 32" in warning
    with pytest.raises(ApiError) as caught, pytest.warns(jwt.InsecureKeyLengthWarning):
        verify_extension_jwt(_token(short), config.extension_secret)
    assert caught.value.code == "jwt_key_too_short"


def test_the_secret_never_shows_in_the_warning_or_repr() -> None:
    short = b"tiny-but-secret"
    encoded = base64.b64encode(short).decode()
    config = load_config(_env(Twitch__ExtensionSecret=encoded))
    assert encoded not in (config.extension_key_warning or "")
    assert encoded not in repr(config)
    assert "tiny-but-secret" not in repr(config)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = log.add(lambda m: lines.append(str(m).rstrip("\n")), format="{level} {message}")
    yield lines
    log.remove(sink)


def _start_and_stop(config: BackendConfig) -> None:
    async def idle(seconds: float) -> None:
        await asyncio.sleep(3600)  # cancelled when the app stops

    async def scenario() -> None:
        app = build_app(config, db_sleep=idle)
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(scenario())


def _unreachable_database() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"Host=127.0.0.1;Port={port};Database=mgm;Username=u"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"ASPNETCORE_ENVIRONMENT": "Development"}, "using the Development JWT key"),
        ({"ASPNETCORE_ENVIRONMENT": "Production"}, "every extension JWT will be refused"),
        (
            {"Twitch__ExtensionSecret": base64.b64encode(b"x" * 16).decode()},
            "decodes to 16 bytes; HS256 needs at least 32",
        ),
    ],
)
def test_the_key_problem_is_a_warning_at_start_and_the_service_still_starts(
    log_lines: list[str], extra: dict[str, str], expected: str
) -> None:
    env = {"ConnectionStrings__PostgreSQL": _unreachable_database(), **extra}
    config = load_config(env)
    _start_and_stop(config)
    warnings = [line for line in log_lines if line.startswith("WARNING")]
    assert any("Twitch__ExtensionSecret" in line and expected in line for line in warnings), (
        log_lines
    )
    assert any("backend starting" in line for line in log_lines)
