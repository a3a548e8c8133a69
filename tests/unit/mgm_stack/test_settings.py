"""The MGM stack's settings (compose/mgm_stack/settings.py) as envkit builds them for
compose/tier-b.toml: defaults, every rejection (message asserted), sources, secrets hidden."""

from __future__ import annotations

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from mgm_stack.settings import MgmSettings

from envkit.errors import SettingsError
from envkit.spec.settings import (
    EnvkitSettings,
    describe_sources,
    known_env_names,
    settings_class,
)
from envkit.spec.settings import load_settings as load_any

ROOT = Path(__file__).resolve().parents[3]
MGM_STACK = ROOT / "compose" / "tier-b.toml"
MGM_CLASS = settings_class(MgmSettings)


def load_settings(
    env_file: Path | None = None, environ: dict[str, str] | None = None
) -> EnvkitSettings:
    """Settings built for the MGM stack, as the tasks build them."""
    return load_any(env_file, environ, stack=MGM_STACK)


def refused(environ: dict[str, str], env_file: Path | None = None) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=env_file, environ=environ)
    return str(info.value)


def test_defaults_are_valid_demo_values() -> None:
    settings = load_settings(env_file=None, environ={})
    assert settings.twitch.helix_base_url == "http://mock-helix:8080"
    assert settings.ports.backend == 8080
    assert settings.ports.mock_helix == 9053


def test_environment_overrides_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ENVKIT_TWITCH__BROADCASTER_USER_ID=111\nENVKIT_POSTGRES__DB=fromfile\n")
    settings = load_settings(env_file, environ={"ENVKIT_TWITCH__BROADCASTER_USER_ID": "222"})
    assert settings.twitch.broadcaster_user_id == "222"
    assert settings.postgres.db == "fromfile"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ENVKIT_MGM__API_KEY", "", "ENVKIT_MGM__API_KEY: the desktop API key is empty"),
        ("ENVKIT_MGM__API_KEY", "   ", "the desktop API key is empty; set a non-empty value"),
        (
            "ENVKIT_TWITCH__EVENTSUB_SECRET",
            "",
            "ENVKIT_TWITCH__EVENTSUB_SECRET: this secret is empty",
        ),
        (
            "ENVKIT_TWITCH__BROADCASTER_ACCESS_TOKEN",
            "",
            "ENVKIT_TWITCH__BROADCASTER_ACCESS_TOKEN: this secret is empty",
        ),
        (
            "ENVKIT_TWITCH__EXTENSION_SECRET",
            "",
            "ENVKIT_TWITCH__EXTENSION_SECRET: the extension secret is empty",
        ),
        (
            "ENVKIT_POSTGRES__PASSWORD",
            "",
            "ENVKIT_POSTGRES__PASSWORD: the database password is empty",
        ),
    ],
)
def test_empty_credentials_are_refused(name: str, value: str, expected: str) -> None:
    assert expected in refused({name: value})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://mock-helix:8080/helix",
            "ENVKIT_TWITCH__HELIX_BASE_URL='http://mock-helix:8080/helix': ends in /helix; "
            "give the Helix root URL without it (e.g. 'http://mock-helix:8080')",
        ),
        ("http://mock-helix:8080/helix/", "ends in /helix"),
        ("https://api.twitch.tv/HELIX", "ends in /helix"),
        ("http://mock-helix:8080/api", "carries a path, query or fragment; give only scheme"),
        ("http://mock-helix:8080?x=1", "carries a path, query or fragment"),
        ("ftp://mock-helix:8080", "must be an http:// or https:// URL with a host"),
        ("mock-helix:8080", "must be an http:// or https:// URL with a host"),
        ("", "must be an http:// or https:// URL with a host"),
    ],
)
def test_bad_helix_base_urls_are_refused(url: str, expected: str) -> None:
    assert expected in refused({"ENVKIT_TWITCH__HELIX_BASE_URL": url})


def test_helix_root_with_trailing_slash_is_accepted() -> None:
    settings = load_settings(None, {"ENVKIT_TWITCH__HELIX_BASE_URL": "https://api.twitch.tv/"})
    assert settings.twitch.helix_base_url == "https://api.twitch.tv/"


@pytest.mark.parametrize("value", ["not base64!", "abc", "===="])
def test_extension_secret_must_be_base64(value: str) -> None:
    message = refused({"ENVKIT_TWITCH__EXTENSION_SECRET": value})
    assert "ENVKIT_TWITCH__EXTENSION_SECRET: is not valid base64" in message
    assert value not in message  # a secret's value is never echoed back


