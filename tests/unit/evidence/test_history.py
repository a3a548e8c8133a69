"""The run history: records round-trip, order, windows, damage, and the tier-b hook."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loguru import logger

from envkit.errors import HistoryError
from envkit.evidence.history import (
    SCHEMA_VERSION,
    RunRecord,
    fetch_runs,
    history_file,
    open_history,
    recent_runs,
    record_run,
    runs_between,
)
from envkit.evidence.outcome import Failure, RunOutcome, ServiceRow, StepResult
from envkit.evidence.redact import Redactor
from envkit.scenario import pipeline
from envkit.scenario.orchestrator import Scenario
from envkit.spec.settings import EnvkitSettings, load_settings

BASE = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> EnvkitSettings:
    return load_settings(env_file=None, environ={"ENVKIT_HISTORY_PATH": str(tmp_path / "h.sqlite")})


def stamp(minutes: float) -> str:
    moment = BASE + timedelta(minutes=minutes)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def outcome(
    run_id: str, minutes: float, failure_class: str | None = None, total: float = 60.0
) -> RunOutcome:
    failure = Failure(failure_class, "it broke") if failure_class else None
    return RunOutcome(
        run_id=run_id,
        stack="mgm",
        verdict="failed" if failure_class else "passed",
        started_at=stamp(minutes),
        ended_at=stamp(minutes + 1),
        timings={"total": total, "start": 12.5, "tier_a": 1},
        services={
            "postgres": ServiceRow(image="postgres:16-alpine", seconds_to_ready=4.25),
            "backend": ServiceRow(image="envkit/services", seconds_to_ready=7),
            "mock-helix": ServiceRow(image="envkit/services", seconds_to_ready=None),
        },
        failure=failure,
    )


def test_a_record_round_trips(settings: EnvkitSettings, tmp_path: Path) -> None:
    record_run(settings, outcome("mgm-1", 0, "helix-auth-mismatch", 61.5), tmp_path / "a", "abc123")
    assert recent_runs(settings) == [
        RunRecord(
            run_id="mgm-1",
            stack="mgm",
            started_at="2026-11-22T10:00:00.000Z",
            ended_at="2026-11-22T10:01:00.000Z",
            verdict="failed",
            failure_class="helix-auth-mismatch",
            total_s=61.5,
            timings={"total": 61.5, "start": 12.5, "tier_a": 1.0},
            services_ready_s={"postgres": 4.25, "backend": 7.0},
            git_commit="abc123",
            artifact_dir=str((tmp_path / "a").resolve()),
        )
    ]


def test_runs_come_newest_first_by_start_time_and_limit_counts(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    for run_id, minutes in [("b", 10), ("a", 0), ("d", 30), ("c", 20)]:
        record_run(settings, outcome(run_id, minutes), tmp_path / run_id, None)
    assert [r.run_id for r in recent_runs(settings)] == ["d", "c", "b", "a"]
    assert [r.run_id for r in recent_runs(settings, limit=2)] == ["d", "c"]


def test_recording_a_run_twice_keeps_one_record(settings: EnvkitSettings, tmp_path: Path) -> None:
    record_run(settings, outcome("mgm-1", 0, "step-failed:x"), tmp_path, None)
    record_run(settings, outcome("mgm-1", 0), tmp_path, None)
    assert [(r.run_id, r.verdict) for r in recent_runs(settings)] == [("mgm-1", "passed")]


def test_window_includes_its_bounds_and_reads_naive_times_as_utc(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    for run_id, minutes in [("before", -1), ("first", 0), ("mid", 30), ("last", 60), ("after", 61)]:
        record_run(settings, outcome(run_id, minutes), tmp_path, None)
    end = BASE + timedelta(minutes=60)
    assert [r.run_id for r in runs_between(settings, BASE, end)] == ["last", "mid", "first"]
    naive = [r.run_id for r in runs_between(settings, BASE.replace(tzinfo=None), end)]
    assert naive == ["last", "mid", "first"]


def test_reading_a_missing_history_gives_no_runs_and_creates_nothing(
    settings: EnvkitSettings,
) -> None:
    assert recent_runs(settings) == []
    assert runs_between(settings, BASE, BASE + timedelta(days=1)) == []
    assert not history_file(settings).exists()


def test_completed_only_skips_interrupted_runs(settings: EnvkitSettings, tmp_path: Path) -> None:
    record_run(settings, outcome("failed", 0, "helix-auth-mismatch"), tmp_path, None)
    record_run(settings, outcome("passed", 1), tmp_path, None)
    record_run(settings, outcome("stopped", 2, "interrupted"), tmp_path, None)
    with open_history(settings) as conn:
        assert [r.run_id for r in fetch_runs(conn, 5)] == ["stopped", "passed", "failed"]
        assert [r.run_id for r in fetch_runs(conn, 5, completed_only=True)] == ["passed", "failed"]


def test_a_relative_history_path_is_under_the_project_root(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, environ={}, root=tmp_path)
    assert history_file(settings) == tmp_path / ".envkit-state" / "history.sqlite"


def test_an_artifact_dir_in_the_project_is_stored_relative(
    settings: EnvkitSettings,
) -> None:
    project = settings.workspace.root
    record_run(settings, outcome("mgm-1", 0), project / "artifacts" / "mgm-1", None)
    assert recent_runs(settings)[0].artifact_dir == "artifacts/mgm-1"


def test_a_damaged_history_names_the_file_and_the_fix(settings: EnvkitSettings) -> None:
    history_file(settings).write_text("this is not a database, just text " * 100)
    with pytest.raises(HistoryError) as info:
        recent_runs(settings)
    message = str(info.value)
    assert f"The run history {history_file(settings)} could not be read or written" in message
    assert "move it aside (a new one is created on the next run)" in message
    assert "ENVKIT_HISTORY_PATH" in message
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_newer_schema_is_refused(settings: EnvkitSettings, tmp_path: Path) -> None:
    record_run(settings, outcome("mgm-1", 0), tmp_path, None)
    with sqlite3.connect(history_file(settings)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(HistoryError, match="has schema version 99, newer than this envkit"):
        recent_runs(settings)


def finish(tmp_path: Path, history: EnvkitSettings) -> RunOutcome:
    run = RunOutcome("mgm-hook", "mgm", "failed", stamp(0), "")
    run.steps = [StepResult("emit", "tier-a", "passed", duration_s=0.5)]
    artifact_dir = tmp_path / "artifacts" / "mgm-hook"
    artifact_dir.mkdir(parents=True)
    scenario = Scenario(steps=[])
    pipeline.finish_outcome(run, scenario, 0.0, artifact_dir, Redactor([]), history)
    return run


def test_a_finished_tier_b_run_is_recorded(
    settings: EnvkitSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "git_commit", lambda root: "0123456789abcdef")
    finish(tmp_path, settings)
    [record] = recent_runs(settings)
    assert (record.run_id, record.verdict, record.git_commit) == (
        "mgm-hook",
        "passed",
        "0123456789abcdef",
    )
    assert record.timings["tier_a"] == 0.5
    assert record.artifact_dir.endswith("artifacts/mgm-hook")


def test_a_history_that_cannot_be_written_does_not_fail_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "git_commit", lambda root: None)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the history's directory should be")
    settings = load_settings(
        env_file=None, environ={"ENVKIT_HISTORY_PATH": str(blocked / "h.sqlite")}
    )
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING", format="{message}")
    try:
        run = finish(tmp_path, settings)
    finally:
        logger.remove(sink)
    assert run.verdict == "passed"
    assert (tmp_path / "artifacts" / "mgm-hook" / "summary.json").is_file()
    assert len(warnings) == 1
    assert warnings[0].startswith("This run was not added to the history: The run history")


V1_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE, stack TEXT NOT NULL,
    started_at TEXT NOT NULL, started_epoch REAL NOT NULL, ended_at TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('passed', 'failed')), failure_class TEXT,
    total_s REAL NOT NULL, timings TEXT NOT NULL, services_ready_s TEXT NOT NULL,
    git_commit TEXT, artifact_dir TEXT NOT NULL
);
CREATE INDEX runs_by_start ON runs (started_epoch);
INSERT INTO runs (run_id, stack, started_at, started_epoch, ended_at, verdict, failure_class,
    total_s, timings, services_ready_s, git_commit, artifact_dir)
VALUES ('old-1', 'mgm', '2026-11-20T10:00:00.000Z', 1795176000.0, '2026-11-20T10:01:00.000Z',
    'failed', 'jwt-rejected', 60.0, '{"total": 60.0}', '{}', 'abc', 'artifacts/old-1');
PRAGMA user_version = 1;
"""


