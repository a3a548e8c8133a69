"""Every triage class, produced by breaking one thing on purpose; replay reproduces it."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from envkit.lifecycle.environment import Environment
from envkit.scenario.replayer import replay
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

OTHER_SECRET = base64.b64encode(b"a-different-extension-secret-32b").decode()


@pytest.fixture
def triage_settings(sandbox: Callable[..., EnvkitSettings]) -> EnvkitSettings:
    # The default readiness timeout: a busy machine has needed over 10 s to start a mock.
    return sandbox()


def _stop_postgres(env: Environment) -> None:
    container = env.runs["postgres"].container
    assert container is not None
    container.wrapped.stop(timeout=5)


def _drop_the_pool_table(env: Environment) -> None:
    """The backend's database loses a table it needs: its queries fail (a 5xx, not a death)."""
    container = env.runs["postgres"].container
    assert container is not None
    db = env.resolved["postgres"].env
    sql = "DROP TABLE pool_entries CASCADE"
    command = ["psql", "-U", db["POSTGRES_USER"], "-d", db["POSTGRES_DB"], "-c", sql]
    for _ in range(100):  # the backend creates its tables once it has connected
        if container.wrapped.exec_run(command).exit_code == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the backend never created its pool_entries table")


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (failure class, run_isolated keyword arguments, first log, failing step)
    ("eventsub-signature-rejected",
     {"overrides": {"backend": {"Twitch__EventSubSecret": "not-the-shared-secret"}}},
     "mgm-backend.log", "emit-enrollment"),
    ("jwt-rejected",
     {"overrides": {"backend": {"Twitch__ExtensionSecret": OTHER_SECRET}}},
     "mgm-backend.log", "pool-shows-enrolled"),
    ("harness-disabled",
     {"overrides": {"backend": {"Mgm__EnableE2eHarness": "false"}}},
     "mgm-backend.log", "prepare-pending-payout"),
    ("viewer-not-in-pool", {"only": "tier-b"}, "mgm-backend.log", "prepare-pending-payout"),
    ("desktop-api-key-rejected",
     {"overrides": {"synthetic-desktop": {"Mgm__ApiKey": "not-the-desktop-key"}}},
     "mgm-backend.log", "desktop-sequence"),
    ("helix-never-called",
     {"overrides": {"backend": {"Twitch__HelixApiBaseUrl": "http://mock-helix:8080/helix"}}},
     "mgm-backend.log", "helix-chat-message"),
    ("helix-never-called",
     {"overrides": {"backend": {"Twitch__BroadcasterAccessToken": ""}}},
     "mgm-backend.log", "helix-chat-message"),
    ("helix-auth-mismatch",
     {"overrides": {"backend": {"Twitch__HelixClientId": "drifted-client-id"}}},
     "mgm-mock-helix.log", "helix-chat-message"),
    ("wrong-chat-message",
     {"overrides": {"backend": {"Twitch__BroadcasterUserId": "999999"}}},
     "mgm-backend.log", "helix-chat-message"),
    ("backend-5xx", {"after_start": _drop_the_pool_table}, "mgm-backend.log",
     "emit-enrollment"),
    ("service-died", {"after_start": _stop_postgres}, "mgm-postgres.log", "emit-enrollment"),
    # A refused port, not a name that does not resolve: Docker's embedded DNS can take
    # seconds per lookup of a missing name.
    ("service-never-ready",
     {"overrides": {"backend": {"ConnectionStrings__PostgreSQL":
        "Host=postgres;Port=1;Database=mgm;Username=mgm;Password=x"}}},
     "mgm-backend.log", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("failure_class", "kwargs", "first_log", "step"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_each_break_is_named_by_its_class(
    triage_settings: EnvkitSettings,
    sandbox: Callable[..., EnvkitSettings],
    engine: docker.DockerClient,
    failure_class: str,
    kwargs: dict[str, Any],
    first_log: str,
    step: str,
) -> None:
    if failure_class == "service-never-ready":  # never ready anyway: no need to wait 60 s
        triage_settings = sandbox(ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS="8")
    outcome, where = run_isolated(triage_settings, **kwargs)
    assert outcome.verdict == "failed"
    assert outcome.failure is not None
    assert outcome.failure.failure_class == failure_class, outcome.failure
    assert outcome.failure.first_log == first_log
    if step:
        failed = [s.name for s in outcome.steps if s.status == "failed"]
        assert failed == [step]
    report = (where / "report.md").read_text()
    assert failure_class in report
    assert f"`{first_log}`" in report
    assert engine.containers.list(all=True, filters={"label": f"envkit.run={outcome.run_id}"}) == []


def test_replaying_a_failed_run_fails_the_same_way(
    triage_settings: EnvkitSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = {"backend": {"Mgm__EnableE2eHarness": "false"}}
    outcome, where = run_isolated(triage_settings, overrides=broken, only="tier-b")
    assert outcome.failure is not None
    manifest = json.loads((where / "manifest.json").read_text())
    assert manifest["options"] == {"only": "tier-b", "overrides": broken}
    assert manifest["settings"]["ENVKIT_MGM__API_KEY"] == "**********"
    assert manifest["stack"]["file"] == "compose/tier-b.toml"
    assert set(manifest["images"]) == set(outcome.services)
    assert outcome.replay_command == f"./inv replay {where}"

    monkeypatch.setenv("ENVKIT_ARTIFACT_ROOT", str(tmp_path / "replays"))
    monkeypatch.setenv("ENVKIT_HISTORY_PATH", str(tmp_path / "history.sqlite"))
    replayed = replay(where, env_file=None)
    again, again_dir, original = replayed.outcome, replayed.artifact_dir, replayed.original_class
    assert replayed.image_changes == []
    assert original == outcome.failure.failure_class
    assert again.failure is not None
    assert again.failure.failure_class == original
    assert again_dir.parent == tmp_path / "replays"
    assert [s.status for s in again.steps] == [s.status for s in outcome.steps]


def test_replay_refuses_a_directory_without_a_manifest(tmp_path: Path) -> None:
    from envkit.errors import EnvkitError

    with pytest.raises(EnvkitError, match=r"manifest\.json does not exist: give the artifact"):
        replay(tmp_path)
