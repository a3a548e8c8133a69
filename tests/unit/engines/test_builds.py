"""Build inputs: what the context sends, which base images count, and the hash that tags a build."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from docker.errors import ImageNotFound

from envkit.engines.builds import base_images, build_tag, context_entries, input_hash
from envkit.engines.imagesources import ImageSource


class Images:
    """The one call of the docker SDK that hashing makes: `images.get(ref).id`."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = ids

    def get(self, ref: str) -> SimpleNamespace:
        if ref not in self.ids:
            raise ImageNotFound(ref)
        return SimpleNamespace(id=self.ids[ref])


def engine(**ids: str) -> SimpleNamespace:
    return SimpleNamespace(images=Images({ref.replace("__", ":"): i for ref, i in ids.items()}))


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text("ARG BASE=base:1\nFROM $BASE\nCOPY src /src\n")
    (root / "src" / "app.py").write_text("print('hi')\n")
    (root / "notes.md").write_text("draft\n")
    (root / ".dockerignore").write_text("# not sent\nnotes.md\n\nbuild/\n")
    return root


def hashed(context: Path, client: SimpleNamespace | None = None, **args: str) -> str:
    source = ImageSource("build", context=context, args=dict(args))
    return input_hash(client or engine(base__1="sha256:aaa"), source)


def test_the_context_is_what_docker_build_sends(context: Path) -> None:
    (context / "build").mkdir()
    (context / "build" / "out.bin").write_bytes(b"\0")
    assert context_entries(context) == [".dockerignore", "Dockerfile", "src", "src/app.py"]


def test_the_dockerfile_is_sent_even_when_ignored(context: Path) -> None:
    (context / ".dockerignore").write_text("*\n!src\n")
    assert context_entries(context) == [".dockerignore", "Dockerfile", "src", "src/app.py"]


def test_the_hash_is_stable_and_ignores_what_is_not_sent(context: Path, tmp_path: Path) -> None:
    before = hashed(context)
    assert hashed(context) == before
    (context / "notes.md").write_text("edited\n")
    (context / "build").mkdir()
    (context / "build" / "cache").write_text("x")
    assert hashed(context) == before
    moved = shutil.copytree(context, tmp_path / "elsewhere", symlinks=True)
    assert hashed(moved) == before  # the tree's content counts, not where it lives


@pytest.mark.parametrize(
    "change",
    [
        lambda c: (c / "src" / "app.py").write_text("print('bye')\n"),
        lambda c: (c / "src" / "new.py").write_text(""),
        lambda c: (c / "src" / "app.py").chmod(0o755),
        lambda c: (c / "src" / "empty").mkdir(),
        lambda c: (c / "src" / "link").symlink_to("app.py"),
        lambda c: (c / "Dockerfile").write_text("ARG BASE=base:1\nFROM $BASE\nCOPY src /app\n"),
        lambda c: (c / ".dockerignore").write_text("build/\n"),  # notes.md is sent now
    ],
)
def test_any_change_to_what_is_sent_changes_the_hash(
    context: Path, change: Callable[[Path], object]
) -> None:
    before = hashed(context)
    change(context)
    assert hashed(context) != before


def test_build_args_and_the_base_images_id_count(context: Path) -> None:
    before = hashed(context)
    assert hashed(context, MODE="x") != before
    assert hashed(context, engine(base__1="sha256:bbb")) != before  # the base was rebuilt
    assert hashed(context, engine()) != before  # the base is not here yet
    assert hashed(context, engine(base__1="sha256:aaa", base__2="sha256:ccc")) == before
    assert hashed(context, engine(base__2="sha256:ccc"), BASE="base:2") != before


def test_base_images_fill_args_and_skip_stages_and_scratch() -> None:
    dockerfile = """\
        # escape=\\
        ARG REGISTRY=registry.example
        ARG TAG
        ARG NOTHING
        FROM --platform=$BUILDPLATFORM ${REGISTRY}/sdk:${TAG:-8.0} AS Build
        ARG INNER=ignored
        RUN make \\
            all
        FROM build AS test
        FROM ${NOTHING:-mcr.example/runtime:8.0}
        COPY --from=build /out /app
        from scratch
        FROM $REGISTRY/tools:${TAG:+pinned}
        """
    text = "\n".join(line.strip() for line in dockerfile.splitlines())
    assert base_images(text, {}) == [
        "registry.example/sdk:8.0",
        "mcr.example/runtime:8.0",
        "registry.example/tools:",
    ]
    assert base_images(text, {"TAG": "9.1", "REGISTRY": "r.local"}) == [
        "r.local/sdk:9.1",
        "mcr.example/runtime:8.0",
        "r.local/tools:pinned",
    ]


def test_base_images_follow_a_continued_from_line_and_an_other_escape() -> None:
    assert base_images("FROM \\\n  base:1 \\\n  AS x\nFROM x\n", {}) == ["base:1"]
    assert base_images("# escape=`\nFROM `\n  base:2\n", {}) == ["base:2"]


def test_the_build_tag_names_stack_service_and_hash() -> None:
    assert build_tag("mgm", "backend", "0123abcd") == "envkit-build/mgm-backend:0123abcd"
