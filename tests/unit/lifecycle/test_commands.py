"""The stack tasks' library side, without an engine: refusals, saved logs, missing images."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from envkit.errors import ImageError, RunStateError
from envkit.evidence.outcome import ServiceRow
from envkit.evidence.redact import MASK, Redactor
from envkit.lifecycle.commands import (
    artifact_dir_for,
    down,
    logs,
    produce_images,
    require_up,
    save_logs,
    status,
)
from envkit.lifecycle.containers import SERVICE
from envkit.lifecycle.state import UpState
from envkit.logs import no_progress
from envkit.spec.settings import EnvkitSettings, load_settings
from envkit.spec.stack import load_stack


def settings_in(tmp_path: Path, **env: str) -> EnvkitSettings:
    return load_settings(None, {"ENVKIT_CACHE_DIR": str(tmp_path / "cache"), **env})


def test_artifacts_go_under_the_artifact_root_absolute(tmp_path: Path) -> None:
    project = tmp_path / "project"
    assert artifact_dir_for(load_settings(None, {}, root=project), "mgm-1") == (
        project / "artifacts" / "mgm-1"
    )
    elsewhere = load_settings(None, {"ENVKIT_ARTIFACT_ROOT": str(tmp_path)})
    assert artifact_dir_for(elsewhere, "mgm-1") == tmp_path / "mgm-1"


def test_without_an_up_stack_the_stack_commands_say_how_to_start_one(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)  # refused before any engine is looked for
    for command in (require_up, down, status, lambda s: list(logs(s, None, False))):
        with pytest.raises(RunStateError) as info:
            command(settings)
        assert str(info.value) == "No stack is up. Start one with `./inv up`."


def test_a_damaged_up_state_is_refused_before_the_engine(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    state = tmp_path / "cache" / "state" / "up.json"
    state.parent.mkdir(parents=True)
    state.write_text("{")
    with pytest.raises(RunStateError, match=r"is damaged .*`\./inv clean --all`"):
        require_up(settings)


class FakeContainer:
    def __init__(self, name: str, service: str, output: bytes) -> None:
        self.name = name
        self.labels = {SERVICE: service}
        self.output = output

    def logs(self, timestamps: bool = False) -> bytes:
        assert timestamps
        return self.output


class FakeContainers:
    def __init__(self, containers: list[FakeContainer]) -> None:
        self.containers = containers
        self.filters: list[Any] = []

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[Any]:
        self.filters.append(filters)
        return self.containers


def test_down_saves_each_services_whole_log_redacted(tmp_path: Path) -> None:
    containers = FakeContainers(
        [
            FakeContainer("r-backend", "backend", b"T1 key=hunter22-secret\nT2 ok\n"),
            FakeContainer("r-helper", "helper", b"unlisted\n"),  # no log name in the state
        ]
    )
    client = SimpleNamespace(containers=containers)
    state = UpState(
        "mgm-1", Path("stack.toml"), "2026-11-22T10:15:00+00:00", tmp_path / "a",
        {"backend": ServiceRow(log="/x/logs/backend.log")},
    )  # fmt: skip
    saved = save_logs(client, state, tmp_path / "a", Redactor(["hunter22-secret"]))
    assert saved == [str(tmp_path / "a" / "backend.log")]
    assert (tmp_path / "a" / "backend.log").read_bytes() == f"T1 key={MASK}\nT2 ok\n".encode()
    assert containers.filters == [{"label": "envkit.run=mgm-1"}]


class NoImages:
    """An engine that has no image and cannot pull one."""

    def get(self, ref: str) -> Any:
        raise docker.errors.ImageNotFound(f"No such image: {ref}")

    def pull(self, ref: str) -> Any:
        response = SimpleNamespace(status_code=404, reason="Not Found", url="")
        raise docker.errors.APIError(
            "pull", response=response, explanation=f"pull access denied for {ref}"
        )


def stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "stack.toml"
    path.write_text(
        '[stack]\nname = "demo"\n\n[services.cache]\nimage = "registry.example/cache:1"\n'
        'log = "cache.log"\n'
    )
    return path


def test_an_image_the_engine_lacks_and_cannot_pull_is_named_with_the_fix(tmp_path: Path) -> None:
    stack = load_stack(stack_file(tmp_path))
    client = SimpleNamespace(images=NoImages())
    with pytest.raises(ImageError) as info:
        produce_images(load_settings(None, {}), client, stack, no_progress)
    assert str(info.value) == (
        "Service cache needs image registry.example/cache:1, which the engine does not have and "
        "could not pull (pull access denied for registry.example/cache:1). `docker load` it, or "
        "name an image it has."
    )


def test_an_overridden_image_that_cannot_be_pulled_points_at_the_override(tmp_path: Path) -> None:
    stack = load_stack(stack_file(tmp_path))
    settings = load_settings(None, {"ENVKIT_IMAGES__OVERRIDE": "cache=mirror.example/cache:2"})
    client = SimpleNamespace(images=NoImages())
    with pytest.raises(ImageError) as info:
        produce_images(settings, client, stack, no_progress)
    assert str(info.value).endswith(
        "(pull access denied for mirror.example/cache:2). `docker load` it, or name an image it "
        "has in ENVKIT_IMAGES__OVERRIDE (or --image); a directory to build must start with "
        "./, / or ~."
    )


def test_present_and_pulled_images_are_told_apart(tmp_path: Path) -> None:
    stack = load_stack(stack_file(tmp_path))
    pulled: list[str] = []

    class Pulls(NoImages):
        def pull(self, ref: str) -> Any:
            pulled.append(ref)

    images = produce_images(
        load_settings(None, {}),
        SimpleNamespace(images=Pulls()),
        stack,
        no_progress,
    )
    assert (images["cache"].ref, images["cache"].action) == ("registry.example/cache:1", "pulled")
    assert pulled == ["registry.example/cache:1"]

    class Has(NoImages):
        def get(self, ref: str) -> Any:
            return SimpleNamespace(id="sha256:1")

    images = produce_images(
        load_settings(None, {}), SimpleNamespace(images=Has()), stack, no_progress
    )
    assert images["cache"].action == "present"
