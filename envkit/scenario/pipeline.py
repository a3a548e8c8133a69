"""One scenario run, whatever the stack: run the steps, classify, collect, write, record.

`run_scenario` is the single pipeline behind `invoke tier-b`, `replay`,
`orchestrate` and `demo`. What differs between those commands is the target
(an isolated `Environment` started for the run, or the `up` stack, see
`UpStack`) and the observer (progress messages, or the demo's narration); the
step loop, the failure classification (`classify_failure`), the artifacts and
the history record are this module's, once.

    scenario_for ──► ScenarioRun ──► run_scenario(run, target, observer)
                                        target.start ─► run_steps ─► target.close
                                        classify_failure ─► target.record ─► finish_outcome
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import docker

from envkit.errors import (
    BuildError,
    EngineLostError,
    EnvkitError,
    OptionError,
    ScenarioLoadError,
    ServiceNotReady,
    ServiceStartFailed,
)
from envkit.evidence.artifacts import write_artifacts
from envkit.evidence.history import record_run
from envkit.evidence.manifest import git_commit
from envkit.evidence.outcome import (
    NOT_STARTED,
    Failure,
    RunOutcome,
    ServiceRow,
    StepResult,
    tier_key,
    utc_now,
)
from envkit.evidence.redact import Redactor
from envkit.lifecycle.commands import artifact_dir_for, save_logs
from envkit.lifecycle.environment import new_run_id
from envkit.lifecycle.signals import interruptible
from envkit.lifecycle.state import UpState
from envkit.logs import Progress, log, no_progress
from envkit.scenario.orchestrator import (
    Scenario,
    Step,
    load_scenario,
    run_steps,
    step_context,
)
from envkit.spec.scenariofile import load_scenario_file
from envkit.spec.settings import EnvkitSettings
from envkit.spec.stack import StackSpec

BUILD_FAILED = "image-build-failed"  # a service's build context did not build
INTERRUPTED = "interrupted"
EXITED_AT_START = "service-exited-at-start"  # a container stopped before it got ready
ENGINE_REFUSED = "engine-refused-start"  # the engine would not create or start a container
SERVICE_DIED = "service-died"  # a container stopped after it was ready, during the steps
ENGINE_LOST = "engine-lost"  # the run's engine stopped answering mid-run
QUOTED_LINES = 12


class Target(Protocol):
    """Where a scenario runs: makes the services ready and brings their logs home."""

    def start(self, outcome: RunOutcome) -> dict[str, ServiceRow]:
        """Make every service ready and return its row (phase timings go into `outcome`)."""
        ...

    def close(self, outcome: RunOutcome, passed: bool) -> None:
        """Put every service's log into the artifact directory (and tear down what it owns)."""
        ...

    def services(self) -> dict[str, ServiceRow]:
        """The services' rows as they are now (for a run whose start failed)."""
        ...

    def log_names(self) -> dict[str, str]:
        """Service -> the file name of its log in the artifact directory."""
        ...

    def record(self) -> None:
        """Write what only this kind of run leaves (an isolated run's manifest.json)."""
        ...


class StepObserver(Protocol):
    """Called around each step that runs (skipped steps are not observed)."""

    def before_step(self, step: Step) -> None:
        """The step is about to run."""
        ...

    def after_step(self, result: StepResult) -> None:
        """The step ran; `result` is final."""
        ...


@dataclass(frozen=True)
class ProgressObserver:
    """Reports each step's result as `name: status` to a `Progress` line."""

    progress: Progress = no_progress

    def before_step(self, step: Step) -> None:
        """Nothing to say before a step."""

    def after_step(self, result: StepResult) -> None:
        """E.g. `emit-enrollment: passed`."""
        self.progress(f"{result.name}: {result.status}")


