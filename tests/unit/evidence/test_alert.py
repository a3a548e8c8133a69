"""The consecutive-failure alert: open once, keep open, resolve on green, open again later."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envkit.evidence.alert import AlertDecision, evaluate_alert
from envkit.evidence.history import history_file, record_run
from envkit.evidence.outcome import Failure, RunOutcome
from envkit.spec.settings import EnvkitSettings, load_settings

BASE = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NOW = BASE + timedelta(days=1)


class History:
    """Records synthetic runs one minute apart and evaluates the alert."""

    def __init__(self, settings: EnvkitSettings, artifacts: Path) -> None:
        self.settings = settings
        self.artifacts = artifacts
        self.count = 0

    def run(self, failure_class: str | None = None, commit: str | None = None) -> str:
        self.count += 1
        run_id = f"mgm-{self.count}"
        started = (BASE + timedelta(minutes=self.count)).isoformat().replace("+00:00", "Z")
        outcome = RunOutcome(
            run_id,
            "mgm",
            "failed" if failure_class else "passed",
            started,
            started,
            timings={"total": 60.0},
            failure=Failure(failure_class, "it broke") if failure_class else None,
        )
        commit = commit or f"c0ffee{self.count:04d}"  # a new commit each run unless given
        where = self.artifacts / run_id
        where.mkdir(parents=True)  # a manifest: what ran (the same each time), on a clean tree
        (where / "manifest.json").write_text(json.dumps({"git_dirty": False, "options": {}}))
        record_run(self.settings, outcome, where, commit)
        return run_id

    def evaluate(self) -> AlertDecision:
        return evaluate_alert(self.settings, now=NOW)

    def alerts(self) -> list[tuple[str, str]]:
        with sqlite3.connect(history_file(self.settings)) as conn:
            return conn.execute("SELECT id, state FROM alerts ORDER BY opened_at, id").fetchall()


@pytest.fixture
def history(tmp_path: Path) -> History:
    environ = {"ENVKIT_HISTORY_PATH": str(tmp_path / "h.sqlite")}
    return History(load_settings(env_file=None, environ=environ), tmp_path / "artifacts")


def test_no_history_means_no_alert_and_no_file(history: History) -> None:
    decision = history.evaluate()
    assert decision.action == "none"
    assert decision.reason.startswith("No runs are recorded yet (history: ")
    assert not history_file(history.settings).exists()


def test_one_failure_is_not_enough(history: History) -> None:
    history.run("helix-auth-mismatch")
    decision = history.evaluate()
    assert (decision.action, decision.alert) == ("none", None)
    assert decision.describe() == (
        "No alert change: Only one completed run (mgm-1) is recorded, and it failed."
    )


def test_a_failure_after_a_pass_is_not_enough(history: History) -> None:
    history.run("helix-auth-mismatch")
    history.run()
    history.run("service-never-ready")
    decision = history.evaluate()
    assert decision.action == "none"
    assert decision.reason == (
        "The latest run mgm-3 failed, but the one before it (mgm-2) passed; "
        "an alert needs two consecutive failures."
    )


def test_two_failures_open_one_alert_naming_both_runs(history: History) -> None:
    history.run()
    history.run("service-never-ready")
    history.run("helix-auth-mismatch")
    decision = history.evaluate()
    assert decision.action == "open"
    alert = decision.alert
    assert alert is not None
    assert alert["id"] == "alert-mgm-3"
    assert alert["opened_at"] == "2026-11-23T10:00:00Z"
    assert alert["title"] == (
        "E2E: mgm failed twice in a row (helix-auth-mismatch; service-never-ready)"
    )
    assert [(r["run_id"], r["failure_class"]) for r in alert["runs"]] == [
        ("mgm-3", "helix-auth-mismatch"),
        ("mgm-2", "service-never-ready"),
    ]
    artifacts = [str((history.artifacts / f"mgm-{n}").resolve()) for n in (3, 2)]
    assert [r["artifact_dir"] for r in alert["runs"]] == artifacts
    assert [r["started_at"] for r in alert["runs"]] == [
        "2026-11-22T10:03:00Z",
        "2026-11-22T10:02:00Z",
    ]
    body = alert["body"]
    rows = [line for line in body.splitlines() if line.startswith("| `mgm-")]
    assert rows == [
        "| `mgm-3` | 2026-11-22T10:03:00Z | `helix-auth-mismatch` | `c0ffee0003` "
        f"| `{artifacts[0]}` |",
        "| `mgm-2` | 2026-11-22T10:02:00Z | `service-never-ready` | `c0ffee0002` "
        f"| `{artifacts[1]}` |",
    ]
    assert "### Response (see docs/e2e/MAINTENANCE.md)" in body
    assert f"`./inv replay {artifacts[0]}`" in body
    assert "The two runs failed differently" in body
    assert decision.describe() == (
        "Opened alert alert-mgm-3: the latest two runs mgm-3 (helix-auth-mismatch) and "
        "mgm-2 (service-never-ready) both failed. Respond as docs/e2e/MAINTENANCE.md says."
    )
    assert history.alerts() == [("alert-mgm-3", "open")]


def test_the_same_class_twice_reads_as_a_persistent_break(history: History) -> None:
    history.run("helix-auth-mismatch")
    history.run("helix-auth-mismatch")
    alert = history.evaluate().alert
    assert alert is not None
    assert alert["title"] == "E2E: mgm failed twice in a row (helix-auth-mismatch)"
    persistent = "Both runs failed with `helix-auth-mismatch`: most likely a persistent break"
    assert persistent in alert["body"]


def test_evaluating_twice_keeps_the_one_alert(history: History) -> None:
    history.run("a")
    history.run("b")
    first = history.evaluate()
    second = history.evaluate()
    assert (first.action, second.action) == ("open", "keep-open")
    assert first.alert is not None
    assert second.alert is not None
    assert second.alert["id"] == first.alert["id"]
    assert second.alert["body"] == first.alert["body"]
    assert second.comment is None
    assert second.describe() == (
        "Alert alert-mgm-2 stays open: no run has passed since it was opened."
    )
    assert history.alerts() == [("alert-mgm-2", "open")]


def test_a_third_failure_opens_no_second_alert(history: History) -> None:
    history.run("a")
    history.run("b")
    history.evaluate()
    third = history.run("c")
    decision = history.evaluate()
    assert decision.action == "keep-open"
    assert decision.alert is not None
    assert decision.alert["id"] == "alert-mgm-2"
    assert decision.reason == "the latest run mgm-3 failed too (c); no second alert is opened."
    assert decision.comment is not None
    assert f"`{third}`" in decision.comment
    assert history.evaluate().comment is None  # that failure was already reported
    assert history.alerts() == [("alert-mgm-2", "open")]


def test_a_green_run_resolves_it_and_then_nothing_happens(history: History) -> None:
    history.run("a")
    history.run("b")
    history.evaluate()
    green = history.run()
    decision = history.evaluate()
    assert decision.action == "resolve"
    assert decision.alert is not None
    assert decision.alert["id"] == "alert-mgm-2"
    assert (decision.alert["state"], decision.alert["resolved_by"]) == ("resolved", green)
    assert decision.comment is not None
    assert f"Resolved: run `{green}`" in decision.comment
    assert decision.describe() == "Resolved alert alert-mgm-2: run mgm-3 passed."
    assert history.alerts() == [("alert-mgm-2", "resolved")]
    after = history.evaluate()
    assert (after.action, after.reason) == ("none", "The latest run mgm-3 passed.")


def test_after_a_resolve_two_new_failures_open_a_new_alert(history: History) -> None:
    history.run("a")
    history.run("b")
    history.evaluate()
    history.run()
    history.evaluate()
    history.run("c")
    assert history.evaluate().action == "none"
    history.run("d")
    decision = history.evaluate()
    assert decision.action == "open"
    assert decision.alert is not None
    assert decision.alert["id"] == "alert-mgm-5"
    assert history.alerts() == [("alert-mgm-2", "resolved"), ("alert-mgm-5", "open")]


def test_interrupted_runs_neither_open_nor_resolve(history: History) -> None:
    history.run("a")
    history.run("interrupted")
    assert history.evaluate().action == "none"
    history.run("b")
    assert history.evaluate().action == "open"
    history.run("interrupted")
    decision = history.evaluate()
    assert (decision.action, decision.comment) == ("keep-open", None)


def test_json_for_the_workflow(history: History) -> None:
    history.run("a")
    history.run("b")
    opened = json.loads(history.evaluate().to_json())
    assert opened["action"] == "open"
    assert opened["alert_id"] == "alert-mgm-2"
    assert opened["title"] == "E2E: mgm failed twice in a row (b; a)"
    assert "`mgm-1`" in opened["body"]
    assert "`mgm-2`" in opened["body"]
    assert opened["comment"] is None
    history.run()
    resolved = json.loads(history.evaluate().to_json())
    assert (resolved["action"], resolved["alert_id"]) == ("resolve", "alert-mgm-2")
    assert resolved["comment"].startswith("Resolved: run `mgm-3`")
    nothing = json.loads(history.evaluate().to_json())
    assert nothing == {
        "action": "none",
        "alert_id": None,
        "title": None,
        "body": None,
        "comment": None,
        "reason": "The latest run mgm-3 passed.",
    }


def test_the_database_refuses_a_second_open_alert(history: History) -> None:
    history.run("a")
    history.run("b")
    history.evaluate()
    with (
        pytest.raises(sqlite3.IntegrityError),
        sqlite3.connect(history_file(history.settings)) as conn,
    ):
        conn.execute(
            "INSERT INTO alerts (id, state, opened_at, last_run_id, runs, title, body) "
            "VALUES ('x', 'open', 'now', 'mgm-2', '[]', 't', 'b')"
        )


def test_two_failures_of_a_known_flaky_class_open_no_alert_and_say_so(history: History) -> None:
    history.run("helix-auth-mismatch", commit="feed01")
    history.run(None, commit="feed01")  # the same code passed: the class is flaky
    history.run("helix-auth-mismatch")
    latest = history.run("helix-auth-mismatch")
    decision = history.evaluate()
    assert decision.action == "none"
    assert decision.alert is None
    assert f"The latest two runs {latest} and mgm-3 failed" in decision.reason
    assert "already known to be flaky" in decision.reason
    assert "`helix-auth-mismatch` is flaky: failed 1 of 2 runs of code that also passed (50%)" in (
        decision.reason
    )
    assert history.alerts() == []


def test_a_broken_class_next_to_a_flaky_one_still_opens_the_alert(history: History) -> None:
    history.run("helix-auth-mismatch", commit="feed01")
    history.run(None, commit="feed01")
    history.run("helix-auth-mismatch")
    history.run("service-never-ready")  # never passed on its code: broken
    decision = history.evaluate()
    assert decision.action == "open"
    assert history.alerts() == [("alert-mgm-4", "open")]
