"""`invoke tier-b`: isolated stack → scenario steps → collect → teardown, evidence always kept.

Whatever happens (a step fails, a service never gets ready, Ctrl-C), the run's
artifact directory ends up with every service log, the orchestrator log,
summary.json, junit.xml and report.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from envkit.commands import DEFAULT_STACK, connect, stack_images
from envkit.environment import Environment, new_run_id
from envkit.errors import EnvkitError, ServiceNotReady
from envkit.images import PROJECT_ROOT
from envkit.orchestrator import Step, load_scenario, run_steps, step_context
from envkit.outcome import Failure, RunOutcome, StepResult
from envkit.redact import Redactor
from envkit.settings import EnvkitSettings
from envkit.signals import interruptible
from envkit.stack import StackSpec, load_stack, resolve_stack

Progress = Callable[[str], None]
TIERS = ("tier-a", "tier-b")
QUOTED_LINES = 12


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _noop(message: str) -> None:
    pass


def orchestrator_log_name(stack: StackSpec) -> str:
    """E.g. `mgm-tier-b-orchestrator.log`."""
    return f"{stack.name}-tier-b-orchestrator.log"


def run_tier_b(
    settings: EnvkitSettings,
    stack_path: Path = DEFAULT_STACK,
    *,
    only: str | None = None,
    keep: bool = False,
    progress: Progress = _noop,
) -> tuple[RunOutcome, Path]:
    """Run the stack's scenario once; return the outcome and the artifact directory."""
    if only is not None and only not in TIERS:
        raise EnvkitError(f"--only {only!r} is not a tier; use one of: {', '.join(TIERS)}.")
    stack = load_stack(stack_path)
    resolved = resolve_stack(stack, settings)
    if not stack.scenario:
        raise EnvkitError(f'{stack.source} names no scenario; add `scenario = "pkg.module"`.')
    steps = [s for s in load_scenario(stack.scenario, settings) if only in (None, s.tier)]
    run_id = new_run_id(stack.name)
    artifact_dir = (PROJECT_ROOT / settings.artifact_root / run_id).resolve()
    artifact_dir.mkdir(parents=True, exist_ok=True)
    redactor = Redactor(settings.secret_values())
    outcome = RunOutcome(run_id, stack.name, "failed", _now(), "")
    outcome.replay_command = "./inv tier-b" + (f" --only {only}" if only else "")
    if stack_path.resolve() != DEFAULT_STACK.resolve():
        outcome.replay_command += f" --stack {stack_path}"
    started = time.monotonic()
    env: Environment | None = None
    try:
        with interruptible():
            client = connect(settings)
            phase = time.monotonic()
            progress("images")
            images = stack_images(settings, client, stack, progress)
            outcome.timings["images"] = time.monotonic() - phase
            env = Environment(
                stack, resolved, images, run_id=run_id, artifact_dir=artifact_dir,
                redactor=redactor, client=client, mode="keep" if keep else "isolated",
            )  # fmt: skip
            _run_in(env, steps, settings, outcome, progress, keep)
    except ServiceNotReady as exc:
        outcome.failure = Failure(
            "service-never-ready", str(exc).splitlines()[0], exc.log_path.name,
            exc.log_tail.splitlines()[-QUOTED_LINES:],
        )  # fmt: skip
    except KeyboardInterrupt:
        outcome.failure = Failure("interrupted", "The run was interrupted (Ctrl-C or SIGTERM).")
        raise
    except EnvkitError as exc:
        outcome.failure = Failure("envkit-error", str(exc))
    finally:
        _finish(outcome, env, steps, started, artifact_dir, redactor)
    return outcome, artifact_dir


def _run_in(
    env: Environment,
    steps: list[Step],
    settings: EnvkitSettings,
    outcome: RunOutcome,
    progress: Progress,
    keep: bool,
) -> None:
    passed = False
    try:
        phase = time.monotonic()
        progress(f"starting {len(env.runs)} services")
        env.start()
        outcome.timings["start"] = time.monotonic() - phase
        outcome.services = env.endpoints()
        urls = {n: row["host_url"] for n, row in outcome.services.items() if row["host_url"]}
        log_path = env.artifact_dir / orchestrator_log_name(env.stack)
        with step_context(urls, settings, log_path, env.redactor) as ctx:
            progress("running the checks")
            outcome.steps = run_steps(
                steps, ctx, on_step=lambda r: progress(f"{r.name}: {r.status}")
            )
        passed = all(r.status == "passed" for r in outcome.steps)
        if not passed:
            outcome.failure = _step_failure(env, outcome.steps, steps)
    finally:
        if keep and not passed:
            env.keep()
        else:
            phase = time.monotonic()
            env.collect()
            outcome.timings["collect"] = time.monotonic() - phase
            phase = time.monotonic()
            env.teardown()
            outcome.timings["teardown"] = time.monotonic() - phase


def _step_failure(env: Environment, results: list[StepResult], steps: list[Step]) -> Failure:
    failed = next(r for r in results if r.status == "failed")
    step = next(s for s in steps if s.name == failed.name)
    run = env.runs.get(step.log_of)
    log_name = run.log_path.name if run else orchestrator_log_name(env.stack)
    tail = run.stream.tail(QUOTED_LINES) if run and run.stream else ""
    return Failure(f"step-failed:{failed.name}", failed.error or "", log_name, tail.splitlines())


def _finish(
    outcome: RunOutcome,
    env: Environment | None,
    steps: list[Step],
    started: float,
    artifact_dir: Path,
    redactor: Redactor,
) -> None:
    from envkit.artifacts import write_artifacts

    ran = {r.name for r in outcome.steps}
    outcome.steps += [StepResult(s.name, s.tier, "skipped") for s in steps if s.name not in ran]
    for tier in TIERS:
        spent = sum(r.duration_s for r in outcome.steps if r.tier == tier)
        if any(r.tier == tier and r.status != "skipped" for r in outcome.steps):
            outcome.timings[tier.replace("-", "_")] = spent
    if env is not None and not outcome.services:
        outcome.services = env.endpoints()
    passed = bool(outcome.steps) and all(r.status == "passed" for r in outcome.steps)
    outcome.verdict = "passed" if passed and outcome.failure is None else "failed"
    outcome.timings["total"] = time.monotonic() - started
    outcome.ended_at = _now()
    write_artifacts(outcome, artifact_dir, redactor)
