"""The commands that read the run history: `history`, `health-report`, `alert`."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task
from rich.table import Table

from envkit.cli.project import Project, console, guard


@task(help={"limit": "How many of the most recent runs to list."})
def history(c: Context, limit: int = 20) -> None:
    """List recent tier-b runs from the local history (verdict, class, timings, commit)."""
    from envkit.evidence.history import recent_runs

    settings = Project.of(c).settings()
    table = Table("run", "started", "verdict", "failure class", "total s", "commit")
    for run in guard(lambda: recent_runs(settings, limit)):
        table.add_row(
            run.run_id, run.started_at, run.verdict, run.failure_class or "",
            f"{run.total_s:.1f}", (run.git_commit or "")[:10],
        )  # fmt: skip
    console.print(table)


@task(
    help={
        "days": "Window of the report, in days back from now.",
        "out": "Directory to write health-report.md and health-report.json into.",
    }
)
def health_report(c: Context, days: int = 30, out: str = "") -> None:
    """Rolling statistics over the history: runs, pass rate, p50/p95 time, classes, slowest."""
    from envkit.evidence.health import build_health_report, write_health_report

    project = Project.of(c)
    settings = project.settings()
    report = guard(lambda: build_health_report(settings, days))
    print(report.markdown())  # markdown as is: no wrapping, no markup interpretation
    if out:
        for path in guard(lambda: write_health_report(report, project.from_root(out))):
            console.print(f"wrote {path}")


@task(help={"json": "Print the decision as JSON (for the alert workflow)."})
def alert(c: Context, json: bool = False) -> None:
    """Open one alert when the latest two completed runs failed; resolve it on a green run."""
    from envkit.evidence.alert import evaluate_alert

    settings = Project.of(c).settings()
    decision = guard(lambda: evaluate_alert(settings))
    # Plain print: the JSON is read by a workflow and must not be wrapped or styled.
    print(decision.to_json() if json else decision.describe())
