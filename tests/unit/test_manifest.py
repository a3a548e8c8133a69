"""manifest.json's image records, and what a replay says when a build's inputs changed."""

from __future__ import annotations

from pathlib import Path

from envkit.images import PROJECT_ROOT
from envkit.imagesources import ImageSource, ServiceImage
from envkit.manifest import image_record, repo_digest
from envkit.tierb import build_changes

DIGEST = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64


def test_the_repo_digest_is_the_one_of_the_references_repository() -> None:
    digests = [f"mirror.example/app@{OTHER}", f"registry.example/app@{DIGEST}"]
    assert repo_digest("registry.example/app:1.4", digests) == f"registry.example/app@{DIGEST}"
    assert repo_digest(f"registry.example/app@{DIGEST}", digests) == (
        f"registry.example/app@{DIGEST}"
    )
    assert repo_digest("127.0.0.1:5000/app:1", [f"127.0.0.1:5000/app@{DIGEST}"]) == (
        f"127.0.0.1:5000/app@{DIGEST}"
    )
    assert repo_digest("local/app:1", [f"registry.example/app@{DIGEST}"]) == (
        f"registry.example/app@{DIGEST}"  # the same image, known by another name
    )
    assert repo_digest("local/app:1", []) is None


def test_a_build_record_names_its_context_and_input_hash() -> None:
    source = ImageSource("build", context=PROJECT_ROOT / "tests" / "data", override=True)
    record = image_record(ServiceImage("envkit-build/s-api:abc", source, "abc", "built"), None)
    assert record == {
        "ref": "envkit-build/s-api:abc",
        "id": None,
        "repo_digest": None,
        "source": "build",
        "override": True,
        "action": "built",
        "build": {"context": "tests/data", "dockerfile": "Dockerfile", "input_hash": "abc"},
    }


def test_an_image_record_has_no_build() -> None:
    record = image_record(ServiceImage("redis:7", ImageSource("image", ref="redis:7")), None)
    assert record["source"] == "image"
    assert record["override"] is False
    assert "build" not in record


def _build(context: str, key: str) -> dict[str, object]:
    return {"ref": f"x:{key}", "build": {"context": context, "input_hash": key}}


def test_a_replay_names_each_build_whose_inputs_changed(tmp_path: Path) -> None:
    recorded = {"api": _build("/src/api", "aaa"), "web": _build("/src/web", "ccc"), "db": {}}
    now = {"api": _build("/src/api", "bbb"), "web": _build("/src/web", "ccc"), "db": {}}
    assert build_changes(recorded, now) == [
        "api: the build context /src/api is not what the original run built (input hash aaa "
        "then, bbb now; context then: /src/api); this replay ran the current tree."
    ]
    assert build_changes(recorded, recorded) == []
    assert build_changes(recorded, {}) == []  # nothing was built (the replay failed earlier)
