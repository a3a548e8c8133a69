"""`invoke demo`: walk a live audience through the stack's scenario, one step at a time.

The demo reuses everything the real checks use: the `up` stack (started here
unless one is already up), the stack's scenario and the scenario pipeline of
`invoke orchestrate` (`envkit.scenario.pipeline.run_scenario`), with the narration as
its step observer. Before each step it says what the step will show and which
log shows it; after it, the calls made and what came back (and, when the
scenario module has `narrate(evidence)`, the calls the services made). It writes the same
artifacts as `invoke orchestrate`, classifies a failure the same way, and
leaves the stack up for questions.

Every line goes through `say`, so the library itself never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from envkit.errors import EnvkitError, RunStateError
from envkit.evidence.outcome import Failure, RunOutcome, ServiceRow, StepResult
from envkit.lifecycle.commands import require_up, status, up
from envkit.lifecycle.state import UpState
from envkit.program import command
from envkit.scenario.orchestrator import Step
from envkit.scenario.pipeline import UpStack, new_run, run_scenario, scenario_for
from envkit.spec.settings import EnvkitSettings
from envkit.spec.stack import load_stack

Say = Callable[[str], None]


def _press_enter() -> None:
    input()


@dataclass(frozen=True)
class DemoRun:
    """What a demo run showed: its outcome, where its artifacts are, whether `up` was reused."""

    outcome: RunOutcome
    artifact_dir: Path
    reused: bool  # an `up` stack was already running

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.outcome.run_id

    @property
    def verdict(self) -> str:
        """`passed` or `failed`."""
        return self.outcome.verdict

    @property
    def steps(self) -> list[StepResult]:
        """Every step's result (the ones after a failure as skipped)."""
        return self.outcome.steps

    @property
    def failure(self) -> Failure | None:
        """Why the run failed, as `invoke tier-b` would classify it."""
        return self.outcome.failure


def run_demo(
    settings: EnvkitSettings,
    *,
    say: Say,
    pause: bool = False,
    wait: Callable[[], None] = _press_enter,
) -> DemoRun:
    """Bring the stack up (or reuse it), run the scenario step by step aloud, leave it up.

    With `pause`, `wait()` is called before each step (after the components
    table and between steps). The steps run through the same pipeline as
    `invoke orchestrate`; the narration is its step observer.
    """

    def tell(text: str) -> None:
        # The task renders with Rich: text like "[tier-a]" or a JSON list must stay literal.
        say(escape(text))

    state, reused = _stack(settings, tell)
    services = state.services
    _components(state.run_id, services, str(state.artifact_dir), tell)
    stack = load_stack(state.stack)
    scenario = scenario_for(stack, settings, None)
    run = new_run(settings, stack, scenario, replay_command=command("demo"))
    tell(f"This demo's own log (every call below): {run.orchestrator_log}")
    logs = {name: Path(row.log).name for name, row in services.items()}
    walk = _Walk(
        scenario.steps, logs, run.orchestrator_log.name, tell, wait if pause else None,
        scenario.narrate,
    )  # fmt: skip
    client, _ = require_up(settings)
    outcome = run_scenario(run, UpStack(client, state, run.artifact_dir, run.redactor), walk)
    _closing(outcome, run.artifact_dir, tell)
    return DemoRun(outcome, run.artifact_dir, reused)


def _stack(settings: EnvkitSettings, tell: Say) -> tuple[UpState, bool]:
    """The `up` stack's state: the running one when every service is up, else a new one."""
    try:
        current = status(settings)
    except EnvkitError:
        current = None
    if current is not None:
        states = {name: row.state for name, row in current.services.items()}
        if all(s == "running" for s in states.values()):
            tell(f"Reusing the stack that is already up (run {current.run_id}).")
            return current, True
        if any(s == "running" for s in states.values()):
            broken = ", ".join(f"{n}: {s}" for n, s in states.items() if s != "running")
            raise RunStateError(
                f"The `up` stack (run {current.run_id}) is only partly running ({broken}). "
                f"Remove it with `{command('down')}`, then run `{command('demo')}` again.",
                run_id=current.run_id,
            )
    tell(f"Starting the stack with `{command('up')}` (the first time, images are built).")
    return up(settings, progress=lambda message: tell(f"  up: {message}")), False


