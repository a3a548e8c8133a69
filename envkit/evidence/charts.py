"""The health report's trend chart: daily pass rate and p50/p95 wall time.

Two renderings of the same points: Mermaid `xychart-beta` blocks, which GitHub
draws inside the job summary, and a PNG (Pillow) for readers anywhere else.
Only days with runs are points; the PNG carries no time stamp of its own, so the
same points give the same bytes.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from envkit.evidence.history import RunRecord

PNG_NAME = "health-report.png"
_WIDTH, _PANEL, _MARGIN_L, _MARGIN_R, _MARGIN_T, _MARGIN_B = 960, 260, 70, 30, 56, 46
_BAR, _P50, _P95, _GRID, _INK = "#2e7d32", "#1565c0", "#ef6c00", "#dddddd", "#222222"


@dataclass(frozen=True)
class DailyPoint:
    """One UTC day of the window that had runs."""

    day: date
    runs: int
    passed: int
    p50_s: float
    p95_s: float

    @property
    def pass_rate(self) -> float:
        """Passed over runs, 0..1."""
        return self.passed / self.runs


def daily_points(runs: Sequence[RunRecord]) -> list[DailyPoint]:
    """One point per UTC day with runs, oldest first (interrupted runs are not counted)."""
    by_day: dict[date, list[RunRecord]] = {}
    for run in runs:
        if run.failure_class == "interrupted":
            continue
        by_day.setdefault(date.fromisoformat(run.started_at[:10]), []).append(run)
    points = []
    for day in sorted(by_day):
        group = by_day[day]
        totals = [r.total_s for r in group]
        points.append(
            DailyPoint(
                day=day,
                runs=len(group),
                passed=sum(1 for r in group if r.verdict == "passed"),
                p50_s=statistics.median(totals),
                p95_s=percentile_95(totals) or 0.0,
            )
        )
    return points


def percentile_95(values: Sequence[float]) -> float | None:
    """The 95th percentile (inclusive method; of one value, that value; of none, None)."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def mermaid_charts(points: Sequence[DailyPoint]) -> list[str]:
    """Two `xychart-beta` blocks: pass rate per day (bars), p50 and p95 wall time (lines)."""
    if not points:
        return []
    days = ", ".join(f'"{p.day:%m-%d}"' for p in points)
    rates = ", ".join(f"{p.pass_rate * 100:.1f}" for p in points)
    top = max(p.p95_s for p in points)
    rate_chart = "\n".join(
        [
            "xychart-beta",
            '    title "Daily pass rate (%)"',
            f"    x-axis [{days}]",
            '    y-axis "pass rate (%)" 0 --> 100',
            f"    bar [{rates}]",
        ]
    )
    time_chart = "\n".join(
        [
            "xychart-beta",
            '    title "Daily wall time (s): p50 (lower line), p95 (upper line)"',
            f"    x-axis [{days}]",
            f'    y-axis "seconds" 0 --> {_nice_top(top):g}',
            f"    line [{', '.join(f'{p.p50_s:.1f}' for p in points)}]",
            f"    line [{', '.join(f'{p.p95_s:.1f}' for p in points)}]",
        ]
    )
    return [rate_chart, time_chart]


def render_png(points: Sequence[DailyPoint], title: str) -> bytes:
    """The same two charts, stacked, as PNG bytes (a note instead when there are no points)."""
    height = _MARGIN_T + 2 * (_PANEL + _MARGIN_B) + 10
    image = Image.new("RGB", (_WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    draw.text((_MARGIN_L, 8), title, fill=_INK, font=font)
    if not points:
        draw.text((_MARGIN_L, _MARGIN_T + 20), "No runs in the window.", fill=_INK, font=font)
    else:
        top = _MARGIN_T
        _panel(draw, font, points, top, "pass rate (%)", 100.0, bars=True)
        top += _PANEL + _MARGIN_B
        _panel(draw, font, points, top, "wall time (s)", _nice_top(max(p.p95_s for p in points)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _panel(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    points: Sequence[DailyPoint],
    top: int,
    label: str,
    y_max: float,
    *,
    bars: bool = False,
) -> None:
    left, right, bottom = _MARGIN_L, _WIDTH - _MARGIN_R, top + _PANEL
    for i in range(5):  # grid and y labels at 0, 25, 50, 75, 100 % of the axis
        y = bottom - (bottom - top) * i / 4
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.text((8, y - 7), f"{y_max * i / 4:g}", fill=_INK, font=font)
    draw.text((left, top - 18), label, fill=_INK, font=font)
    step = (right - left) / len(points)
    every = max(1, len(points) // 12)  # at most about a dozen date labels
    for i, p in enumerate(points):
        if i % every == 0:
            draw.text((left + step * i + 2, bottom + 6), f"{p.day:%m-%d}", fill=_INK, font=font)

    def xy(i: int, value: float) -> tuple[float, float]:
        return left + step * (i + 0.5), bottom - (bottom - top) * min(value / y_max, 1.0)

    if bars:
        for i, p in enumerate(points):
            x, y = xy(i, p.pass_rate * 100)
            half = max(1.0, step * 0.35)
            draw.rectangle([(x - half, y), (x + half, bottom)], fill=_BAR)
        return
    series = (([p.p50_s for p in points], _P50, "p50"), ([p.p95_s for p in points], _P95, "p95"))
    for values, colour, name in series:
        line = [xy(i, value) for i, value in enumerate(values)]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([(x - 3, y - 3), (x + 3, y + 3)], fill=colour)
        legend_x = right - (110 if name == "p50" else 55)
        draw.text((legend_x, top - 18), name, fill=colour, font=font)


def _nice_top(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 < value:
        scale *= 10
    while scale > value:
        scale /= 10
    for factor in (1, 2, 5, 10):
        if factor * scale >= value:
            return factor * scale
    return 10 * scale