@dataclass(frozen=True)
class ScenarioRun:
    """One run to make: settings, the stack and its scenario, its id and artifact directory."""

    settings: EnvkitSettings
    stack: StackSpec
    scenario: Scenario
    run_id: str
    artifact_dir: Path
    redactor: Redactor
    replay_command: str = ""
    record_history: bool = False  # only runs on a stack of their own go into the history
    engine: str = ""  # the endpoint of the engine the run is placed on

    @property
    def orchestrator_log(self) -> Path:
        """The orchestrator's own log in the artifact directory."""
        return self.artifact_dir / self.stack.orchestrator_log_name


def new_run(
    settings: EnvkitSettings,
    stack: StackSpec,
    scenario: Scenario,
    *,
    replay_command: str = "",
    record_history: bool = False,
) -> ScenarioRun:
    """A run with a new id; its artifact directory `<artifact root>/<run id>` exists."""
    run_id = new_run_id(stack.name)
    artifact_dir = artifact_dir_for(settings, run_id)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    redactor = Redactor(settings.secret_values())
    return ScenarioRun(
        settings, stack, scenario, run_id, artifact_dir, redactor, replay_command, record_history
    )


def scenario_for(
    stack: StackSpec, settings: EnvkitSettings, only: str | None, scenario_ref: str | None = None
) -> Scenario:
    """The scenario (`scenario_ref`, else the stack's), restricted to one tier when `only` names it.

    A reference ending in `.toml` is a scenario file: relative to the current
    directory when given, relative to the stack file when the stack names it.
    """
    ref = scenario_ref or stack.scenario
    if not ref:
        raise ScenarioLoadError(
            f'{stack.source} names no scenario; add `scenario = "pkg.module"` or '
            '`scenario = "scenario.toml"` to its [stack] table, or pass --scenario.',
            ref=None,
        )
    if ref.endswith(".toml"):
        path = Path(ref) if scenario_ref else stack.source.parent / ref
        scenario = load_scenario_file(path, stack, settings)
    else:
        scenario = load_scenario(ref, settings, stack.source)
    tiers = list(dict.fromkeys(s.tier for s in scenario.steps))
    if only is not None and only not in tiers:
        raise OptionError(
            f"--only {only!r} is not a tier of the scenario ({ref}); use one of: "
            f"{', '.join(tiers)}.",
            option="--only",
        )
    return dataclasses.replace(
        scenario, steps=[s for s in scenario.steps if only in (None, s.tier)]
    )


def run_scenario(
    run: ScenarioRun,
    target: Target,
    observer: StepObserver | None = None,
    progress: Progress = no_progress,
) -> RunOutcome:
    """Start the target, run the steps (fail fast), collect, classify, write the artifacts.

    Whatever happens (a step fails, a service never gets ready, an image does
    not build, Ctrl-C or SIGTERM), the logs are collected and summary.json,
    junit.xml and report.md are written; an interruption is then raised again.
    """
    observer = observer or ProgressObserver(progress)
    outcome = RunOutcome(
        run.run_id,
        run.stack.name,
        "failed",
        utc_now(),
        "",
        replay_command=run.replay_command,
        run_name=run.stack.run_name,
        engine=run.engine,
    )
    started = time.monotonic()
    error: BaseException | None = None
    try:
        with interruptible():
            _start_and_run(run, target, outcome, observer, progress)
    except KeyboardInterrupt as exc:
        error = exc
        raise
    except EnvkitError as exc:
        error = exc
    finally:
        if not outcome.services:
            outcome.services = target.services()
        outcome.failure = classify_failure(
            run.scenario,
            outcome.steps,
            error=error,
            logs=collected_logs(run.artifact_dir),
            log_names=target.log_names(),
            default_log=run.orchestrator_log.name,
            services=outcome.services,
        )
        target.record()
        history = run.settings if run.record_history else None
        finish_outcome(outcome, run.scenario, started, run.artifact_dir, run.redactor, history)
    return outcome