def _components(
    run_id: str, services: Mapping[str, ServiceRow], artifact_dir: str, tell: Say
) -> None:
    """The components table, as `invoke status` shows it, plus each service's log."""
    tell("")
    tell(f"Components of run {run_id} (all on 127.0.0.1):")
    rows = [("component", "host URL", "in-network URL", "log")]
    for name, row in services.items():
        rows.append((name, row.host_url or "-", row.network_url or "-", Path(row.log).name))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for r in rows:
        tell(("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))).rstrip())
    live, down = command("logs --service <component>"), command("down")
    tell(f"Live logs: `{live}`; `{down}` keeps each whole log")
    tell(f"in {artifact_dir}.")


@dataclass
class _Walk:
    """The demo's step observer: says what each step shows before it, what happened after."""

    steps: list[Step]
    logs: Mapping[str, str]  # service -> its log file name
    orchestrator_log: str
    tell: Say
    wait: Callable[[], None] | None
    # The scenario's own account of what a step's evidence shows (calls between services).
    narrate: Callable[[Mapping[str, Any]], list[str]] | None = None
    number: int = 0  # of the step running now
    tier: str = ""  # of the step running now

    def before_step(self, step: Step) -> None:
        """Pause (if asked), announce a new tier, then say what the step will show."""
        self.number += 1
        if self.wait is not None:
            self.tell("(press Enter for the next step)")
            self.wait()
        if step.tier != self.tier:
            self.tier = step.tier
            self.tell("")
            count = sum(1 for s in self.steps if s.tier == step.tier)
            self.tell(f"== {step.tier}: {count} steps")
        # What the step will show (its docstring) and which log shows it.
        doc = (step.run.__doc__ or "").strip().splitlines()
        self.tell("")
        self.tell(
            f"Step {self.number}/{len(self.steps)} {step.name}: {doc[0] if doc else step.name}"
        )
        if step.log_of in self.logs:
            live = f"live: `{command(f'logs --service {step.log_of}')}`"
            self.tell(f"  shown in: {self.logs[step.log_of]} ({live})")
        else:
            self.tell(f"  shown in: {self.orchestrator_log} (every call the checks make)")

    def after_step(self, result: StepResult) -> None:
        """Each call made (method URL -> status), then the result or the error."""
        for call in result.evidence.get("calls") or []:
            self.tell(f"  call: {call.get('request')} -> {call.get('status')}")
        for line in self.narrate(result.evidence) if self.narrate is not None else []:
            self.tell(f"    {line}")
        if result.status == "passed":
            self.tell(f"  result: {result.result} ({result.duration_s:.2f} s)")
        else:
            self.tell(f"  FAILED: {result.error}")


def _closing(outcome: RunOutcome, artifact_dir: Path, tell: Say) -> None:
    tell("")
    passed = sum(1 for r in outcome.steps if r.status == "passed")
    tell(f"Demo {outcome.verdict.upper()}: {passed} of {len(outcome.steps)} steps passed.")
    if outcome.failure is not None:
        f = outcome.failure
        tell(f"Failure class: {f.failure_class}; read first: {artifact_dir / (f.first_log or '')}")
        tell(f"  {f.message}")
    tell(f"Artifacts (orchestrator log, service logs, report.md): {artifact_dir}")
    tell("")
    tell("The stack stays up for questions. To look around:")
    tell(f"  {command('status'):<34}components, state and URLs")
    tell(
        f"  {command('logs --service backend'):<34}a service's log (add --follow to keep watching)"
    )
    for name, row in outcome.services.items():
        if row.host_url and row.host_url.startswith("http"):
            tell(f"  {row.host_url}/health  {name}")
    tell(f"  {command('down'):<34}remove the stack (its logs are kept)")
