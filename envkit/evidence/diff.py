"""The baseline diff: what changed between a run and a good run of the same stack.

Steps that regressed or recovered, the failure class before and after, each
phase's and each service's time against a threshold for "slower" (the `diff`
settings), and the error lines each log has now that the baseline's did not.
Log lines are compared after normalising what differs on every run (times,
UUIDs, hex ids, numbers), so only lines that say something new remain.

`compare_runs` is `invoke diff`; `append_baseline_diff` is what `tier-b
--baseline` does after a failed run: diff.md and diff.json in the run's
directory, and the diff appended to its report.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from envkit.errors import FileAccessError
from envkit.evidence.artifacts import REPORT_NAME, STEP_SUMMARY_ENV, append_step_summary
from envkit.evidence.manifest import MANIFEST
from envkit.evidence.markdown import fenced, markdown_table
from envkit.evidence.outcome import RunOutcome, StepResult, tier_key
from envkit.evidence.redact import Redactor
from envkit.evidence.runs import LATEST_GREEN, RecordedRun, find_run, latest_green, read_run
from envkit.spec.settings import EnvkitSettings

DIFF_MD = "diff.md"
DIFF_JSON = "diff.json"
MAX_NEW_LINES = 20  # per log: enough to see the pattern, short enough to read
DiffStatus = Literal["stable", "changed", "regressed", "recovered", "still-failing"]

_DOCKER_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\s")
_ERRORISH = re.compile(
    r"\b(?:errors?|exception|traceback|fatal|critical|panic|fail(?:ed|ure|s)?|denied|refused"
    r"|rejected|unauthori[sz]ed|forbidden|timed out|timeout|warn(?:ing)?)\b"
    r"|(?:->|answered|status(?: code)?[:=]?)\s*[45]\d\d\b",
    re.IGNORECASE,
)
# Order matters: whole timestamps before their numbers, UUIDs before hex runs.
_NORMALISE = (
    (
        re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?"),
        "<time>",
    ),
    (re.compile(r"\b\d{8}T\d{6}Z?\b"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b"), "<time>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    (re.compile(r"\b(?:0x)?(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b", re.I), "<hex>"),
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_STATUS_CONTEXT = re.compile(r"(?:->|answered|status(?: code)?[:=]?|HTTP/\d(?:\.\d)?)\s*$", re.I)


@dataclass(frozen=True)
class SlowerThreshold:
    """A time is slower (faster) when it grew (shrank) by more than both limits."""

    percent: float = 25.0
    seconds: float = 0.5

    @classmethod
    def of(cls, settings: EnvkitSettings) -> SlowerThreshold:
        """The threshold the `diff` settings give."""
        return cls(settings.diff.slower_percent, settings.diff.slower_seconds)

    def judge(self, before: float | None, after: float | None) -> str:
        """`slower`, `faster`, `same`, or `—` when one side is missing."""
        if before is None or after is None:
            return "—"
        change = after - before
        if abs(change) <= self.seconds or abs(change) <= before * self.percent / 100:
            return "same"
        return "slower" if change > 0 else "faster"


@dataclass(frozen=True)
class RunSide:
    """One side of a diff: which run, its verdict, class and commit."""

    run_id: str
    path: str
    verdict: str
    failure_class: str | None
    git_commit: str | None


@dataclass(frozen=True)
class StepChange:
    """A step whose status differs between the baseline and the run."""

    name: str
    tier: str
    before: str  # passed, failed, skipped, or absent
    after: str
    change: str  # regressed, not run, recovered, still failing, new, gone
    error: str | None = None  # the run's error for this step


@dataclass(frozen=True)
class TimingDelta:
    """One phase or service: seconds before and after, and the judgement against the threshold."""

    kind: str  # "phase" or "service"
    name: str
    before: float | None
    after: float | None
    judgement: str  # slower, faster, same, —

    @property
    def delta(self) -> float | None:
        """After minus before (None when one side is missing)."""
        return None if self.before is None or self.after is None else self.after - self.before


@dataclass
class RunDiff:
    """What changed from `baseline` to `run`."""

    run: RunSide
    baseline: RunSide
    status: DiffStatus
    headline: str
    steps: list[StepChange] = field(default_factory=list)
    timings: list[TimingDelta] = field(default_factory=list)
    new_error_lines: dict[str, list[str]] = field(default_factory=dict)  # log file -> lines
    threshold: SlowerThreshold = field(default_factory=SlowerThreshold)

    @property
    def slower(self) -> list[TimingDelta]:
        """The timings judged slower."""
        return [t for t in self.timings if t.judgement == "slower"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (diff.json's content)."""
        data = asdict(self)
        for row, timing in zip(data["timings"], self.timings, strict=True):
            row["delta"] = timing.delta
        return data

    def markdown(self, level: int = 1) -> str:
        """diff.md's text; `level` is the top heading's depth (2 when appended to a report)."""
        h = "#" * level
        parts = [
            f"{h} Baseline diff: `{self.run.run_id}` against `{self.baseline.run_id}`",
            f"**{self.status}**: {self.headline}",
            markdown_table(
                ["", "this run", "baseline"],
                [
                    ("run", self.run.run_id, self.baseline.run_id),
                    ("verdict", self.run.verdict, self.baseline.verdict),
                    (
                        "failure class",
                        self.run.failure_class or "—",
                        self.baseline.failure_class or "—",
                    ),
                    (
                        "commit",
                        (self.run.git_commit or "—")[:12],
                        (self.baseline.git_commit or "—")[:12],
                    ),
                ],
                ["---", "---", "---"],
            ),
            f"{h}# Steps",
            self._steps_text(),
            f"{h}# Timings",
            self._timings_text(),
            f"{h}# New error lines",
            self._errors_text(),
        ]
        return "\n\n".join(parts) + "\n"

    def terminal_lines(self) -> list[str]:
        """A short summary for the terminal: status, step changes, slower times, new lines."""
        lines = [f"{self.status}: {self.headline}"]
        lines += [f"  step {s.name}: {s.change} ({s.before} -> {s.after})" for s in self.steps]
        lines += [f"  slower: {t.name} {_secs(t.before)} -> {_secs(t.after)}" for t in self.slower]
        for log, new in self.new_error_lines.items():
            lines.append(f"  {log}: {len(new)} new error line(s), e.g. {new[0]}")
        return lines

    def _steps_text(self) -> str:
        if not self.steps:
            return "No step changed its status."
        rows = [(s.name, s.tier, s.before, s.after, s.change, s.error or "") for s in self.steps]
        header = ["step", "tier", "baseline", "this run", "change", "error"]
        return markdown_table(header, rows, ["---"] * 6)

    def _timings_text(self) -> str:
        t = self.threshold
        note = (
            f"Slower or faster means a change of more than {t.percent:g}% and more than "
            f"{t.seconds:g} s (settings `ENVKIT_DIFF__SLOWER_PERCENT`, "
            "`ENVKIT_DIFF__SLOWER_SECONDS`)."
        )
        rows = [
            (
                f"{d.name}" if d.kind == "phase" else f"{d.name}: time to ready",
                _secs(d.before),
                _secs(d.after),
                "—" if d.delta is None else f"{d.delta:+.2f}",
                d.judgement,
            )
            for d in self.timings
        ]
        header = ["phase or service", "baseline s", "this run s", "change s", "judgement"]
        return note + "\n\n" + markdown_table(header, rows, ["---", "---:", "---:", "---:", "---"])

    def _errors_text(self) -> str:
        if not self.new_error_lines:
            return "No log has error lines the baseline's did not have."
        blocks = []
        for log, lines in self.new_error_lines.items():
            blocks.append(f"`{log}` ({len(lines)}):\n\n" + fenced("\n".join(lines), "text"))
        return "\n\n".join(blocks)


