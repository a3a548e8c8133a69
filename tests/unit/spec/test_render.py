"""Per-service environments rendered from the one settings object and the stack file."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.errors import SettingsError
from envkit.spec.settings import load_settings, render_env
from envkit.spec.stack import load_stack, resolve_stack

STACK = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"


def rendered_stack(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    settings = load_settings(None, environ, stack=STACK)
    resolved = resolve_stack(load_stack(STACK), settings)
    return {name: service.env for name, service in resolved.items()}


def test_shared_values_agree_across_services() -> None:
    env = rendered_stack(
        {
            "ENVKIT_MGM__API_KEY": "key-one",
            "ENVKIT_TWITCH__EVENTSUB_SECRET": "whsec-one",
            "ENVKIT_TWITCH__BROADCASTER_ACCESS_TOKEN": "tok-one",
            "ENVKIT_TWITCH__HELIX_CLIENT_ID": "client-one",
        }
    )
    assert env["backend"]["Mgm__ApiKey"] == env["synthetic-desktop"]["Mgm__ApiKey"] == "key-one"
    assert env["backend"]["Twitch__EventSubSecret"] == "whsec-one"
    assert env["mock-eventsub"]["Twitch__EventSubSecret"] == "whsec-one"
    assert env["mock-helix"]["Twitch__BroadcasterAccessToken"] == "tok-one"
    assert env["backend"]["Twitch__BroadcasterAccessToken"] == "tok-one"
    assert env["mock-helix"]["Twitch__HelixClientId"] == env["backend"]["Twitch__HelixClientId"]
    assert env["mock-jwt"]["Twitch__ExtensionSecret"] == env["backend"]["Twitch__ExtensionSecret"]


def test_backend_gets_the_contract_names() -> None:
    backend = rendered_stack({"ENVKIT_POSTGRES__PASSWORD": "pw-9"})["backend"]
    assert backend["ConnectionStrings__PostgreSQL"] == (
        "Host=postgres;Port=5432;Database=mgm;Username=mgm;Password=pw-9"
    )
    assert backend["Twitch__HelixApiBaseUrl"] == "http://mock-helix:8080"
    assert rendered_stack({})["mock-eventsub"]["Backend__BaseUrl"] == "http://backend:8080"
    assert backend["Mgm__EnableE2eHarness"] == "true"
    assert backend["ASPNETCORE_ENVIRONMENT"] == "Development"
    assert not any("${" in value for value in backend.values())


def test_postgres_credentials_match_the_backend_connection_string() -> None:
    env = rendered_stack({"ENVKIT_POSTGRES__USER": "alice", "ENVKIT_POSTGRES__DB": "shop"})
    assert env["postgres"]["POSTGRES_USER"] == "alice"
    assert "Username=alice" in env["backend"]["ConnectionStrings__PostgreSQL"]
    assert "Database=shop" in env["backend"]["ConnectionStrings__PostgreSQL"]


def test_unknown_reference_names_it() -> None:
    settings = load_settings(None, {})
    with pytest.raises(SettingsError) as info:
        render_env({"X": "${twitch.nope}"}, settings, where="compose/x.toml service api")
    assert "compose/x.toml service api: '${twitch.nope}' names no setting" in str(info.value)


def test_extra_references_fill_non_setting_values() -> None:
    settings = load_settings(None, {})
    env = render_env({"URL": "${backend.url}/x"}, settings, {"backend.url": "http://b:1"})
    assert env == {"URL": "http://b:1/x"}