def test_a_version_1_history_is_migrated_and_keeps_its_runs(settings: EnvkitSettings) -> None:
    path = history_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(V1_SCHEMA)
    [old] = recent_runs(settings)
    assert (old.run_id, old.failure_class, old.git_commit) == ("old-1", "jwt-rejected", "abc")
    assert (old.git_dirty, old.batch_id) == (None, None)  # not known for older rows
    record_run(settings, outcome("new-1", 10_000), path.parent / "new-1", "def")
    assert [r.run_id for r in recent_runs(settings)] == ["new-1", "old-1"]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


def test_the_manifest_says_whether_the_work_tree_was_dirty(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    for run_id, manifest in [("clean", {"git_dirty": False}), ("dirty", {"git_dirty": True})]:
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "manifest.json").write_text(json.dumps(manifest))
        record_run(settings, outcome(run_id, 1), tmp_path / run_id, "abc")
    record_run(settings, outcome("no-manifest", 2), tmp_path / "none", "abc")
    dirty = {r.run_id: r.git_dirty for r in recent_runs(settings)}
    assert dirty == {"clean": False, "dirty": True, "no-manifest": None}


def test_the_run_key_tells_a_run_broken_on_purpose_from_a_plain_one(
    settings: EnvkitSettings, tmp_path: Path
) -> None:
    plain = {
        "git_dirty": False,
        "stack": {"file": "stack.toml", "sha256": "aa"},
        "images": {"api": {"ref": "envkit/services:1234", "id": "sha256:1"}},
        "options": {"only": None, "overrides": {}},
        "settings": {"ENVKIT_ARTIFACT_ROOT": "/tmp/one", "ENVKIT_TIMEOUTS__X": "5"},
    }
    manifests = {
        "plain": plain,
        # another machine path and another image id (a rebuild of the same inputs): same run
        "elsewhere": {**plain, "settings": {**plain["settings"], "ENVKIT_ARTIFACT_ROOT": "/b"},
                      "images": {"api": {"ref": "envkit/services:1234", "id": "sha256:2"}}},
        "broken": {**plain, "options": {"only": None, "overrides": {"api": {"KEY": "wrong"}}}},
        "slower": {**plain, "settings": {**plain["settings"], "ENVKIT_TIMEOUTS__X": "9"}},
    }  # fmt: skip
    for n, (run_id, manifest) in enumerate(manifests.items()):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "manifest.json").write_text(json.dumps(manifest))
        record_run(settings, outcome(run_id, n), tmp_path / run_id, "abc")
    keys = {r.run_id: r.run_key for r in recent_runs(settings)}
    assert keys["plain"] == keys["elsewhere"]
    assert len({keys["plain"], keys["broken"], keys["slower"]}) == 3
