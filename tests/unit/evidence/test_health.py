"""The health report: numbers on a hand-made history, its markdown and JSON, its window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from envkit.errors import FileAccessError, OptionError
from envkit.evidence.health import (
    HealthReport,
    build_health_report,
    percentile_95,
    write_health_report,
)
from envkit.evidence.history import record_run
from envkit.evidence.outcome import Failure, RunOutcome, ServiceRow
from envkit.spec.settings import EnvkitSettings, load_settings

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# (run id, days before NOW, failure class or None for a pass, total seconds, readiness)
RUNS: list[tuple[str, float, str | None, float, dict[str, float]]] = [
    ("r1", 1, None, 100.0, {"postgres": 4.0, "backend": 10.0}),
    ("r2", 2, None, 120.0, {"postgres": 5.0, "backend": 12.0}),
    ("r3", 3, "helix-auth-mismatch", 60.0, {"postgres": 3.0, "backend": 20.0}),
    ("r4", 4, "helix-auth-mismatch", 80.0, {"postgres": 6.0}),
    ("r5", 5, "service-never-ready", 200.0, {}),
    ("r6", 29.9, "", 90.0, {}),  # failed, but with no failure class recorded
    ("old", 31, "service-never-ready", 999.0, {"postgres": 99.0}),  # outside the window
    ("future", -1, "service-never-ready", 999.0, {}),  # after `now`
]


@pytest.fixture
def settings(tmp_path: Path) -> EnvkitSettings:
    return load_settings(env_file=None, environ={"ENVKIT_HISTORY_PATH": str(tmp_path / "h.sqlite")})


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(
    settings: EnvkitSettings,
    run_id: str,
    days_ago: float,
    failure_class: str | None,
    total: float,
    ready: dict[str, float],
) -> None:
    started = NOW - timedelta(days=days_ago)
    failed = failure_class is not None
    outcome = RunOutcome(
        run_id,
        "mgm",
        "failed" if failed else "passed",
        _iso(started),
        _iso(started + timedelta(seconds=total)),
        timings={"total": total},
        services={name: ServiceRow(seconds_to_ready=s) for name, s in ready.items()},
        failure=Failure(failure_class, "broke") if failure_class else None,
    )
    record_run(settings, outcome, Path("/tmp") / run_id, None)


@pytest.fixture
def report(settings: EnvkitSettings) -> HealthReport:
    for row in RUNS:
        record(settings, *row)
    return build_health_report(settings, 30, now=NOW)


def test_counts_and_pass_rate_cover_only_the_window(report: HealthReport) -> None:
    assert (report.runs, report.passed, report.failed) == (6, 2, 4)
    assert report.pass_rate == pytest.approx(1 / 3)
    assert report.start == NOW - timedelta(days=30)
    assert report.end == NOW


def test_median_and_p95_wall_time(report: HealthReport) -> None:
    # totals sorted: 60 80 90 100 120 200; p95 (inclusive) = 120 + 0.75 * (200 - 120)
    assert report.median_s == pytest.approx(95.0)
    assert report.p95_s == pytest.approx(180.0)


def test_failure_classes_by_count_then_name(report: HealthReport) -> None:
    assert list(report.failure_classes.items()) == [
        ("helix-auth-mismatch", 2),
        ("service-never-ready", 1),
        ("unclassified", 1),
    ]


def test_slowest_service_by_median_seconds_to_ready(report: HealthReport) -> None:
    assert report.slowest_service == "backend"
    assert report.slowest_service_median_s == pytest.approx(12.0)
    assert report.per_service_median_s == {"backend": 12.0, "postgres": 4.5}


def test_markdown_has_the_summary_and_failure_class_tables(report: HealthReport) -> None:
    text = report.markdown()
    assert text.startswith(
        "## E2E health (last 30 days)\n\n2026-10-23 12:00 UTC → 2026-11-22 12:00 UTC\n"
    )
    for line in [
        "| measure | value |",
        "| runs | 6 |",
        "| passed | 2 |",
        "| failed | 4 |",
        "| pass rate | 33.3% |",
        "| median wall time | 95.0 s |",
        "| p95 wall time | 180.0 s |",
        "| slowest service to become ready | backend (median 12.0 s) |",
        "### Failure classes",
        "| failure class | runs | verdict |",
        "### Readiness",
        "| service | median seconds to ready |",
        "| backend | 12.0 s |",
    ]:
        assert line in text.splitlines()
    classes = text.split("### Failure classes")[1].split("###")[0]
    assert classes.index("helix-auth-mismatch | 2") < classes.index("service-never-ready | 1")


def test_an_empty_window_says_so_plainly(settings: EnvkitSettings) -> None:
    report = build_health_report(settings, 7, now=NOW)
    assert (report.runs, report.pass_rate, report.median_s, report.p95_s) == (0, None, None, None)
    assert report.slowest_service is None
    assert report.markdown() == (
        "## E2E health (last 7 days)\n\n2026-11-15 12:00 UTC → 2026-11-22 12:00 UTC\n\n"
        "No runs in the window.\n"
    )


def test_a_window_without_failures_says_so(settings: EnvkitSettings) -> None:
    record(settings, "green", 1, None, 42.0, {})
    report = build_health_report(settings, 30, now=NOW)
    assert report.median_s == report.p95_s == 42.0  # p95 of a single run is that run
    assert "No failed runs in the window." in report.markdown()
    assert "| slowest service to become ready | — |" in report.markdown()


def test_percentile_of_one_and_of_none() -> None:
    assert percentile_95([]) is None
    assert percentile_95([7.5]) == 7.5
    assert percentile_95([1.0, 2.0]) == pytest.approx(1.95)


@pytest.mark.parametrize("days", [0, -3])
def test_a_window_under_one_day_is_refused_with_the_fix(
    settings: EnvkitSettings, days: int
) -> None:
    with pytest.raises(OptionError) as info:
        build_health_report(settings, days)
    assert str(info.value) == (
        f"--days {days} is not a window; give a whole number of days of at least 1 "
        "(e.g. --days 30)."
    )


def test_written_files_hold_the_markdown_and_the_json(report: HealthReport, tmp_path: Path) -> None:
    paths = write_health_report(report, tmp_path / "out")
    assert [p.name for p in paths] == [
        "health-report.md",
        "health-report.json",
        "health-report.png",
    ]
    assert paths[2].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert paths[0].read_text() == report.markdown()
    data = json.loads(paths[1].read_text())
    assert data == report.to_dict()
    assert data["start"] == "2026-10-23T12:00:00Z"
    assert data["pass_rate"] == pytest.approx(1 / 3)
    assert data["failure_classes"] == {
        "helix-auth-mismatch": 2,
        "service-never-ready": 1,
        "unclassified": 1,
    }


def test_an_unwritable_output_directory_is_named(report: HealthReport, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(FileAccessError, match=r"could not be written to .*; give --out a writable"):
        write_health_report(report, blocked)
