"""`manifest.json`: what a run was made of, so it can be understood and replayed elsewhere.

Resolved settings (secrets replaced by a marker), the stack file and its hash,
each service's image (reference, id, repo digest; for a build its context and input
hash) and the image override in force, the run's options, and the versions of envkit,
Python, the engine and the project's git commit.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
from pydantic import SecretStr

from envkit.engines.imagesources import ServiceImage
from envkit.errors import ReplayError
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


def settings_snapshot(settings: EnvkitSettings) -> dict[str, str]:
    """Every setting by its ENV name; secrets as a marker (they come from the replayer's env)."""
    return {
        env_name(dotted): SECRET_MARK if isinstance(value, SecretStr) else str(value)
        for dotted, value in iter_settings(settings)
    }


def build_manifest(
    settings: EnvkitSettings,
    stack_file: Path,
    images: Mapping[str, ServiceImage],
    client: docker.DockerClient | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The manifest's content (not yet redacted: `write_manifest` does that)."""
    workspace = settings.workspace
    engine: dict[str, Any] = {}
    if client is not None:
        try:
            version = client.version()
            engine = {k: version.get(k) for k in ("Version", "ApiVersion", "Os", "Arch")}
        except docker.errors.DockerException:
            engine = {}
    return {
        "envkit_version": importlib.metadata.version("envkit"),
        "git_commit": git_commit(workspace.root),
        "git_dirty": bool(_git(workspace.root, "status", "--porcelain")),
        "python": platform.python_version(),
        "engine": engine,
        "stack": {
            "file": workspace.display(stack_file),
            "sha256": hashlib.sha256(stack_file.read_bytes()).hexdigest(),
        },
        "images": {n: image_record(i, client, workspace) for n, i in images.items()},
        "image_override": settings.images.override_map(),
        "settings": settings_snapshot(settings),
        "options": options,
    }


def image_record(
    image: ServiceImage, client: docker.DockerClient | None, workspace: Workspace
) -> dict[str, Any]:
    """Which image a service ran: reference, id, repo digest, source; for a build, its
    context (relative to the project root when inside it), Dockerfile and input hash."""
    record: dict[str, Any] = {
        "ref": image.ref,
        "id": None,
        "repo_digest": None,
        "source": image.source.kind,
        "override": image.source.override,
        "action": image.action,
    }
    if client is not None:
        try:
            attrs = client.images.get(image.ref).attrs
            record["id"] = str(attrs["Id"])
            record["repo_digest"] = repo_digest(image.ref, attrs.get("RepoDigests") or [])
        except docker.errors.DockerException:
            pass
    if image.source.kind == "build" and image.source.context is not None:
        record["build"] = {
            "context": workspace.display(image.source.context),
            "dockerfile": image.source.dockerfile,
            "input_hash": image.input_hash,
        }
    return record


def repo_digest(ref: str, digests: list[str]) -> str | None:
    """The `repo@sha256:…` of `ref`'s repository among an image's RepoDigests (None if none)."""
    repository = ref.split("@", 1)[0]
    if repository.rfind(":") > repository.rfind("/"):
        repository = repository.rsplit(":", 1)[0]
    same = [d for d in digests if d.split("@", 1)[0] == repository]
    return next(iter(same or digests), None)


def write_manifest(manifest: dict[str, Any], artifact_dir: Path, redact: Any) -> Path:
    """Write `manifest.json` through the redactor."""
    path = artifact_dir / MANIFEST
    path.write_text(redact(json.dumps(manifest, indent=2, sort_keys=True)) + "\n")
    return path


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    """Load a run's manifest, or say what is missing."""
    path = artifact_dir / MANIFEST
    if not path.is_file():
        raise ReplayError(
            f"{path} does not exist: give the artifact directory of a `tier-b` run "
            "(e.g. artifacts/shop-20261122T101500-3f9a0c1e).",
            path=path,
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReplayError(
            f"{path} cannot be read ({exc.strerror}); it cannot be replayed.", path=path
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReplayError(
            f"{path} is not valid JSON ({exc}); it cannot be replayed.", path=path
        ) from exc
    stack = data.get("stack") if isinstance(data, dict) else None
    if not (isinstance(stack, dict) and isinstance(stack.get("file"), str)):
        raise ReplayError(
            f"{path} is not an envkit run manifest (it names no stack file); give the "
            "artifact directory of a `tier-b` run (e.g. artifacts/shop-20261122T101500-3f9a0c1e).",
            path=path,
        )
    manifest: dict[str, Any] = data
    return manifest
