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
