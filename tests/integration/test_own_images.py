"""A team's own image or source tree in place of a service's image, against the real engine.

The stand-in backend (`tests/data/standin-backend`) is envkit's reference backend behind
an entry point of its own that reports `Version__CurrentVersion` at `GET /api/version`:
a green run whose backend reports the stand-in's version ran the stand-in. The stacks
here probe the backend at `/api/version`, which any backend has.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from envkit.engines.builds import ensure_build
from envkit.engines.debian import ensure_command
from envkit.engines.images import ImageResult
from envkit.engines.imagesources import ImageSource
from envkit.errors import SettingsError, StackError
from envkit.lifecycle.commands import down, up
from envkit.lifecycle.environment import Environment
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

DEFAULT_STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"  # the MGM stack

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "data" / "standin-backend"
REGISTRY = "127.0.0.1:28490"  # this file's share of the integration port range
UP_PORTS = 28400  # backend is the first of the `up` ports


@pytest.fixture
def forget_images(engine: docker.DockerClient) -> Iterator[Callable[[str], None]]:
    """Register image tags this test made; they are removed afterwards."""
    made: list[str] = []
    yield made.append
    for ref in reversed(made):
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(ref)


@pytest.fixture(scope="module")
def standin(
    engine: docker.DockerClient, images: dict[str, ImageResult]
) -> Iterator[tuple[str, str]]:
    """The stand-in backend built once for this module: (image tag, the version it reports)."""
    version = f"standin-{uuid.uuid4().hex[:8]}"
    args = {"BASE": images["services"].ref, "STANDIN_VERSION": version}
    built = ensure_build(
        engine, "test", "standin", ImageSource("build", context=STANDIN, args=args)
    )
    yield built.ref, version
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.images.remove(built.ref)


def mgm_stack(tmp_path: Path, backend: str | None = None) -> Path:
    """The MGM stack, its backend probed at /api/version; `backend` replaces its image line."""
    text = DEFAULT_STACK.read_text().replace('path = "/health/ready"', 'path = "/api/version"')
    if backend is not None:
        start = text.index("[services.backend]\n")
        at = text.index('image = "services"\n', start)
        text = text[:at] + backend + "\n" + text[at + len('image = "services"\n') :]
    folder = tmp_path / "stack"
    folder.mkdir(exist_ok=True)
    path = folder / "mgm.toml"
    path.write_text(text)
    return path


def backend_observer(seen: dict[str, Any]) -> Callable[[Environment], None]:
    """After start: which version the backend reports and which image its container runs."""

    def observe(env: Environment) -> None:
        run = env.runs["backend"]
        assert run.container is not None
        seen["version"] = httpx.get(f"{run.host_url()}/api/version").json()["version"]
        seen["image_id"] = run.container.wrapped.image.id

    return observe


@contextlib.contextmanager
def container_creations(engine: docker.DockerClient) -> Iterator[list[dict[str, Any]]]:
    """Every container the engine creates meanwhile, as its events (read live, none missed)."""
    seen: list[dict[str, Any]] = []
    stream = engine.events(filters={"type": "container", "event": "create"}, decode=True)

    def pump() -> None:
        with contextlib.suppress(Exception):  # the stream ends when it is closed below
            for event in stream:
                seen.append(event)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stream.close()
        thread.join(timeout=10)


def of_run(events: list[dict[str, Any]], run_id: str) -> list[str]:
    attributes = [e.get("Actor", {}).get("Attributes", {}) for e in events]
    return [a.get("name", "") for a in attributes if a.get("envkit.run") == run_id]


def manifest_of(where: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((where / "manifest.json").read_text())
    return data


# -- a stack that builds its backend -------------------------------------------------------------


def test_a_stack_build_of_the_standin_runs_green_and_an_unchanged_tree_is_not_rebuilt(
    sandbox: Callable[..., EnvkitSettings],
    engine: docker.DockerClient,
    images: dict[str, ImageResult],
    tmp_path: Path,
    forget_images: Callable[[str], None],
) -> None:
    version = f"standin-{uuid.uuid4().hex[:8]}"  # new build inputs: this run must build
    context = os.path.relpath(STANDIN, tmp_path / "stack")
    build = (
        f'build = {{ context = "{context}", args = {{ BASE = "{images["services"].ref}", '
        f'STANDIN_VERSION = "{version}-${{mgm.environment}}" }} }}'
    )
    stack = mgm_stack(tmp_path, build)
    settings = sandbox()
    seen: dict[str, Any] = {}
    with container_creations(engine) as created:
        outcome, where = run_isolated(settings, stack, after_start=backend_observer(seen))
    backend = manifest_of(where)["images"]["backend"]
    forget_images(backend["ref"])
    assert outcome.verdict == "passed", outcome.failure
    assert seen["version"] == f"{version}-Development"  # the stand-in answered, args filled
    key = backend["build"]["input_hash"]
    assert backend["ref"] == f"envkit-build/mgm-backend:{key}"
    assert backend["build"] == {
        "context": "tests/data/standin-backend",
        "dockerfile": "Dockerfile",
        "input_hash": key,
    }
    assert (backend["source"], backend["override"], backend["action"]) == ("build", False, "built")
    image = engine.images.get(backend["ref"])
    assert backend["id"] == image.id == seen["image_id"]
    assert image.labels["envkit.build.hash"] == key
    assert manifest_of(where)["images"]["postgres"]["source"] == "role"
    assert len(of_run(created, outcome.run_id)) == 6  # the event watch sees every creation

    again, again_where = run_isolated(settings, stack, only="tier-a")
    assert again.verdict == "passed", again.failure
    second = manifest_of(again_where)["images"]["backend"]
    assert (second["ref"], second["id"], second["action"]) == (backend["ref"], image.id, "present")
    assert engine.images.get(backend["ref"]).attrs["Created"] == image.attrs["Created"]


# -- the setting, with an image reference ------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A local registry (Debian's docker-registry) on 127.0.0.1, for the pull and digest path."""
    ensure_command("docker-registry", "docker-registry", "a test pulls an image from a registry")
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry-data'}\n"
        f"http:\n  addr: {REGISTRY}\n"
    )
    log = (tmp_path / "registry.log").open("wb")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{REGISTRY}/v2/").status_code == 200:
                    break
            assert process.poll() is None, (tmp_path / "registry.log").read_text()
            assert time.monotonic() < deadline, "the registry did not answer within 30 s"
            time.sleep(0.1)
        yield REGISTRY
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_the_setting_runs_an_image_pulled_from_a_registry_and_records_its_digest(
    sandbox: Callable[..., EnvkitSettings],
    engine: docker.DockerClient,
    standin: tuple[str, str],
    registry: str,
    tmp_path: Path,
    forget_images: Callable[[str], None],
) -> None:
    built, version = standin
    ref = f"{registry}/envkit-test/standin-backend:{uuid.uuid4().hex[:8]}"
    engine.images.get(built).tag(ref)
    forget_images(ref)
    pushed = list(engine.images.push(ref, stream=True, decode=True))
    assert not [p for p in pushed if "error" in p], pushed
    engine.images.remove(ref)  # only the registry has it now: envkit must pull it
    settings = sandbox(ENVKIT_IMAGES__OVERRIDE=f"backend={ref}")
    seen: dict[str, Any] = {}
    outcome, where = run_isolated(settings, mgm_stack(tmp_path), after_start=backend_observer(seen))
    assert outcome.verdict == "passed", outcome.failure
    assert seen["version"] == version
    manifest = manifest_of(where)
    backend = manifest["images"]["backend"]
    assert (backend["ref"], backend["source"], backend["override"], backend["action"]) == (
        ref,
        "image",
        True,
        "pulled",
    )
    assert backend["id"] == engine.images.get(built).id == seen["image_id"]
    repository = ref.rsplit(":", 1)[0]
    assert backend["repo_digest"].startswith(f"{repository}@sha256:")
    assert backend["repo_digest"] in engine.images.get(ref).attrs["RepoDigests"]
    assert "build" not in backend
    assert manifest["image_override"] == {"backend": ref}
    assert manifest["settings"]["ENVKIT_IMAGES__OVERRIDE"] == f"backend={ref}"
    assert manifest["images"]["mock-jwt"]["override"] is False


