"""Pictures of one run in time: a Mermaid gantt for report.md, and the merged timeline.

The gantt draws, from the timings the outcome already holds, the images phase,
each service from its container's start to ready, each step that ran, and the
collect and teardown phases. Services' times are seconds since the environment
began starting, which is taken as the run's start plus the images phase (the
engine connection before it takes milliseconds); a run on the `up` stack, which
started nothing, draws no services. Collect starts when the last step ends.
Times are epoch milliseconds (`dateFormat x`), so sub-second bars show.

The timeline (timeline.md and timeline.jsonl) merges, ordered by time with the
source named: every line of every log in the artifact directory (services'
lines carry the engine's timestamp; a line without one keeps the time of the
line before it), every mock journal entry that the steps' evidence holds, each
service's container start and ready, and each step's start and end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from envkit.evidence.markdown import markdown_table
from envkit.evidence.outcome import RunOutcome, StepResult
from envkit.evidence.redact import Redactor

TIMELINE_MD = "timeline.md"
TIMELINE_JSONL = "timeline.jsonl"
_LEADING_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))\s?")
_GANTT_UNSAFE = re.compile(r"[:;#]")  # Mermaid reads these as task syntax


@dataclass(frozen=True)
class Span:
    """One bar of the gantt: a section, a label, start and end, and whether it failed."""

    section: str
    label: str
    start: datetime
    end: datetime
    failed: bool = False


@dataclass(frozen=True)
class Event:
    """One line of the merged timeline."""

    at: datetime
    source: str  # a service, `orchestrator`, `step`, `journal <mock>`, `envkit`
    kind: str  # log, step, journal, service
    text: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the time as ISO 8601 UTC with milliseconds."""
        return {**asdict(self), "at": iso_ms(self.at)}


def parse_time(stamp: str) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (None when empty or unreadable)."""
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_ms(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as every artifact shows times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the gantt ---------------------------------------------------------------------------


def run_spans(outcome: RunOutcome) -> list[Span]:
    """The gantt's bars: images, each service (container start to ready), steps, teardown."""
    begun = parse_time(outcome.started_at)
    if begun is None:
        return []
    spans: list[Span] = []
    images = outcome.timings.get("images")
    # Only a run that started its own services has an images phase; the services of a
    # stack started earlier (`invoke up`) were timed from that start, not this run's.
    if images is not None:
        spans.append(Span("Stack", "images", begun, begun + _s(images)))
        services = _service_spans(outcome, begun + _s(images))
        spans += sorted(services, key=lambda s: (s.start, s.label))
    steps = [_step_span(step) for step in outcome.steps if step.status != "skipped"]
    spans += sorted((s for s in steps if s is not None), key=lambda s: s.start)
    spans += _closing_spans(outcome, spans)
    return spans


def gantt(outcome: RunOutcome) -> str:
    """The run as a Mermaid gantt (empty when the outcome has no usable start time)."""
    spans = run_spans(outcome)
    if not spans:
        return ""
    lines = [
        "gantt",
        f"    title {_safe(outcome.run_name)} {_safe(outcome.stack)} {_safe(outcome.run_id)}",
        "    dateFormat x",
        "    axisFormat %H:%M:%S",
    ]
    section = ""
    for span in spans:
        if span.section != section:
            section = span.section
            lines.append(f"    section {section}")
        start = _ms(span.start)
        end = max(_ms(span.end), start + 1)  # a zero-length bar would not be drawn
        tag = "crit, " if span.failed else ""
        lines.append(f"    {_safe(span.label)} :{tag}{start}, {end}")
    return "\n".join(lines)


def _service_spans(outcome: RunOutcome, env_start: datetime) -> list[Span]:
    spans = []
    start_phase = outcome.timings.get("start")
    for name, row in outcome.services.items():
        began = row.started_s if row.started_s is not None else row.created_s
        if began is None:
            continue
        if row.ready_s is not None:
            spans.append(Span("Services", name, env_start + _s(began), env_start + _s(row.ready_s)))
            continue
        # Never ready: the bar runs to the end of the start phase (or a second, if unknown).
        until = start_phase if start_phase is not None and start_phase > began else began + 1
        spans.append(
            Span("Services", f"{name} (never ready)", env_start + _s(began),
                 env_start + _s(until), failed=True)
        )  # fmt: skip
    return spans


def _step_span(step: StepResult) -> Span | None:
    start = parse_time(step.started_at)
    if start is None:
        return None
    label = f"{step.name} ({step.status})" if step.status == "failed" else step.name
    return Span("Steps", label, start, start + _s(step.duration_s), step.status == "failed")


def _closing_spans(outcome: RunOutcome, before: list[Span]) -> list[Span]:
    collect, teardown = outcome.timings.get("collect"), outcome.timings.get("teardown")
    ended = parse_time(outcome.ended_at)
    steps = [s for s in before if s.section == "Steps"]
    if steps:
        start = max(s.end for s in steps)
    elif ended is not None:
        start = ended - _s((collect or 0.0) + (teardown or 0.0))
    else:
        return []
    spans = []
    if collect is not None:
        spans.append(Span("Teardown", "collect logs", start, start + _s(collect)))
        start += _s(collect)
    if teardown is not None:
        spans.append(Span("Teardown", "teardown", start, start + _s(teardown)))
    return spans


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=float(seconds))


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _safe(text: str) -> str:
    return _GANTT_UNSAFE.sub(" ", " ".join(text.split()))


# --- the merged timeline -----------------------------------------------------------------


