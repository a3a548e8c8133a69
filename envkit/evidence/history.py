"""The run history: one row per `tier-b` run in a local SQLite file (`history_path`).

`record_run` appends (the tier-b runner calls it once a run's artifacts are
written); `recent_runs` and `runs_between` read it back for `invoke history`,
the health report and the consecutive-failure alert. The file and its tables
are created on first write; reading a history that does not exist yet gives no
runs. Timings and readiness are stored as JSON text.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from envkit.errors import HistoryError
from envkit.evidence.outcome import RunOutcome
from envkit.spec.settings import EnvkitSettings

SCHEMA_VERSION = 1
# A run stopped by Ctrl-C or SIGTERM did not complete: it says nothing about the system.
INCOMPLETE_CLASSES = ("interrupted",)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    stack TEXT NOT NULL,
    started_at TEXT NOT NULL,
    started_epoch REAL NOT NULL,
    ended_at TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('passed', 'failed')),
    failure_class TEXT,
    total_s REAL NOT NULL,
    timings TEXT NOT NULL,
    services_ready_s TEXT NOT NULL,
    git_commit TEXT,
    artifact_dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_epoch);
"""
_NEWEST = "SELECT * FROM runs ORDER BY started_epoch DESC, id DESC LIMIT ?"
_NEWEST_COMPLETED = (
    "SELECT * FROM runs WHERE failure_class IS NULL "
    "OR failure_class NOT IN (SELECT value FROM json_each(?)) "
    "ORDER BY started_epoch DESC, id DESC LIMIT ?"
)
_BETWEEN = (
    "SELECT * FROM runs WHERE started_epoch BETWEEN ? AND ? ORDER BY started_epoch DESC, id DESC"
)


@dataclass(frozen=True)
class RunRecord:
    """One recorded run: identity, verdict, failure class, timings, commit, artifacts."""

    run_id: str
    stack: str
    started_at: str  # ISO 8601, UTC
    ended_at: str
    verdict: str  # "passed" or "failed"
    failure_class: str | None
    total_s: float
    timings: dict[str, float]
    services_ready_s: dict[str, float]  # service -> seconds_to_ready
    git_commit: str | None
    artifact_dir: str


def history_file(settings: EnvkitSettings) -> Path:
    """Where the history lives: `history_path`, relative to the project root unless absolute."""
    return settings.workspace.history


@contextmanager
def open_history(settings: EnvkitSettings) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode with the schema in place; SQLite errors become ours."""
    path = history_file(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as conn:
            conn.row_factory = sqlite3.Row
            _ensure_schema(conn, path)
            yield conn
    except (sqlite3.Error, OSError) as exc:
        raise HistoryError(
            f"The run history {path} could not be read or written ({exc}). If the file is "
            "damaged, move it aside (a new one is created on the next run), or point "
            "ENVKIT_HISTORY_PATH at a writable location.",
            path=path,
        ) from exc


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Hold the write lock from the first read, so concurrent writers see each other's rows."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"The run history {path} has schema version {version}, newer than this envkit "
            f"understands ({SCHEMA_VERSION}); upgrade envkit or point ENVKIT_HISTORY_PATH "
            "elsewhere.",
            path=path,
        )
    if version < SCHEMA_VERSION:
        conn.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")


def record_run(
    settings: EnvkitSettings, outcome: RunOutcome, artifact_dir: Path, git_commit: str | None
) -> None:
    """Append a finished run to the history (a second record of the same run id replaces it)."""
    ready = outcome.seconds_to_ready()
    row = (
        outcome.run_id, outcome.stack, outcome.started_at, _epoch(outcome.started_at),
        outcome.ended_at, outcome.verdict,
        outcome.failure.failure_class if outcome.failure else None,
        float(outcome.timings.get("total", 0.0)),
        json.dumps({k: float(v) for k, v in outcome.timings.items()}, sort_keys=True),
        json.dumps(ready, sort_keys=True), git_commit, settings.workspace.display(artifact_dir),
    )  # fmt: skip
    with open_history(settings) as conn, transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO runs (run_id, stack, started_at, started_epoch, ended_at, "
            "verdict, failure_class, total_s, timings, services_ready_s, git_commit, "
            "artifact_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )


def recent_runs(settings: EnvkitSettings, limit: int = 20) -> list[RunRecord]:
    """The latest `limit` runs, newest first (none when nothing was recorded yet)."""
    if not history_file(settings).is_file():
        return []
    with open_history(settings) as conn:
        return fetch_runs(conn, limit)


def runs_between(settings: EnvkitSettings, start: datetime, end: datetime) -> list[RunRecord]:
    """Runs that started in [start, end], newest first (naive datetimes are taken as UTC)."""
    if not history_file(settings).is_file():
        return []
    with open_history(settings) as conn:
        span = (_utc(start).timestamp(), _utc(end).timestamp())
        rows = conn.execute(_BETWEEN, span).fetchall()
    return [_record(row) for row in rows]


def fetch_runs(
    conn: sqlite3.Connection, limit: int, *, completed_only: bool = False
) -> list[RunRecord]:
    """The latest `limit` runs on an open connection; `completed_only` skips interrupted runs."""
    if completed_only:
        skipped = json.dumps(INCOMPLETE_CLASSES)
        rows = conn.execute(_NEWEST_COMPLETED, (skipped, limit)).fetchall()
    else:
        rows = conn.execute(_NEWEST, (limit,)).fetchall()
    return [_record(row) for row in rows]


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        stack=row["stack"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        verdict=row["verdict"],
        failure_class=row["failure_class"],
        total_s=float(row["total_s"]),
        timings=json.loads(row["timings"]),
        services_ready_s=json.loads(row["services_ready_s"]),
        git_commit=row["git_commit"],
        artifact_dir=row["artifact_dir"],
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _epoch(stamp: str) -> float:
    try:
        return _utc(datetime.fromisoformat(stamp)).timestamp()
    except ValueError:
        return time.time()  # an unreadable start time files the run as "now", not nowhere
