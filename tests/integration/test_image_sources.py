"""The public-or-local choice, with a stand-in "public" image tagged inside the engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker
import pytest

from envkit.engines.images import ImageBuilder, ImageResult, python_recipe
from envkit.errors import ImageError
from envkit.spec.settings import EnvkitSettings, load_settings

PUBLIC_PG = "envkit-test/public-postgres:16"
PUBLIC_PY = "envkit-test/public-python:3"


@pytest.fixture
def public_images(
    images: dict[str, ImageResult], settings: EnvkitSettings, engine: docker.DockerClient
) -> Iterator[None]:
    """Stand-ins for the public images: our own builds under other names."""
    engine.images.get(images["postgres"].ref).tag(PUBLIC_PG)
    engine.images.get(python_recipe(settings).tag).tag(PUBLIC_PY)
    yield
    for ref in (PUBLIC_PG, PUBLIC_PY):
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(ref)


def settings_with(**images: str) -> EnvkitSettings:
    environ = {f"ENVKIT_IMAGES__{k.upper()}": v for k, v in images.items()}
    return load_settings(env_file=None, environ=environ)


@pytest.mark.usefixtures("public_images")
def test_auto_prefers_a_present_public_image(engine: docker.DockerClient) -> None:
    settings = settings_with(postgres_public=PUBLIC_PG, python_public=PUBLIC_PY)
    builder = ImageBuilder(settings, engine)
    postgres = builder.ensure_postgres()
    assert (postgres.ref, postgres.origin, postgres.action) == (PUBLIC_PG, "public", "present")
    services = builder.ensure_services()
    assert services.reason.startswith(f"on public base {PUBLIC_PY}")
    assert services.ref.startswith("envkit/services:")
    assert engine.images.get(services.ref).attrs["Config"]["Labels"]["envkit.image"] == "services"


@pytest.mark.usefixtures("public_images")
def test_source_local_ignores_a_present_public_image(
    images: dict[str, ImageResult], engine: docker.DockerClient
) -> None:
    settings = settings_with(source="local", postgres_public=PUBLIC_PG)
    postgres = ImageBuilder(settings, engine).ensure_postgres()
    assert (postgres.ref, postgres.origin) == (images["postgres"].ref, "local")


def test_source_public_refuses_when_the_public_image_cannot_be_had(
    engine: docker.DockerClient,
) -> None:
    missing = "envkit-test/not-here:1"
    settings = settings_with(source="public", postgres_public=missing, pull_timeout_seconds="10")
    with pytest.raises(ImageError) as info:
        ImageBuilder(settings, engine).ensure_postgres()
    message = str(info.value)
    assert f"ENVKIT_IMAGES__SOURCE=public but {missing} is not present and could not be pulled" in (
        message
    )
    assert "set ENVKIT_IMAGES__SOURCE=auto to build it locally" in message
