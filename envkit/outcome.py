"""What a run produced: each step's evidence, the phases' timings, the verdict.

Plain data shared by the orchestrator (which fills it), the artifact writers
(which render it) and the history (which stores it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal


def utc_now() -> str:
    """The current UTC time in ISO 8601 with milliseconds and a Z, as every artifact shows it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


StepStatus = Literal["passed", "failed", "skipped"]
Verdict = Literal["passed", "failed"]


@dataclass
class StepResult:
    """One named check: what was asked, what came back, how long it took, and the verdict."""

    name: str
    tier: str  # e.g. "tier-a", "tier-b"
    status: StepStatus
    started_at: str = ""  # ISO 8601, UTC
    duration_s: float = 0.0
    request: str | None = None  # e.g. "POST http://127.0.0.1:9051/emit"
    status_code: int | None = None
    result: str = ""  # one sentence: what the step established
    error: str | None = None  # why it failed (None when passed or skipped)
    evidence: dict[str, Any] = field(default_factory=dict)  # bodies, journal entries, ids


@dataclass
class Failure:
    """Why a run failed, for people: the root-cause class and where to look first."""

    failure_class: str  # e.g. "service-not-ready", "helix-auth-mismatch", "step-failed"
    message: str
    first_log: str | None = None  # file name in the artifact directory, e.g. "mgm-backend.log"
    quotes: list[str] = field(default_factory=list)  # relevant log lines, already redacted


@dataclass
class RunOutcome:
    """Everything a `tier-b` run leaves for its artifacts."""

    run_id: str
    stack: str
    verdict: Verdict
    started_at: str
    ended_at: str
    steps: list[StepResult] = field(default_factory=list)
    # phase -> seconds: "images", "start", "tier_a", "tier_b", "collect", "teardown", "total"
    timings: dict[str, float] = field(default_factory=dict)
    # service -> {"image", "log", "created_s", "started_s", "ready_s", "seconds_to_ready", ...}
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: Failure | None = None
    replay_command: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (summary.json's content)."""
        return asdict(self)
