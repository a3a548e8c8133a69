"""Recorded runs by name: an artifact directory or a run id, and the latest green run.

`find_run` turns what a user typed (`artifacts/<run id>`, an absolute path, or a bare
run id found under the artifact root) into the run's directory; `read_outcome`
reads its summary.json back into a `RunOutcome`; `latest_green` finds the newest
passed run of the same stack, from the history first, else from the artifact root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from envkit.errors import HistoryError, RunLookupError
from envkit.evidence.artifacts import SUMMARY_NAME
from envkit.evidence.history import fetch_runs, history_file, open_history
from envkit.evidence.outcome import RunOutcome
from envkit.spec.settings import EnvkitSettings

LATEST_GREEN = "latest-green"
_OUTCOME = TypeAdapter(RunOutcome)
_HISTORY_DEPTH = 500  # how far back the history is searched for a green run


@dataclass(frozen=True)
class RecordedRun:
    """A run's artifact directory and the outcome its summary.json recorded."""

    path: Path
    outcome: RunOutcome


def find_run(settings: EnvkitSettings, ref: str, *, cwd: Path | None = None) -> Path:
    """The run directory `ref` names: a path (from `cwd`, then the project root) or a run id."""
    given = Path(ref).expanduser()
    bases = [cwd or Path.cwd(), settings.workspace.root, settings.workspace.artifacts]
    candidates = [given] if given.is_absolute() else [base / given for base in bases]
    for candidate in candidates:
        if (candidate / SUMMARY_NAME).is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise RunLookupError(
        f"No run {ref!r} was found (looked for {SUMMARY_NAME} in {tried}). Name a run's "
        "artifact directory (e.g. artifacts/<stack>-20261201T120000-1a2b3c4d) or its run id; "
        "`invoke history` lists recent runs.",
        path=candidates[0],
    )


def read_run(path: Path) -> RecordedRun:
    """The run recorded in the artifact directory `path` (its summary.json)."""
    summary = path / SUMMARY_NAME
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
        outcome = _OUTCOME.validate_python(data)
    except OSError as exc:
        raise RunLookupError(
            f"The run's summary {summary} could not be read ({exc}); is {path} a run's "
            "artifact directory?",
            path=summary,
        ) from exc
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise RunLookupError(
            f"The run's summary {summary} is not a summary envkit wrote ({first}); "
            "compare runs whose artifacts are complete.",
            path=summary,
        ) from exc
    return RecordedRun(path, outcome)


def latest_green(settings: EnvkitSettings, run: RecordedRun) -> Path:
    """The newest passed run of `run`'s stack other than `run` whose artifacts are here."""
    outcome = run.outcome
    for path in _green_in_history(settings, outcome) + _green_in_artifacts(settings, outcome):
        if (path / SUMMARY_NAME).is_file() and path.resolve() != run.path.resolve():
            return path.resolve()
    raise RunLookupError(
        f"No passed run of the stack {outcome.stack!r} with its artifacts is recorded (history: "
        f"{history_file(settings)}, artifacts: {settings.workspace.artifacts}); run "
        "`invoke tier-b` once on a good commit, or give --baseline a run's directory.",
        path=settings.workspace.artifacts,
    )


def _green_in_history(settings: EnvkitSettings, run: RunOutcome) -> list[Path]:
    if not history_file(settings).is_file():
        return []
    try:
        with open_history(settings) as conn:
            records = fetch_runs(conn, _HISTORY_DEPTH)
    except HistoryError:
        return []  # a damaged history: the artifact root still has the runs
    root = settings.workspace.root
    return [
        root / r.artifact_dir
        for r in records
        if r.verdict == "passed" and r.stack == run.stack and r.run_id != run.run_id
    ]


def _green_in_artifacts(settings: EnvkitSettings, run: RunOutcome) -> list[Path]:
    """Passed runs of the stack under the artifact root, newest first by start time."""
    found: list[tuple[str, Path]] = []
    for summary in settings.workspace.artifacts.glob(f"*/{SUMMARY_NAME}"):
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("run_id") == run.run_id:
            continue
        if data.get("verdict") == "passed" and data.get("stack") == run.stack:
            found.append((str(data.get("started_at", "")), summary.parent))
    return [path for _, path in sorted(found, reverse=True)]
