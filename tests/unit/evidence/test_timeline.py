"""The run's pictures: the Mermaid gantt in report.md and the merged timeline files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from envkit.evidence.artifacts import render_report, write_artifacts
from envkit.evidence.outcome import RunOutcome, ServiceRow, StepResult
from envkit.evidence.redact import MASK, Redactor
from envkit.evidence.timeline import gantt, render_timeline, run_spans, timeline_events

SECRET = "tok-0123456789"
T0 = int(datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp() * 1000)  # epoch milliseconds


def outcome(failed: bool = False) -> RunOutcome:
    return RunOutcome(
        run_id="shop-1",
        stack="shop",
        verdict="failed" if failed else "passed",
        started_at="2026-11-22T10:00:00.000Z",
        ended_at="2026-11-22T10:00:10.000Z",
        steps=[
            StepResult("seed", "tier-a", "passed", "2026-11-22T10:00:05.000Z", 0.25),
            StepResult(
                "charge",
                "tier-a",
                "failed" if failed else "passed",
                "2026-11-22T10:00:05.250Z",
                0.5,
                error="401" if failed else None,
                evidence={
                    "journal": [
                        {
                            "at": "2026-11-22T10:00:05.400Z",
                            "method": "POST",
                            "path": "/pay",
                            "headers": {"host": "mock-pay:8080"},
                            "authorized": False,
                        },
                    ],
                    "last": {
                        "at": "2026-11-22T10:00:05.400Z",
                        "method": "POST",
                        "path": "/pay",
                        "headers": {"host": "mock-pay:8080"},
                    },
                },
            ),
            StepResult(
                "notify",
                "tier-a",
                "skipped" if failed else "passed",
                "" if failed else "2026-11-22T10:00:05.750Z",
                0.0 if failed else 0.1,
            ),
        ],
        timings={"images": 1.0, "start": 3.5, "collect": 1.5, "teardown": 0.5, "total": 10},
        services={
            "db": ServiceRow(log="/a/shop-db.log", created_s=0.0, started_s=0.1, ready_s=1.2),
            "api": ServiceRow(log="/a/shop-api.log", created_s=1.2, started_s=1.5, ready_s=3.5),
        },
    )


def test_the_gantt_has_every_service_step_and_teardown_in_milliseconds() -> None:
    chart = gantt(outcome())
    assert chart.splitlines()[:4] == [
        "gantt", "    title run shop shop-1", "    dateFormat x", "    axisFormat %H:%M:%S",
    ]  # fmt: skip
    bars = re.findall(r"^    (\S[^:\n]*?) :(crit, )?(\d+), (\d+)$", chart, re.MULTILINE)
    assert [(name, int(a) - T0, int(b) - T0) for name, _, a, b in bars] == [
        ("images", 0, 1000),
        ("db", 1100, 2200),  # container start to ready, after the images phase
        ("api", 2500, 4500),
        ("seed", 5000, 5250),
        ("charge", 5250, 5750),
        ("notify", 5750, 5850),
        ("collect logs", 5850, 7350),  # from the last step's end
        ("teardown", 7350, 7850),
    ]
    sections = re.findall(r"^    section (\w+)$", chart, re.MULTILINE)
    assert sections == ["Stack", "Services", "Steps", "Teardown"]


def test_a_failed_step_is_critical_and_a_skipped_one_has_no_bar() -> None:
    chart = gantt(outcome(failed=True))
    assert f"    charge (failed) :crit, {T0 + 5250}, {T0 + 5750}" in chart
    assert "notify" not in chart


def test_a_service_that_never_got_ready_runs_to_the_end_of_the_start_phase() -> None:
    out = outcome()
    out.services["api"] = ServiceRow(created_s=1.2, started_s=1.5, ready_s=None)
    spans = [s for s in run_spans(out) if s.section == "Services"]
    assert [(s.label, s.failed) for s in spans] == [("db", False), ("api (never ready)", True)]
    assert f"api (never ready) :crit, {T0 + 2500}, {T0 + 4500}" in gantt(out)


def test_a_run_on_a_stack_started_earlier_draws_no_services() -> None:
    out = outcome()
    out.timings = {"collect": 1.5, "total": 3}  # `orchestrate`: no images, no start phase
    chart = gantt(out)
    assert "section Services" not in chart
    assert "section Steps" in chart


def test_no_start_time_means_no_gantt_and_the_report_says_so() -> None:
    bare = RunOutcome(run_id="r", stack="s", verdict="failed", started_at="", ended_at="")
    assert gantt(bare) == ""
    assert "No timings with a start time were recorded." in render_report(bare)


def test_the_report_carries_the_gantt_as_a_mermaid_block() -> None:
    report = render_report(outcome())
    section = report.split("## Run timeline", 1)[1].split("## Steps", 1)[0]
    assert "```mermaid\ngantt\n" in section
    assert "`timeline.md`" in section


def write_logs(where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    (where / "shop-api.log").write_text(
        "2026-11-22T10:00:03.000000000Z api starting\n"
        "2026-11-22T10:00:05.300000000Z ERROR charge refused\n"
        "  at line 12 (a continuation keeps the time before it)\n"
        f"2026-11-22T10:00:05.310000000Z token {SECRET}\n"
    )
    (where / "shop-db.log").write_text("boot banner without a time\n2026-11-22T10:00:01.5Z db up\n")
    (where / "shop-run-orchestrator.log").write_text("2026-11-22T10:00:05.000Z step seed: start\n")


def test_the_timeline_merges_logs_journal_services_and_steps_in_time_order(
    tmp_path: Path,
) -> None:
    write_logs(tmp_path)
    events = timeline_events(outcome(failed=True), tmp_path)
    assert [e.at for e in events] == sorted(e.at for e in events)
    rows = [(e.at.strftime("%S.%f")[:6], e.source, e.text) for e in events]
    assert ("01.100", "db", "container started") in rows
    assert ("01.500", "db", "boot banner without a time") in rows  # takes the first time seen
    assert ("05.300", "api", "  at line 12 (a continuation keeps the time before it)") in rows
    assert ("05.000", "run-orchestrator", "step seed: start") in rows
    journal = [r for r in rows if r[1].startswith("journal")]
    assert journal == [
        (
            "05.400",
            "journal mock-pay",
            "POST /pay (authorized=False), recorded by the mock (evidence of step charge)",
        ),
    ]  # fmt: skip  (the same entry twice in the evidence is listed once)
    steps = [r[2] for r in rows if r[1] == "step"]
    assert steps == [
        "tier-a/seed started",
        "tier-a/seed passed (0.25 s)",
        "tier-a/charge started",
        "tier-a/charge failed: 401 (0.50 s)",
    ]
    sources = {e.source for e in events}
    assert {"db", "api", "step", "run-orchestrator", "journal mock-pay"} == sources


def test_timeline_files_are_redacted_and_agree(tmp_path: Path) -> None:
    write_logs(tmp_path)
    files = render_timeline(outcome(), tmp_path, Redactor([SECRET]))
    md, jsonl = files["timeline.md"].decode(), files["timeline.jsonl"].decode()
    for text in (md, jsonl):
        assert SECRET not in text
        assert f"token {MASK}" in text
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert len(records) == md.count("\n| ") - 2  # one table row per record (less head, rule)
    assert records[0] == {
        "at": "2026-11-22T10:00:01.100Z", "source": "db", "kind": "service",
        "text": "container started",
    }  # fmt: skip
    assert md.startswith("# Timeline of run shop run `shop-1`\n\n")
    assert "| 10:00:05.300 | api | ERROR charge refused |" in md


def test_write_artifacts_writes_the_timeline_next_to_the_report(tmp_path: Path) -> None:
    write_logs(tmp_path)
    write_artifacts(outcome(), tmp_path, Redactor([SECRET]), environ={})
    lines = (tmp_path / "timeline.jsonl").read_text().splitlines()
    assert len(lines) > 10
    assert all(SECRET not in line for line in lines)