@pytest.mark.parametrize(
    ("value", "size"),
    [("YQ==", 1), ("c2hvcnQtc2VjcmV0LW9mLTMxLWJ5dGVzLS0tLS0tLQ==", 31)],
)
def test_extension_secret_shorter_than_32_bytes_is_refused(value: str, size: int) -> None:
    """The real backend rejects every token signed with a key under 32 bytes: refuse it early."""
    message = refused({"ENVKIT_TWITCH__EXTENSION_SECRET": value})
    assert f"ENVKIT_TWITCH__EXTENSION_SECRET: decodes to {size} bytes, fewer than 32" in message
    assert "openssl rand -base64 32" in message
    assert value not in message


def test_extension_secret_of_exactly_32_bytes_is_accepted() -> None:
    value = base64.b64encode(b"x" * 32).decode()
    settings = load_settings(None, {"ENVKIT_TWITCH__EXTENSION_SECRET": value})
    assert settings.twitch.extension_secret.get_secret_value() == value


@pytest.mark.parametrize("value", ["0", "65536", "-1"])
def test_ports_out_of_range_are_refused(value: str) -> None:
    message = refused({"ENVKIT_PORTS__MOCK_JWT": value})
    assert f"ENVKIT_PORTS__MOCK_JWT='{value}': port {value} is out of range" in message


def test_non_numeric_port_names_the_setting_and_the_fix() -> None:
    message = refused({"ENVKIT_PORTS__BACKEND": "eighty"})
    assert "ENVKIT_PORTS__BACKEND='eighty': Input should be a valid integer" in message
    assert "fix it in .env or the environment" in message


def test_two_services_on_one_port_are_refused() -> None:
    message = refused({"ENVKIT_PORTS__MOCK_HELIX": "8080"})
    assert (
        "ENVKIT_PORTS__BACKEND and ENVKIT_PORTS__MOCK_HELIX are both 8080; "
        "give each service its own port"
    ) in message


def test_unknown_key_in_env_file_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ENVKIT_TWITCH__HELIX_BASEURL=http://x:1\nOTHER_TOOL_SETTING=1\n")
    message = refused({}, env_file)
    assert (
        f"ENVKIT_TWITCH__HELIX_BASEURL (in {env_file}) is not an envkit setting; "
        "did you mean ENVKIT_TWITCH__HELIX_BASE_URL?"
    ) in message
    assert "OTHER_TOOL_SETTING" not in message


def test_unknown_key_in_environment_is_refused() -> None:
    message = refused({"ENVKIT_NONSENSE": "1"})
    assert "ENVKIT_NONSENSE (in the environment) is not an envkit setting" in message


def test_every_problem_is_reported_at_once() -> None:
    message = refused({"ENVKIT_MGM__API_KEY": "", "ENVKIT_PORTS__POSTGRES": "0"})
    assert message.startswith("2 settings are invalid:")


def test_env_example_documents_every_setting_and_is_valid() -> None:
    example = ROOT / ".env.example"
    text = example.read_text()
    missing = [name for name in known_env_names(MGM_CLASS) if f"\n{name}=" not in text]
    assert missing == []
    load_settings(example, environ={})


SECRET_VALUES = {
    "ENVKIT_MGM__API_KEY": "key-5f1e2d",
    "ENVKIT_TWITCH__EVENTSUB_SECRET": "whsec-93ab",
    "ENVKIT_TWITCH__EXTENSION_SECRET": "c2VjcmV0LWV4dC03NzctZm9yLXRoZS11bml0LXRlc3Rz",
    "ENVKIT_TWITCH__BROADCASTER_ACCESS_TOKEN": "tok-abc123",
    "ENVKIT_POSTGRES__PASSWORD": "pg-pass-4242",
}


def test_secrets_are_absent_from_repr_str_and_dumps() -> None:
    settings = load_settings(None, SECRET_VALUES)
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        str(settings.model_dump()),
        repr(settings.twitch),
    ]
    for text in shown:
        for secret in SECRET_VALUES.values():
            assert secret not in text


def test_secret_values_lists_every_secret() -> None:
    settings = load_settings(None, SECRET_VALUES)
    assert set(settings.secret_values()) == set(SECRET_VALUES.values())