def test_up_runs_the_override_too(
    sandbox: Callable[..., EnvkitSettings], standin: tuple[str, str], tmp_path: Path
) -> None:
    built, version = standin
    settings = sandbox(ports_from=UP_PORTS, ENVKIT_IMAGES__OVERRIDE=f"backend={built}")
    state = up(settings, mgm_stack(tmp_path))
    try:
        assert state.services["backend"].image == built
        assert state.services["mock-jwt"].image.startswith("envkit/services:")
        body = httpx.get(f"http://127.0.0.1:{UP_PORTS}/api/version").json()
        assert body["version"] == version
    finally:
        down(settings)


# -- failures, before anything starts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        # the step's own output, then the engine's verdict
        ("RUN echo {marker} && exit 3", ["  | {marker}\n", "returned a non-zero code: 3"]),
        (
            "COPYY {marker} /x",
            [
                "  | the engine refused the build: dockerfile parse error line 2: unknown "
                "instruction: COPYY"
            ],
        ),
    ],
)
def test_a_broken_dockerfile_fails_before_any_container_is_created(
    sandbox: Callable[..., EnvkitSettings],
    engine: docker.DockerClient,
    images: dict[str, ImageResult],
    tmp_path: Path,
    step: str,
    expected: list[str],
) -> None:
    marker = f"broken-{uuid.uuid4().hex[:8]}"
    context = tmp_path / "backend-src"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {images['services'].ref}\n{step.format(marker=marker)}\n"
    )
    settings = sandbox(ENVKIT_IMAGES__OVERRIDE=f"backend={context}")
    with container_creations(engine) as created:
        outcome, where = run_isolated(settings)
    assert outcome.verdict == "failed"
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "image-build-failed"
    message = outcome.failure.message
    assert message.startswith(
        f"The image of backend could not be built from the context {context} (Dockerfile "
        f"{context / 'Dockerfile'}); no container was started.\n  build log (last lines):\n"
    )
    for text in expected:
        assert text.format(marker=marker) in message
    assert of_run(created, outcome.run_id) == []
    assert "start" not in outcome.timings
    assert not list(where.glob("mgm-*.log"))
    assert "image-build-failed" in (where / "report.md").read_text()
    assert manifest_of(where)["image_override"] == {"backend": str(context)}


