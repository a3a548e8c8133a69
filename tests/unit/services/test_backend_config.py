"""Reading the backend's settings from the .NET-style environment."""

from __future__ import annotations

import base64

import pytest

from envkit.services.backend import VERSION
from envkit.services.backend.config import (
    ConfigError,
    DatabaseSettings,
    VersionSettings,
    decode_extension_secret,
    load_config,
    parse_connection_string,
)

CS = "Host=db;Port=5433;Database=mgm;Username=envkit;Password=s3cret"


def test_parses_the_documented_form() -> None:
    settings = parse_connection_string(CS)
    assert settings == DatabaseSettings(
        host="db", port=5433, dbname="mgm", user="envkit", password="s3cret"
    )
    assert settings.connect_kwargs()["dbname"] == "mgm"
    assert settings.describe() == "envkit@db:5433/mgm"


def test_keys_are_case_insensitive_with_npgsql_aliases_and_defaults() -> None:
    settings = parse_connection_string(
        " server = pg ; DATABASE=app; User ID=me; pwd=pw; SSL Mode=Require; Timeout=3;"
    )
    assert (settings.host, settings.dbname, settings.user, settings.password) == (
        "pg",
        "app",
        "me",
        "pw",
    )
    assert settings.port == 5432
    assert settings.sslmode == "require"
    assert settings.connect_timeout == 3


def test_quoted_values_may_hold_semicolons_and_quotes() -> None:
    settings = parse_connection_string(
        'Host=db;Database=mgm;Username=u;Password="a;b=""c""";Port=5432'
    )
    assert settings.password == 'a;b="c"'
    single = parse_connection_string("Host=db;Database=mgm;Username=u;Password='x;y'")
    assert single.password == "x;y"


def test_unknown_keys_are_kept_aside_not_fatal() -> None:
    settings = parse_connection_string(CS + ";Pooling=true;Include Error Detail=true")
    assert settings.ignored_keys == ("Pooling", "Include Error Detail")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Host=db;Database=mgm", "has no Username"),
        ("Database=mgm;Username=u", "has no Host"),
        ("Host=db;Username=u;Password=p", "has no Database"),
        ("Host=db;Port=abc;Database=mgm;Username=u", "Port='abc'"),
        ("Host=db;Port=70000;Database=mgm;Username=u", "from 1 to 65535"),
        ("Host=db;Database=mgm;Username=u;SSL Mode=sometimes", "SSL Mode='sometimes'"),
        ('Host=db;Database=mgm;Username=u;Password="open', "unterminated quote"),
        ("postgresql://u:p@db/mgm", "part 1 has no '='"),
        ("Host=db;=x;Database=mgm;Username=u", "part 2 has an empty key"),
    ],
)
def test_bad_connection_strings_name_the_problem(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="ConnectionStrings__PostgreSQL") as caught:
        parse_connection_string(value)
    assert message in str(caught.value)


def test_errors_and_repr_never_show_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_connection_string("Host=db;Database=mgm;Username=u;hunter2secret;Password=x")
    assert "hunter2secret" not in str(caught.value)
    assert "s3cret" not in repr(parse_connection_string(CS))


def _env(**extra: str) -> dict[str, str]:
    return {"ConnectionStrings__PostgreSQL": CS, **extra}


def test_missing_connection_string_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="ConnectionStrings__PostgreSQL is not set"):
        load_config({})


def test_defaults() -> None:
    config = load_config(_env())
    assert config.environment == "Production"
    assert config.harness_enabled is False
    assert config.helix_chat_url == "https://api.twitch.tv/helix/chat/messages"
    assert config.extension_secret == b""
    assert config.api_key == ""


@pytest.mark.parametrize(
    ("environment", "flag", "enabled"),
    [
        ("Development", "true", True),
        ("development", "TRUE", True),
        ("Development", "True ", True),
        ("Development", "false", False),
        ("Development", "1", False),
        ("Development", "", False),
        ("Production", "true", False),
        ("", "true", False),
    ],
)
def test_harness_needs_development_and_the_flag(environment: str, flag: str, enabled: bool) -> None:
    config = load_config(_env(ASPNETCORE_ENVIRONMENT=environment, Mgm__EnableE2eHarness=flag))
    assert config.harness_enabled is enabled


@pytest.mark.parametrize(
    ("root", "url"),
    [
        ("http://mock-helix:9053", "http://mock-helix:9053/helix/chat/messages"),
        ("http://mock-helix:9053/", "http://mock-helix:9053/helix/chat/messages"),
        ("http://proxy/twitch//", "http://proxy/twitch/helix/chat/messages"),
        ("  ", "https://api.twitch.tv/helix/chat/messages"),
    ],
)
def test_helix_url_joins_the_root_with_or_without_slash(root: str, url: str) -> None:
    assert load_config(_env(Twitch__HelixApiBaseUrl=root)).helix_chat_url == url


def test_helix_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="Twitch__HelixApiBaseUrl='mock-helix:9053'"):
        load_config(_env(Twitch__HelixApiBaseUrl="mock-helix:9053"))


def test_extension_secret_is_base64_decoded() -> None:
    raw = b"\x00\xffsecret bytes\x10"
    encoded = base64.b64encode(raw).decode()
    config = load_config(_env(Twitch__ExtensionSecret=encoded))
    assert config.extension_secret == raw
    assert decode_extension_secret(encoded.rstrip("=")) == raw
    assert decode_extension_secret(base64.urlsafe_b64encode(raw).decode()) == raw
    assert "secret bytes" not in repr(config)


def test_bad_extension_secret_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="Twitch__ExtensionSecret is not valid base64"):
        load_config(_env(Twitch__ExtensionSecret="not base64!!"))


def test_version_settings_default_to_the_documented_values() -> None:
    """`GET /api/version` answers these when no `Version__*` variable is set."""
    assert load_config(_env()).version.to_json() == {
        "version": VERSION,
        "releaseNotesUrl": "",
        "minimumDesktopVersion": "0.0.0",
        "minimumAddonVersion": "0.0.0",
        "minimumExtensionVersion": "0.0.0",
    }


def test_version_settings_come_from_the_version_variables() -> None:
    config = load_config(
        _env(
            Version__CurrentVersion=" 2.4.1 ",
            Version__ReleaseNotesUrl="https://example.test/notes",
            Version__MinimumDesktopVersion="2.0.0",
            Version__MinimumAddonVersion="1.5.0",
            Version__MinimumExtensionVersion="",
        )
    )
    assert config.version == VersionSettings("2.4.1", "https://example.test/notes", "2.0.0",
                                             "1.5.0", "0.0.0")  # fmt: skip
