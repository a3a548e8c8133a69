"""`manifest.json`: what a run was made of, so it can be understood and replayed elsewhere.

Resolved settings (secrets replaced by a marker), the stack file and its hash,
each service's image reference and id, the run's options, and the versions of
envkit, Python, the engine and the project's git commit.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import docker
from pydantic import SecretStr

from envkit.errors import EnvkitError
from envkit.images import PROJECT_ROOT
from envkit.settings import EnvkitSettings, env_name, iter_settings

MANIFEST = "manifest.json"
SECRET_MARK = "**********"


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_commit() -> str | None:
    """The project's current git commit, or None outside a git checkout."""
    return _git("rev-parse", "HEAD")


def settings_snapshot(settings: EnvkitSettings) -> dict[str, str]:
    """Every setting by its ENV name; secrets as a marker (they come from the replayer's env)."""
    return {
        env_name(dotted): SECRET_MARK if isinstance(value, SecretStr) else str(value)
        for dotted, value in iter_settings(settings)
    }


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path.resolve())


def build_manifest(
    settings: EnvkitSettings,
    stack_file: Path,
    images: dict[str, str],
    client: docker.DockerClient | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The manifest's content (not yet redacted: `write_manifest` does that)."""
    image_ids: dict[str, dict[str, str | None]] = {}
    for service, ref in images.items():
        image_id = None
        if client is not None:
            try:
                image_id = str(client.images.get(ref).id)
            except docker.errors.DockerException:
                image_id = None
        image_ids[service] = {"ref": ref, "id": image_id}
    engine: dict[str, Any] = {}
    if client is not None:
        try:
            version = client.version()
            engine = {k: version.get(k) for k in ("Version", "ApiVersion", "Os", "Arch")}
        except docker.errors.DockerException:
            engine = {}
    return {
        "envkit_version": importlib.metadata.version("envkit"),
        "git_commit": git_commit(),
        "git_dirty": bool(_git("status", "--porcelain")),
        "python": platform.python_version(),
        "engine": engine,
        "stack": {
            "file": _relative(stack_file),
            "sha256": hashlib.sha256(stack_file.read_bytes()).hexdigest(),
        },
        "images": image_ids,
        "settings": settings_snapshot(settings),
        "options": options,
    }


def write_manifest(manifest: dict[str, Any], artifact_dir: Path, redact: Any) -> Path:
    """Write `manifest.json` through the redactor."""
    path = artifact_dir / MANIFEST
    path.write_text(redact(json.dumps(manifest, indent=2, sort_keys=True)) + "\n")
    return path


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    """Load a run's manifest, or say what is missing."""
    path = artifact_dir / MANIFEST
    if not path.is_file():
        raise EnvkitError(
            f"{path} does not exist: give the artifact directory of a `tier-b` run "
            "(e.g. artifacts/mgm-20261122T101500-3f9a0c1e)."
        )
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EnvkitError(f"{path} is not valid JSON ({exc}); it cannot be replayed.") from exc
    return data
