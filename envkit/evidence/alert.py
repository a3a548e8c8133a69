"""The consecutive-failure alert: one open alert while the latest completed runs keep failing.

Rules, over completed runs newest first (an interrupted run is not completed):
the latest two failed and no alert is open → open one; an alert is open and the
latest run failed → keep it open (never a second one); an alert is open and the
latest run passed → resolve it; otherwise nothing. Two failures whose classes
are both already known to be flaky (see `envkit.evidence.flaky`: they failed and
passed on the same code) open no alert, and the decision says so. Alerts live in an `alerts`
table next to the runs, at most one of them open (a partial unique index says
so); evaluating twice without new runs changes nothing. `invoke alert --json`
hands the decision to the workflow that opens and closes the GitHub issue.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from envkit.evidence.flaky import ClassVerdict, flaky_classes
from envkit.evidence.history import RunRecord, fetch_runs, history_file, open_history, transaction
from envkit.program import command
from envkit.spec.settings import EnvkitSettings

Action = Literal["open", "keep-open", "resolve", "none"]
MAINTENANCE = "docs/e2e/MAINTENANCE.md"
UNCLASSIFIED = "unclassified"
FLAKY_DEPTH = 500  # how many recent completed runs decide which classes are flaky
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    opened_at TEXT NOT NULL,
    resolved_at TEXT,
    resolved_by TEXT,
    last_run_id TEXT NOT NULL,
    runs TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts (state) WHERE state = 'open';
"""


@dataclass
class AlertDecision:
    """What `evaluate_alert` did, the alert it concerns, and why."""

    action: Action
    alert: dict[str, Any] | None
    reason: str
    comment: str | None = None  # markdown for the issue: the new failure, or the green run

    def to_json(self) -> str:
        """The decision for the CI workflow: action, alert id, title, body, comment, reason."""
        alert = self.alert or {}
        return json.dumps(
            {
                "action": self.action,
                "alert_id": alert.get("id"),
                "title": alert.get("title"),
                "body": alert.get("body"),
                "comment": self.comment,
                "reason": self.reason,
            },
            indent=2,
        )

    def describe(self) -> str:
        """One or two sentences for people."""
        alert_id = (self.alert or {}).get("id", "")
        if self.action == "open":
            return f"Opened alert {alert_id}: {self.reason} Respond as {MAINTENANCE} says."
        if self.action == "keep-open":
            return f"Alert {alert_id} stays open: {self.reason}"
        if self.action == "resolve":
            return f"Resolved alert {alert_id}: {self.reason}"
        return f"No alert change: {self.reason}"


def evaluate_alert(settings: EnvkitSettings, now: datetime | None = None) -> AlertDecision:
    """Open, keep, resolve or leave the alert according to the latest completed runs."""
    if not history_file(settings).is_file():
        where = history_file(settings)
        return AlertDecision("none", None, f"No runs are recorded yet (history: {where}).")
    stamp = _iso(now or datetime.now(UTC))
    with open_history(settings) as conn:
        conn.executescript(_SCHEMA)
        with transaction(conn):
            runs = fetch_runs(conn, FLAKY_DEPTH, completed_only=True)
            current = _open_alert(conn)
            if current is not None:
                return _with_open(conn, current, runs[:2], stamp)
            return _without_open(conn, runs[:2], stamp, flaky_classes(runs))


def _with_open(
    conn: sqlite3.Connection, current: dict[str, Any], runs: list[RunRecord], stamp: str
) -> AlertDecision:
    if not runs or runs[0].verdict != "passed":
        latest = runs[0] if runs else None
        if latest is None or latest.run_id == current["last_run_id"]:
            return AlertDecision("keep-open", current, "no run has passed since it was opened.")
        conn.execute(
            "UPDATE alerts SET last_run_id = ? WHERE id = ?", (latest.run_id, current["id"])
        )
        current = {**current, "last_run_id": latest.run_id}
        reason = (
            f"the latest run {latest.run_id} failed too ({_class(latest)}); "
            "no second alert is opened."
        )
        return AlertDecision("keep-open", current, reason, _still_failing(latest))
    green = runs[0]
    conn.execute(
        "UPDATE alerts SET state = 'resolved', resolved_at = ?, resolved_by = ? WHERE id = ?",
        (stamp, green.run_id, current["id"]),
    )
    resolved = {**current, "state": "resolved", "resolved_at": stamp, "resolved_by": green.run_id}
    comment = (
        f"Resolved: run `{green.run_id}` (started {green.started_at}) passed; "
        f"artifacts in `{green.artifact_dir}`."
    )
    return AlertDecision("resolve", resolved, f"run {green.run_id} passed.", comment)


