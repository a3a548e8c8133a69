"""Real tier-b runs explained: the baseline diff, the gantt and the merged timeline."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from envkit.evidence.diff import compare_runs
from envkit.evidence.outcome import RunOutcome
from envkit.scenario.runner import run_isolated
from envkit.spec.settings import EnvkitSettings

SECRETS = {
    "ENVKIT_MGM__API_KEY": "apikey-Ev71qW",
    "ENVKIT_TWITCH__EVENTSUB_SECRET": "whsec-Ev22Lm",
    "ENVKIT_TWITCH__EXTENSION_SECRET": "c2VjcmV0LWV2aWRlbmNlLWtleS00MjQyLWFiY2RlZmdo",
    "ENVKIT_TWITCH__BROADCASTER_ACCESS_TOKEN": "oauth-Ev93Tr",
    "ENVKIT_POSTGRES__PASSWORD": "pgpass-Ev55Nb",
}
BROKEN_KEY = {"synthetic-desktop": {"Mgm__ApiKey": "not-the-desktop-key"}}


@dataclass(frozen=True)
class Runs:
    settings: EnvkitSettings
    green: tuple[RunOutcome, Path]
    green_again: tuple[RunOutcome, Path]
    broken: tuple[RunOutcome, Path]


@pytest.fixture(scope="module")
def runs(
    sandbox_in: Callable[..., EnvkitSettings], tmp_path_factory: pytest.TempPathFactory
) -> Runs:
    settings = sandbox_in(tmp_path_factory.mktemp("evidence"), **SECRETS)
    green = run_isolated(settings)
    green_again = run_isolated(settings)
    broken = run_isolated(settings, overrides=BROKEN_KEY, baseline="latest-green")
    for outcome, _ in (green, green_again):
        assert outcome.verdict == "passed", outcome.failure
    return Runs(settings, green, green_again, broken)


def test_a_broken_api_key_against_green_names_the_step_the_class_and_new_lines(
    runs: Runs,
) -> None:
    outcome, where = runs.broken
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "desktop-api-key-rejected"
    diff = json.loads((where / "diff.json").read_text())
    assert diff["baseline"]["run_id"] == runs.green_again[0].run_id  # the latest green run
    assert diff["status"] == "regressed"
    regressed = [s["name"] for s in diff["steps"] if s["change"] == "regressed"]
    assert regressed == ["desktop-sequence"]
    assert (diff["run"]["failure_class"], diff["baseline"]["failure_class"]) == (
        "desktop-api-key-rejected",
        None,
    )
    backend = diff["new_error_lines"]["mgm-backend.log"]
    assert any(re.search(r"confirm-acceptance -> 401", line) for line in backend), backend
    report = (where / "report.md").read_text()
    appended = report.split(f"## Baseline diff: `{outcome.run_id}` against", 1)
    assert len(appended) == 2, "tier-b --baseline did not append the diff to report.md"
    assert "| desktop-sequence | tier-b | passed | failed | regressed |" in appended[1]
    assert (where / "diff.md").read_text().startswith("# Baseline diff:")


def test_two_green_runs_are_stable(runs: Runs) -> None:
    diff, written = compare_runs(runs.settings, str(runs.green_again[1]), runs.green[0].run_id)
    assert diff.status == "stable"
    assert diff.steps == []
    assert "**stable**: both runs passed every step" in written[0].read_text()


def _bars(chart: str, section: str) -> list[tuple[str, int, int]]:
    body = chart.split(f"section {section}\n", 1)[1].split("section", 1)[0]
    found = re.findall(r"^    (\S[^:\n]*?) :(?:crit, )?(\d+), (\d+)$", body, re.MULTILINE)
    return [(name, int(start), int(end)) for name, start, end in found]


@pytest.mark.parametrize("which", ["green", "broken"])
def test_the_gantt_shows_every_service_and_step_in_time_order(runs: Runs, which: str) -> None:
    outcome, where = getattr(runs, which)
    report = (where / "report.md").read_text()
    chart = report.split("```mermaid\n", 1)[1].split("```", 1)[0]
    services = _bars(chart, "Services")
    steps = _bars(chart, "Steps")
    assert {name for name, _, _ in services} == set(outcome.services)
    ran = [s.name for s in outcome.steps if s.status != "skipped"]
    assert [name.removesuffix(" (failed)") for name, _, _ in steps] == ran
    for bars in (services, steps):
        assert [start for _, start, _ in bars] == sorted(start for _, start, _ in bars)
        assert all(end >= start for _, start, end in bars)
    # services are ready before the first step starts; teardown comes after the last step
    assert max(end for _, _, end in services) <= steps[0][1] + 50
    teardown = _bars(chart, "Teardown")
    assert [name for name, _, _ in teardown] == ["collect logs", "teardown"]
    assert teardown[0][1] >= steps[-1][2] - 1


def test_the_timeline_merges_every_service_log_and_every_step_in_time_order(runs: Runs) -> None:
    outcome, where = runs.green
    events = [json.loads(line) for line in (where / "timeline.jsonl").read_text().splitlines()]
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times)
    sources = {e["source"] for e in events}
    assert set(outcome.services) <= sources
    assert "tier-b-orchestrator" in sources
    assert any(s.startswith("journal mock-helix") for s in sources), sources
    started = [e["text"] for e in events if e["kind"] == "step" and e["text"].endswith("started")]
    assert started == [f"{s.tier}/{s.name} started" for s in outcome.steps]
    md = (where / "timeline.md").read_text()
    assert md.count("\n| ") - 2 == len(events)


def test_no_secret_reaches_the_diff_or_the_timeline(runs: Runs) -> None:
    for _, where in (runs.green, runs.green_again, runs.broken):
        for name in ("diff.md", "diff.json", "timeline.md", "timeline.jsonl", "report.md"):
            path = where / name
            if not path.is_file():
                continue
            text = path.read_text()
            for secret in SECRETS.values():
                assert secret not in text, f"{secret} in {path}"
