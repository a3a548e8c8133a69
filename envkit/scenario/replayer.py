"""`replay`: run a recorded run again, from its artifact directory or the downloaded `.zip`.

    open_artifact ──► plan_replay (what differs) ──► run_isolated(bundled stack) ──► Replay

`open_artifact` accepts the run's directory or the zip GitHub Actions gives for download
(the run's files at its root or one directory down) and unpacks it next to the zip.
`plan_replay` reads manifest.json and says, before anything starts, what differs from the
recorded run: the git commit, the stack's content, the images' inputs, envkit's version.
The replay runs the stack copy in the bundle (so a changed stack file in this checkout
does not matter), with the recorded non-secret settings, options and runtime faults;
secrets come from this machine's environment and `.env`. `strict` refuses to run with
any difference. `Replay.same_class` says whether the same failure class came back.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from envkit.engines.builds import input_hash
from envkit.engines.imagesources import image_sources
from envkit.errors import EnvkitError, ReplayError
from envkit.evidence.artifacts import SUMMARY_NAME
from envkit.evidence.bundle import (
    BUNDLE_DIR,
    link_uncopied,
    role_inputs,
    stack_changes,
    stack_files,
)
from envkit.evidence.manifest import (
    MANIFEST,
    SECRET_MARK,
    ImageRecord,
    Manifest,
    git_commit,
    git_dirty,
    read_manifest,
    repo_digest,
)
from envkit.evidence.outcome import RunOutcome
from envkit.lifecycle.commands import connect
from envkit.logs import Progress, no_progress
from envkit.scenario.faults import Fault
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings, load_settings
from envkit.spec.stack import load_stack

# Machine-local paths: never replayed from a manifest.
MACHINE_LOCAL = ("ENVKIT_ARTIFACT_ROOT", "ENVKIT_CACHE_DIR", "ENVKIT_HISTORY_PATH")
ZIP_LIMIT = 2 * 1024**3  # bytes unpacked; a run's artifacts are megabytes
_UNZIPPED = ".envkit-unzipped"  # marks a directory `open_artifact` unpacked (the zip's sha256)


@dataclass(frozen=True)
class Difference:
    """One way this replay is not the recorded run, and whether the replay undoes it."""

    subject: str  # "git commit", "stack content", "image inputs" or "envkit version"
    text: str
    remains: bool = True  # False: the replay runs the bundled copy, so this does not apply

    def __str__(self) -> str:
        after = "" if self.remains else " (the replay runs the bundled copy)"
        return f"{self.subject}: {self.text}{after}"


@dataclass(frozen=True)
class ReplayPlan:
    """A run to replay: its directory, manifest, the stack file to run and what differs."""

    run_dir: Path
    manifest: Manifest
    stack_file: Path
    bundle_root: Path | None  # the bundle whose stack copy runs; None for an older run
    settings: EnvkitSettings
    differences: list[Difference]

    @property
    def exact(self) -> bool:
        """True when no difference remains for the run itself."""
        return not any(d.remains for d in self.differences)


@dataclass(frozen=True)
class Replay:
    """A replayed run: its outcome and artifacts, the original's failure class, what differed."""

    outcome: RunOutcome
    artifact_dir: Path
    original_class: str | None
    differences: list[Difference]

    @property
    def failure_class(self) -> str | None:
        """The replay's failure class (None when it passed)."""
        return self.outcome.failure.failure_class if self.outcome.failure else None

    @property
    def same_class(self) -> bool:
        """True when the replay ended as the original did (the same class, or both passed)."""
        return self.failure_class == self.original_class

    @property
    def image_changes(self) -> list[str]:
        """One sentence per service whose image differs from the original's."""
        return [d.text for d in self.differences if d.subject == "image inputs"]


def open_artifact(path: Path) -> Path:
    """The run directory in `path`: an artifact directory, or a downloaded `.zip` of one
    (unpacked next to it), with the run's files at its root or one directory down."""
    if path.is_dir():
        return _run_dir(path)
    if not path.exists():
        raise ReplayError(
            f"{path} does not exist: give a run's artifact directory (e.g. "
            "artifacts/shop-20261201T120000-1a2b3c4d) or the .zip GitHub Actions gives for it.",
            path=path,
        )
    if not zipfile.is_zipfile(path):
        raise ReplayError(
            f"{path} is neither a directory nor a zip file: give a run's artifact directory "
            "or the .zip GitHub Actions gives for it.",
            path=path,
        )
    return _run_dir(_unzip(path))


def _run_dir(path: Path) -> Path:
    if (path / MANIFEST).is_file():
        return path
    found = sorted(p for p in path.iterdir() if (p / MANIFEST).is_file()) if path.is_dir() else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ReplayError(
            f"{path} holds {len(found)} runs ({names}); give the directory of the one to replay.",
            path=path,
        )
    return path  # read_manifest says what is missing