def _start_and_run(
    run: ScenarioRun,
    target: Target,
    outcome: RunOutcome,
    observer: StepObserver,
    progress: Progress,
) -> None:
    passed = False
    try:
        outcome.services = target.start(outcome)
        urls = {name: row.host_url for name, row in outcome.services.items() if row.host_url}
        with step_context(
            urls, run.settings, run.orchestrator_log, run.redactor, run_id=run.run_id
        ) as ctx:
            progress("running the checks")
            outcome.steps = run_steps(
                run.scenario.steps,
                ctx,
                before_step=observer.before_step,
                on_step=observer.after_step,
            )
        passed = all(r.status == "passed" for r in outcome.steps)
    finally:
        target.close(outcome, passed)  # before classifying: the logs it quotes are complete


def collected_logs(artifact_dir: Path) -> dict[str, str]:
    """Every `*.log` of a run's artifact directory, by file name."""
    return {p.name: p.read_text(errors="replace") for p in artifact_dir.glob("*.log")}


def classify_failure(
    scenario: Scenario,
    steps: Sequence[StepResult],
    *,
    error: BaseException | None = None,
    logs: Mapping[str, str] | None = None,
    log_names: Mapping[str, str] | None = None,
    default_log: str = "",
    services: Mapping[str, ServiceRow] | None = None,
) -> Failure | None:
    """Why a run failed (None when nothing did), the one rule every command uses.

    In order: an interruption; the run's engine lost mid-run (`engine-lost`); a
    container the engine refused or that exited at start (`engine-refused-start`,
    `service-exited-at-start`); a service that never got ready (the scenario's
    `not_ready` triage, else `service-never-ready`); an image that did not build; any
    other envkit error; a service that got ready and then stopped during the steps
    (`service-died`, from `services`, the rows taken before the stack was stopped);
    then the first failed step, named by the scenario's
    classifier (a module's own matrix, a scenario file's `command-failed`/`step-timeout`),
    else `step-failed:<step>` quoting the tail of the log of the service the step
    names (`log_names`: service -> log file; `default_log` when it names none).
    `logs` are the run's collected logs by file name.
    """
    if isinstance(error, KeyboardInterrupt):
        return Failure(INTERRUPTED, "The run was interrupted (Ctrl-C or SIGTERM).")
    if isinstance(error, EngineLostError):
        return Failure(ENGINE_LOST, str(error), None, error.quotes)
    if isinstance(error, ServiceStartFailed):
        return _start_failed(error)
    if isinstance(error, ServiceNotReady):
        return _not_ready(scenario, error)
    if isinstance(error, BuildError):
        return Failure(BUILD_FAILED, str(error))  # the message quotes the build log
    if isinstance(error, EnvkitError):
        return Failure("envkit-error", str(error))
    logs = logs or {}
    failed = next((r for r in steps if r.status == "failed"), None)
    died = _died(services or {}, logs, failed)
    if died is not None:
        return died
    if failed is None:
        return None
    if scenario.classify is not None:
        return scenario.classify(failed, logs)
    step = next((s for s in scenario.steps if s.name == failed.name), None)
    log_name = (log_names or {}).get(step.log_of if step else "")
    quotes = logs.get(log_name, "").splitlines()[-QUOTED_LINES:] if log_name else []
    return Failure(
        f"step-failed:{failed.name}", failed.error or "", log_name or default_log, quotes
    )


def _start_failed(exc: ServiceStartFailed) -> Failure:
    message = str(exc).split("\n", 1)[0]
    if exc.refused:
        return Failure(ENGINE_REFUSED, message)
    log = exc.log_path.name if exc.log_path else None
    return Failure(EXITED_AT_START, message, log, exc.log_tail.splitlines()[-QUOTED_LINES:])


def _died(
    services: Mapping[str, ServiceRow], logs: Mapping[str, str], failed: StepResult | None
) -> Failure | None:
    """The first service that was ready and had stopped by the end of the steps, if any."""
    for name, row in services.items():
        if row.ready_s is None or row.state in ("", "running", "not started"):
            continue
        log = Path(row.log).name if row.log else ""
        # The state reads e.g. "exited (code 137, OOM-killed)" (`ContainerState.describe`).
        oom = " It was OOM-killed: it went over its memory limit." if "OOM" in row.state else ""
        during = f" Step {failed.name} failed: {failed.error}" if failed else ""
        message = f"{name} stopped during the run after it was ready: {row.state}.{oom}{during}"
        quotes = logs.get(log, "").splitlines()[-QUOTED_LINES:] if log else []
        return Failure(SERVICE_DIED, message, log or None, quotes)
    return None


