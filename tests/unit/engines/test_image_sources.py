"""Which image each service runs: stack images, builds and the override, all checked up front."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from envkit.engines.imagesources import ImageSource, image_sources
from envkit.errors import SettingsError, StackError
from envkit.spec.settings import load_settings
from envkit.spec.stack import load_stack, resolve_stack

STACK = """
    [stack]
    name = "shop"

    [settings.shop.mode]
    default = "Development"
    description = "the build mode of the api image"

    [services.db]
    image = "postgres"
    log = "db.log"

    [services.api]
    log = "api.log"
    build = { context = "../src/api", args = { MODE = "${shop.mode}" } }

    [services.cache]
    image = "redis:7"
    log = "cache.log"
"""


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    (tmp_path / "compose").mkdir()
    (tmp_path / "src" / "api").mkdir(parents=True)
    (tmp_path / "src" / "api" / "Dockerfile").write_text("FROM scratch\n")
    path = tmp_path / "compose" / "shop.toml"
    path.write_text(textwrap.dedent(STACK))
    return path


def sources(
    stack_file: Path, override: str = "", base: Path | None = None
) -> dict[str, ImageSource]:
    settings = load_settings(None, {"ENVKIT_IMAGES__OVERRIDE": override}, stack=stack_file)
    return image_sources(load_stack(stack_file), settings, base)


def test_each_service_gets_its_stack_image_or_build(stack_file: Path, tmp_path: Path) -> None:
    found = sources(stack_file)
    assert found["db"] == ImageSource("role", ref="postgres")
    assert found["cache"] == ImageSource("image", ref="redis:7")
    assert found["api"] == ImageSource(
        "build", context=tmp_path / "src" / "api", args={"MODE": "Development"}
    )
    assert found["api"].describe() == f"build of {tmp_path / 'src' / 'api'}"


def test_an_override_replaces_images_and_builds(stack_file: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "Dockerfile").write_text("FROM scratch\n")
    found = sources(stack_file, "api=registry.example/api:1.4,db=./other", base=tmp_path)
    assert found["api"] == ImageSource("image", ref="registry.example/api:1.4", override=True)
    assert found["api"].describe() == "image registry.example/api:1.4 (override)"
    assert found["db"] == ImageSource("build", context=tmp_path / "other", override=True)
    assert found["cache"] == ImageSource("image", ref="redis:7")


def test_an_override_directory_keeps_the_stacks_dockerfile_and_args(
    stack_file: Path, tmp_path: Path
) -> None:
    text = stack_file.read_text().replace(
        'context = "../src/api",', 'context = "../src/api", dockerfile = "Dockerfile",'
    )
    stack_file.write_text(text)
    (tmp_path / "work" / "api").mkdir(parents=True)
    (tmp_path / "work" / "api" / "Dockerfile").write_text("FROM scratch\n")
    found = sources(stack_file, f"api={tmp_path / 'work' / 'api'}")
    assert found["api"] == ImageSource(
        "build", context=tmp_path / "work" / "api", args={"MODE": "Development"}, override=True
    )


def test_an_override_naming_an_unknown_service_is_refused(stack_file: Path) -> None:
    with pytest.raises(SettingsError) as info:
        sources(stack_file, "apii=registry.example/api:1.4,db=postgres:16")
    assert info.value.problems == [
        f"ENVKIT_IMAGES__OVERRIDE (or --image) names service 'apii', which stack 'shop' "
        f"({stack_file}) does not have; did you mean 'api'? its services are: api, cache, db. "
        "Fix the name, e.g. api=registry.example/app:1.4 or api=./app"
    ]


def test_a_missing_build_context_names_file_service_field_and_fix(
    stack_file: Path, tmp_path: Path
) -> None:
    stack_file.write_text(stack_file.read_text().replace("../src/api", "../src/gone"))
    stack = load_stack(stack_file)  # the file itself is fine
    with pytest.raises(StackError) as info:
        resolve_stack(stack, load_settings(None, {}, stack=stack_file))
    assert info.value.problems == [
        f"{stack_file}: service 'api', field 'build.context': the build-context directory "
        f"{tmp_path / 'src' / 'gone'} does not exist; give the directory that holds the "
        "Dockerfile, relative to the stack file's directory or absolute"
    ]


def test_a_missing_dockerfile_names_the_field_and_fix(stack_file: Path, tmp_path: Path) -> None:
    (tmp_path / "src" / "api" / "Dockerfile").unlink()
    with pytest.raises(StackError) as info:
        resolve_stack(load_stack(stack_file), load_settings(None, {}, stack=stack_file))
    assert info.value.problems == [
        f"{stack_file}: service 'api', field 'build.dockerfile': "
        f"{tmp_path / 'src' / 'api' / 'Dockerfile'} does not exist; add it, or name the "
        'Dockerfile (relative to the context) with dockerfile = "..."'
    ]


def test_a_context_that_is_a_file_is_refused(stack_file: Path, tmp_path: Path) -> None:
    (tmp_path / "src" / "file").write_text("")
    stack_file.write_text(stack_file.read_text().replace("../src/api", "../src/file"))
    with pytest.raises(StackError, match=r"src/file is not a directory; give the directory"):
        sources(stack_file)


def test_an_overridden_service_needs_no_stack_context(stack_file: Path) -> None:
    stack_file.write_text(stack_file.read_text().replace("../src/api", "../src/gone"))
    found = sources(stack_file, "api=registry.example/api:1.4")
    assert found["api"].kind == "image"


def test_a_missing_override_directory_names_the_setting_and_fix(
    stack_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError) as info:
        sources(stack_file, "cache=./nowhere", base=tmp_path)
    assert info.value.problems == [
        "ENVKIT_IMAGES__OVERRIDE (or --image) for service 'cache': the build-context directory "
        f"{tmp_path / 'nowhere'} does not exist; give the directory of the service's source "
        "tree that holds its Dockerfile (relative paths are taken from the current directory), "
        "or an image reference"
    ]


def test_an_override_directory_without_a_dockerfile_is_refused(
    stack_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SettingsError) as info:
        sources(stack_file, f"cache={tmp_path / 'empty'}")
    assert info.value.problems == [
        "ENVKIT_IMAGES__OVERRIDE (or --image) for service 'cache': "
        f"{tmp_path / 'empty' / 'Dockerfile'} does not exist; a build-context directory needs "
        "one (or give an image reference instead)"
    ]


def test_resolve_stack_refuses_an_unknown_override_before_anything_starts(
    stack_file: Path,
) -> None:
    settings = load_settings(None, {"ENVKIT_IMAGES__OVERRIDE": "web=nginx:1"}, stack=stack_file)
    with pytest.raises(SettingsError, match="names service 'web', which stack 'shop'"):
        resolve_stack(load_stack(stack_file), settings)
