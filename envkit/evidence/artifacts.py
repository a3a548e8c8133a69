"""Write a run's artifacts: summary.json, junit.xml, report.md and the timeline, all redacted.

The renderers are pure functions of a `RunOutcome`; `write_artifacts` first masks
every string inside the outcome (so escaping for JSON, XML or Markdown cannot
split a secret and hide it from the redactor), renders, masks the rendered text
once more, and writes the files.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import junitparser
from loguru import logger

from envkit.errors import FileAccessError
from envkit.evidence.markdown import fenced, markdown_table
from envkit.evidence.outcome import PhaseTime, RunOutcome, StepResult, tier_key
from envkit.evidence.redact import Redactor
from envkit.evidence.timeline import TIMELINE_MD, gantt, render_timeline

SUMMARY_NAME = "summary.json"
JUNIT_NAME = "junit.xml"
REPORT_NAME = "report.md"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
SKIPPED_MESSAGE = "not run: an earlier step failed"
MISSING = "—"

# (label, key in RunOutcome.timings); the per-service readiness rows go after "start".
_PHASES_BEFORE_SERVICES = (
    ("total wall time", "total"),
    ("images", "images"),
    ("stack start", "start"),
)
_PHASES_AFTER_TIERS = (
    ("collect", "collect"),
    ("teardown", "teardown"),
)


def write_artifacts(
    outcome: RunOutcome,
    artifact_dir: Path,
    redactor: Redactor,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write summary.json, junit.xml, report.md, timeline.md and timeline.jsonl; return paths.

    The timeline merges the logs already in `artifact_dir` (see `envkit.evidence.timeline`).

    When `GITHUB_STEP_SUMMARY` (read from `environ`, default `os.environ`) names a
    file, the report is appended to it too; that file is not an artifact and is not
    returned.
    """
    safe = redact_outcome(outcome, redactor)
    report = redactor(render_report(safe))
    contents = {
        SUMMARY_NAME: redactor(render_summary(safe)).encode("utf-8"),
        JUNIT_NAME: redactor.bytes(render_junit(safe)),
        REPORT_NAME: report.encode("utf-8"),
        **render_timeline(safe, artifact_dir, redactor),
    }
    written = [_write(artifact_dir / name, data) for name, data in contents.items()]
    env = os.environ if environ is None else environ
    step_summary = env.get(STEP_SUMMARY_ENV, "")
    if step_summary:
        append_step_summary(Path(step_summary), report)
    return written


def redact_outcome(outcome: RunOutcome, redactor: Redactor) -> RunOutcome:
    """A copy of `outcome` with every string in it (keys, values, evidence) masked."""
    result = _redact_value(outcome, redactor)
    assert isinstance(result, RunOutcome)
    return result