def normalise(line: str) -> str:
    """A log line with what differs on every run (times, UUIDs, hex ids, numbers) replaced."""
    text = _DOCKER_STAMP.sub("", line.rstrip())
    for pattern, mark in _NORMALISE:
        text = pattern.sub(mark, text)

    def number(match: re.Match[str]) -> str:
        value = match.group(0)
        is_status = len(value) == 3 and value[0] in "12345"
        if is_status and _STATUS_CONTEXT.search(text[: match.start()]):
            return value  # an HTTP status is what the line is about: keep it
        return "<n>"

    return _NUMBER.sub(number, text)


def is_error_line(line: str) -> bool:
    """Whether a log line reports a problem (an error level or word, a 4xx/5xx answer)."""
    return bool(_ERRORISH.search(_DOCKER_STAMP.sub("", line)))


def new_error_lines(run_log: str, baseline_log: str) -> list[str]:
    """The run's error lines whose normalised form the baseline's log does not have (once each)."""
    known = {normalise(line) for line in baseline_log.splitlines()}
    found: dict[str, str] = {}
    for line in run_log.splitlines():
        if not is_error_line(line):
            continue
        key = normalise(line)
        if key not in known and key not in found:
            found[key] = _DOCKER_STAMP.sub("", line.rstrip())
    return list(found.values())


