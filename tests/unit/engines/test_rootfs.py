"""Debian base images: named by their recipe, and what is trimmed from a fresh root filesystem."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from envkit.engines import rootfs
from envkit.engines.rootfs import RootfsRecipe, image_exists
from envkit.errors import ImageError

RECIPE = RootfsRecipe("postgres", "bookworm", "http://deb.debian.org/debian", ("postgresql",))


def test_the_tag_follows_every_input_but_not_the_package_order_or_labels() -> None:
    assert RECIPE.tag.startswith("envkit/rootfs-postgres:")
    same = RootfsRecipe(
        "postgres", "bookworm", "http://deb.debian.org/debian", ("postgresql",), {"a": "b"}
    )
    assert same.tag == RECIPE.tag
    reordered = RootfsRecipe("p", "bookworm", "http://m/debian", ("b", "a"))
    assert RootfsRecipe("p", "bookworm", "http://m/debian", ("a", "b")).tag == reordered.tag
    for other in (
        RootfsRecipe("postgres", "trixie", RECIPE.mirror, RECIPE.packages),
        RootfsRecipe("postgres", RECIPE.suite, "http://mirror.local/debian", RECIPE.packages),
        RootfsRecipe("postgres", RECIPE.suite, RECIPE.mirror, ("postgresql", "curl")),
    ):
        assert other.tag != RECIPE.tag


class Images:
    def __init__(self, known: set[str]) -> None:
        self.known = known

    def get(self, ref: str) -> Any:
        if ref not in self.known:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return SimpleNamespace(id="sha256:1")


def test_image_exists_asks_the_engine() -> None:
    client = SimpleNamespace(images=Images({RECIPE.tag}))
    assert image_exists(client, RECIPE.tag)
    assert not image_exists(client, "envkit/rootfs-python:0")


def test_trimming_empties_caches_and_docs_but_keeps_the_rest(tmp_path: Path) -> None:
    for rel in ("var/cache/apt/archives/pg.deb", "usr/share/doc/pg/copyright",
                "var/lib/apt/lists/deb_InRelease", "usr/share/man/man1/psql.1",
                "usr/lib/postgresql/bin/postgres", "etc/os-release"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "usr/share/doc/link").symlink_to(tmp_path / "etc")
    rootfs._trim(tmp_path)
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
        assert list((tmp_path / rel).iterdir()) == []  # emptied, the directory kept
    assert (tmp_path / "usr/lib/postgresql/bin/postgres").is_file()
    assert (tmp_path / "etc/os-release").is_file()  # the symlink went, not what it named


def test_without_debootstrap_and_no_right_to_install_it_says_both_ways_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda command: None)
    monkeypatch.setattr(rootfs, "can_install", lambda: False)
    with pytest.raises(ImageError) as info:
        rootfs._require_debootstrap()
    assert str(info.value) == (
        "The public images cannot be had and building them locally needs `debootstrap` run as "
        "root on Debian. Either make the public images available to the engine (e.g. "
        "`docker pull postgres:16-alpine python:3.12-slim`, or `docker load` them), or run "
        "`./inv images` as root on a Debian machine."
    )