def render_summary(outcome: RunOutcome) -> str:
    """summary.json's text: `outcome.to_dict()` as indented JSON."""
    return json.dumps(outcome.to_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def render_junit(outcome: RunOutcome) -> bytes:
    """junit.xml's bytes: one suite for the stack, one test case per step."""
    suite = junitparser.TestSuite(f"{outcome.run_name} {outcome.stack}")
    if outcome.started_at:
        suite.timestamp = outcome.started_at
    suite.add_testcases([_junit_case(step) for step in outcome.steps])
    xml = junitparser.JUnitXml()
    xml.add_testsuite(suite)
    xml.update_statistics()  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    xml.write(buffer, pretty=True)
    return buffer.getvalue()


def render_report(outcome: RunOutcome) -> str:
    """report.md's text: verdict, performance, gantt, steps, triage (on failure), replay."""
    sections = [
        _report_header(outcome),
        _performance_section(outcome),
        _gantt_section(outcome),
        _steps_section(outcome.steps),
    ]
    if outcome.verdict == "failed" or outcome.failure is not None:
        sections.append(_triage_section(outcome))
    sections.append(_replay_section(outcome.replay_command))
    return "\n\n".join(sections) + "\n"


# --- redaction ---------------------------------------------------------------------------


def _redact_value(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _redact_value(getattr(value, f.name), redactor)
            for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, Mapping):
        return {_redact_value(k, redactor): _redact_value(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item, redactor) for item in value]
    if isinstance(value, bytes):
        return redactor(value.decode("utf-8", errors="replace"))
    # Anything else would reach JSON as str(value) anyway; mask that text now.
    return redactor(str(value))


# --- junit -------------------------------------------------------------------------------


def _junit_case(step: StepResult) -> junitparser.TestCase:
    case = junitparser.TestCase(step.name, step.tier, float(step.duration_s or 0.0))
    if step.status == "failed":
        failure = junitparser.Failure(step.error or "the step failed without an error message")
        failure.text = _evidence_text(step)
        case.result = [failure]
    elif step.status == "skipped":
        case.result = [junitparser.Skipped(step.result or SKIPPED_MESSAGE)]
    return case


def _evidence_text(step: StepResult) -> str:
    lines = []
    if step.request:
        lines.append(f"request: {step.request}")
    if step.status_code is not None:
        lines.append(f"status code: {step.status_code}")
    evidence = dict(step.evidence)
    output = evidence.pop("output_tail", None)  # a command step's output: kept readable
    if evidence:
        text = json.dumps(evidence, indent=2, ensure_ascii=False, default=str)
        lines.append(f"evidence:\n{text}")
    if isinstance(output, str):
        lines.append(f"output (last lines):\n{output}" if output else "output: none")
    return "\n".join(lines) or "no evidence recorded"


# --- report.md ---------------------------------------------------------------------------


def _report_header(outcome: RunOutcome) -> str:
    verdict = "PASSED" if outcome.verdict == "passed" else "FAILED"
    started = outcome.started_at or MISSING
    ended = outcome.ended_at or MISSING
    return (
        f"# {outcome.run_name} {outcome.stack}: {verdict}\n\n"
        f"Run `{outcome.run_id}` started {started}, ended {ended}"
        + (f", on the engine at `{outcome.engine}`." if outcome.engine else ".")
    )


def performance_rows(outcome: RunOutcome) -> list[PhaseTime]:
    """The performance table's rows: the phases, each service's time to ready after "start"."""
    rows = [PhaseTime(label, outcome.timings.get(key)) for label, key in _PHASES_BEFORE_SERVICES]
    rows += [
        PhaseTime(f"{service}: time to ready", row.seconds_to_ready)
        for service, row in outcome.services.items()
    ]
    rows += [PhaseTime(label, outcome.timings.get(key)) for key, label in _tier_rows(outcome)]
    rows += [PhaseTime(label, outcome.timings.get(key)) for label, key in _PHASES_AFTER_TIERS]
    return rows


def _tier_rows(outcome: RunOutcome) -> list[tuple[str, str]]:
    """(timing key, label) per tier: the scenario's labels, then any other tier that ran."""
    rows = dict(outcome.tier_labels)
    for step in outcome.steps:
        key = tier_key(step.tier)
        if step.status != "skipped" and key in outcome.timings:
            rows.setdefault(key, step.tier)
    return list(rows.items())


def _performance_section(outcome: RunOutcome) -> str:
    rows = [(row.label, _seconds(row.seconds)) for row in performance_rows(outcome)]
    return "## E2E performance (this run)\n\n" + markdown_table(
        ["phase", "seconds"], rows, ["---", "---:"]
    )


def _gantt_section(outcome: RunOutcome) -> str:
    chart = gantt(outcome)
    if not chart:
        return "## Run timeline\n\nNo timings with a start time were recorded."
    note = (
        "Each service from its container's start to ready, each step, then collect and "
        f"teardown. Every log line in time order: `{TIMELINE_MD}`."
    )
    return f"## Run timeline\n\n{note}\n\n" + fenced(chart, "mermaid")


def _steps_section(steps: list[StepResult]) -> str:
    if not steps:
        return "## Steps\n\nNo steps ran."
    rows = [
        (
            step.name,
            step.tier,
            step.status,
            _seconds(step.duration_s),
            MISSING if step.status_code is None else str(step.status_code),
            _step_outcome_text(step),
        )
        for step in steps
    ]
    header = ["step", "tier", "status", "seconds", "status code", "result or error"]
    align = ["---", "---", "---", "---:", "---:", "---"]
    return "## Steps\n\n" + markdown_table(header, rows, align)


def _step_outcome_text(step: StepResult) -> str:
    if step.status == "failed":
        return step.error or "failed without an error message"
    if step.status == "skipped":
        return step.result or SKIPPED_MESSAGE
    return step.result


def _triage_section(outcome: RunOutcome) -> str:
    failure = outcome.failure
    if failure is None:
        return "## Triage\n\nThe run failed without a recorded failure class; see the steps above."
    parts = ["## Triage", f"Failure class: `{failure.failure_class}`"]
    if "\n" in failure.message.strip():
        parts.append("Message:\n\n" + fenced(failure.message, "text"))
    else:
        parts.append(f"Message: {failure.message.strip() or MISSING}")
    if failure.first_log:
        parts.append(f"Read first: `{failure.first_log}`")
    if failure.quotes:
        parts.append(fenced("\n".join(failure.quotes), "text"))
    return "\n\n".join(parts)


def _replay_section(command: str) -> str:
    if not command:
        return "## Replay\n\nNo replay command was recorded for this run."
    return "## Replay\n\n" + fenced(command, "sh")


def _seconds(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISSING
    return f"{value:.2f}"


# --- files -------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise FileAccessError(
            f"Could not write the artifact {path}: {exc}. Check that the artifact "
            "directory is writable and that the disk has free space.",
            path=path,
        ) from exc
    logger.debug("wrote {}", path)
    return path


def append_step_summary(path: Path, report: str) -> None:
    """Append `report` to the GitHub job summary file (a failure is logged, never raised)."""
    # The job summary is a convenience; failing to write it must not lose the artifacts.
    try:
        with path.open("a", encoding="utf-8") as summary:
            summary.write(report if report.endswith("\n") else report + "\n")
    except OSError as exc:
        logger.warning("could not append the report to {} ({}): {}", STEP_SUMMARY_ENV, path, exc)
