"""The health report's trend: daily points, the Mermaid charts and the PNG."""

from __future__ import annotations

import io
from datetime import date

import pytest
from PIL import Image

from envkit.evidence.charts import DailyPoint, daily_points, mermaid_charts, render_png
from envkit.evidence.history import RunRecord


def run(day: int, hour: int, failure_class: str | None, total: float) -> RunRecord:
    return RunRecord(
        run_id=f"r{day}-{hour}",
        stack="s",
        started_at=f"2026-11-{day:02d}T{hour:02d}:00:00.000Z",
        ended_at=f"2026-11-{day:02d}T{hour:02d}:01:00.000Z",
        verdict="passed" if failure_class is None else "failed",
        failure_class=failure_class,
        total_s=total,
        timings={},
        services_ready_s={},
        git_commit=None,
        artifact_dir="a",
    )


RUNS = [
    run(20, 9, None, 10.0),
    run(20, 12, "jwt-rejected", 30.0),
    run(20, 23, "interrupted", 999.0),  # not counted
    run(22, 1, None, 20.0),
]


def test_one_point_per_utc_day_with_runs() -> None:
    points = daily_points(RUNS)
    assert [p.day for p in points] == [date(2026, 11, 20), date(2026, 11, 22)]
    first = points[0]
    assert (first.runs, first.passed, first.pass_rate) == (2, 1, 0.5)
    assert first.p50_s == pytest.approx(20.0)
    assert first.p95_s == pytest.approx(29.0)
    assert (points[1].runs, points[1].pass_rate, points[1].p95_s) == (1, 1.0, 20.0)


def test_mermaid_charts_have_the_rate_as_bars_and_the_times_as_lines() -> None:
    rate, times = mermaid_charts(daily_points(RUNS))
    assert rate.splitlines() == [
        "xychart-beta",
        '    title "Daily pass rate (%)"',
        '    x-axis ["11-20", "11-22"]',
        '    y-axis "pass rate (%)" 0 --> 100',
        "    bar [50.0, 100.0]",
    ]
    assert '    y-axis "seconds" 0 --> 50' in times.splitlines()
    assert "    line [20.0, 20.0]" in times.splitlines()  # p50
    assert "    line [29.0, 20.0]" in times.splitlines()  # p95
    assert mermaid_charts([]) == []


def test_the_png_is_an_image_of_both_panels_and_is_reproducible() -> None:
    points = daily_points(RUNS)
    data = render_png(points, "E2E health")
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size) == ("PNG", (960, 678))
    colours = {colour for _, colour in image.getcolors(maxcolors=100_000) or []}
    assert (0x2E, 0x7D, 0x32) in colours  # the pass-rate bars
    assert (0x15, 0x65, 0xC0) in colours  # the p50 line
    assert (0xEF, 0x6C, 0x00) in colours  # the p95 line
    assert render_png(points, "E2E health") == data


def test_an_empty_window_still_gives_a_png_that_says_so() -> None:
    image = Image.open(io.BytesIO(render_png([], "E2E health")))
    assert image.format == "PNG"
    assert len(image.getcolors(maxcolors=100_000) or []) > 1  # the text was drawn


def test_many_days_keep_their_points() -> None:
    points = [DailyPoint(date(2026, 10, d), 2, 2 - d % 2, 10.0 + d, 12.0 + d) for d in range(1, 31)]
    assert mermaid_charts(points)[0].count(", ") == 2 * 29  # 30 labels and 30 bars
    assert Image.open(io.BytesIO(render_png(points, "t"))).size == (960, 678)
