"""Content hashes that name images by their inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

SHORT = 16


def digest(*parts: str | bytes) -> str:
    """Short, stable hex digest of `parts` (each part length-prefixed, so joins can't collide)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()[:SHORT]


def tree_files(root: Path, ignore: Iterable[str] = ("__pycache__", ".mypy_cache")) -> list[Path]:
    """Every regular file under `root`, sorted, skipping ignored directory names and *.pyc."""
    skip = set(ignore)
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".pyc" and not skip.intersection(p.relative_to(root).parts)
    )


def tree_digest(root: Path) -> str:
    """Digest of every file's relative path and bytes under `root`."""
    parts: list[str | bytes] = []
    for path in tree_files(root):
        parts += [path.relative_to(root).as_posix(), path.read_bytes()]
    return digest(*parts)