def _unzip(archive: Path) -> Path:
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    target = (
        archive.with_suffix("")
        if archive.suffix == ".zip"
        else archive.with_name(archive.name + ".unzipped")
    )
    if target.exists() and _marker(target) != sha:
        target = target.with_name(f"{target.name}-{sha[:8]}")
    if _marker(target) == sha:
        return target  # unpacked before
    try:
        with zipfile.ZipFile(archive) as zipped:
            size = sum(info.file_size for info in zipped.infolist())
            if size > ZIP_LIMIT:
                raise ReplayError(
                    f"{archive} would unpack to {size // 1024**2} MiB, more than a run's "
                    f"artifacts ({ZIP_LIMIT // 1024**3} GiB at most); is it the right file?",
                    path=archive,
                )
            zipped.extractall(target)  # zipfile drops absolute paths and `..` from names
    except (zipfile.BadZipFile, OSError) as exc:
        raise ReplayError(f"{archive} could not be unpacked ({exc}).", path=archive) from exc
    (target / _UNZIPPED).write_text(sha + "\n")
    return target


def _marker(directory: Path) -> str | None:
    try:
        return (directory / _UNZIPPED).read_text().strip()
    except OSError:
        return None


def plan_replay(
    artifact: Path, env_file: Path | None = None, root: Path | None = None
) -> ReplayPlan:
    """Read the run at `artifact` and say what a replay from the project root `root` would
    change (default root: the current directory; `.env` there unless `env_file` names one)."""
    base = (root or Path.cwd()).resolve()
    run_dir = open_artifact(artifact)
    manifest = read_manifest(run_dir)
    bundle_root: Path | None = run_dir / BUNDLE_DIR
    bundle = manifest.bundle
    differences = _version_differences(manifest, base)
    if bundle is not None and bundle_root is not None and (bundle_root / bundle.stack).is_file():
        stack_file = bundle_root / bundle.stack
        # The bundled copy runs: a change remains only where the bundle has no copy.
        differences += [
            Difference("stack content", text, remains=rel in bundle.not_copied)
            for rel, text in stack_changes(bundle, base)
        ]
        link_uncopied(bundle, bundle_root, base)  # what it lacks and `base` lacks is said above
    else:
        stack_file = _checkout_stack(manifest, base)
        differences += _old_stack_difference(manifest, stack_file)
        bundle_root = None
    environ = dict(os.environ)
    for name, value in manifest.settings.items():
        if value != SECRET_MARK and name not in MACHINE_LOCAL:
            environ[name] = value
    settings = load_settings(env_file or base / ".env", environ, stack=stack_file, root=base)
    differences += image_differences(manifest.images, _current_images(settings, stack_file))
    return ReplayPlan(run_dir, manifest, stack_file, bundle_root, settings, differences)


def _version_differences(manifest: Manifest, base: Path) -> list[Difference]:
    found = []
    version = importlib.metadata.version("envkit")
    if manifest.envkit_version and manifest.envkit_version != version:
        found.append(
            Difference(
                "envkit version", f"the run used {manifest.envkit_version}, this is {version}"
            )
        )
    commit = git_commit(base)
    if manifest.git_commit and commit != manifest.git_commit:
        found.append(
            Difference(
                "git commit",
                f"the run was made at {manifest.git_commit[:12]}, this checkout ({base}) is at "
                f"{commit[:12] if commit else 'no git commit'}",
            )
        )
    if manifest.git_dirty:
        found.append(Difference("git commit", "the run was made with uncommitted changes"))
    if commit and git_dirty(base):
        found.append(Difference("git commit", f"this checkout ({base}) has uncommitted changes"))
    return found


def _checkout_stack(manifest: Manifest, base: Path) -> Path:
    path = Path(manifest.stack.file)
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ReplayError(
            f"The run's stack file {path} is not here and the run has no bundle with a copy; "
            "it cannot be replayed.",
            path=path,
        )
    return path


def _old_stack_difference(manifest: Manifest, stack_file: Path) -> list[Difference]:
    sha = hashlib.sha256(stack_file.read_bytes()).hexdigest()
    if manifest.stack.sha256 and sha != manifest.stack.sha256:
        text = f"{manifest.stack.file} differs from the recorded one (the run has no bundle)"
        return [Difference("stack content", text)]
    return []


@contextmanager
def stack_modules_of(stack_file: Path) -> Iterator[None]:
    """For the block, the stack's own modules import from `stack_file`'s directory (a bundle);
    afterwards those imported before are back (the process may hold their classes' objects)."""
    here = Path(os.path.abspath(stack_file)).parent
    owned = {
        p.relative_to(here).parts[0].removesuffix(".py")
        for p in stack_files(stack_file).files
        if p.is_relative_to(here) and p.suffix == ".py"
    }
    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] in owned}
    path = list(sys.path)
    for name in saved:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] in owned]:
            del sys.modules[name]
        sys.modules.update(saved)
        sys.path[:] = path


