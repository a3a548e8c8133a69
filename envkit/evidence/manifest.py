"""`manifest.json`: what a run was made of, so it can be understood and replayed elsewhere.

Resolved settings (secrets by their names only, the value replaced by a marker), the stack
file and its hash, the replay bundle (`bundle/`: the stack's own files, see
`envkit.evidence.bundle`), each service's image (reference, id, repo digest, and `inputs`:
a hash of what went into an envkit role or a build, the same on every machine; for a build
its context and input hash) and the image override in force, the run's options (the
runtime faults to inject among them), the faults injected (step, kind, seed), and the
versions of envkit, Python, the engine and the project's git commit (and whether the
checkout had uncommitted changes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests
from pydantic import SecretStr

from envkit.engines.imagesources import ServiceImage
from envkit.errors import ReplayError
from envkit.evidence.bundle import BundleRecord, role_inputs
from envkit.spec.settings import EnvkitSettings, env_name, iter_settings
from envkit.spec.workspace import Workspace

MANIFEST = "manifest.json"
SECRET_MARK = "**********"


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_commit(root: Path) -> str | None:
    """The git commit checked out at the project root `root`, or None outside a git checkout."""
    return _git(root, "rev-parse", "HEAD")


def git_dirty(root: Path) -> bool:
    """True when the git checkout at `root` has uncommitted changes."""
    return bool(_git(root, "status", "--porcelain"))


def settings_snapshot(settings: EnvkitSettings) -> dict[str, str]:
    """Every setting by its ENV name; secrets as a marker (they come from the replayer's env)."""
    return {
        env_name(dotted): SECRET_MARK if isinstance(value, SecretStr) else str(value)
        for dotted, value in iter_settings(settings)
    }


@dataclass(frozen=True)
class BuildRecord:
    """A built image's inputs: its context (project-relative when inside), Dockerfile, hash."""

    context: str = ""
    dockerfile: str = "Dockerfile"
    input_hash: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    """Which image a service ran: reference, id, repo digest, source, how it was produced."""

    ref: str = ""
    id: str | None = None
    repo_digest: str | None = None
    source: str = ""  # "role", "image" or "build"
    override: bool = False  # True when the image override chose it
    action: str = ""  # "present", "pulled" or "built"
    build: BuildRecord | None = None  # builds only
    inputs: str | None = None  # roles and builds: a hash of their inputs, machine-independent

    @property
    def identity(self) -> str | None:
        """What makes two runs' images the same: the inputs, else the repo digest, else the id."""
        if self.inputs:
            return f"inputs {self.inputs}"
        if self.repo_digest:
            return self.repo_digest
        return f"id {self.id}" if self.id else None

    def to_data(self) -> dict[str, Any]:
        """The record as manifest.json holds it (no `build` key for an image that was not built,
        no `inputs` for a named image)."""
        data = dataclasses.asdict(self)
        if self.build is None:
            del data["build"]
        if self.inputs is None:
            del data["inputs"]
        return data


@dataclass(frozen=True)
class StackRecord:
    """The stack file a run used (project-relative when inside the project) and its hash."""

    file: str
    sha256: str = ""


@dataclass(frozen=True)
class Manifest:
    """What a run was made of (manifest.json): versions, stack, images, settings, options."""

    stack: StackRecord
    envkit_version: str = ""
    git_commit: str | None = None
    git_dirty: bool = False
    python: str = ""
    engine: dict[str, Any] = field(default_factory=dict)  # as the engine reported itself
    images: dict[str, ImageRecord] = field(default_factory=dict)
    image_override: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)  # ENV name -> value or SECRET_MARK
    options: dict[str, Any] = field(default_factory=dict)  # the run's options, for replay
    bundle: BundleRecord | None = None  # None: a run recorded before bundles existed
    faults: list[dict[str, Any]] = field(default_factory=list)  # the runtime faults injected

    def to_json(self) -> str:
        """manifest.json's text before redaction (keys sorted, two-space indent)."""
        data = dataclasses.asdict(self)
        data["images"] = {name: image.to_data() for name, image in self.images.items()}
        # An older run's manifest writes back as it was: no bundle, no faults keys.
        if self.bundle is None:
            del data["bundle"]
        else:
            data["bundle"] = self.bundle.to_data()
        if not self.faults:
            del data["faults"]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, path: Path) -> Manifest:
        """The manifest `text` (read from `path`) holds; a ReplayError says what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReplayError(
                f"{path} is not valid JSON ({exc}); it cannot be replayed.", path=path
            ) from exc
        stack = data.get("stack") if isinstance(data, dict) else None
        if not (isinstance(stack, dict) and isinstance(stack.get("file"), str)):
            raise ReplayError(
                f"{path} is not an envkit run manifest (it names no stack file); give the "
                "artifact directory of a `tier-b` run "
                "(e.g. artifacts/shop-20261122T101500-3f9a0c1e).",
                path=path,
            )
        try:
            return cls(
                StackRecord(stack["file"], _text(stack.get("sha256", ""), "stack.sha256")),
                envkit_version=_text(data.get("envkit_version", ""), "envkit_version"),
                git_commit=_optional_text(data.get("git_commit"), "git_commit"),
                git_dirty=bool(data.get("git_dirty", False)),
                python=_text(data.get("python", ""), "python"),
                engine=_table(data, "engine"),
                images={
                    name: _image(record, name) for name, record in _table(data, "images").items()
                },
                image_override=_texts(data, "image_override"),
                settings=_texts(data, "settings"),
                options=_table(data, "options"),
                bundle=BundleRecord.from_data(data["bundle"]) if data.get("bundle") else None,
                faults=_faults(data.get("faults")),
            )
        except ValueError as exc:
            raise ReplayError(
                f"{path} is a damaged run manifest ({exc}); it cannot be replayed.", path=path
            ) from exc


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} is not text")
    return value


def _optional_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:  # an older manifest without it
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not a table")
    return value


def _texts(data: Mapping[str, Any], key: str) -> dict[str, str]:
    table = _table(data, key)
    for name, value in table.items():
        _text(value, f"{key}.{name}")
    return table


def _faults(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
        raise ValueError("faults is not a list of tables")
    return value


def _image(record: Any, name: str) -> ImageRecord:
    if not record:  # a service whose image was not recorded
        return ImageRecord()
    if not isinstance(record, dict):
        raise ValueError(f"images.{name} is not a table")
    build = record.get("build")
    if build is not None and not isinstance(build, dict):
        raise ValueError(f"images.{name}.build is not a table")
    where = f"images.{name}"
    return ImageRecord(
        ref=_text(record.get("ref", ""), f"{where}.ref"),
        id=_optional_text(record.get("id"), f"{where}.id"),
        repo_digest=_optional_text(record.get("repo_digest"), f"{where}.repo_digest"),
        source=_text(record.get("source", ""), f"{where}.source"),
        override=bool(record.get("override", False)),
        action=_text(record.get("action", ""), f"{where}.action"),
        build=None
        if build is None
        else BuildRecord(
            _text(build.get("context", ""), f"{where}.build.context"),
            _text(build.get("dockerfile", "Dockerfile"), f"{where}.build.dockerfile"),
            _optional_text(build.get("input_hash"), f"{where}.build.input_hash"),
        ),
        inputs=_optional_text(record.get("inputs"), f"{where}.inputs"),
    )


def build_manifest(
    settings: EnvkitSettings,
    stack_file: Path,
    images: Mapping[str, ServiceImage],
    client: docker.DockerClient | None,
    options: dict[str, Any],
    *,
    bundle: BundleRecord | None = None,
    faults: list[dict[str, Any]] | None = None,
    endpoint: str = "",
) -> Manifest:
    """The run's manifest (not yet redacted: `write_manifest` does that); `endpoint` is the
    engine the run was placed on (recorded as the engine's `Endpoint`)."""
    workspace = settings.workspace
    engine: dict[str, Any] = {}
    if client is not None:
        try:
            version = client.version()
            engine = {k: version.get(k) for k in ("Version", "ApiVersion", "Os", "Arch")}
        except (docker.errors.DockerException, requests.RequestException):  # an engine lost
            engine = {}
    if endpoint:
        engine["Endpoint"] = endpoint
    return Manifest(
        envkit_version=importlib.metadata.version("envkit"),
        git_commit=git_commit(workspace.root),
        git_dirty=git_dirty(workspace.root),
        python=platform.python_version(),
        engine=engine,
        stack=StackRecord(
            bundle.stack if bundle else workspace.display(stack_file),
            hashlib.sha256(stack_file.read_bytes()).hexdigest(),
        ),
        images={
            n: dataclasses.replace(
                image_record(i, client, workspace), inputs=image_inputs(i, settings)
            )
            for n, i in images.items()
        },
        image_override=settings.images.override_map(),
        settings=settings_snapshot(settings),
        options=options,
        bundle=bundle,
        faults=list(faults or []),
    )


def image_inputs(image: ServiceImage, settings: EnvkitSettings) -> str | None:
    """The machine-independent inputs of an envkit role or a build; None for a named image."""
    if image.source.kind == "role":
        return role_inputs(image.source.ref, settings)
    return image.input_hash if image.source.kind == "build" else None


def image_record(
    image: ServiceImage, client: docker.DockerClient | None, workspace: Workspace
) -> ImageRecord:
    """Which image a service ran: reference, id, repo digest, source; for a build, its
    context (relative to the project root when inside it), Dockerfile and input hash."""
    image_id = digest = None
    if client is not None:
        try:
            attrs = client.images.get(image.ref).attrs
            image_id = str(attrs["Id"])
            digest = repo_digest(image.ref, attrs.get("RepoDigests") or [])
        except (docker.errors.DockerException, requests.RequestException):  # an engine lost
            pass
    build = None
    if image.source.kind == "build" and image.source.context is not None:
        build = BuildRecord(
            workspace.display(image.source.context), image.source.dockerfile, image.input_hash
        )
    return ImageRecord(
        image.ref, image_id, digest, image.source.kind, image.source.override, image.action, build
    )


def repo_digest(ref: str, digests: list[str]) -> str | None:
    """The `repo@sha256:…` of `ref`'s repository among an image's RepoDigests (None if none)."""
    repository = ref.split("@", 1)[0]
    if repository.rfind(":") > repository.rfind("/"):
        repository = repository.rsplit(":", 1)[0]
    same = [d for d in digests if d.split("@", 1)[0] == repository]
    return next(iter(same or digests), None)


def write_manifest(manifest: Manifest, artifact_dir: Path, redact: Any) -> Path:
    """Write `manifest.json` through the redactor."""
    path = artifact_dir / MANIFEST
    path.write_text(redact(manifest.to_json()) + "\n")
    return path


def read_manifest(artifact_dir: Path) -> Manifest:
    """Load a run's manifest, or say what is missing or wrong."""
    path = artifact_dir / MANIFEST
    if not path.is_file():
        raise ReplayError(
            f"{path} does not exist: give the artifact directory of a `tier-b` run "
            "(e.g. artifacts/shop-20261122T101500-3f9a0c1e).",
            path=path,
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(
            f"{path} cannot be read ({exc.strerror}); it cannot be replayed.", path=path
        ) from exc
    except UnicodeDecodeError as exc:
        raise ReplayError(
            f"{path} is not valid JSON ({exc}); it cannot be replayed.", path=path
        ) from exc
    return Manifest.from_json(text, path)
