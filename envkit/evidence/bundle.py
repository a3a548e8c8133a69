"""The replay bundle: a run's own copy of its stack, and images named by their inputs.

`write_bundle` copies the stack file and every stack-owned file it names (a scenario
file, the package or module of its scenario and settings next to it, build contexts up
to `CONTEXT_COPY_LIMIT` bytes) into the run's `bundle/` directory, at their paths
relative to the project root, and returns a `BundleRecord` (each file's sha256, each
build context's tree hash) for manifest.json. A file that holds a secret value or lies
outside the project is hashed but not copied; a larger build context is only hashed.
`stack_changes` says how a checkout's copy of those files differs from the recorded one;
`link_uncopied` links what the bundle lacks from the checkout, so the stack copy runs.

`role_inputs` names an envkit image role by what goes into it (the services' code, their
pinned requirements, the recipe and its settings), not by its tag: a locally built base
image gets a new id on every engine, and the services tag includes that id, so only the
inputs say whether two machines run "the same image".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envkit.engines.hashing import digest, tree_digest, tree_files
from envkit.engines.images import IMAGE_FILES, postgres_tag, python_recipe
from envkit.spec.settings import EnvkitSettings

BUNDLE_DIR = "bundle"
CONTEXT_COPY_LIMIT = 4 * 1024 * 1024  # bytes; a larger build context is recorded by its hash
_ROLE_SOURCES = {"services": "services", "reaper": "reaperd"}


@dataclass(frozen=True)
class BundleRecord:
    """What the bundle holds: the stack file's path, every stack-owned file and build context."""

    stack: str = ""  # the stack file, relative to the bundle (and to the project root)
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256, copied or not
    contexts: dict[str, str] = field(default_factory=dict)  # build context -> tree hash
    not_copied: dict[str, str] = field(default_factory=dict)  # path -> why it is not in bundle/

    def to_data(self) -> dict[str, Any]:
        """The record as manifest.json's `bundle` holds it."""
        return {
            "stack": self.stack,
            "files": dict(sorted(self.files.items())),
            "contexts": dict(sorted(self.contexts.items())),
            "not_copied": dict(sorted(self.not_copied.items())),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> BundleRecord:
        """The record of manifest.json's `bundle` table; ValueError names a damaged entry."""
        stack = data.get("stack", "")
        if not isinstance(stack, str):
            raise ValueError("bundle.stack is not text")
        tables = {}
        for key in ("files", "contexts", "not_copied"):
            table = data.get(key) or {}
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise ValueError(f"bundle.{key} is not a table of text")
            tables[key] = table
        return cls(stack, tables["files"], tables["contexts"], tables["not_copied"])

    @property
    def content_hash(self) -> str:
        """One hash of the stack's whole recorded content (files and build contexts)."""
        parts = [p for item in sorted(self.files.items()) for p in item]
        parts += [p for item in sorted(self.contexts.items()) for p in ("context", *item)]
        return digest(*parts)


@dataclass(frozen=True)
class StackFiles:
    """The files a stack file owns: its own, its modules' and scenario's, its build contexts."""

    files: list[Path]
    contexts: list[Path]


def stack_files(stack_file: Path, scenario: str | None = None) -> StackFiles:
    """What `stack_file` (and a `--scenario` given for the run) names that lives beside it."""
    stack_file = _absolute(stack_file)
    here = stack_file.parent
    try:
        data = tomllib.loads(stack_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}  # the run itself reports a broken stack file; the bundle keeps the file
    table: dict[str, Any] = data["stack"] if isinstance(data.get("stack"), dict) else {}
    files = [stack_file]
    # The stack's own references are taken from its directory, a --scenario file from the
    # current one (as `scenario_for` takes them).
    settings_module = str(table.get("settings") or "").partition(":")[0]
    refs = [(table.get("scenario"), here), (settings_module, here), (scenario, Path.cwd())]
    for ref, start in refs:
        if not isinstance(ref, str) or not ref:
            continue
        if ref.endswith(".toml"):
            path = Path(ref) if Path(ref).is_absolute() else start / ref
            files += [_absolute(path)] if path.is_file() else []
        else:
            files += _module_files(here, ref)
    contexts = []
    services: dict[str, Any] = data["services"] if isinstance(data.get("services"), dict) else {}
    for spec in services.values():
        build = spec.get("build") if isinstance(spec, dict) else None
        context = build.get("context") if isinstance(build, dict) else None
        if isinstance(context, str) and (here / context).is_dir():
            contexts.append(Path(os.path.normpath(here / context)))
    return StackFiles(list(dict.fromkeys(files)), list(dict.fromkeys(contexts)))


def _module_files(here: Path, module: str) -> list[Path]:
    """The package (or module file) of `module` next to the stack file; [] if installed."""
    top = module.split(".")[0]
    if (here / top).is_dir():
        return [_absolute(p) for p in tree_files(here / top)]
    single = here / f"{top}.py"
    return [_absolute(single)] if single.is_file() else []


def _absolute(path: Path) -> Path:
    """`path` made absolute without resolving links (a replay links files into its bundle)."""
    return Path(os.path.abspath(path))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _relative(path: Path, anchor: Path) -> str | None:
    for mine, theirs in ((_absolute(path), _absolute(anchor)), (path.resolve(), anchor.resolve())):
        if mine.is_relative_to(theirs):
            return mine.relative_to(theirs).as_posix()
    return None


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in tree_files(root))


