"""The health report: rolling statistics over the run history, as markdown and JSON.

Over the last N days: how many runs, how many passed, the median and p95 wall
time of all runs, failure classes by count with their verdict (flaky with its
rate, or broken: see `envkit.evidence.flaky`), which service is slowest to
become ready (by its median seconds to ready), and a daily trend of pass rate
and p50/p95 wall time (Mermaid charts in the markdown, and health-report.png).
`invoke health-report` prints it; the weekly workflow publishes it as the job
summary.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from envkit.errors import FileAccessError, OptionError
from envkit.evidence.charts import (
    PNG_NAME,
    DailyPoint,
    daily_points,
    mermaid_charts,
    percentile_95,
    render_png,
)
from envkit.evidence.flaky import class_verdicts
from envkit.evidence.history import RunRecord, runs_between
from envkit.evidence.markdown import fenced, markdown_table
from envkit.spec.settings import EnvkitSettings

REPORT_MD = "health-report.md"
REPORT_JSON = "health-report.json"
UNCLASSIFIED = "unclassified"  # a failed run that recorded no failure class


@dataclass
class HealthReport:
    """Statistics of the runs that started in [start, end]."""

    window_days: int
    start: datetime
    end: datetime
    runs: int
    passed: int
    failed: int
    pass_rate: float | None  # 0..1; None when there were no runs
    median_s: float | None
    p95_s: float | None
    failure_classes: dict[str, int] = field(default_factory=dict)  # by count, descending
    slowest_service: str | None = None
    slowest_service_median_s: float | None = None
    per_service_median_s: dict[str, float] = field(default_factory=dict)  # slowest first
    class_verdicts: dict[str, str] = field(default_factory=dict)  # class -> "flaky: …"/"broken: …"
    daily: list[DailyPoint] = field(default_factory=list)  # days with runs, oldest first

    def markdown(self) -> str:
        """A `## E2E health (last N days)` section: summary, failure classes, readiness."""
        span = f"{_stamp(self.start)} → {_stamp(self.end)}"
        lines = [f"## E2E health (last {self.window_days} days)", "", span, ""]
        if not self.runs:
            return "\n".join([*lines, "No runs in the window.", ""])
        slowest = "—"
        if self.slowest_service is not None:
            slowest = f"{self.slowest_service} (median {_secs(self.slowest_service_median_s)})"
        lines += _table(
            ("measure", "value"),
            [
                ("runs", str(self.runs)),
                ("passed", str(self.passed)),
                ("failed", str(self.failed)),
                ("pass rate", f"{(self.pass_rate or 0.0) * 100:.1f}%"),
                ("median wall time", _secs(self.median_s)),
                ("p95 wall time", _secs(self.p95_s)),
                ("slowest service to become ready", slowest),
            ],
        )
        lines += ["", "### Failure classes", ""]
        if self.failure_classes:
            rows = [
                (name, str(count), self.class_verdicts.get(name, "—"))
                for name, count in self.failure_classes.items()
            ]
            lines += _table(("failure class", "runs", "verdict"), rows)
            lines += [
                "",
                "Flaky: the class failed and passed on the same code (commit or `--repeat` "
                "series); the rate counts those runs. Broken: it never passed on the same code.",
            ]
        else:
            lines.append("No failed runs in the window.")
        if self.per_service_median_s:
            ready = [(name, _secs(s)) for name, s in self.per_service_median_s.items()]
            lines += ["", "### Readiness", ""]
            lines += _table(("service", "median seconds to ready"), ready)
        charts = mermaid_charts(self.daily)
        if charts:
            lines += ["", "### Daily trend", ""]
            for chart in charts:
                lines += [fenced(chart, "mermaid"), ""]
            lines.append(f"The same charts as an image: `{PNG_NAME}` (written with `--out`).")
        return "\n".join([*lines, ""])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (health-report.json's content)."""
        return {
            "window_days": self.window_days,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "runs": self.runs,
            "passed": self.passed,
            "failed": self.failed,
            "pass_rate": self.pass_rate,
            "median_s": self.median_s,
            "p95_s": self.p95_s,
            "failure_classes": dict(self.failure_classes),
            "slowest_service": self.slowest_service,
            "slowest_service_median_s": self.slowest_service_median_s,
            "per_service_median_s": dict(self.per_service_median_s),
            "class_verdicts": dict(self.class_verdicts),
            "daily": [
                {
                    "day": p.day.isoformat(),
                    "runs": p.runs,
                    "passed": p.passed,
                    "pass_rate": p.pass_rate,
                    "p50_s": p.p50_s,
                    "p95_s": p.p95_s,
                }
                for p in self.daily
            ],
        }


def build_health_report(
    settings: EnvkitSettings, days: int, now: datetime | None = None
) -> HealthReport:
    """Statistics over the runs that started in the last `days` days (up to `now`)."""
    if days < 1:
        raise OptionError(
            f"--days {days} is not a window; give a whole number of days of at least 1 "
            "(e.g. --days 30).",
            option="--days",
        )
    moment = now or datetime.now(UTC)
    end = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    start = end - timedelta(days=days)
    return summarise(runs_between(settings, start, end), days, start, end)


def summarise(runs: Sequence[RunRecord], days: int, start: datetime, end: datetime) -> HealthReport:
    """The report's numbers for the given runs (pure: no history access)."""
    passed = sum(1 for r in runs if r.verdict == "passed")
    totals = [r.total_s for r in runs]
    classes = Counter(r.failure_class or UNCLASSIFIED for r in runs if r.verdict != "passed")
    ready: dict[str, list[float]] = {}
    for run in runs:
        for service, seconds in run.services_ready_s.items():
            ready.setdefault(service, []).append(seconds)
    medians = {name: statistics.median(values) for name, values in ready.items()}
    per_service = dict(sorted(medians.items(), key=lambda kv: (-kv[1], kv[0])))
    slowest = next(iter(per_service), None)
    return HealthReport(
        window_days=days,
        start=start,
        end=end,
        runs=len(runs),
        passed=passed,
        failed=len(runs) - passed,
        pass_rate=passed / len(runs) if runs else None,
        median_s=statistics.median(totals) if totals else None,
        p95_s=percentile_95(totals),
        failure_classes=dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0]))),
        slowest_service=slowest,
        slowest_service_median_s=per_service[slowest] if slowest else None,
        per_service_median_s=per_service,
        class_verdicts={name: v.describe() for name, v in class_verdicts(runs).items()},
        daily=daily_points(runs),
    )


def write_health_report(report: HealthReport, out_dir: Path) -> list[Path]:
    """Write health-report.md, .json and .png (the daily chart) into `out_dir`; return paths."""
    md, js, png = out_dir / REPORT_MD, out_dir / REPORT_JSON, out_dir / PNG_NAME
    span = f"{_stamp(report.start)} to {_stamp(report.end)}"
    title = f"E2E health, last {report.window_days} days ({span})"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        md.write_text(report.markdown())
        js.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        png.write_bytes(render_png(report.daily, title))
    except OSError as exc:
        raise FileAccessError(
            f"The health report could not be written to {out_dir} ({exc}); "
            "give --out a writable directory.",
            path=out_dir,
        ) from exc
    return [md, js, png]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return markdown_table(header, rows, ["---"] * len(header)).splitlines()


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
