"""The CI workflows for envkit's users: valid, and running exactly what the README says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def readme_commands() -> list[str]:
    """The commands of the README's quick start block, without their comments."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no Quick start shell block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_readme_gives_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    main, tests = readme_commands()
    assert main == "./inv tier-b"
    assert tests == "./inv test"
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize(
    "name",
    ["e2e-test.yml", "e2e-weekly-health-report.yml", "e2e-consecutive-failure-alert.yml"],
)
def test_every_workflow_is_valid_yaml_with_jobs(name: str) -> None:
    data = workflow(name)
    assert data["name"] == name.removesuffix(".yml")
    assert data["on"]
    assert data["jobs"]


def test_e2e_test_runs_the_readme_main_command_on_pull_requests() -> None:
    data = workflow("e2e-test.yml")
    assert "pull_request" in data["on"]
    assert data["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in data["concurrency"]["group"]
    job = data["jobs"]["tier-b"]
    main = readme_commands()[0]
    assert main in runs(job)
    # Nothing may sit after the command to swallow its exit code (a pipe, `|| true`, `;`).
    for command in runs(job):
        if main in command:
            assert command.strip() == main


def test_e2e_test_always_uploads_the_artifacts_for_14_days() -> None:
    steps = workflow("e2e-test.yml")["jobs"]["tier-b"]["steps"]
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "artifacts/"
    assert upload["with"]["retention-days"] == 14


def test_live_lane_is_skipped_with_a_reason_when_credentials_are_missing() -> None:
    job = workflow("e2e-test.yml")["jobs"]["live-credentials"]
    check = job["steps"][0]["run"]
    assert "Live-credential lane skipped" in check
    assert "GITHUB_STEP_SUMMARY" in check
    gated = [s for s in job["steps"][1:] if "if" in s]
    assert len(gated) == len(job["steps"]) - 1
    assert all("steps.creds.outputs.available == 'true'" in s["if"] for s in gated)


def test_weekly_report_runs_health_report_and_publishes_it() -> None:
    data = workflow("e2e-weekly-health-report.yml")
    assert data["on"]["schedule"][0]["cron"].split()[4] == "1"  # weekly, on Mondays
    commands = runs(data["jobs"]["health-report"])
    assert "./inv health-report --days 30 --out health" in commands
    assert any("GITHUB_STEP_SUMMARY" in c for c in commands)


def test_alert_workflow_opens_at_most_one_issue_and_closes_it_when_green() -> None:
    data = workflow("e2e-consecutive-failure-alert.yml")
    assert data["on"]["workflow_run"]["workflows"] == ["e2e-test"]
    assert data["permissions"]["issues"] == "write"
    steps = data["jobs"]["alert"]["steps"]
    text = "\n".join(runs(data["jobs"]["alert"]))
    assert "./inv alert --json" in text
    opener = next(s for s in steps if s.get("name", "").startswith("Open the alert issue"))
    assert "gh issue list --label" in opener["run"]
    assert 'if [ "$open_count" = "0" ]' in opener["run"]
    closer = next(s for s in steps if s.get("name", "").startswith("Close the alert issue"))
    assert "gh issue close" in closer["run"]
    assert "conclusion == 'success'" in closer["if"]