def test_a_missing_build_context_is_refused_with_the_fix(
    sandbox: Callable[..., EnvkitSettings], tmp_path: Path
) -> None:
    stack = mgm_stack(tmp_path, 'build = { context = "../backend-src" }')
    with pytest.raises(StackError) as info:
        run_isolated(sandbox(), stack)
    assert info.value.problems == [
        f"{stack}: service 'backend', field 'build.context': the build-context directory "
        f"{tmp_path / 'backend-src'} does not exist; give the directory that holds the "
        "Dockerfile, relative to the stack file's directory or absolute"
    ]


def test_an_override_of_an_unknown_service_is_refused_with_the_fix(
    sandbox: Callable[..., EnvkitSettings],
) -> None:
    settings = sandbox(ENVKIT_IMAGES__OVERRIDE="backnd=registry.example/mgm-backend:1.4")
    with pytest.raises(SettingsError) as info:
        run_isolated(settings)
    assert info.value.problems == [
        f"ENVKIT_IMAGES__OVERRIDE (or --image) names service 'backnd', which stack 'mgm' "
        f"({DEFAULT_STACK}) does not have; did you mean 'backend'? its services are: backend, "
        "mock-eventsub, mock-helix, mock-jwt, postgres, synthetic-desktop. Fix the name, e.g. "
        "backend=registry.example/app:1.4 or backend=./app"
    ]


# -- replay ----------------------------------------------------------------------------------------


def test_a_replay_builds_the_recorded_context_again_and_says_it_changed(
    sandbox: Callable[..., EnvkitSettings],
    images: dict[str, ImageResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    forget_images: Callable[[str], None],
) -> None:
    from envkit.scenario.replayer import replay

    # A working tree of the backend that builds on its own (its Dockerfile names its base).
    tree = Path(shutil.copytree(STANDIN, tmp_path / "mgm-backend"))
    dockerfile = (tree / "Dockerfile").read_text()
    (tree / "Dockerfile").write_text(
        dockerfile.replace("ARG BASE\n", f"ARG BASE={images['services'].ref}\n", 1)
    )
    (tree / "standin.py").write_text((tree / "standin.py").read_text() + f"# {uuid.uuid4()}\n")
    settings = sandbox(ENVKIT_IMAGES__OVERRIDE=f"backend={tree}")
    outcome, where = run_isolated(settings, mgm_stack(tmp_path), only="tier-a")
    first = manifest_of(where)["images"]["backend"]
    forget_images(first["ref"])
    assert outcome.verdict == "passed", outcome.failure
    assert (first["source"], first["override"]) == ("build", True)

    (tree / "standin.py").write_text((tree / "standin.py").read_text() + "# edited\n")
    monkeypatch.setenv("ENVKIT_ARTIFACT_ROOT", str(tmp_path / "replays"))
    monkeypatch.setenv("ENVKIT_HISTORY_PATH", str(tmp_path / "history.sqlite"))
    replayed = replay(where, env_file=None)
    second = manifest_of(replayed.artifact_dir)["images"]["backend"]
    forget_images(second["ref"])
    assert replayed.outcome.verdict == "passed", replayed.outcome.failure
    assert replayed.artifact_dir.parent == tmp_path / "replays"
    assert manifest_of(replayed.artifact_dir)["image_override"] == {"backend": str(tree)}
    old, new = first["build"]["input_hash"], second["build"]["input_hash"]
    assert old != new
    assert replayed.image_changes == [
        f"backend: built from other inputs (inputs {old} then, inputs {new} now)"
    ]
