"""The commands that read the run history and the evidence: `history`, `diff`,
`health-report`, `alert`."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from envkit.cli.project import Project, console, guard, table_of
from envkit.spec.settings import EnvkitSettings


@task(
    help={
        "limit": "How many of the most recent runs to list (default 20), or with --flaky to "
        "judge (default 500).",
        "flaky": "Judge each failure class instead: flaky (failed and passed on the same "
        "code) with its rate, or broken.",
    }
)
def history(c: Context, limit: int = 0, flaky: bool = False) -> None:
    """List recent runs from the local history (verdict, class, timings, commit)."""
    from envkit.evidence.history import recent_runs

    settings = Project.of(c).settings()
    if flaky:
        _render_flaky(settings, limit or 500)
        return
    table = table_of("run", "started", "verdict", "failure class", "total s", "commit")
    for run in guard(lambda: recent_runs(settings, limit or 20)):
        table.add_row(
            run.run_id, run.started_at, run.verdict, run.failure_class or "",
            f"{run.total_s:.1f}", (run.git_commit or "")[:10],
        )  # fmt: skip
    console.print(table)


def _render_flaky(settings: EnvkitSettings, limit: int) -> None:
    from envkit.evidence.flaky import class_verdicts
    from envkit.evidence.history import recent_runs

    runs = guard(lambda: recent_runs(settings, limit))
    verdicts = class_verdicts(runs)
    table = table_of("failure class", "verdict", "failed runs", "rate", "where", "last seen")
    table.title = f"failure classes of the last {len(runs)} runs"
    for v in verdicts.values():
        rate = "" if v.rate is None else f"{v.rate * 100:.0f}% ({v.flaky_failures}/{v.flaky_runs})"
        table.add_row(
            v.failure_class, v.verdict, str(v.failures), rate, ", ".join(v.groups), v.last_seen
        )
    console.print(table if verdicts else "No failed runs in the history.")


@task(
    help={
        "run": "The run to explain: its artifact directory or run id (e.g. <stack>-20261201T…).",
        "baseline": "The run to compare with: a run id, an artifact directory, or "
        "`latest-green` (default: the newest passed run of the same stack).",
    }
)
def diff(c: Context, run: str, baseline: str = "latest-green") -> None:
    """Compare a run with a good one: steps, failure class, slower times, new log errors."""
    from envkit.evidence.diff import compare_runs

    settings = Project.of(c).settings()
    result, written = guard(lambda: compare_runs(settings, run, baseline))
    for line in result.terminal_lines():
        print(line)  # plain: log lines must not be wrapped or styled
    for path in written:
        console.print(f"wrote {path}")


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
