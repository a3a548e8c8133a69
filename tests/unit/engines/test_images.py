"""Which envkit images `clean --images` counts as stale, and what it says about refusals."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import docker
import pytest

from envkit.engines.images import (
    LABEL,
    ImageBuilder,
    postgres_recipe,
    postgres_tag,
    python_recipe,
    remove_images,
)
from envkit.engines.images import stale_images as find_stale
from envkit.spec.settings import load_settings

SETTINGS = load_settings(None, {})


class FakeImages:
    """An engine's images: tagged envkit images, none of the public bases."""

    def __init__(self, tags: list[str], in_use: frozenset[str] = frozenset()) -> None:
        self.tags = tags
        self.in_use = in_use
        self.removed: list[str] = []
        self.filters: list[Any] = []

    def get(self, ref: str) -> Any:
        raise docker.errors.ImageNotFound(f"No such image: {ref}")

    def list(self, filters: dict[str, str] | None = None) -> list[Any]:
        self.filters.append(filters)
        return [SimpleNamespace(tags=[tag]) for tag in self.tags]

    def remove(self, ref: str) -> None:
        if ref in self.in_use:
            response = SimpleNamespace(status_code=409, reason="Conflict", url="")
            raise docker.errors.APIError(
                "remove", response=response, explanation=f"image {ref} is used by a container"
            )
        self.removed.append(ref)


def test_images_the_current_inputs_produce_are_not_stale() -> None:
    current = [postgres_tag(SETTINGS), postgres_recipe(SETTINGS).tag, python_recipe(SETTINGS).tag]
    old = ["envkit/postgres:0000000000000000", "envkit/services:1111111111111111"]
    images = FakeImages([*current, *reversed(old), "someone/else:1"])
    client = SimpleNamespace(images=images)
    assert find_stale(SETTINGS, client) == old
    assert images.filters == [{"label": LABEL}]


def test_a_changed_input_makes_the_old_image_stale() -> None:
    before = postgres_tag(SETTINGS)
    mirror = load_settings(None, {"ENVKIT_IMAGES__DEBIAN_MIRROR": "http://mirror.local/debian"})
    client = SimpleNamespace(images=FakeImages([before]))
    assert find_stale(mirror, client) == [before]
    assert find_stale(SETTINGS, client) == []


def test_images_the_engine_refuses_to_remove_are_reported_with_its_reason() -> None:
    images = FakeImages([], in_use=frozenset({"envkit/services:1"}))
    refused = remove_images(
        SimpleNamespace(images=images),
        ["envkit/postgres:0", "envkit/services:1", "envkit/postgres:2"],
    )
    assert refused == [("envkit/services:1", "image envkit/services:1 is used by a container")]
    assert images.removed == ["envkit/postgres:0", "envkit/postgres:2"]


@pytest.mark.parametrize("recipe", [postgres_recipe, python_recipe])
def test_recipe_tags_name_the_role_and_follow_the_mirror(recipe: Any) -> None:
    mirror = load_settings(None, {"ENVKIT_IMAGES__DEBIAN_MIRROR": "http://mirror.local/debian"})
    assert recipe(SETTINGS).tag.startswith("envkit/rootfs-")
    assert recipe(SETTINGS).tag == recipe(load_settings(None, {})).tag
    assert recipe(SETTINGS).tag != recipe(mirror).tag


class WarmEngine:
    """An engine holding every envkit image (none of the public ones); it counts the
    inspections per reference and refuses to build or pull anything."""

    def __init__(self) -> None:
        self.inspected: dict[str, int] = {}
        self.api = self
        self.images = self

    def inspect_image(self, ref: str) -> dict[str, Any]:
        self.inspected[ref] = self.inspected.get(ref, 0) + 1
        if not ref.startswith("envkit/"):
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return {"Id": f"sha256:{ref}", "Config": {"Labels": {"envkit.python": "3.11"}}}

    def build(self, **kwargs: Any) -> Any:
        raise AssertionError(f"a warm engine was asked to build {kwargs.get('tag')}")

    def pull(self, ref: str, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a warm engine was asked to pull {ref}")


def test_a_warm_engine_is_asked_about_each_image_once_and_builds_nothing() -> None:
    local = load_settings(None, {"ENVKIT_IMAGES__SOURCE": "local"})  # never a public pull
    engine = WarmEngine()
    results = ImageBuilder(local, cast(docker.DockerClient, engine)).ensure(
        ["postgres", "services"]
    )
    assert {r.action for r in results.values()} == {"present"}
    assert results["services"].ref.startswith("envkit/services:")
    assert engine.inspected  # it did ask
    assert max(engine.inspected.values()) == 1, engine.inspected
