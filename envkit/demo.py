"""`invoke demo`: walk a live audience through Tier A and Tier B, one step at a time.

The demo reuses everything the real checks use: the `up` stack (started here
unless one is already up), the stack's scenario steps and the orchestrator's
step context. Before each step it says what the step will show and which log
shows it; after it, the calls made and what came back. It writes the same
artifacts as `invoke orchestrate` and leaves the stack up for questions.

Every line goes through `say`, so the library itself never prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from envkit.commands import DEFAULT_STACK, artifact_dir_for, require_up, save_logs, status, up
from envkit.environment import new_run_id
from envkit.errors import EnvkitError, RunStateError, ScenarioLoadError
from envkit.orchestrator import Step, StepContext, load_scenario, run_steps, step_context
from envkit.outcome import RunOutcome, StepResult, utc_now
from envkit.redact import Redactor
from envkit.settings import EnvkitSettings
from envkit.stack import load_stack
from envkit.tierb import classify_steps, finish_outcome, orchestrator_log_name

Say = Callable[[str], None]


def _press_enter() -> None:
    input()


def run_demo(
    settings: EnvkitSettings,
    *,
    say: Say,
    pause: bool = False,
    wait: Callable[[], None] = _press_enter,
) -> dict[str, Any]:
    """Bring the stack up (or reuse it), run the scenario step by step aloud, leave it up.

    With `pause`, `wait()` is called before each step (after the components
    table and between steps). Returns `run_id`, `verdict`, `steps` (the step
    results), `failure`, `artifact_dir` and whether an `up` stack was `reused`.
    """

    def tell(text: str) -> None:
        # The task renders with Rich: text like "[tier-a]" or a JSON list must stay literal.
        say(escape(text))

    state, reused = _stack(settings, tell)
    _components(state, tell)
    stack = load_stack(Path(state.get("stack") or DEFAULT_STACK))
    if not stack.scenario:
        raise ScenarioLoadError(f'{stack.source} names no scenario; add `scenario = "pkg.module"`.')
    scenario = load_scenario(stack.scenario, settings)
    run_id = new_run_id(stack.name)
    artifact_dir = artifact_dir_for(settings, run_id)
    redactor = Redactor(settings.secret_values())
    outcome = RunOutcome(run_id, stack.name, "failed", utc_now(), "", services=state["services"])
    outcome.replay_command = "./inv demo"
    orchestrator_log = artifact_dir / orchestrator_log_name(stack)
    logs = {n: Path(str(row.get("log", ""))).name for n, row in state["services"].items()}
    urls = {n: row["host_url"] for n, row in state["services"].items() if row.get("host_url")}
    tell(f"This demo's own log (every call below): {orchestrator_log}")
    started = time.monotonic()
    with step_context(urls, settings, orchestrator_log, redactor) as ctx:
        walk = _Walk(logs, orchestrator_log.name, tell, wait if pause else None)
        outcome.steps = walk.run(scenario.steps, ctx)
    client, _ = require_up(settings)
    save_logs(client, state, artifact_dir, redactor)
    classify_steps(outcome, scenario, artifact_dir)
    finish_outcome(outcome, None, scenario, started, artifact_dir, redactor)
    _closing(outcome, artifact_dir, state["services"], tell)
    return {
        "run_id": outcome.run_id,
        "verdict": outcome.verdict,
        "steps": outcome.steps,
        "failure": outcome.failure,
        "artifact_dir": artifact_dir,
        "reused": reused,
    }


def _stack(settings: EnvkitSettings, tell: Say) -> tuple[dict[str, Any], bool]:
    """The `up` stack's state: the running one when every service is up, else a new one."""
    try:
        current = status(settings)
    except EnvkitError:
        current = None
    if current is not None:
        states = {name: row.get("state") for name, row in current["services"].items()}
        if all(s == "running" for s in states.values()):
            tell(f"Reusing the stack that is already up (run {current['run_id']}).")
            return current, True
        if any(s == "running" for s in states.values()):
            broken = ", ".join(f"{n}: {s}" for n, s in states.items() if s != "running")
            raise RunStateError(
                f"The `up` stack (run {current['run_id']}) is only partly running ({broken}). "
                "Remove it with `invoke down`, then run `invoke demo` again.",
                run_id=current["run_id"],
            )
    tell("Starting the stack with `invoke up` (the first time, images are built).")
    return up(settings, progress=lambda message: tell(f"  up: {message}")), False