def write_bundle(
    artifact_dir: Path,
    stack_file: Path,
    anchor: Path,
    redact: Callable[[str], str],
    scenario: str | None = None,
) -> BundleRecord:
    """Copy the stack's own files under `artifact_dir/bundle/` at their paths from `anchor`.

    `anchor` is the project root (the stack file's directory when the stack lies outside
    it). A file whose text the redactor would change holds a secret: it is not copied.
    """
    anchor = anchor if _relative(stack_file, anchor) is not None else stack_file.parent
    owned = stack_files(stack_file, scenario)
    target = artifact_dir / BUNDLE_DIR
    files: dict[str, str] = {}
    not_copied: dict[str, str] = {}
    contexts: dict[str, str] = {}
    small: list[Path] = []
    for context in owned.contexts:
        where = _relative(context, anchor) or str(context)
        contexts[where] = tree_digest(context)
        if _relative(context, anchor) is None:
            not_copied[where] = "outside the project"
        elif _tree_size(context) > CONTEXT_COPY_LIMIT:
            not_copied[where] = f"larger than {CONTEXT_COPY_LIMIT // (1024 * 1024)} MiB"
        else:
            small += tree_files(context)
    for path in [*owned.files, *small]:
        rel = _relative(path, anchor)
        if rel is None:
            files[str(path)] = _sha256(path)
            not_copied[str(path)] = "outside the project"
            continue
        data = path.read_bytes()
        files[rel] = hashlib.sha256(data).hexdigest()
        text = data.decode("utf-8", "surrogateescape")
        if redact(text) != text:  # never copy a secret into an artifact
            not_copied[rel] = "holds a secret value"
            continue
        copy = target / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(data)
        shutil.copymode(path, copy)  # a build context's exec bits are build inputs
    stack = _relative(stack_file, anchor) or stack_file.name
    return BundleRecord(stack, files, contexts, not_copied)


def stack_changes(record: BundleRecord, base: Path) -> list[tuple[str, str]]:
    """(path, sentence) for each recorded stack file or build context that differs under
    `base`, and each stack-owned file there that the recorded run did not have."""
    changes = []
    for rel, sha in sorted(record.files.items()):
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        if not path.is_file():
            changes.append((rel, f"{rel} is not in this checkout"))
        elif _sha256(path) != sha:
            changes.append((rel, f"{rel} differs from the recorded copy"))
    for rel, tree in sorted(record.contexts.items()):
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        if rel in record.not_copied and (not path.is_dir() or tree_digest(path) != tree):
            changes.append((rel, f"build context {rel} differs from the recorded one"))
    stack = base / record.stack
    if stack.is_file():
        owned = stack_files(stack)
        for path in [*owned.files, *_walk(owned.contexts)]:
            new = _relative(path, base)
            if new is not None and new not in record.files and not _under(new, record):
                changes.append((new, f"{new} is new (the recorded run did not have it)"))
    return changes


def _walk(contexts: Iterable[Path]) -> list[Path]:
    return [p for context in contexts for p in tree_files(context)]


def _under(rel: str, record: BundleRecord) -> bool:
    """True when `rel` lies in a build context the bundle recorded by its hash only."""
    return any(rel.startswith(f"{c}/") for c in record.contexts if c in record.not_copied)


def link_uncopied(record: BundleRecord, bundle: Path, base: Path) -> list[str]:
    """Link each file and build context the bundle lacks to `base`'s (its content is compared
    by `stack_changes`); return those `base` lacks too."""
    absent = []
    for rel in sorted(record.not_copied):
        if Path(rel).is_absolute():
            continue  # outside the project: the stack names it by its absolute path anyway
        link, source = bundle / rel, base / rel
        if not source.exists():
            absent.append(rel)
            continue
        if link.is_symlink():  # linked by an earlier replay, perhaps from another checkout
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source.resolve(), target_is_directory=source.is_dir())
    return absent


def role_inputs(role: str, settings: EnvkitSettings) -> str:
    """A hash of what goes into envkit's image `role`, the same on every machine."""
    images = settings.images
    parts: list[str | bytes] = [role, images.source]
    if role == "postgres":
        parts += [images.postgres_public, postgres_tag(settings)]
    else:
        home = settings.workspace.envkit_home
        source = home / _ROLE_SOURCES.get(role, role)
        parts += [images.python_public, python_recipe(settings).tag]
        parts += [(IMAGE_FILES / f"{role}.Dockerfile").read_bytes(), tree_digest(source)]
        for name in (source / "requirements.txt", home / "constraints.txt"):
            parts.append(name.read_bytes() if name.is_file() else b"")
    return digest(*parts)