def test_sources_say_where_each_value_came_from(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ENVKIT_POSTGRES__DB=fromfile\n")
    environ = {"ENVKIT_MGM__API_KEY": "from-env-key"}
    settings = load_settings(env_file, environ)
    rows = {
        name: (value, source)
        for name, value, source in describe_sources(settings, env_file, environ)
    }
    assert rows["ENVKIT_POSTGRES__DB"] == ("fromfile", str(env_file))
    assert rows["ENVKIT_MGM__API_KEY"] == ("**********", "environment")
    assert rows["ENVKIT_POSTGRES__USER"] == ("mgm", "default")
    assert set(rows) == set(known_env_names(MGM_CLASS))


# -- the process environment is read, never rewritten --------------------------------------------


class _WatchedEnviron(dict[str, str]):
    """A stand-in for os.environ that records every attempt to change it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.writes: list[str] = []

    def __setitem__(self, key: str, value: str) -> None:
        self.writes.append(f"set {key}")
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append(f"del {key}")
        super().__delitem__(key)

    def clear(self) -> None:
        self.writes.append("clear")
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.writes.append("update")
        super().update(*args, **kwargs)

    def pop(self, key: str, *default: Any) -> Any:
        self.writes.append(f"pop {key}")
        return super().pop(key, *default)

    def setdefault(self, key: str, default: str = "") -> str:
        self.writes.append(f"setdefault {key}")
        return super().setdefault(key, default)


@pytest.fixture
def watched_environ(monkeypatch: pytest.MonkeyPatch) -> _WatchedEnviron:
    watched = _WatchedEnviron({**os.environ, "ENVKIT_POSTGRES__DB": "fromprocess"})
    monkeypatch.setattr(os, "environ", watched)
    return watched


def test_loading_never_changes_os_environ(tmp_path: Path, watched_environ: _WatchedEnviron) -> None:
    watched_environ.writes.clear()  # pytest itself sets PYTEST_CURRENT_TEST between phases
    before = dict(watched_environ)
    env_file = tmp_path / ".env"
    env_file.write_text("ENVKIT_POSTGRES__USER=fromfile\n")
    assert load_settings(env_file, {"ENVKIT_MGM__API_KEY": "given"}).postgres.user == "fromfile"
    assert load_settings(env_file).postgres.db == "fromprocess"  # environ=None: os.environ
    with pytest.raises(SettingsError):
        load_settings(env_file, {"ENVKIT_PORTS__BACKEND": "0"})
    with pytest.raises(SettingsError):
        load_settings(env_file, {"ENVKIT_NONSENSE": "1"})
    assert watched_environ.writes == []
    assert dict(watched_environ) == before


def test_a_given_environment_replaces_the_process_one(watched_environ: _WatchedEnviron) -> None:
    assert load_settings(None, {}).postgres.db == "mgm"
    assert load_settings(None, {"ENVKIT_POSTGRES__DB": "given"}).postgres.db == "given"
    assert load_settings(None).postgres.db == "fromprocess"


def test_two_loads_with_different_environments_do_not_leak() -> None:
    first = load_settings(None, {"ENVKIT_POSTGRES__DB": "first", "ENVKIT_PORTS__BACKEND": "8081"})
    second = load_settings(None, {"ENVKIT_POSTGRES__USER": "second"})
    assert (first.postgres.db, first.postgres.user, first.ports.backend) == ("first", "mgm", 8081)
    assert (second.postgres.db, second.postgres.user, second.ports.backend) == (
        "mgm", "second", 8080,
    )  # fmt: skip


def test_loads_in_parallel_threads_each_see_their_own_environment() -> None:
    def load(index: int) -> tuple[int, str]:
        environ = {"ENVKIT_POSTGRES__DB": f"db{index}"} if index % 2 else {}
        return index, load_settings(None, environ).postgres.db

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(load, range(80)))
    assert results == [(i, f"db{i}" if i % 2 else "mgm") for i in range(80)]


def test_the_settings_class_alone_reads_neither_the_environment_nor_a_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVKIT_POSTGRES__DB", "fromprocess")
    (tmp_path / ".env").write_text("ENVKIT_POSTGRES__USER=fromfile\n")
    monkeypatch.chdir(tmp_path)
    settings = MGM_CLASS()
    assert isinstance(settings, MgmSettings)
    assert (settings.postgres.db, settings.postgres.user) == ("mgm", "mgm")