def diff_runs(
    run: RecordedRun, baseline: RecordedRun, threshold: SlowerThreshold | None = None
) -> RunDiff:
    """Compare two recorded runs (pure apart from reading their logs and manifests)."""
    threshold = threshold or SlowerThreshold()
    now, then = run.outcome, baseline.outcome
    steps = _step_changes(now.steps, then.steps)
    status, headline = _status(now, then, steps)
    return RunDiff(
        run=_side(run),
        baseline=_side(baseline),
        status=status,
        headline=headline,
        steps=steps,
        timings=_timings(now, then, threshold),
        new_error_lines=_log_changes(run.path, baseline.path),
        threshold=threshold,
    )


def compare_runs(
    settings: EnvkitSettings, run_ref: str, baseline_ref: str = LATEST_GREEN
) -> tuple[RunDiff, list[Path]]:
    """`invoke diff`: find both runs, diff them, write diff.md and diff.json into the run's dir."""
    run = read_run(find_run(settings, run_ref))
    baseline = read_run(_baseline_path(settings, run, baseline_ref))
    diff = diff_runs(run, baseline, SlowerThreshold.of(settings))
    return diff, write_diff(diff, run.path, Redactor(settings.secret_values()))


def append_baseline_diff(
    settings: EnvkitSettings,
    artifact_dir: Path,
    baseline_ref: str,
    redactor: Redactor,
    environ: Mapping[str, str] | None = None,
) -> RunDiff:
    """Diff a finished run against its baseline; write diff.md/json, append it to report.md.

    When `GITHUB_STEP_SUMMARY` (in `environ`) names a file, the diff is appended there too.
    """
    run = read_run(artifact_dir)
    baseline = read_run(_baseline_path(settings, run, baseline_ref))
    diff = diff_runs(run, baseline, SlowerThreshold.of(settings))
    write_diff(diff, artifact_dir, redactor)
    section = redactor(diff.markdown(level=2))
    try:
        with (artifact_dir / REPORT_NAME).open("a", encoding="utf-8") as report:
            report.write("\n" + section)
    except OSError as exc:
        raise FileAccessError(
            f"The baseline diff could not be added to {artifact_dir / REPORT_NAME}: {exc}; "
            f"it is in {artifact_dir / DIFF_MD}.",
            path=artifact_dir / REPORT_NAME,
        ) from exc
    step_summary = (environ if environ is not None else {}).get(STEP_SUMMARY_ENV, "")
    if step_summary:
        append_step_summary(Path(step_summary), section)
    return diff


def write_diff(diff: RunDiff, artifact_dir: Path, redactor: Redactor) -> list[Path]:
    """Write diff.md and diff.json into `artifact_dir`, redacted; return their paths."""
    contents = {
        DIFF_MD: diff.markdown(),
        DIFF_JSON: json.dumps(diff.to_dict(), indent=2, ensure_ascii=False) + "\n",
    }
    written = []
    for name, text in contents.items():
        path = artifact_dir / name
        try:
            path.write_text(redactor(text), encoding="utf-8")
        except OSError as exc:
            raise FileAccessError(
                f"Could not write {path}: {exc}. Check that the run's directory is writable.",
                path=path,
            ) from exc
        written.append(path)
    return written


def _baseline_path(settings: EnvkitSettings, run: RecordedRun, ref: str) -> Path:
    if ref in ("", LATEST_GREEN):
        return latest_green(settings, run)
    return find_run(settings, ref)


