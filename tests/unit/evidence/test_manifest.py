"""manifest.json's image records, and what a replay says when a build's inputs changed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from envkit.engines.imagesources import ImageSource, ServiceImage
from envkit.errors import ReplayError
from envkit.evidence.manifest import (
    SECRET_MARK,
    BuildRecord,
    ImageRecord,
    Manifest,
    StackRecord,
    build_manifest,
    git_commit,
    image_record,
    read_manifest,
    repo_digest,
    settings_snapshot,
    write_manifest,
)
from envkit.evidence.redact import Redactor
from envkit.scenario.replayer import image_differences
from envkit.spec.settings import EnvkitSettings, known_env_names, load_settings

ROOT = Path(__file__).resolve().parents[3]

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
    source = ImageSource("build", context=ROOT / "tests" / "data", override=True)
    built = ServiceImage("envkit-build/s-api:abc", source, "abc", "built")
    record = image_record(built, None, load_settings(None, {}, root=ROOT).workspace)
    assert record == ImageRecord(
        "envkit-build/s-api:abc", None, None, "build", True, "built",
        BuildRecord("tests/data", "Dockerfile", "abc"),
    )  # fmt: skip
    assert record.to_data() == {
        "ref": "envkit-build/s-api:abc",
        "id": None,
        "repo_digest": None,
        "source": "build",
        "override": True,
        "action": "built",
        "build": {"context": "tests/data", "dockerfile": "Dockerfile", "input_hash": "abc"},
    }


def test_an_image_record_has_no_build() -> None:
    image = ServiceImage("redis:7", ImageSource("image", ref="redis:7"))
    record = image_record(image, None, load_settings(None, {}, root=ROOT).workspace)
    assert record.source == "image"
    assert record.override is False
    assert record.build is None
    assert "build" not in record.to_data()


def test_a_replay_names_each_image_whose_inputs_or_digest_changed() -> None:
    db = ImageRecord("postgres:16", repo_digest=f"postgres@{DIGEST}")
    role = ImageRecord("envkit/services:1111", id="sha256:local-1", inputs="r1")
    recorded = {"api": _build("/src/api", "aaa"), "web": _build("/src/web", "ccc"), "db": db,
                "mock": role}  # fmt: skip
    # Another engine: the services image has another tag and id, but the same inputs.
    same = {"api": "inputs aaa", "web": "inputs ccc", "db": f"postgres@{DIGEST}",
            "mock": "inputs r1"}  # fmt: skip
    assert [str(d) for d in image_differences(recorded, same)] == []
    now = {**same, "api": "inputs bbb", "db": f"postgres@{OTHER}"}
    assert [str(d) for d in image_differences(recorded, now)] == [
        "image inputs: api: built from other inputs (inputs aaa then, inputs bbb now)",
        f"image inputs: db: another image (postgres@{DIGEST} then, postgres@{OTHER} now)",
    ]
    gone = {k: v for k, v in same.items() if k != "web"}
    assert [d.text for d in image_differences(recorded, gone)] == [
        "web: built from other inputs (inputs ccc then, not in the stack now)"
    ]
    assert image_differences({"x": ImageRecord("x:1")}, {}) == []  # nothing recorded to compare


def _build(context: str, key: str) -> ImageRecord:
    return ImageRecord(f"x:{key}", build=BuildRecord(context, input_hash=key), inputs=key)


# --- settings snapshot, the written file and what `replay` refuses -----------------------

MGM_STACK = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"
API_KEY = 'desktop "key"\\with-quote-0001'  # JSON escapes it: only a JSON-aware mask hides it


def _settings() -> EnvkitSettings:
    return load_settings(
        None,
        {"ENVKIT_MGM__API_KEY": API_KEY, "ENVKIT_IMAGES__OVERRIDE": "redis=redis:7.2"},
        stack=MGM_STACK,
    )


def test_the_settings_snapshot_names_every_setting_and_hides_every_secret() -> None:
    settings = _settings()
    snapshot = settings_snapshot(settings)
    assert set(snapshot) == set(known_env_names(type(settings)))
    assert snapshot["ENVKIT_MGM__API_KEY"] == SECRET_MARK
    assert snapshot["ENVKIT_TWITCH__EVENTSUB_SECRET"] == SECRET_MARK
    assert snapshot["ENVKIT_TWITCH__HELIX_CLIENT_ID"] == "envkitdemoclientid"
    assert snapshot["ENVKIT_IMAGES__OVERRIDE"] == "redis=redis:7.2"
    for secret in settings.secret_values():
        assert secret not in json.dumps(snapshot)


class FakeImages:
    def __init__(self, known: dict[str, dict[str, Any]]) -> None:
        self.known = known

    def get(self, ref: str) -> Any:
        if ref not in self.known:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return SimpleNamespace(attrs=self.known[ref])


class FakeClient:
    """The part of docker-py's client a manifest reads: the engine version and images."""

    def __init__(self, images: dict[str, dict[str, Any]]) -> None:
        self.images = FakeImages(images)

    def version(self) -> dict[str, Any]:
        return {"Version": "27.3.1", "ApiVersion": "1.47", "Os": "linux", "Arch": "amd64", "X": 1}