def _current_images(settings: EnvkitSettings, stack_file: Path) -> dict[str, str | None]:
    """Each service's image identity as a run here would have it (see `ImageRecord.identity`)."""
    sources = image_sources(load_stack(stack_file), settings)
    current: dict[str, str | None] = {}
    client = None
    for name, source in sources.items():
        if source.kind == "role":
            current[name] = f"inputs {role_inputs(source.ref, settings)}"
            continue
        try:
            client = client or connect(settings)
            if source.kind == "build":
                current[name] = f"inputs {input_hash(client, source)}"
            else:
                attrs = client.images.get(source.ref).attrs
                digest = repo_digest(source.ref, attrs.get("RepoDigests") or [])
                current[name] = digest or f"id {attrs['Id']}"
        except (EnvkitError, docker.errors.DockerException, OSError) as exc:  # compared after
            current[name] = f"unknown here yet ({type(exc).__name__})"
    return current


def image_differences(
    recorded: Mapping[str, ImageRecord], current: Mapping[str, str | None]
) -> list[Difference]:
    """A difference for each service whose image identity is not the recorded one."""
    found = []
    for service, record in sorted(recorded.items()):
        then, now = record.identity, current.get(service)
        if then is None or now == then:
            continue
        what = "built from other inputs" if then.startswith("inputs ") else "another image"
        found.append(
            Difference(
                "image inputs",
                f"{service}: {what} ({then} then, {now or 'not in the stack'} now)",
            )
        )
    return found


def replay(
    artifact: Path,
    env_file: Path | None = None,
    progress: Progress = no_progress,
    root: Path | None = None,
    *,
    strict: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> Replay:
    """Rerun the run at `artifact` (its directory or `.zip`) and say how it compares.

    Before anything starts, each difference from the recorded run goes to `say`; with
    `strict`, any difference is a `ReplayError` listing them all. The bundled stack copy
    runs (an older run without a bundle: the checkout's stack file), with the recorded
    non-secret settings, options, images and runtime faults.
    """
    run_dir = open_artifact(artifact)
    bundle = read_manifest(run_dir).bundle
    stack = run_dir / BUNDLE_DIR / bundle.stack if bundle is not None else None
    with stack_modules_of(stack) if stack is not None and stack.is_file() else nullcontext():
        return _replay(plan_replay(run_dir, env_file, root), progress, strict, say)


def _replay(
    plan: ReplayPlan, progress: Progress, strict: bool, say: Callable[[str], None]
) -> Replay:
    for difference in plan.differences:
        say(str(difference))
    if strict and plan.differences:
        listed = "\n".join(f"  - {d}" for d in plan.differences)
        raise ReplayError(
            f"--strict: the replay of {plan.run_dir} would differ from the recorded run:\n"
            f"{listed}\nCheck out the recorded commit (and envkit version), or replay "
            "without --strict to run it anyway.",
            path=plan.run_dir,
        )
    options = plan.manifest.options
    preferred = {s: i.ref for s, i in plan.manifest.images.items() if i.ref and i.source == "image"}
    faults = [Fault.from_data(f) for f in options.get("faults") or []]
    outcome, where = run_isolated(
        plan.settings, plan.stack_file, only=options.get("only"),
        overrides=options.get("overrides"), images=preferred, progress=progress,
        scenario_ref=_replayed_scenario(options, plan), faults=faults,
        bundle_root=plan.bundle_root,
    )  # fmt: skip
    now = {s: i.identity for s, i in read_manifest(where).images.items()}
    after = image_differences(plan.manifest.images, now)
    before = [d for d in plan.differences if d.subject != "image inputs"]
    return Replay(outcome, where, _original_class(plan.run_dir), before + after)


def _replayed_scenario(options: Mapping[str, Any], plan: ReplayPlan) -> str | None:
    """The original run's `--scenario`: a file from the bundle, else the project root."""
    ref = options.get("scenario")
    if not isinstance(ref, str) or not ref:
        return None
    if not ref.endswith(".toml"):
        return ref
    bases = [plan.bundle_root] if plan.bundle_root is not None else []
    bases.append(plan.settings.workspace.root)
    for base in bases:
        path = Path(ref) if Path(ref).is_absolute() else base / ref
        if path.is_file():
            return str(path)
    raise ReplayError(
        f"The run's scenario file {ref} is not here; it cannot be replayed.", path=Path(ref)
    )


def _original_class(run_dir: Path) -> str | None:
    try:
        summary = read_summary(run_dir)
    except ValueError:
        return None
    failure = summary.get("failure") or {}
    value = failure.get("failure_class") if isinstance(failure, dict) else None
    return str(value) if value else None


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json as data; ValueError when it is missing or not JSON."""
    try:
        data = json.loads((run_dir / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ValueError("summary.json is not a table")
    return data