def _without_open(
    conn: sqlite3.Connection, runs: list[RunRecord], stamp: str, flaky: dict[str, ClassVerdict]
) -> AlertDecision:
    if not runs:
        return AlertDecision("none", None, "No completed runs are recorded yet.")
    latest = runs[0]
    if latest.verdict == "passed":
        return AlertDecision("none", None, f"The latest run {latest.run_id} passed.")
    if len(runs) < 2:
        reason = f"Only one completed run ({latest.run_id}) is recorded, and it failed."
        return AlertDecision("none", None, reason)
    previous = runs[1]
    if previous.verdict == "passed":
        reason = (
            f"The latest run {latest.run_id} failed, but the one before it "
            f"({previous.run_id}) passed; an alert needs two consecutive failures."
        )
        return AlertDecision("none", None, reason)
    if _class(latest) in flaky and _class(previous) in flaky:
        known = "; ".join(
            f"`{c}` is {flaky[c].describe()}" for c in dict.fromkeys(map(_class, runs))
        )
        reason = (
            f"The latest two runs {latest.run_id} and {previous.run_id} failed, but with "
            f"failure classes already known to be flaky ({known}); no alert is opened "
            "(`invoke history --flaky` lists them, the health report tracks their rate)."
        )
        return AlertDecision("none", None, reason)
    alert_id = f"alert-{latest.run_id}"
    seen = conn.execute("SELECT 1 FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    if seen is not None:  # this pair already had its alert, and it was resolved
        return AlertDecision("none", None, f"Alert {alert_id} for these runs was resolved.")
    alert = _new_alert(alert_id, runs, stamp)
    conn.execute(
        "INSERT INTO alerts (id, state, opened_at, last_run_id, runs, title, body) "
        "VALUES (?, 'open', ?, ?, ?, ?, ?)",
        (alert_id, stamp, latest.run_id, json.dumps(alert["runs"]), alert["title"], alert["body"]),
    )
    reason = (
        f"the latest two runs {latest.run_id} ({_class(latest)}) and "
        f"{previous.run_id} ({_class(previous)}) both failed."
    )
    return AlertDecision("open", alert, reason)


def _open_alert(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM alerts WHERE state = 'open'").fetchone()
    if row is None:
        return None
    alert = {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row is not a dict)
    alert["runs"] = json.loads(alert["runs"])
    return alert


def _new_alert(alert_id: str, runs: list[RunRecord], stamp: str) -> dict[str, Any]:
    latest, previous = runs[0], runs[1]
    classes = dict.fromkeys([_class(latest), _class(previous)])
    return {
        "id": alert_id,
        "state": "open",
        "opened_at": stamp,
        "resolved_at": None,
        "resolved_by": None,
        "last_run_id": latest.run_id,
        "runs": [
            {
                "run_id": r.run_id,
                "failure_class": r.failure_class,
                "artifact_dir": r.artifact_dir,
                "started_at": r.started_at,
            }
            for r in runs
        ],
        "title": f"E2E: {latest.stack} failed twice in a row ({'; '.join(classes)})",
        "body": alert_body(alert_id, runs),
    }


def alert_body(alert_id: str, runs: list[RunRecord]) -> str:
    """The alert's markdown: both runs, their artifacts and classes, and how to respond."""
    latest, previous = runs[0], runs[1]
    same = _class(latest) == _class(previous)
    pattern = (
        f"Both runs failed with `{_class(latest)}`: most likely a persistent break (a change "
        "in the code, the settings or an image), not flakiness."
        if same
        else "The two runs failed differently: compare both reports before assuming one "
        "cause; a flaky dependency is possible."
    )
    rows = [
        f"| `{r.run_id}` | {r.started_at} | `{_class(r)}` | `{(r.git_commit or '—')[:10]}` "
        f"| `{r.artifact_dir}` |"
        for r in runs
    ]
    return "\n".join(
        [
            f"Two consecutive completed `tier-b` runs of the **{latest.stack}** stack failed "
            "(newest first):",
            "",
            "| run | started (UTC) | failure class | commit | artifacts |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "Each artifact directory holds `report.md` (start there: the failed step, its "
            "evidence and the log to read first), `summary.json`, every service log and "
            "`manifest.json`.",
            "",
            f"### Response (see {MAINTENANCE})",
            "",
            f"1. Read `{latest.artifact_dir}/report.md` and the log it names first.",
            f"2. {pattern}",
            f"3. Reproduce with `{command(f'replay {latest.artifact_dir}')}` (same settings, stack "
            "file and images).",
            "4. Fix it and run `tier-b` again: the first green run resolves this alert. No "
            "second alert opens while this one stays open.",
            "",
            f"Alert id: `{alert_id}`",
            "",
        ]
    )


def _still_failing(run: RunRecord) -> str:
    return (
        f"Still failing: run `{run.run_id}` (started {run.started_at}) failed with "
        f"`{_class(run)}`; artifacts in `{run.artifact_dir}`."
    )


def _class(run: RunRecord) -> str:
    return run.failure_class or UNCLASSIFIED


def _iso(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
