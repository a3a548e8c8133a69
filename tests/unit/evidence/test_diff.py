"""The baseline diff: normalised log lines, the slower threshold, and two runs compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envkit.errors import RunLookupError
from envkit.evidence.artifacts import write_artifacts
from envkit.evidence.diff import (
    SlowerThreshold,
    append_baseline_diff,
    compare_runs,
    diff_runs,
    is_error_line,
    new_error_lines,
    normalise,
    write_diff,
)
from envkit.evidence.history import record_run
from envkit.evidence.outcome import Failure, RunOutcome, ServiceRow, StepResult
from envkit.evidence.redact import MASK, Redactor
from envkit.evidence.runs import find_run, read_run
from envkit.spec.settings import EnvkitSettings, load_settings

SECRET = "hunter2-very-secret"
GREEN_API_LOG = (
    "2026-11-22T10:00:01.100000000Z 2026-11-22T10:00:01.100+00:00 INFO api started\n"
    "2026-11-22T10:00:02.000000000Z INFO api POST /orders/1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    " -> 200 in 3.1 ms\n"
    "2026-11-22T10:00:02.500000000Z WARN api cache cold, took 120 ms\n"
)
RED_API_LOG = (
    "2026-11-22T11:00:01.900000000Z 2026-11-22T11:00:01.900+00:00 INFO api started\n"
    "2026-11-22T11:00:02.000000000Z INFO api POST /orders/6f16d6bb-aef6-4d1e-8ae7-71caeabea74c"
    " -> 401 in 0.4 ms\n"
    "2026-11-22T11:00:02.100000000Z INFO api POST /orders/0b5c8a8e-1111-4d1e-8ae7-71caeabea74c"
    " -> 401 in 0.6 ms\n"
    "2026-11-22T11:00:02.500000000Z WARN api cache cold, took 980 ms\n"
    f"2026-11-22T11:00:02.600000000Z ERROR api key {SECRET} refused for client 5f3a9c2e71\n"
)


def test_normalise_hides_what_differs_on_every_run_and_keeps_the_status() -> None:
    line = (
        "2026-11-22T11:00:02.000000000Z 2026-11-22 11:00:02.001 UTC [23] POST "
        "/x/6f16d6bb-aef6-4d1e-8ae7-71caeabea74c?run=mgm-20261122T110002-8ad615c8 "
        "id 0xdeadbeef1 -> 401 in 0.4 ms at 11:00:02"
    )
    assert normalise(line) == (
        "<time> UTC [<n>] POST /x/<uuid>?run=mgm-<time>-<hex> id <hex> -> 401 in <n> ms at <time>"
    )
    assert normalise("status 500 after 500 tries") == "status 500 after <n> tries"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("ERROR db is gone", True),
        ("2026-11-22T11:00:02Z WARN slow", True),
        ("Traceback (most recent call last):", True),
        ("INFO GET /x -> 503 in 2 ms", True),
        ("step x answered 401", True),
        ("INFO GET /x -> 200 in 401 ms", False),
        ("INFO terminating gracefully", False),
    ],
)
def test_error_lines_are_levels_error_words_and_4xx_5xx_answers(line: str, error: bool) -> None:
    assert is_error_line(line) is error


def test_new_error_lines_ignore_ids_and_times_and_repeat_once() -> None:
    new = new_error_lines(RED_API_LOG, GREEN_API_LOG)
    assert new == [
        "INFO api POST /orders/6f16d6bb-aef6-4d1e-8ae7-71caeabea74c -> 401 in 0.4 ms",
        f"ERROR api key {SECRET} refused for client 5f3a9c2e71",
    ]  # the second 401 differs only by its id; the WARN only by its number


@pytest.mark.parametrize(
    ("before", "after", "judgement"),
    [
        (10.0, 13.0, "slower"),  # +30 %, +3 s
        (10.0, 12.0, "same"),  # +20 %: under the share
        (0.2, 0.6, "same"),  # tripled, but +0.4 s: under the seconds
        (10.0, 7.0, "faster"),
        (None, 3.0, "—"),
    ],
)
def test_slower_needs_both_the_share_and_the_seconds(
    before: float | None, after: float | None, judgement: str
) -> None:
    assert SlowerThreshold(percent=25, seconds=0.5).judge(before, after) == judgement


def outcome(run_id: str, hour: int, failed_step: str | None, start_s: float) -> RunOutcome:
    names = ["seed", "charge", "notify"]
    failed_at = names.index(failed_step) if failed_step else len(names)
    steps = [
        StepResult(
            name, "tier-a",
            "passed" if i < failed_at else "failed" if i == failed_at else "skipped",
            started_at=f"2026-11-22T{hour:02d}:00:0{3 + i}.000Z", duration_s=0.5,
            error="charge answered 401" if i == failed_at else None,
        )
        for i, name in enumerate(names)
    ]  # fmt: skip
    return RunOutcome(
        run_id=run_id,
        stack="shop",
        verdict="failed" if failed_step else "passed",
        started_at=f"2026-11-22T{hour:02d}:00:00.000Z",
        ended_at=f"2026-11-22T{hour:02d}:00:09.000Z",
        steps=steps,
        timings={"images": 0.1, "start": start_s, "tier_a": 1.5, "collect": 1, "total": 9},
        services={
            "api": ServiceRow(
                log="shop-api.log", started_s=0.2, ready_s=start_s, seconds_to_ready=start_s - 0.1
            ),
        },
        failure=Failure("api-key-rejected", "401", "shop-api.log") if failed_step else None,
        run_name="run",
    )


def make_run(root: Path, out: RunOutcome, api_log: str) -> Path:
    where = root / out.run_id
    where.mkdir(parents=True)
    (where / "shop-api.log").write_text(api_log)
    (where / "manifest.json").write_text(json.dumps({"git_commit": f"commit-of-{out.run_id}"}))
    write_artifacts(out, where, Redactor([]), environ={})
    return where


@pytest.fixture
def settings(tmp_path: Path) -> EnvkitSettings:
    return load_settings(
        env_file=None,
        environ={
            "ENVKIT_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
            "ENVKIT_HISTORY_PATH": str(tmp_path / "h.sqlite"),
            "ENVKIT_DIFF__SLOWER_PERCENT": "25",
            "ENVKIT_DIFF__SLOWER_SECONDS": "0.5",
        },
    )


def test_a_green_and_a_red_run_name_the_step_the_class_and_the_new_lines(
    tmp_path: Path,
) -> None:
    green = read_run(make_run(tmp_path, outcome("green", 10, None, 4.0), GREEN_API_LOG))
    red = read_run(make_run(tmp_path, outcome("red", 11, "charge", 9.0), RED_API_LOG))
    diff = diff_runs(red, green)
    assert diff.status == "regressed"
    assert diff.headline == (
        "the baseline passed; this run failed at step charge with `api-key-rejected`."
    )
    changes = [(s.name, s.before, s.after, s.change, s.error) for s in diff.steps]
    assert changes == [
        ("charge", "passed", "failed", "regressed", "charge answered 401"),
        ("notify", "passed", "skipped", "not run", None),
    ]
    assert (diff.run.failure_class, diff.baseline.failure_class) == ("api-key-rejected", None)
    assert diff.run.git_commit == "commit-of-red"
    assert [(t.name, t.judgement) for t in diff.slower] == [
        ("stack start", "slower"),
        ("api", "slower"),
    ]
    assert list(diff.new_error_lines) == ["shop-api.log"]
    text = diff.markdown()
    assert "**regressed**: the baseline passed; this run failed at step charge" in text
    assert "| charge | tier-a | passed | failed | regressed | charge answered 401 |" in text
    assert "| stack start | 4.00 | 9.00 | +5.00 | slower |" in text
    assert "-> 401 in 0.4 ms" in text
    assert diff.terminal_lines()[0].startswith("regressed: the baseline passed")


def test_two_green_runs_are_stable(tmp_path: Path) -> None:
    one = read_run(make_run(tmp_path, outcome("g1", 10, None, 4.0), GREEN_API_LOG))
    two = read_run(make_run(tmp_path, outcome("g2", 11, None, 4.2), GREEN_API_LOG))
    diff = diff_runs(two, one)
    assert (diff.status, diff.steps, diff.new_error_lines, diff.slower) == ("stable", [], {}, [])
    assert "**stable**: both runs passed every step" in diff.markdown()
    assert "No log has error lines the baseline's did not have." in diff.markdown()


def test_a_recovered_run_says_so(tmp_path: Path) -> None:
    red = read_run(make_run(tmp_path, outcome("red", 10, "charge", 4.0), RED_API_LOG))
    green = read_run(make_run(tmp_path, outcome("green", 11, None, 4.0), GREEN_API_LOG))
    diff = diff_runs(green, red)
    assert diff.status == "recovered"
    assert "the baseline failed with `api-key-rejected`; this run passed" in diff.headline
    assert {s.change for s in diff.steps} == {"recovered"}


def test_compare_finds_the_latest_green_run_in_the_history_and_writes_both_files(
    settings: EnvkitSettings,
) -> None:
    root = settings.workspace.artifacts
    for out, log in [
        (outcome("green-old", 8, None, 4.0), GREEN_API_LOG),
        (outcome("green-new", 9, None, 4.0), GREEN_API_LOG),
        (outcome("red", 11, "charge", 4.0), RED_API_LOG),
    ]:
        record_run(settings, out, make_run(root, out, log), None)
    diff, written = compare_runs(settings, "red")  # a bare run id, found under the root
    assert diff.baseline.run_id == "green-new"
    assert [p.name for p in written] == ["diff.md", "diff.json"]
    assert written[0].read_text() == diff.markdown()
    data = json.loads(written[1].read_text())
    assert data["status"] == "regressed"
    assert data["steps"][0]["name"] == "charge"
    assert data["timings"][0] == {
        "kind": "phase", "name": "total wall time", "before": 9, "after": 9,
        "judgement": "same", "delta": 0,
    }  # fmt: skip
    explicit, _ = compare_runs(settings, str(root / "red"), "green-old")
    assert explicit.baseline.run_id == "green-old"


def test_latest_green_falls_back_to_the_artifact_root(settings: EnvkitSettings) -> None:
    root = settings.workspace.artifacts
    make_run(root, outcome("green", 9, None, 4.0), GREEN_API_LOG)
    make_run(root, outcome("red", 11, "charge", 4.0), RED_API_LOG)
    diff, _ = compare_runs(settings, "red", "latest-green")
    assert diff.baseline.run_id == "green"


def test_without_a_green_run_the_error_says_what_to_do(settings: EnvkitSettings) -> None:
    make_run(settings.workspace.artifacts, outcome("red", 11, "charge", 4.0), RED_API_LOG)
    with pytest.raises(RunLookupError, match=r"No passed run of the stack 'shop' .* run `invoke"):
        compare_runs(settings, "red")


def test_an_unknown_run_is_named_with_where_it_was_looked_for(settings: EnvkitSettings) -> None:
    with pytest.raises(RunLookupError, match=r"No run 'nope' was found \(looked for summary.json"):
        find_run(settings, "nope")


def test_a_damaged_summary_is_named(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"run_id": 3}')
    with pytest.raises(RunLookupError, match=r"is not a summary envkit wrote"):
        read_run(tmp_path)


def test_diff_files_are_redacted(tmp_path: Path) -> None:
    green = read_run(make_run(tmp_path, outcome("green", 10, None, 4.0), GREEN_API_LOG))
    red = read_run(make_run(tmp_path, outcome("red", 11, "charge", 9.0), RED_API_LOG))
    for path in write_diff(diff_runs(red, green), tmp_path, Redactor([SECRET])):
        text = path.read_text()
        assert SECRET not in text, path.name
        assert MASK in text, path.name


def test_a_failed_run_gets_the_diff_at_the_end_of_its_report(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    root = settings.workspace.artifacts
    make_run(root, outcome("green", 10, None, 4.0), GREEN_API_LOG)
    red = make_run(root, outcome("red", 11, "charge", 9.0), RED_API_LOG)
    summary = tmp_path / "step-summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    diff = append_baseline_diff(settings, red, "latest-green", Redactor([SECRET]), env)
    report = (red / "report.md").read_text()
    assert report.startswith("# run shop: FAILED")
    tail = report.split("## Baseline diff: `red` against `green`", 1)[1]
    assert "### Steps" in tail
    assert "| charge | tier-a | passed | failed | regressed |" in tail
    assert SECRET not in report
    assert (red / "diff.md").read_text() == Redactor([SECRET])(diff.markdown())
    assert summary.read_text().startswith("## Baseline diff: `red` against `green`")