def _side(run: RecordedRun) -> RunSide:
    outcome = run.outcome
    return RunSide(
        run_id=outcome.run_id,
        path=str(run.path),
        verdict=outcome.verdict,
        failure_class=outcome.failure.failure_class if outcome.failure else None,
        git_commit=_commit(run.path),
    )


def _commit(path: Path) -> str | None:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("git_commit") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _step_changes(now: list[StepResult], then: list[StepResult]) -> list[StepChange]:
    before = {s.name: s for s in then}
    after = {s.name: s for s in now}
    changes = []
    for name in dict.fromkeys([*after, *before]):
        old, new = before.get(name), after.get(name)
        was, now_status = old.status if old else "absent", new.status if new else "absent"
        if was == now_status and was != "failed":
            continue
        either = new or old
        tier = either.tier if either is not None else ""
        error = new.error if new is not None and new.status == "failed" else None
        changes.append(StepChange(name, tier, was, now_status, _change(was, now_status), error))
    return changes


def _change(was: str, now: str) -> str:
    if was == "absent":
        return "new"
    if now == "absent":
        return "gone"
    if now == "passed":
        return "recovered"
    if was == "passed":
        return "regressed" if now == "failed" else "not run"
    return "still failing" if now == "failed" else "not run"


def _status(now: RunOutcome, then: RunOutcome, steps: list[StepChange]) -> tuple[DiffStatus, str]:
    cls_now = now.failure.failure_class if now.failure else None
    cls_then = then.failure.failure_class if then.failure else None
    regressed = [s.name for s in steps if s.change == "regressed"]
    recovered = [s.name for s in steps if s.change == "recovered"]
    if now.verdict == "passed" and then.verdict == "passed":
        if not steps:
            return "stable", "both runs passed every step; no step changed its status."
        return "changed", "both runs passed, but their steps differ (" + _names(steps) + ")."
    if now.verdict != "passed" and then.verdict == "passed":
        where = f" at step {', '.join(regressed)}" if regressed else ""
        return "regressed", f"the baseline passed; this run failed{where} with `{cls_now}`."
    if now.verdict == "passed":
        where = f" (steps {', '.join(recovered)} pass again)" if recovered else ""
        return "recovered", f"the baseline failed with `{cls_then}`; this run passed{where}."
    if cls_now == cls_then:
        return "still-failing", f"both runs failed with `{cls_now}`."
    return "still-failing", f"the failure class changed from `{cls_then}` to `{cls_now}`."


def _names(steps: Iterable[StepChange]) -> str:
    return ", ".join(f"{s.name}: {s.change}" for s in steps)


_PHASES = (("total wall time", "total"), ("images", "images"), ("stack start", "start"))
_LATE_PHASES = (("collect", "collect"), ("teardown", "teardown"))


def _timings(now: RunOutcome, then: RunOutcome, threshold: SlowerThreshold) -> list[TimingDelta]:
    labels = {**then.tier_labels, **now.tier_labels}
    tiers = dict.fromkeys(tier_key(s.tier) for s in [*now.steps, *then.steps])
    phases = [*_PHASES, *((labels.get(k, k), k) for k in tiers), *_LATE_PHASES]
    rows = []
    for label, key in phases:
        old, new = then.timings.get(key), now.timings.get(key)
        if old is not None or new is not None:
            rows.append(TimingDelta("phase", label, old, new, threshold.judge(old, new)))
    ready_then, ready_now = then.seconds_to_ready(), now.seconds_to_ready()
    for service in dict.fromkeys([*now.services, *then.services]):
        old, new = ready_then.get(service), ready_now.get(service)
        rows.append(TimingDelta("service", service, old, new, threshold.judge(old, new)))
    return rows


def _log_changes(run_dir: Path, baseline_dir: Path) -> dict[str, list[str]]:
    changes = {}
    for path in sorted(run_dir.glob("*.log")):
        other = baseline_dir / path.name
        baseline_log = other.read_text(errors="replace") if other.is_file() else ""
        new = new_error_lines(path.read_text(errors="replace"), baseline_log)
        if new:
            changes[path.name] = new[:MAX_NEW_LINES]
    return changes


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