def _not_ready(scenario: Scenario, exc: ServiceNotReady) -> Failure:
    message = str(exc).splitlines()[0] + f" Last probe error: {exc.last_error}; {exc.state}."
    if exc.state.startswith("exited"):
        # It stopped by itself before it got ready: the exit code says more than "never ready".
        quotes = exc.log_tail.splitlines()[-QUOTED_LINES:]
        message = (
            f"{exc.service} exited at start with code {exc.exit_code} ({exc.state}) before "
            f"its probe passed; no check ran. Last probe error: {exc.last_error}."
        )
        return Failure(EXITED_AT_START, message, exc.log_path.name, quotes)
    if scenario.not_ready is not None:
        return scenario.not_ready(exc.log_path.name, exc.log_tail, message)
    quotes = exc.log_tail.splitlines()[-QUOTED_LINES:]
    return Failure("service-never-ready", message, exc.log_path.name, quotes)


def finish_outcome(
    outcome: RunOutcome,
    scenario: Scenario,
    started: float,
    artifact_dir: Path,
    redactor: Redactor,
    history: EnvkitSettings | None = None,
) -> None:
    """Complete the outcome (skipped steps, tier timings, verdict) and write the artifacts.

    With `history`, the run is recorded in the run history too; a history that
    cannot be written is logged, never a failed run.
    """
    ran = {r.name for r in outcome.steps}
    # No step ran: they were not skipped after a failure, the stack never got to them.
    why = "" if ran else NOT_STARTED
    outcome.steps += [
        StepResult(s.name, s.tier, "skipped", result=why)
        for s in scenario.steps
        if s.name not in ran
    ]
    for tier in dict.fromkeys(r.tier for r in outcome.steps):
        if any(r.tier == tier and r.status != "skipped" for r in outcome.steps):
            spent = sum(r.duration_s for r in outcome.steps if r.tier == tier)
            outcome.timings[tier_key(tier)] = spent
    outcome.tier_labels = {tier_key(t): label for t, label in scenario.tier_labels.items()}
    passed = bool(outcome.steps) and all(r.status == "passed" for r in outcome.steps)
    outcome.verdict = "passed" if passed and outcome.failure is None else "failed"
    outcome.timings["total"] = time.monotonic() - started
    outcome.ended_at = utc_now()
    write_artifacts(outcome, artifact_dir, redactor)
    if history is None:  # `orchestrate` and the demo reuse the `up` stack: not tier-b runs
        return
    try:
        record_run(history, outcome, artifact_dir, git_commit(history.workspace.root))
    except (EnvkitError, sqlite3.Error, OSError) as exc:  # the history must never fail a run
        log.warning("This run was not added to the history: {}", exc)


@dataclass
class UpStack:
    """The `up` stack as a target: already running, left running; its logs are copied."""

    client: docker.DockerClient
    state: UpState
    artifact_dir: Path
    redactor: Redactor

    def start(self, outcome: RunOutcome) -> dict[str, ServiceRow]:
        """The running services' rows (nothing to start)."""
        return self.services()

    def close(self, outcome: RunOutcome, passed: bool) -> None:
        """Copy each container's whole log (redacted) into the artifact directory."""
        phase = time.monotonic()
        save_logs(self.client, self.state, self.artifact_dir, self.redactor)
        outcome.timings["collect"] = time.monotonic() - phase

    def services(self) -> dict[str, ServiceRow]:
        """The rows the state file recorded."""
        return self.state.services

    def log_names(self) -> dict[str, str]:
        """Service -> its log's file name, as `save_logs` writes it."""
        return {name: Path(row.log).name for name, row in self.services().items() if row.log}

    def record(self) -> None:
        """An `up` run writes no manifest: its stack was started by `invoke up`."""