def test_a_written_manifest_reads_back_whole_and_without_secrets(tmp_path: Path) -> None:
    settings = _settings()
    stack = tmp_path / "stack.toml"
    stack.write_text('name = "demo"\n')
    images = {
        "redis": ServiceImage("redis:7.2", ImageSource("image", ref="redis:7.2", override=True)),
        "cache": ServiceImage("memcached:1", ImageSource("image", ref="memcached:1")),
    }
    client = FakeClient({"redis:7.2": {"Id": "sha256:abc", "RepoDigests": [f"redis@{DIGEST}"]}})
    options = {"keep": False, "override": [f"backend.Mgm__ApiKey={API_KEY}"]}
    manifest = build_manifest(settings, stack, images, client, options)
    assert manifest.engine == {
        "Version": "27.3.1", "ApiVersion": "1.47", "Os": "linux", "Arch": "amd64"
    }  # fmt: skip
    assert manifest.stack == StackRecord(
        str(stack),  # outside the project: absolute
        hashlib.sha256(b'name = "demo"\n').hexdigest(),
    )
    assert manifest.images["redis"].id == "sha256:abc"
    assert manifest.images["redis"].repo_digest == f"redis@{DIGEST}"
    assert manifest.images["cache"].id is None  # the engine does not have it
    assert manifest.image_override == {"redis": "redis:7.2"}
    assert manifest.settings == settings_snapshot(settings)

    path = write_manifest(manifest, tmp_path, Redactor(settings.secret_values()))
    assert path == tmp_path / "manifest.json"
    text = path.read_text()
    for secret in settings.secret_values():
        assert secret not in text
        assert json.dumps(secret)[1:-1] not in text
    back = read_manifest(tmp_path)
    assert back.options == {"keep": False, "override": ["backend.Mgm__ApiKey=***"]}
    assert dataclasses.replace(back, options=manifest.options) == manifest


def test_an_engine_that_fails_leaves_the_engine_facts_empty(tmp_path: Path) -> None:
    class Broken(FakeClient):
        def version(self) -> dict[str, Any]:
            raise docker.errors.APIError("engine gone")

    stack = tmp_path / "stack.toml"
    stack.write_text("")
    manifest = build_manifest(_settings(), stack, {}, Broken({}), {})
    assert manifest.engine == {}
    assert build_manifest(_settings(), stack, {}, None, {}).engine == {}


def test_git_facts_are_none_outside_a_git_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert git_commit(ROOT) is not None  # this checkout: the test below can tell the difference
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path))  # and without git installed at all
    assert git_commit(ROOT) is None


def _refusal(artifact_dir: Path) -> str:
    with pytest.raises(ReplayError) as info:
        read_manifest(artifact_dir)
    assert info.value.path == artifact_dir / "manifest.json"
    return str(info.value)


def test_replay_of_a_directory_without_a_manifest_says_which_directory_to_give(
    tmp_path: Path,
) -> None:
    assert _refusal(tmp_path) == (
        f"{tmp_path / 'manifest.json'} does not exist: give the artifact directory of a "
        "`tier-b` run (e.g. artifacts/shop-20261122T101500-3f9a0c1e)."
    )


