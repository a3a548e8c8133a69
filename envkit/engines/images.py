"""Produce every image a stack needs: public images when they can be had, else local builds.

Three roles: `postgres` (a PostgreSQL server honouring POSTGRES_USER/PASSWORD/DB),
`services` (one Python image holding everything under `services/`, each service a
different command) and `reaper` (envkit's reaper, `envkit.reaperd`, which speaks
Ryuk's protocol; it holds every isolated run, see `envkit.lifecycle.hold`). Local
images are tagged by a hash of their inputs, so an unchanged image is found by name
and never rebuilt.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from envkit.engines.engine import Endpoint, current_endpoint
from envkit.engines.hashing import digest, tree_digest, tree_files
from envkit.engines.rootfs import RootfsRecipe, build_rootfs_image, image_exists
from envkit.engines.wheelhouse import ensure_wheelhouse, wheelhouse_key
from envkit.errors import EnvkitError, ImageError, StepError
from envkit.logs import Progress, log, no_progress
from envkit.program import command
from envkit.spec.settings import EnvkitSettings

IMAGE_FILES = Path(__file__).resolve().parent / "imagefiles"
ROLES = ("postgres", "services", "reaper")
LABEL = "envkit.image"
BUILD_LOG_LINES = 20  # how much of a failed build's log its error quotes


@dataclass(frozen=True)
class ImageResult:
    """Which image a role uses, where it came from and what producing it took."""

    role: str
    ref: str
    origin: str  # "public" or "local"
    action: str  # "present", "pulled" or "built"
    seconds: float
    image_id: str
    reason: str


def postgres_recipe(settings: EnvkitSettings) -> RootfsRecipe:
    """The Debian root filesystem of the local PostgreSQL image."""
    i = settings.images
    return RootfsRecipe("postgres", i.debian_suite, i.debian_mirror, ("postgresql",))


def python_recipe(settings: EnvkitSettings) -> RootfsRecipe:
    """The Debian root filesystem of the local Python base image."""
    i = settings.images
    return RootfsRecipe(
        "python", i.debian_suite, i.debian_mirror, ("python3", "python3-venv", "ca-certificates")
    )


def _template(name: str) -> str:
    return (IMAGE_FILES / name).read_text()


def postgres_tag(settings: EnvkitSettings) -> str:
    """Tag of the local PostgreSQL image for the current inputs."""
    key = digest(
        postgres_recipe(settings).tag,
        _template("postgres.Dockerfile"),
        _template("postgres-entrypoint.sh"),
    )
    return f"envkit/postgres:{key}"


def services_tag(base_ref: str, base_id: str, python: str, root: Path) -> str:
    """Tag of the services image built on `base_ref` for the services code and wheels under
    `root` (envkit's home, see `Workspace.envkit_home`)."""
    wheels = wheelhouse_key(
        root / "services" / "requirements.txt", root / "constraints.txt", python
    )
    key = digest(
        base_ref, base_id, wheels, tree_digest(root / "services"), _template("services.Dockerfile")
    )
    return f"envkit/services:{key}"


def reaper_tag(base_ref: str, base_id: str, python: str, root: Path) -> str:
    """Tag of the reaper image built on `base_ref` for the reaper's code and wheels under `root`."""
    source = root / "reaperd"
    wheels = wheelhouse_key(source / "requirements.txt", root / "constraints.txt", python)
    key = digest(base_ref, base_id, wheels, tree_digest(source), _template("reaper.Dockerfile"))
    return f"envkit/reaper:{key}"


class ImageBuilder:
    """Finds, pulls or builds the images of one settings object on one engine."""

    def __init__(
        self,
        settings: EnvkitSettings,
        client: docker.DockerClient,
        progress: Progress = no_progress,
        endpoint: Endpoint | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        # The engine `client` talks to (None: the current one): pulls go there too.
        self.endpoint = endpoint
        # envkit's own image inputs, never the user's project; work files go to its cache.
        self.root = settings.workspace.envkit_home
        self.progress = progress
        self.work_dir = settings.workspace.cache
        # services and reaper share the Python base: side by side, only one may build it
        self._base_lock = threading.Lock()
        # What the engine said about each reference (by tag), so one call asks once: a warm
        # `up` otherwise inspects the same base and tags 10 times before its first container.
        # A reference is forgotten when envkit pulls or builds it.
        self._known: dict[str, dict[str, Any] | None] = {}

    def ensure(self, roles: Iterable[str] = ROLES) -> dict[str, ImageResult]:
        """Produce the given roles side by side (their slow steps are independent)."""
        produce = {
            "postgres": self.ensure_postgres,
            "services": self.ensure_services,
            "reaper": self.ensure_reaper,
        }
        wanted = sorted(set(roles))
        with ThreadPoolExecutor(
            max_workers=max(1, len(wanted)), thread_name_prefix="image"
        ) as pool:
            futures = {role: pool.submit(produce[role]) for role in wanted}
            return {role: future.result() for role, future in futures.items()}

    # -- postgres -----------------------------------------------------------------------------

    def ensure_postgres(self) -> ImageResult:
        """The PostgreSQL image: public if present or pullable, else a local build."""
        started = time.monotonic()
        public = self.settings.images.postgres_public
        local = postgres_tag(self.settings)
        choice = self._choose(public, local)
        if choice is not None:
            return self._result("postgres", choice, started)
        base = self._rootfs(postgres_recipe(self.settings), _postgres_facts)
        pg_major = self._label(base, "envkit.postgres_major")
        dockerfile = _template("postgres.Dockerfile").format(base=base, pg_major=pg_major)
        files = {"postgres-entrypoint.sh": IMAGE_FILES / "postgres-entrypoint.sh"}
        self._build("postgres", local, dockerfile, files)
        return self._result("postgres", (local, "local", "built", "built from Debian"), started)

    # -- services -----------------------------------------------------------------------------

    def ensure_services(self) -> ImageResult:
        """The services image on a public Python base if present or pullable, else a Debian one."""
        source = self.root / "services"
        return self._python_image("services", services_tag, source, {"services": source})

    # -- reaper -------------------------------------------------------------------------------

    def ensure_reaper(self) -> ImageResult:
        """The reaper image on the same Python base as the services image (public or Debian)."""
        source = self.root / "reaperd"
        return self._python_image("reaper", reaper_tag, source, {"reaperd": source})

    def _python_image(
        self,
        role: str,
        tag_of: Callable[[str, str, str, Path], str],
        source: Path,
        files: dict[str, Path],
    ) -> ImageResult:
        """`<role>.Dockerfile` on the Python base, with `source`'s requirements.txt installed
        from a wheelhouse and `files` copied in; found by its tag when present."""
        started = time.monotonic()
        base, reason = self._python_base()
        python = self._python_version(base)
        tag = tag_of(base, self._image_id(base), python, self.root)
        if self._exists(tag):
            return self._result(role, (tag, "local", "present", reason), started)
        wheels = ensure_wheelhouse(
            source / "requirements.txt", self.root / "constraints.txt", python, self.work_dir
        )
        dockerfile = _template(f"{role}.Dockerfile").format(base=base)
        self._build(role, tag, dockerfile, {"wheels": wheels, **files})
        return self._result(role, (tag, "local", "built", reason), started)

    def _python_base(self) -> tuple[str, str]:
        public = self.settings.images.python_public
        recipe = python_recipe(self.settings)
        with self._base_lock:
            choice = self._choose(public, recipe.tag)
            if choice is not None and choice[1] == "public":
                return public, f"on public base {public} ({choice[3]})"
            base = self._rootfs(recipe, _python_facts)
        return base, "on a Debian base built here"

    def _python_version(self, ref: str) -> str:
        labels = self._inspect(ref).get("Config", {})
        version = (labels.get("Labels") or {}).get("envkit.python")
        if not version:
            env = dict(e.split("=", 1) for e in labels.get("Env") or [] if "=" in e)
            version = ".".join(env.get("PYTHON_VERSION", "").split(".")[:2])
        if not version:
            raise ImageError(
                f"Cannot tell which Python {ref} has (no PYTHON_VERSION or envkit.python). "
                "Set ENVKIT_IMAGES__PYTHON_PUBLIC to an official python image."
            )
        return str(version)

    # -- shared steps -------------------------------------------------------------------------

    def _choose(self, public: str, local: str) -> tuple[str, str, str, str] | None:
        """Decide public vs local; None means "build the local image now"."""
        source = self.settings.images.source
        if source != "local" and self._exists(public):
            return public, "public", "present", "public image present"
        if source == "auto" and self._exists(local):
            return local, "local", "present", "local build present, public image absent"
        if source != "local":
            pulled, why = self._pull(public)
            if pulled:
                return public, "public", "pulled", "public image pulled"
            if source == "public":
                raise ImageError(
                    f"ENVKIT_IMAGES__SOURCE=public but {public} is not present and could not be "
                    f"pulled ({why}). Make it available (`docker pull {public}` or `docker load`) "
                    "or set ENVKIT_IMAGES__SOURCE=auto to build it locally."
                )
            log.info("{} cannot be pulled ({}); building a local equivalent", public, why)
        if self._exists(local):
            return local, "local", "present", "local build present (ENVKIT_IMAGES__SOURCE=local)"
        return None

    def _pull(self, ref: str) -> tuple[bool, str]:
        self.progress(f"pulling {ref}")
        self._known.pop(ref, None)
        try:
            endpoint = self.endpoint or current_endpoint()
            client = endpoint.client(timeout=self.settings.images.pull_timeout_seconds)
            try:
                client.images.pull(ref)
            finally:
                client.close()
        except (DockerException, OSError) as exc:
            return False, str(exc).splitlines()[0][:200]
        return True, "pulled"

    def _rootfs(self, recipe: RootfsRecipe, facts: Callable[[Path], dict[str, str]]) -> str:
        if self._exists(recipe.tag):
            return recipe.tag
        self._known.pop(recipe.tag, None)
        return build_rootfs_image(
            self.client, recipe, self.work_dir / "rootfs", self.progress, facts
        )

    def _build(self, role: str, tag: str, dockerfile: str, files: dict[str, Path]) -> None:
        self._known.pop(tag, None)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        context = Path(tempfile.mkdtemp(prefix=f"context-{role}-", dir=self.work_dir))
        try:
            (context / "Dockerfile").write_text(dockerfile)
            for name, source in files.items():
                _copy_into(source, context / name)
            self._stream_build(role, tag, context)
        finally:
            shutil.rmtree(context, ignore_errors=True)

    def _stream_build(self, role: str, tag: str, context: Path) -> None:
        def failed(tail: str) -> EnvkitError:
            return StepError(
                f"docker build {role}", ["docker", "build", "-t", tag, str(context)], tail,
                "The Dockerfile step above failed; see its output.",
            )  # fmt: skip

        stream_build(
            self.client, context, tag, labels={LABEL: role}, progress=self.progress, name=role,
            on_failure=failed,
        )  # fmt: skip

    def _lookup(self, ref: str) -> dict[str, Any] | None:
        """The engine's inspection of `ref` (None when it lacks it), asked once per builder."""
        if ref not in self._known:
            try:
                self._known[ref] = dict(self.client.api.inspect_image(ref))
            except ImageNotFound:
                self._known[ref] = None
        return self._known[ref]

    def _exists(self, ref: str) -> bool:
        return self._lookup(ref) is not None

    def _inspect(self, ref: str) -> dict[str, Any]:
        attrs = self._lookup(ref)
        if attrs is None:
            self._known.pop(ref, None)  # ask again next time
            raise ImageError(f"Image {ref} vanished while envkit was using it; run again.")
        return attrs

    def _image_id(self, ref: str) -> str:
        return str(self._inspect(ref)["Id"])

    def _label(self, ref: str, key: str) -> str:
        value = (self._inspect(ref).get("Config", {}).get("Labels") or {}).get(key)
        if not value:
            raise ImageError(
                f"Image {ref} lacks label {key}; remove it (`{command('clean --images')}`)."
            )
        return str(value)

    def _result(self, role: str, choice: tuple[str, str, str, str], started: float) -> ImageResult:
        ref, origin, action, reason = choice
        seconds = time.monotonic() - started
        result = ImageResult(role, ref, origin, action, seconds, self._image_id(ref), reason)
        log.info("{}: {} ({}, {}; {:.1f} s)", role, ref, origin, action, seconds)
        return result


def stream_build(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    *,
    labels: dict[str, str],
    progress: Progress,
    name: str,
    on_failure: Callable[[str], EnvkitError],
    dockerfile: str | None = None,
    buildargs: dict[str, str] | None = None,
) -> None:
    """`docker build` of `context` as `tag`, each step shown through `progress` as `name: Step …`.

    The SDK sends the context as the CLI does (`.dockerignore` applies). A failed step or a
    refused build raises `on_failure(the build log's last lines)`.
    """
    log.info("building {}", tag)
    lines: list[str] = []
    try:
        stream = client.api.build(
            path=str(context), tag=tag, rm=True, forcerm=True, decode=True, labels=labels,
            dockerfile=dockerfile, buildargs=buildargs or {},
        )  # fmt: skip
        for chunk in stream:
            if "error" in chunk:
                lines.append(str(chunk["error"]).strip())
                raise on_failure("\n".join(lines[-BUILD_LOG_LINES:]))
            text = str(chunk.get("stream", "")).strip()
            if text:
                lines += text.splitlines()
                if text.startswith("Step "):
                    progress(f"{name}: {text}")
    except APIError as exc:
        lines.append(f"the engine refused the build: {exc.explanation or exc}")
        raise on_failure("\n".join(lines[-BUILD_LOG_LINES:])) from exc


def _copy_into(source: Path, dest: Path) -> None:
    if source.is_file():
        shutil.copy2(source, dest)
        return
    for path in tree_files(source):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _postgres_facts(tree: Path) -> dict[str, str]:
    versions = sorted((tree / "usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
    return {"envkit.postgres_major": versions[-1].name}


def _python_facts(tree: Path) -> dict[str, str]:
    found = sorted(
        p.name.removeprefix("python")
        for p in (tree / "usr/bin").glob("python3.*")
        if p.name.removeprefix("python").replace(".", "").isdigit()
    )
    return {"envkit.python": found[-1]}


def ensure_images(
    settings: EnvkitSettings,
    client: docker.DockerClient,
    progress: Progress = no_progress,
) -> dict[str, ImageResult]:
    """Produce every role's image; see `ImageBuilder`."""
    return ImageBuilder(settings, client, progress).ensure()


def current_local_tags(settings: EnvkitSettings, client: docker.DockerClient) -> set[str]:
    """Tags of the local images the current inputs produce (what `clean --images` keeps)."""
    builder = ImageBuilder(settings, client)
    keep = {postgres_recipe(settings).tag, python_recipe(settings).tag, postgres_tag(settings)}
    for base in (settings.images.python_public, python_recipe(settings).tag):
        if image_exists(client, base):
            python = builder._python_version(base)
            base_id = builder._image_id(base)
            keep.add(services_tag(base, base_id, python, builder.root))
            keep.add(reaper_tag(base, base_id, python, builder.root))
    return keep


def stale_images(settings: EnvkitSettings, client: docker.DockerClient) -> list[str]:
    """envkit images that the current inputs no longer produce."""
    keep = current_local_tags(settings, client)
    stale = []
    for image in client.images.list(filters={"label": LABEL}):
        stale += [t for t in image.tags if t.startswith("envkit/") and t not in keep]
    return sorted(stale)


def remove_images(client: docker.DockerClient, refs: list[str]) -> list[tuple[str, str]]:
    """Remove each ref; return (ref, problem) for those the engine refused (e.g. in use)."""
    refused = []
    for ref in refs:
        try:
            client.images.remove(ref)
        except APIError as exc:
            refused.append((ref, str(exc.explanation)))
    return refused


def build_images(
    settings: EnvkitSettings, progress: Progress = no_progress
) -> dict[str, ImageResult]:
    """Find or start the engine, then produce every role's image (the `images` command)."""
    from envkit.engines.engine import docker_client, ensure_engine

    ensure_engine(settings.timeouts.engine_start_seconds)
    client = docker_client()
    try:
        return ensure_images(settings, client, progress)
    finally:
        client.close()


def clean_images(
    settings: EnvkitSettings, dry_run: bool = False
) -> tuple[list[str], list[tuple[str, str]]]:
    """Remove envkit images the current inputs no longer produce; return (removed, refused)."""
    from envkit.engines.engine import docker_client, ensure_engine

    ensure_engine(settings.timeouts.engine_start_seconds)
    client = docker_client()
    try:
        stale = stale_images(settings, client)
        if dry_run:
            return stale, []
        refused = remove_images(client, stale)
        refused_refs = {ref for ref, _ in refused}
        return [r for r in stale if r not in refused_refs], refused
    finally:
        client.close()
