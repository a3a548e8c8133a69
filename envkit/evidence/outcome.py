"""What a run produced: each step's evidence, the phases' timings, the verdict.

Plain data shared by the orchestrator (which fills it), the artifact writers
(which render it) and the history (which stores it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal


def utc_now() -> str:
    """The current UTC time in ISO 8601 with milliseconds and a Z, as every artifact shows it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


StepStatus = Literal["passed", "failed", "skipped"]
NOT_STARTED = "not run: the stack did not start"  # a skipped step's result when nothing ran
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

    failure_class: str  # e.g. "service-never-ready", "command-failed", "step-failed"
    message: str
    first_log: str | None = None  # file name in the artifact directory, e.g. "api.log"
    quotes: list[str] = field(default_factory=list)  # relevant log lines, already redacted


@dataclass(frozen=True)
class ServiceRow:
    """One service of a run: image, container, URLs, state, log and readiness timings."""

    image: str = ""
    container: str | None = None
    host_url: str | None = None
    host_port: int | None = None
    network_url: str | None = None
    state: str = ""
    log: str = ""  # the log file's path
    created_s: float | None = None  # seconds since the environment began starting
    started_s: float | None = None
    ready_s: float | None = None
    seconds_to_ready: float | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> ServiceRow:
        """The row of `Environment.endpoints()` or of the `up` state file (other keys ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in row.items() if key in known})


def service_rows(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, ServiceRow]:
    """Typed rows for every service of `Environment.endpoints()` or the `up` state."""
    return {name: ServiceRow.from_mapping(row) for name, row in rows.items()}


@dataclass(frozen=True)
class PhaseTime:
    """One row of a run's performance table: what took the time, and how many seconds."""

    label: str
    seconds: float | None  # None when the phase did not happen (e.g. no images step)


def tier_key(tier: str) -> str:
    """The timings key of a tier: `tier-a` -> `tier_a`."""
    return tier.replace("-", "_")


@dataclass(frozen=True)
class RepeatRow:
    """One run of a `--repeat` series: its verdict, main timings and failure class."""

    run_id: str
    verdict: Verdict
    total_s: float
    start_s: float
    tiers: dict[str, float]  # tier of the scenario -> seconds, in the scenario's order
    failure_class: str | None

    @classmethod
    def of(cls, outcome: RunOutcome) -> RepeatRow:
        """The row of one finished run (a phase or tier that did not run counts 0 s)."""
        t = outcome.timings
        tiers = {s.tier: t.get(tier_key(s.tier), 0.0) for s in outcome.steps}
        return cls(
            outcome.run_id, outcome.verdict, t.get("total", 0.0), t.get("start", 0.0), tiers,
            outcome.failure.failure_class if outcome.failure else None,
        )  # fmt: skip


@dataclass
class RunOutcome:
    """Everything a scenario run leaves for its artifacts."""

    run_id: str
    stack: str
    verdict: Verdict
    started_at: str
    ended_at: str
    steps: list[StepResult] = field(default_factory=list)
    # phase -> seconds: "images", "start", one per tier ("tier_a"), "collect", "teardown", "total"
    timings: dict[str, float] = field(default_factory=dict)
    services: dict[str, ServiceRow] = field(default_factory=dict)
    failure: Failure | None = None
    replay_command: str = ""
    # timing key ("tier_a") -> the label report.md gives the tier's time (from the scenario)
    tier_labels: dict[str, str] = field(default_factory=dict)
    run_name: str = "run"  # the stack's name for its runs (report title, JUnit suite)
    # scenario events: each runtime fault injected (time, step, kind, args, seed)
    events: list[dict[str, Any]] = field(default_factory=list)
    engine: str = ""  # the endpoint of the engine that ran it, e.g. tcp://10.0.0.5:2375

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (summary.json's content)."""
        return asdict(self)

    def seconds_to_ready(self) -> dict[str, float]:
        """Service -> seconds from creation to ready, for the services that got ready."""
        return {
            name: float(row.seconds_to_ready)
            for name, row in self.services.items()
            if row.seconds_to_ready is not None
        }
