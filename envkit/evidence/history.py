"""The run history: one row per `tier-b` run in a local SQLite file (`history_path`).

`record_run` appends (the tier-b runner calls it once a run's artifacts are
written); `recent_runs` and `runs_between` read it back for `invoke history`,
the health report and the consecutive-failure alert. The file and its tables
are created on first write; reading a history that does not exist yet gives no
runs. Timings and readiness are stored as JSON text.

Schema versions: 1 is the first; 2 adds, from the run's manifest, `git_dirty`
(whether the work tree had uncommitted changes) and `run_key` (a hash of what
else decides what ran: the stack file's content, the image references, the
options such as `--override`, and the non-secret settings), and `batch_id` (the
`--repeat` series a run belonged to); all three are empty for older rows. 3 adds `engine`,
the endpoint of the engine that ran the run (empty for older rows). An
older file is migrated in place on first open, so it stays readable and keeps
its runs.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from envkit.errors import HistoryError
from envkit.evidence.manifest import MANIFEST
from envkit.evidence.outcome import RunOutcome
from envkit.spec.settings import EnvkitSettings

SCHEMA_VERSION = 3
# A run stopped by Ctrl-C or SIGTERM did not complete: it says nothing about the system.
INCOMPLETE_CLASSES = ("interrupted",)
_MACHINE_PATHS = ("ENVKIT_ARTIFACT_ROOT", "ENVKIT_CACHE_DIR", "ENVKIT_HISTORY_PATH")
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
# Version -> the statements that bring a file of the version before it up to it.
_MIGRATIONS = {
    2: (
        "ALTER TABLE runs ADD COLUMN git_dirty INTEGER",
        "ALTER TABLE runs ADD COLUMN run_key TEXT",
        "ALTER TABLE runs ADD COLUMN batch_id TEXT",
    ),
    3: ("ALTER TABLE runs ADD COLUMN engine TEXT",),
}
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
    git_dirty: bool | None = None  # None: not known (recorded before schema 2, or no manifest)
    batch_id: str | None = None  # the `--repeat` series, when the run was one of several
    run_key: str | None = None  # hash of the stack, images, options and settings (manifest)
    engine: str | None = None  # the engine's endpoint (None: recorded before schema 3)


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
        _migrate(conn)


def _migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the tables under the write lock (another process may be doing it too)."""
    with transaction(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == 0:  # a new file: version 1's tables, then every migration
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            version = 1
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


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
        *_manifest_facts(artifact_dir), outcome.engine or None,
    )  # fmt: skip
    with open_history(settings) as conn, transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO runs (run_id, stack, started_at, started_epoch, ended_at, "
            "verdict, failure_class, total_s, timings, services_ready_s, git_commit, "
            "artifact_dir, git_dirty, run_key, engine) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )


def mark_batch(settings: EnvkitSettings, run_ids: Sequence[str]) -> str | None:
    """Record that `run_ids` ran as one `--repeat` series; return the batch id (None if < 2)."""
    if len(run_ids) < 2:
        return None
    batch_id = f"batch-{run_ids[0]}"
    with open_history(settings) as conn, transaction(conn):
        conn.executemany(
            "UPDATE runs SET batch_id = ? WHERE run_id = ?", [(batch_id, r) for r in run_ids]
        )
    return batch_id


def _manifest_facts(artifact_dir: Path) -> tuple[int | None, str | None]:
    """From the run's manifest: was the work tree dirty, and the run key (None: unknown)."""
    try:
        data = json.loads((artifact_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    dirty = data.get("git_dirty")
    settings = _mapping(data.get("settings"))
    images = _mapping(data.get("images"))
    what_ran = {
        "stack": _mapping(data.get("stack")).get("sha256"),
        "images": {name: _mapping(i).get("ref") for name, i in sorted(images.items())},
        "image_override": data.get("image_override"),
        "options": data.get("options"),
        # Where files go on this machine does not change what ran.
        "settings": {k: v for k, v in sorted(settings.items()) if k not in _MACHINE_PATHS},
    }
    digest = hashlib.sha256(json.dumps(what_ran, sort_keys=True, default=str).encode())
    return (int(dirty) if isinstance(dirty, bool) else None), digest.hexdigest()[:16]


def _mapping(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


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
        git_dirty=None if row["git_dirty"] is None else bool(row["git_dirty"]),
        batch_id=row["batch_id"],
        run_key=row["run_key"],
        engine=row["engine"],
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _epoch(stamp: str) -> float:
    try:
        return _utc(datetime.fromisoformat(stamp)).timestamp()
    except ValueError:
        return time.time()  # an unreadable start time files the run as "now", not nowhere
