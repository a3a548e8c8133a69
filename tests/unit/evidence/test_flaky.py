"""Flaky or broken: failure classes judged by whether the same code also passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.evidence.flaky import class_verdicts, flaky_classes, group_key
from envkit.evidence.history import RunRecord, mark_batch, recent_runs, record_run
from envkit.evidence.outcome import Failure, RunOutcome
from envkit.spec.settings import EnvkitSettings, load_settings


def run(
    n: int,
    failure_class: str | None,
    commit: str | None = "abc",
    dirty: bool | None = False,
    batch: str | None = None,
    key: str | None = "k1",
) -> RunRecord:
    return RunRecord(
        run_id=f"r{n}",
        stack="s",
        started_at=f"2026-11-22T10:{n:02d}:00.000Z",
        ended_at=f"2026-11-22T10:{n:02d}:30.000Z",
        verdict="passed" if failure_class is None else "failed",
        failure_class=failure_class,
        total_s=30.0,
        timings={},
        services_ready_s={},
        git_commit=commit,
        artifact_dir=f"artifacts/r{n}",
        git_dirty=dirty,
        batch_id=batch,
        run_key=key,
    )


def test_fail_then_pass_on_one_commit_is_flaky_with_its_rate() -> None:
    runs = [
        run(1, "helix-auth-mismatch"),
        run(2, None),
        run(3, "helix-auth-mismatch"),
        run(4, None),
    ]
    verdict = class_verdicts(runs)["helix-auth-mismatch"]
    assert verdict.verdict == "flaky"
    assert (verdict.flaky_failures, verdict.flaky_runs) == (2, 4)
    assert verdict.rate == pytest.approx(0.5)
    assert verdict.groups == ("commit abc run k1",)
    assert verdict.last_seen == "2026-11-22T10:03:00.000Z"
    assert verdict.describe() == "flaky: failed 2 of 4 runs of code that also passed (50%)"


def test_failures_on_a_commit_that_never_passed_are_broken() -> None:
    runs = [run(1, None, "old"), run(2, "jwt-rejected", "new"), run(3, "jwt-rejected", "new")]
    verdict = class_verdicts(runs)["jwt-rejected"]
    assert verdict.verdict == "broken"
    assert verdict.rate is None
    assert verdict.describe() == "broken: failed 2 runs, never passing on the same code"
    assert flaky_classes(runs) == {}


def test_a_run_broken_on_purpose_is_not_the_same_run_as_a_green_one() -> None:
    # Same commit, but an --override (another run key): the failure is not flaky.
    runs = [run(1, None, key="plain"), run(2, "helix-never-called", key="override")]
    assert class_verdicts(runs)["helix-never-called"].verdict == "broken"
    # Rows recorded before run keys existed do not say what ran: no group, no false "flaky".
    old = [run(1, None, key=None), run(2, "helix-never-called", key=None)]
    assert class_verdicts(old)["helix-never-called"].verdict == "broken"


def test_a_dirty_work_tree_does_not_say_what_ran() -> None:
    # The same commit with uncommitted changes: a pass after a failure may be a fix.
    runs = [run(1, "jwt-rejected", dirty=True), run(2, None, dirty=True)]
    assert class_verdicts(runs)["jwt-rejected"].verdict == "broken"
    assert group_key(runs[0]) is None


def test_some_but_not_all_of_a_repeat_series_is_flaky_even_when_dirty() -> None:
    runs = [
        run(1, None, dirty=True, batch="b1"),
        run(2, "backend-5xx", dirty=True, batch="b1"),
        run(3, None, dirty=True, batch="b1"),
    ]
    verdict = class_verdicts(runs)["backend-5xx"]
    assert verdict.verdict == "flaky"
    assert (verdict.flaky_failures, verdict.flaky_runs, verdict.groups) == (1, 3, ("b1",))


def test_interrupted_runs_are_left_out_and_unclassified_failures_named() -> None:
    runs = [run(1, "interrupted"), run(2, None), run(3, ""), run(4, None, commit=None)]
    verdicts = class_verdicts(runs)
    assert list(verdicts) == ["unclassified"]
    assert verdicts["unclassified"].verdict == "flaky"  # r3 failed, r2 passed, both on abc


def test_flaky_classes_come_first() -> None:
    runs = [
        run(1, "broken-one", "x"), run(2, "broken-one", "x"), run(3, "broken-one", "x"),
        run(4, "flaky-one", "y"), run(5, None, "y"),
    ]  # fmt: skip
    assert list(class_verdicts(runs)) == ["flaky-one", "broken-one"]


@pytest.fixture
def settings(tmp_path: Path) -> EnvkitSettings:
    return load_settings(env_file=None, environ={"ENVKIT_HISTORY_PATH": str(tmp_path / "h.sqlite")})


def test_a_repeat_series_is_recorded_as_one_batch(settings: EnvkitSettings, tmp_path: Path) -> None:
    for n, failure in enumerate([None, "backend-5xx", None]):
        outcome = RunOutcome(
            f"r{n}", "s", "failed" if failure else "passed",
            f"2026-11-22T10:0{n}:00.000Z", f"2026-11-22T10:0{n}:30.000Z",
            failure=Failure(failure, "x") if failure else None,
        )  # fmt: skip
        record_run(settings, outcome, tmp_path / f"r{n}", None)  # no commit known
    assert class_verdicts(recent_runs(settings))["backend-5xx"].verdict == "broken"
    assert mark_batch(settings, ["r0", "r1", "r2"]) == "batch-r0"
    assert mark_batch(settings, ["r0"]) is None  # one run is no series
    runs = recent_runs(settings)
    assert {r.batch_id for r in runs} == {"batch-r0"}
    assert class_verdicts(runs)["backend-5xx"].describe() == (
        "flaky: failed 1 of 3 runs of code that also passed (33%)"
    )
