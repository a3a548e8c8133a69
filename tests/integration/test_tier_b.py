"""`tier-b` end to end against a real engine: green runs, broken runs, artifacts, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from envkit.engines.images import ImageResult
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

DEFAULT_STACK = Path(__file__).resolve().parents[2] / "compose" / "tier-b.toml"  # the MGM stack

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "ENVKIT_MGM__API_KEY": "apikey-Zq81vX",
    "ENVKIT_TWITCH__EVENTSUB_SECRET": "whsec-Pp42Lm",
    "ENVKIT_TWITCH__EXTENSION_SECRET": "c2VjcmV0LWV4dGVuc2lvbi1rZXktNDI0Mi1hYmNkZWZnaA==",
    "ENVKIT_TWITCH__BROADCASTER_ACCESS_TOKEN": "oauth-Kk93Tr",
    "ENVKIT_POSTGRES__PASSWORD": "pgpass-Rr55Nb",
}
SERVICE_LOGS = {
    "mgm-postgres.log", "mgm-backend.log", "mgm-mock-eventsub.log", "mgm-mock-jwt.log",
    "mgm-mock-helix.log", "mgm-synthetic-desktop.log",
}  # fmt: skip


@pytest.fixture
def tier_settings(sandbox: Callable[..., EnvkitSettings]) -> EnvkitSettings:
    return sandbox(**SECRETS)


def leftovers(engine: docker.DockerClient, run_id: str) -> list[str]:
    label = {"label": f"envkit.run={run_id}"}
    return [c.name for c in engine.containers.list(all=True, filters=label)] + [
        n.name for n in engine.networks.list(filters=label)
    ]


def broken_stack(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_STACK.read_text()
    assert old in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_green_run_leaves_complete_artifacts_and_nothing_running(
    tier_settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    outcome, where = run_isolated(tier_settings)
    assert outcome.verdict == "passed", outcome.failure
    assert [s.status for s in outcome.steps] == ["passed"] * 9
    files = {p.name for p in where.iterdir()}
    assert (
        SERVICE_LOGS | {"mgm-tier-b-orchestrator.log", "summary.json", "junit.xml", "report.md"}
        <= files
    )
    for name in SERVICE_LOGS:
        assert (where / name).stat().st_size > 0, name
    summary = json.loads((where / "summary.json").read_text())
    assert summary["verdict"] == "passed"
    assert summary["run_id"] == outcome.run_id
    assert set(summary["services"]) == {
        n.removeprefix("mgm-").removesuffix(".log") for n in SERVICE_LOGS
    }
    assert all(row["seconds_to_ready"] > 0 for row in summary["services"].values())
    for phase in ("images", "start", "tier_a", "tier_b", "collect", "teardown", "total"):
        assert phase in summary["timings"], phase
    suite = ET.parse(where / "junit.xml").getroot()
    assert suite.get("tests") == "9"
    assert suite.get("failures") == "0"
    report = (where / "report.md").read_text()
    assert report.startswith("# tier-b mgm: PASSED")
    assert "## E2E performance (this run)" in report
    assert "| Tier B boundary |" in report
    assert "Triage" not in report
    orchestrator = (where / "mgm-tier-b-orchestrator.log").read_text()
    # the scenario reached the backend where summary.json says: its address on the run's
    # network (no published port) on this machine's engine
    backend = summary["services"]["backend"]["host_url"]
    assert backend == outcome.services["backend"].host_url
    assert not backend.startswith("http://127.")
    assert f"POST {backend}/" in orchestrator
    assert "step tier-b/helix-chat-message: one chat message naming Arthas" in orchestrator
    assert leftovers(engine, outcome.run_id) == []


def test_no_secret_reaches_any_artifact(tier_settings: EnvkitSettings) -> None:
    outcome, where = run_isolated(tier_settings)
    assert outcome.verdict == "passed", outcome.failure
    secrets = tier_settings.secret_values()
    assert len(secrets) == len(SECRETS)
    scanned = 0
    for path in where.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            scanned += 1
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:4]}… found in {path.name}"
    assert scanned >= 10


def test_only_tier_a_runs_the_enrollment_gate(tier_settings: EnvkitSettings) -> None:
    outcome, where = run_isolated(tier_settings, only="tier-a")
    assert outcome.verdict == "passed", outcome.failure
    assert {s.tier for s in outcome.steps} == {"tier-a"}
    assert len(outcome.steps) == 4
    assert "tier_b" not in outcome.timings
    assert outcome.replay_command == f"./inv replay {where}"
    manifest = json.loads((where / "manifest.json").read_text())
    assert manifest["options"]["only"] == "tier-a"


def test_a_misconfigured_helix_client_id_fails_the_run_with_triage(
    tier_settings: EnvkitSettings, engine: docker.DockerClient, tmp_path: Path
) -> None:
    stack = broken_stack(
        tmp_path,
        'Twitch__HelixClientId = "${twitch.helix_client_id}"',
        'Twitch__HelixClientId = "drifted-client-id"',
    )
    outcome, where = run_isolated(tier_settings, stack)
    assert outcome.verdict == "failed"
    statuses = {s.name: s.status for s in outcome.steps}
    assert statuses["desktop-sequence"] == "passed"  # a failed announcement does not undo Sent
    assert statuses["helix-chat-message"] == "failed"
    assert statuses["pool-shows-not-enrolled"] == "skipped"  # fail fast
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "helix-auth-mismatch"
    assert "drifted-client-id" in outcome.failure.message
    assert outcome.failure.first_log == "mgm-mock-helix.log"
    report = (where / "report.md").read_text()
    assert report.startswith("# tier-b mgm: FAILED")
    assert "## Triage" in report
    assert "mgm-mock-helix.log" in report
    suite = ET.parse(where / "junit.xml").getroot()
    assert suite.get("failures") == "1"
    assert suite.get("skipped") == "2"
    assert leftovers(engine, outcome.run_id) == []


def test_a_service_that_never_gets_ready_still_leaves_logs_and_report(
    tier_settings: EnvkitSettings, engine: docker.DockerClient, tmp_path: Path
) -> None:
    # A refused port, not an unresolvable name: a lookup through Docker's embedded DNS can
    # take seconds. The backend never gets ready here; the limit only has to leave a loaded
    # machine time to start it and log its first attempt (over 10 s has been seen).
    stack = broken_stack(
        tmp_path,
        "Host=${services.postgres.host};Port=${services.postgres.port}",
        "Host=127.0.0.1;Port=1",
    )
    stack.write_text(
        stack.read_text().replace(
            'log = "mgm-backend.log"', 'log = "mgm-backend.log"\nready_timeout = 20', 1
        )
    )
    outcome, where = run_isolated(tier_settings, stack)
    assert outcome.verdict == "failed"
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "service-never-ready"
    assert outcome.failure.first_log == "mgm-backend.log"
    assert any("database not reachable yet" in line for line in outcome.failure.quotes)
    assert all(s.status == "skipped" for s in outcome.steps)
    assert "database not reachable yet" in (where / "mgm-backend.log").read_text()
    assert (where / "report.md").read_text().startswith("# tier-b mgm: FAILED")
    assert json.loads((where / "summary.json").read_text())["failure"]["failure_class"] == (
        "service-never-ready"
    )
    assert leftovers(engine, outcome.run_id) == []


def test_keep_leaves_a_failed_stack_up_until_clean_all(
    tier_settings: EnvkitSettings, engine: docker.DockerClient, tmp_path: Path
) -> None:
    import httpx

    from envkit.lifecycle.commands import clean
    from envkit.lifecycle.environment import remove_run

    stack = broken_stack(
        tmp_path,
        'Twitch__HelixClientId = "${twitch.helix_client_id}"',
        'Twitch__HelixClientId = "drifted-client-id"',
    )
    outcome, where = run_isolated(tier_settings, stack, keep=True)
    try:
        assert outcome.verdict == "failed"
        assert len(leftovers(engine, outcome.run_id)) == 7  # 6 containers + network
        helix = outcome.services["mock-helix"].host_url
        journal = httpx.get(helix + "/requests", timeout=5).json()
        # The failure can be inspected live; the journal records the mismatch in every
        # MockHelix__StrictAuth mode (the lenient default answers it 200).
        assert journal[0]["credentialsMatch"] is False
        assert (where / "report.md").is_file()
        assert outcome.run_id not in clean(tier_settings).runs  # a kept run survives clean
        # `clean --all` would remove it (a dry run, so a developer's own `up` stack is safe).
        assert outcome.run_id in clean(tier_settings, include_up=True, dry_run=True).runs
    finally:
        remove_run(engine, outcome.run_id)
    assert leftovers(engine, outcome.run_id) == []


def test_orchestrate_runs_the_checks_against_an_up_stack(
    sandbox: Callable[..., EnvkitSettings], engine: docker.DockerClient
) -> None:
    from envkit.lifecycle.commands import down, up
    from envkit.scenario.runner import orchestrate

    settings = sandbox(ports_from=28000)
    state = up(settings)
    try:
        first, where = orchestrate(settings)
        assert first.verdict == "passed", first.failure
        assert len(first.steps) == 9
        assert (where / "mgm-backend.log").read_text()  # a snapshot of the live logs
        assert (where / "report.md").read_text().startswith("# tier-b mgm: PASSED")
        again, _ = orchestrate(settings, only="tier-a")  # journals reset: runs repeat cleanly
        assert again.verdict == "passed", again.failure
    finally:
        down(settings)
    assert leftovers(engine, state.run_id) == []


def _invoke(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ENVKIT_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "ENVKIT_HISTORY_PATH": str(tmp_path / "history.sqlite"),
    }
    return subprocess.run(
        [sys.executable, "-m", "invoke", "tier-b", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_cli_repeat_prints_a_table_and_exits_zero(
    tmp_path: Path, images: dict[str, ImageResult]
) -> None:
    result = _invoke(tmp_path, "--only", "tier-a", "--repeat", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("tier-b PASSED in") == 2
    assert "2/2 passed" in result.stdout
    assert len(list((tmp_path / "artifacts").iterdir())) == 2


def test_cli_exits_non_zero_and_names_the_class_when_a_check_fails(
    tmp_path: Path, images: dict[str, ImageResult]
) -> None:
    result = _invoke(
        tmp_path, "--only", "tier-b", "--override", "backend.Mgm__EnableE2eHarness=false"
    )
    assert result.returncode == 1
    assert "tier-b FAILED in 1 of 1 run(s)." in result.stderr
    assert "failure class: harness-disabled; read first:" in result.stdout