def _components(state: Mapping[str, Any], tell: Say) -> None:
    """The components table, as `invoke status` shows it, plus each service's log."""
    tell("")
    tell(f"Components of run {state['run_id']} (all on 127.0.0.1):")
    rows = [("component", "host URL", "in-network URL", "log")]
    for name, row in state["services"].items():
        log_name = Path(str(row.get("log", ""))).name
        rows.append((name, row.get("host_url") or "-", row.get("network_url") or "-", log_name))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for r in rows:
        tell(("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))).rstrip())
    tell("Live logs: `invoke logs --service <component>`; `invoke down` keeps each whole log")
    tell(f"in {state.get('artifact_dir', '')}.")


@dataclass
class _Walk:
    """Runs steps one at a time, saying what each shows before and what happened after."""

    logs: Mapping[str, str]  # service -> its log file name
    orchestrator_log: str
    tell: Say
    wait: Callable[[], None] | None

    def run(self, steps: list[Step], ctx: StepContext) -> list[StepResult]:
        """Run `steps` in order; stop after the first failure (the rest count as skipped)."""
        results: list[StepResult] = []
        tier = ""
        for number, step in enumerate(steps, start=1):
            if self.wait is not None:
                self.tell("(press Enter for the next step)")
                self.wait()
            if step.tier != tier:
                tier = step.tier
                self.tell("")
                count = sum(1 for s in steps if s.tier == tier)
                self.tell(f"== {tier}: {count} steps")
            self.before(f"Step {number}/{len(steps)}", step)
            (result,) = run_steps([step], ctx)
            results.append(result)
            self.after(result)
            if result.status == "failed":
                break
        return results

    def before(self, label: str, step: Step) -> None:
        """What the step will show (its docstring) and which log shows it."""
        doc = (step.run.__doc__ or "").strip().splitlines()
        self.tell("")
        self.tell(f"{label} {step.name}: {doc[0] if doc else step.name}")
        if step.log_of in self.logs:
            live = f"live: `invoke logs --service {step.log_of}`"
            self.tell(f"  shown in: {self.logs[step.log_of]} ({live})")
        else:
            self.tell(f"  shown in: {self.orchestrator_log} (every call the checks make)")

    def after(self, result: StepResult) -> None:
        """Each call made (method URL -> status), then the result or the error."""
        for call in result.evidence.get("calls") or []:
            self.tell(f"  call: {call.get('request')} -> {call.get('status')}")
        for line in _recorded_calls(result.evidence):
            self.tell(f"    {line}")
        if result.status == "passed":
            self.tell(f"  result: {result.result} ({result.duration_s:.2f} s)")
        else:
            self.tell(f"  FAILED: {result.error}")


def _recorded_calls(evidence: Mapping[str, Any]) -> list[str]:
    """The calls the services made on the step's behalf, as the mocks recorded them."""
    lines = []
    if isinstance(evidence.get("backend_status"), int):
        lines.append(
            f"mock-eventsub -> backend: POST /api/twitch/eventsub -> {evidence['backend_status']}"
        )
    run = evidence.get("desktop_run")
    for step in run.get("steps") or [] if isinstance(run, dict) else []:
        lines.append(
            f"synthetic-desktop -> backend: {step.get('method')} {step.get('path')} "
            f"-> {step.get('status')} ({step.get('name')})"
        )
    journal = evidence.get("helix_requests")
    for entry in journal if isinstance(journal, list) else []:
        lines.append(
            f"backend -> mock-helix: {entry.get('method')} {entry.get('path')} "
            f"-> {entry.get('status')}"
        )
    return lines


def _closing(
    outcome: RunOutcome, artifact_dir: Path, services: Mapping[str, Any], tell: Say
) -> None:
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
    tell("  invoke status                     components, state and URLs")
    tell("  invoke logs --service backend     a service's log (add --follow to keep watching)")
    for name, row in services.items():
        url = row.get("host_url")
        if url and str(url).startswith("http"):
            tell(f"  {url}/health  {name}")
    tell("  invoke down                       remove the stack (its logs are kept)")
