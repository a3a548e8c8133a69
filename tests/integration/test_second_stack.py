"""A second, non-MGM stack runs on envkit with nothing of its own inside envkit.

`stacks/notes/` is written the way another team would: PostgreSQL plus a notes API and an
audit service on the team's own images (built from their Dockerfiles), settings and three
secrets declared in the stack file's `[settings]` table, and a scenario file of the team's
own commands. It runs through `tier-b` (isolated) and `up` + `orchestrate` + `down`, and
none of its secrets appears in anything envkit writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
import httpx

from envkit.engines.images import ImageResult
from envkit.spec.settings import EnvkitSettings

NOTES = Path(__file__).resolve().parent / "stacks" / "notes" / "stack.toml"
SECRETS = {
    "ENVKIT_NOTES__API_TOKEN": "notes-test-token-7d41e9",
    "ENVKIT_NOTES__WEBHOOK_SECRET": "notes-test-webhook-0c55aa",
    "ENVKIT_NOTES__DB_PASSWORD": "notes-test-db-pw-93b2f0",
}


def notes_settings(
    sandbox: Callable[..., EnvkitSettings], images: dict[str, ImageResult], **extra: str
) -> EnvkitSettings:
    # No registry here: the team's Dockerfiles start FROM envkit's local Python image instead
    # of python:3.12-slim, through the stack's own base_image setting.
    return sandbox(stack=NOTES, ENVKIT_NOTES__BASE_IMAGE=images["services"].ref, **SECRETS, **extra)


def assert_no_secret_in(directory: Path) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        for secret in SECRETS.values():
            assert secret not in text, f"{secret!r} leaked into {path.name}"


def leftovers(engine: docker.DockerClient, run_id: str) -> list[str]:
    found = engine.containers.list(all=True, filters={"label": f"envkit.run={run_id}"})
    return [c.name for c in found]


def test_tier_b_runs_the_second_stacks_own_scenario_green(
    sandbox: Callable[..., EnvkitSettings],
    images: dict[str, ImageResult],
    engine: docker.DockerClient,
) -> None:
    from envkit.scenario.runner import run_isolated

    settings = notes_settings(sandbox, images)
    outcome, where = run_isolated(settings, NOTES)
    assert outcome.verdict == "passed", outcome.failure
    assert [(s.name, s.status) for s in outcome.steps] == [
        ("refuses-without-token", "passed"),
        ("creates-a-note", "passed"),
        ("audit-holds-the-event", "passed"),
    ]
    assert "audit accepted note.created" in (where / "notes-audit.log").read_text()
    assert "schema ready" in (where / "notes-api.log").read_text()
    assert_no_secret_in(where)
    assert leftovers(engine, outcome.run_id) == []


def test_a_wrong_secret_in_one_service_fails_the_teams_own_check(
    sandbox: Callable[..., EnvkitSettings],
    images: dict[str, ImageResult],
    engine: docker.DockerClient,
) -> None:
    """The audit service refuses the API's webhook: the team's `audited` check says so."""
    from envkit.scenario.runner import run_isolated

    settings = notes_settings(sandbox, images)
    outcome, where = run_isolated(
        settings, NOTES, overrides={"audit": {"AUDIT_WEBHOOK_SECRET": "not-the-shared-one"}}
    )
    assert outcome.verdict == "failed"
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "command-failed"
    assert [s.status for s in outcome.steps] == ["passed", "passed", "failed"]
    assert "audit-holds-the-event" in outcome.failure.message
    assert "refused an event with a bad signature" in (where / "notes-audit.log").read_text()
    assert_no_secret_in(where)
    assert leftovers(engine, outcome.run_id) == []


def test_up_orchestrate_and_down_on_the_second_stacks_own_ports(
    sandbox: Callable[..., EnvkitSettings],
    images: dict[str, ImageResult],
    engine: docker.DockerClient,
    tmp_path: Path,
) -> None:
    from envkit.lifecycle.commands import down, status, up
    from envkit.scenario.runner import orchestrate

    ports = {"API": 29310, "AUDIT": 29311, "DB": 29312}
    settings = notes_settings(
        sandbox, images, ENVKIT_CACHE_DIR=str(tmp_path / "cache"),
        **{f"ENVKIT_NOTES__{name}_PORT": str(port) for name, port in ports.items()},
    )  # fmt: skip
    state = up(settings, NOTES)
    try:
        rows = status(settings).services
        assert rows["api"].host_url == "http://127.0.0.1:29310"
        assert httpx.get("http://127.0.0.1:29311/health", timeout=5).json()["service"] == "audit"
        outcome, where = orchestrate(settings)
        assert outcome.verdict == "passed", outcome.failure
        assert_no_secret_in(where)
    finally:
        saved = down(settings)
    assert leftovers(engine, state.run_id) == []
    assert saved.logs  # each service's whole log was kept