def timeline_events(outcome: RunOutcome, artifact_dir: Path) -> list[Event]:
    """Every log line, journal entry, service and step event of the run, ordered by time."""
    sources = {Path(row.log).name: name for name, row in outcome.services.items() if row.log}
    events: list[Event] = []
    for path in sorted(artifact_dir.glob("*.log")):
        source = sources.get(path.name) or _log_source(path.name, outcome.stack)
        events += _log_events(path.read_text(errors="replace"), source)
    events += _service_events(outcome)
    events += _step_events(outcome.steps)
    events += _journal_events(outcome.steps)
    order = {"service": 0, "step": 1, "journal": 2, "log": 3}
    # A stable sort: lines of one log with the same time keep their order.
    return sorted(events, key=lambda e: (e.at, order.get(e.kind, 9)))


def render_timeline_md(outcome: RunOutcome, events: list[Event]) -> str:
    """timeline.md: one table row per event (time, source, what happened)."""
    title = f"# Timeline of {outcome.run_name} {outcome.stack} run `{outcome.run_id}`"
    if not events:
        return f"{title}\n\nNothing was recorded.\n"
    sources = ", ".join(dict.fromkeys(e.source for e in events))
    day = events[0].at.strftime("%Y-%m-%d")
    intro = f"{len(events)} events from {sources}; times are UTC on {day}."
    rows = [(e.at.strftime("%H:%M:%S.%f")[:-3], e.source, e.text) for e in events]
    table = markdown_table(["time", "source", "event"], rows, ["---", "---", "---"])
    return f"{title}\n\n{intro}\n\n{table}\n"


def render_timeline_jsonl(events: list[Event]) -> str:
    """timeline.jsonl: one JSON object per event, in time order."""
    return "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in events)


def render_timeline(
    outcome: RunOutcome, artifact_dir: Path, redactor: Redactor
) -> dict[str, bytes]:
    """timeline.md's and timeline.jsonl's contents for the run in `artifact_dir`, redacted."""
    events = [
        Event(e.at, redactor(e.source), e.kind, redactor(e.text))
        for e in timeline_events(outcome, artifact_dir)
    ]
    return {
        TIMELINE_MD: redactor(render_timeline_md(outcome, events)).encode("utf-8"),
        TIMELINE_JSONL: redactor(render_timeline_jsonl(events)).encode("utf-8"),
    }


def _log_source(file_name: str, stack: str) -> str:
    """`shop-run-orchestrator.log` -> `run-orchestrator` (the stack's prefix dropped)."""
    stem = file_name.removesuffix(".log")
    return stem.removeprefix(f"{stack}-") or stem


def _log_events(text: str, source: str) -> Iterator[Event]:
    last: datetime | None = None
    pending: list[str] = []  # lines before the first stamped one
    for line in text.splitlines():
        match = _LEADING_STAMP.match(line)
        stamp = parse_time(match.group(1)) if match else None
        if stamp is not None and match is not None:
            last, body = stamp, line[match.end() :]
            for early in pending:
                yield Event(stamp, source, "log", early)
            pending = []
        else:
            body = line
        if not body.strip():
            continue
        if last is None:
            pending.append(body)
        else:
            yield Event(last, source, "log", body)


def _service_events(outcome: RunOutcome) -> Iterator[Event]:
    for span in run_spans(outcome):
        if span.section != "Services":
            continue
        name = span.label.removesuffix(" (never ready)")
        yield Event(span.start, name, "service", "container started")
        if not span.failed:
            seconds = outcome.services[name].seconds_to_ready
            after = "" if seconds is None else f" ({seconds:.2f} s after creation)"
            yield Event(span.end, name, "service", f"ready{after}")


def _step_events(steps: list[StepResult]) -> Iterator[Event]:
    for step in steps:
        start = parse_time(step.started_at)
        if start is None:
            continue
        yield Event(start, "step", "step", f"{step.tier}/{step.name} started")
        outcome = step.status if step.status != "failed" else f"failed: {step.error or ''}"
        end = start + _s(step.duration_s)
        yield Event(
            end, "step", "step", f"{step.tier}/{step.name} {outcome} ({step.duration_s:.2f} s)"
        )


def _journal_events(steps: list[StepResult]) -> Iterator[Event]:
    seen: set[tuple[str, str, str]] = set()
    for step in steps:
        for entry in _journal_entries(step.evidence):
            key = (str(entry["at"]), str(entry.get("method", "")), str(entry.get("path", "")))
            at = parse_time(key[0])
            if at is None or key in seen:
                continue
            seen.add(key)
            yield Event(at, f"journal {_mock_of(entry)}", "journal", _journal_text(entry, step))


def _journal_entries(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every dict in the evidence that looks like a mock's journal entry (a time and a path)."""
    if isinstance(value, Mapping):
        if isinstance(value.get("at"), str) and "path" in value:
            yield value
        for item in value.values():
            yield from _journal_entries(item)
    elif isinstance(value, list):
        for item in value:
            yield from _journal_entries(item)


def _mock_of(entry: Mapping[str, Any]) -> str:
    headers = entry.get("headers")
    host = headers.get("host") if isinstance(headers, Mapping) else None
    return str(host).split(":")[0] if host else "mock"


def _journal_text(entry: Mapping[str, Any], step: StepResult) -> str:
    what = f"{entry.get('method', '')} {entry.get('path', '')}".strip()
    extra = [
        f"{key}={entry[key]}"
        for key in ("status", "authorized", "authProblem", "credentialProblem")
        if entry.get(key) is not None
    ]
    detail = f" ({', '.join(extra)})" if extra else ""
    return f"{what}{detail}, recorded by the mock (evidence of step {step.name})"