def test_replay_of_a_broken_manifest_says_it_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{"stack": ')
    assert _refusal(tmp_path) == (
        f"{path} is not valid JSON (Expecting value: line 1 column 11 (char 10)); "
        "it cannot be replayed."
    )
    path.write_bytes(b"\xff{}")
    assert _refusal(tmp_path).startswith(f"{path} is not valid JSON ('utf-8' codec can't decode")


@pytest.mark.parametrize("content", ["[]", '{"stack": {}}', '{"stack": {"file": 3}}', "{}"])
def test_replay_of_json_that_is_no_run_manifest_says_so(tmp_path: Path, content: str) -> None:
    (tmp_path / "manifest.json").write_text(content)
    assert _refusal(tmp_path) == (
        f"{tmp_path / 'manifest.json'} is not an envkit run manifest (it names no stack "
        "file); give the artifact directory of a `tier-b` run "
        "(e.g. artifacts/shop-20261122T101500-3f9a0c1e)."
    )


def test_replay_of_an_unreadable_manifest_says_why(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").mkdir()  # is_file() is False: reported as missing
    assert "does not exist" in _refusal(tmp_path)
    (tmp_path / "manifest.json").rmdir()
    # A file that exists but cannot be read, even by root: reading offset 0 of a process's
    # memory fails with EIO.
    (tmp_path / "manifest.json").symlink_to("/proc/self/mem")
    assert _refusal(tmp_path) == (
        f"{tmp_path / 'manifest.json'} cannot be read (Input/output error); it cannot be replayed."
    )


# manifest.json as the previous (dict-based) envkit wrote it, before redaction.
PREVIOUS = """{
  "engine": {
    "ApiVersion": "1.47",
    "Arch": "amd64",
    "Os": "linux",
    "Version": "27.3.1"
  },
  "envkit_version": "0.9.0",
  "git_commit": null,
  "git_dirty": true,
  "image_override": {
    "api": "./services/api"
  },
  "images": {
    "api": {
      "action": "built",
      "build": {
        "context": "services/api",
        "dockerfile": "Dockerfile",
        "input_hash": "abc"
      },
      "id": "sha256:def",
      "override": true,
      "ref": "envkit-build/s-api:abc",
      "repo_digest": null,
      "source": "build"
    },
    "db": {
      "action": "pulled",
      "id": null,
      "override": false,
      "ref": "postgres:16",
      "repo_digest": "postgres@sha256:111",
      "source": "image"
    }
  },
  "options": {
    "only": null,
    "overrides": {
      "api": {
        "Log__Level": "debug"
      }
    },
    "scenario": "tests/s.toml"
  },
  "python": "3.11.9",
  "settings": {
    "ENVKIT_MGM__API_KEY": "**********",
    "ENVKIT_PORTS__API": "18080"
  },
  "stack": {
    "file": "compose/tier-b.toml",
    "sha256": "0123"
  }
}"""


def test_a_manifest_of_the_previous_version_reads_typed_and_writes_back_byte_for_byte(
    tmp_path: Path,
) -> None:
    (tmp_path / "manifest.json").write_text(PREVIOUS + "\n")
    manifest = read_manifest(tmp_path)
    assert manifest.stack == StackRecord("compose/tier-b.toml", "0123")
    assert manifest.git_commit is None
    assert manifest.git_dirty is True
    assert manifest.images["api"].build == BuildRecord("services/api", "Dockerfile", "abc")
    assert manifest.images["db"] == ImageRecord(
        "postgres:16", None, "postgres@sha256:111", "image", False, "pulled"
    )
    assert manifest.options["scenario"] == "tests/s.toml"
    assert manifest.to_json() == PREVIOUS
    write_manifest(manifest, tmp_path, lambda text: text)
    assert (tmp_path / "manifest.json").read_text() == PREVIOUS + "\n"


def test_a_minimal_manifest_reads_with_empty_parts() -> None:
    manifest = Manifest.from_json('{"stack": {"file": "s.toml"}}', Path("m.json"))
    assert manifest == Manifest(StackRecord("s.toml"))


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"stack": {"file": "s.toml"}, "settings": []}', "settings is not a table"),
        ('{"stack": {"file": "s.toml"}, "settings": {"A": 1}}', "settings.A is not text"),
        ('{"stack": {"file": "s.toml"}, "images": {"api": 7}}', "images.api is not a table"),
        ('{"stack": {"file": "s.toml"}, "images": {"api": {"ref": 7}}}', "images.api.ref is"),
        ('{"stack": {"file": "s.toml", "sha256": 1}}', "stack.sha256 is not text"),
        ('{"stack": {"file": "s"}, "images": {"a": {"build": "x"}}}', "images.a.build is not a"),
    ],
)
def test_replay_of_a_damaged_manifest_names_the_damaged_part(
    tmp_path: Path, content: str, why: str
) -> None:
    (tmp_path / "manifest.json").write_text(content)
    message = _refusal(tmp_path)
    assert message.startswith(f"{tmp_path / 'manifest.json'} is a damaged run manifest ({why}")
    assert message.endswith("); it cannot be replayed.")
