"""envkit's own settings: the image override (the stack's settings: test_stacksettings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.errors import SettingsError
from envkit.spec.settings import load_settings, with_image_overrides


def refused(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None, environ=environ)
    return str(info.value)


# -- the image override -------------------------------------------------------------------------


def test_the_image_override_is_read_and_normalised() -> None:
    settings = load_settings(
        None,
        {"ENVKIT_IMAGES__OVERRIDE": " backend = registry.example/mgm-backend:1.4 , web=./web,"},
    )
    assert settings.images.override == "backend=registry.example/mgm-backend:1.4,web=./web"
    assert settings.images.override_map() == {
        "backend": "registry.example/mgm-backend:1.4",
        "web": "./web",
    }
    assert load_settings(None, {}).images.override_map() == {}


@pytest.mark.parametrize(
    "ref",
    [
        "redis",
        "redis:7",
        "registry.example/mgm-backend:1.4",
        "127.0.0.1:5000/team/api:2026.11-rc1",
        "localhost/a_b__c/d-e:latest",
        "ghcr.io/org/app@sha256:" + "0" * 64,
        "ghcr.io/org/app:1@sha256:" + "f" * 64,
    ],
)
def test_image_references_are_accepted(ref: str) -> None:
    settings = load_settings(None, {"ENVKIT_IMAGES__OVERRIDE": f"api={ref}"})
    assert settings.images.override_map() == {"api": ref}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "backend",
            "ENVKIT_IMAGES__OVERRIDE='backend': 'backend' is not SERVICE=IMAGE_OR_DIR; write e.g. "
            "backend=registry.example/app-backend:1.4 or backend=./app-backend (several pairs "
            "separated by commas)",
        ),
        ("backend=", "'backend=' is not SERVICE=IMAGE_OR_DIR"),
        ("=redis:7", "'=redis:7' is not SERVICE=IMAGE_OR_DIR"),
        (
            "Backend=redis:7",
            "'Backend' in 'Backend=redis:7' is not a service name (lowercase letters, digits and "
            "'-', as in the stack file)",
        ),
        (
            "backend=redis:7,backend=./src",
            "service 'backend' is given twice ('redis:7' and './src'); keep one",
        ),
        (
            "backend=MGM-Backend:1.4",
            "'MGM-Backend:1.4' (for backend) is neither an image reference (lowercase repository, "
            "optional :tag or @sha256:digest, e.g. registry.example/app-backend:1.4) nor a "
            "build-context directory (start a directory with ./, / or ~, e.g. ./app-backend)",
        ),
        ("backend=src dir", "'src dir' (for backend) is neither an image reference"),
    ],
)
def test_malformed_image_overrides_are_refused_with_the_fix(value: str, expected: str) -> None:
    message = refused({"ENVKIT_IMAGES__OVERRIDE": value})
    assert message.startswith("1 setting is invalid:\n  - ENVKIT_IMAGES__OVERRIDE=")
    assert expected in message


def test_image_flags_add_to_the_setting_and_win_for_their_service(tmp_path: Path) -> None:
    settings = load_settings(None, {"ENVKIT_IMAGES__OVERRIDE": "backend=a/b:1,web=/srv/web"})
    merged = with_image_overrides(settings, ["backend=./src", "db=postgres:16,cache=~/c"], tmp_path)
    assert merged.images.override_map() == {
        "backend": str(tmp_path / "src"),
        "web": "/srv/web",
        "db": "postgres:16",
        "cache": str(Path.home() / "c"),
    }
    assert settings.images.override == "backend=a/b:1,web=/srv/web"  # the original is unchanged
    assert with_image_overrides(merged, [], tmp_path) is merged  # already absolute: no change


def test_relative_override_directories_are_taken_from_the_given_directory(tmp_path: Path) -> None:
    settings = load_settings(None, {"ENVKIT_IMAGES__OVERRIDE": "api=../api/./src"})
    merged = with_image_overrides(settings, base=tmp_path / "here")
    assert merged.images.override == f"api={tmp_path / 'api' / 'src'}"


def test_a_malformed_image_flag_names_the_flag() -> None:
    with pytest.raises(SettingsError) as info:
        with_image_overrides(load_settings(None, {}), ["backend"])
    assert info.value.problems == [
        "--image 'backend': 'backend' is not SERVICE=IMAGE_OR_DIR; write e.g. "
        "backend=registry.example/app-backend:1.4 or backend=./app-backend (several pairs "
        "separated by commas)"
    ]


# --- a bad .env is refused before anything starts, naming the line ----------------------


def _refused_env(tmp_path: Path, data: bytes) -> list[str]:
    env_file = tmp_path / ".env"
    env_file.write_bytes(data)
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=env_file, environ={})
    return caught.value.problems


def test_a_dotenv_line_without_equals_is_refused_naming_the_line(tmp_path: Path) -> None:
    problems = _refused_env(tmp_path, b"# settings\nENVKIT_MGM__API_KEY=abcd\nENVKIT_NO_VALUE\n")
    assert problems == [
        f"{tmp_path / '.env'}, line 3: ENVKIT_NO_VALUE has no '='; write ENVKIT_NO_VALUE=VALUE "
        "(ENVKIT_NO_VALUE= for an empty value)"
    ]


def test_a_dotenv_line_that_does_not_parse_is_refused_without_its_text(tmp_path: Path) -> None:
    problems = _refused_env(tmp_path, b"ENVKIT_MGM__API_KEY=abcd\nmy secret words here\n")
    assert problems == [
        f"{tmp_path / '.env'}, line 2: not a NAME=VALUE line; quote a value that has spaces "
        "or #, and start a comment with #"
    ]
    assert "secret words" not in problems[0]


def test_a_dotenv_with_bytes_that_are_not_utf8_is_refused_naming_the_line(
    tmp_path: Path,
) -> None:
    problems = _refused_env(tmp_path, b"A_LINE=1\nENVKIT_MGM__API_KEY=caf\xe9\n")
    assert problems == [
        f"{tmp_path / '.env'}, line 2: byte 0xe9 is not UTF-8; save the file as UTF-8"
    ]


@pytest.mark.parametrize("value", ['"two\nlines"', '"bell\a"', "'tab\x0bvertical'"])
def test_a_dotenv_value_with_a_control_character_is_refused(tmp_path: Path, value: str) -> None:
    problems = _refused_env(tmp_path, f"ENVKIT_MGM__API_KEY={value}\n".encode())
    assert problems == [
        f"{tmp_path / '.env'}, line 1: the value of ENVKIT_MGM__API_KEY holds a control "
        "character (e.g. a newline inside quotes), which no setting can hold; put it on one line"
    ]


def test_a_good_dotenv_with_quotes_tabs_and_non_ascii_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('# c\n\nexport ENVKIT_MGM__API_KEY="ké\ty \\"q\\""\n', encoding="utf-8")
    stack = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"
    settings = load_settings(env_file=env_file, environ={}, stack=stack)
    assert 'ké\ty "q"' in settings.secret_values()
