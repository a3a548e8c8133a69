"""Run a scenario's named steps against a running stack, fail fast, keep every step's evidence.

A scenario is a module with `steps(settings) -> list[Step]` (and optionally
`classify`, `not_ready` and `CLASSES`, its triage), usually next to its stack
file. Each step is a function of a `StepContext`:
it calls services through `ctx.http(...)` (each call is logged and recorded)
and states what must hold through `ctx.expect(...)`. The first failing step
stops the run; the steps after it are recorded as skipped.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from envkit.errors import ScenarioLoadError
from envkit.evidence.outcome import Failure, StepResult, utc_now
from envkit.evidence.redact import Redactor
from envkit.program import command
from envkit.spec.settings import EnvkitSettings
from envkit.spec.stacksettings import stack_import_path

SNIPPET = 600  # characters of a response body kept as evidence


class CheckFailed(Exception):
    """A step's expectation did not hold (internal: becomes the step's error)."""


@dataclass(frozen=True)
class Step:
    """A named check: its tier, the service whose log explains a failure, and what it does."""

    name: str
    tier: str
    run: Callable[[StepContext], str]  # returns one sentence: what the step established
    log_of: str = ""  # service whose log to read first when this step fails


class OrchestratorLog:
    """The orchestrator's own log file: one timestamped, redacted line per event."""

    def __init__(self, path: Path, redactor: Redactor) -> None:
        self.path = path
        self.redactor = redactor
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, message: str) -> None:
        """Append one line."""
        stamp = utc_now()
        with self.path.open("a", encoding="utf-8") as out:
            out.write(self.redactor(f"{stamp} {message}") + "\n")


@dataclass
class StepContext:
    """What a step works with: service URLs, settings, shared state, an HTTP client."""

    urls: dict[str, str]
    settings: EnvkitSettings
    log: OrchestratorLog
    client: httpx.Client
    state: dict[str, Any] = field(default_factory=dict)
    current: StepResult | None = None
    run_id: str = ""

    @property
    def artifact_dir(self) -> Path:
        """The run's artifact directory (where the orchestrator log lives)."""
        return self.log.path.parent

    def http(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call `service` (its host URL + `path`); log it and record it on the current step."""
        if service not in self.urls:
            raise CheckFailed(f"the stack has no service '{service}' with a URL")
        url = self.urls[service] + path
        started = time.perf_counter()
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.log.write(f"{method} {url} -> transport error: {exc!r}")
            raise CheckFailed(f"{method} {url} failed: {exc!r}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.log.write(f"{method} {url} -> {response.status_code} in {elapsed_ms:.0f} ms")
        if self.current is not None:
            self.current.request = f"{method} {url}"
            self.current.status_code = response.status_code
            calls = self.current.evidence.setdefault("calls", [])
            calls.append(
                {
                    "request": f"{method} {url}",
                    "body": kwargs.get("json"),
                    "status": response.status_code,
                    "response": response.text[:SNIPPET],
                }
            )
        return response

    def json(self, response: httpx.Response) -> Any:
        """The response body as JSON, or a failed check naming the call."""
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckFailed(
                f"{response.request.method} {response.request.url} answered "
                f"{response.status_code} with a body that is not JSON: {response.text[:200]!r}"
            ) from exc

    def expect(self, condition: bool, message: str, **evidence: Any) -> None:
        """Fail the step with `message` (and keep `evidence`) unless `condition` holds."""
        if self.current is not None and evidence:
            self.current.evidence.update(evidence)
        if not condition:
            raise CheckFailed(message)


Classifier = Callable[[StepResult, Mapping[str, str]], Failure]
NotReadyTriage = Callable[[str, str, str], Failure]


@dataclass(frozen=True)
class Scenario:
    """A scenario's steps and, optionally, how it names the root cause of a failure."""

    steps: list[Step]
    classify: Classifier | None = None  # (failed step, {log file: text}) -> Failure
    not_ready: NotReadyTriage | None = None  # (log file, log tail, message) -> Failure
    # The troubleshooting matrix's rows (objects with name, symptom, first_log,
    # likely_cause, fix), from which the handover doc's table is generated.
    classes: tuple[Any, ...] = ()
    # Tier -> the label the report's performance table gives its time (default: the tier).
    tier_labels: dict[str, str] = field(default_factory=dict)
    # A step's evidence -> lines saying what the services did (for `invoke demo`).
    narrate: Callable[[Mapping[str, Any]], list[str]] | None = None


def scenario_module(module_name: str, stack_file: Path | None = None) -> ModuleType:
    """Import a scenario module; with `stack_file`, its directory is on `sys.path` first,
    so the stack's own package (next to the stack file) imports."""
    if module_name.endswith(".toml"):
        raise ScenarioLoadError(
            f"'{module_name}' is a scenario file, not a module; `{command('tier-b')}` and "
            f"`{command('orchestrate')}` run scenario files (this command runs Python scenarios "
            "only).",
            ref=module_name,
        )
    if stack_file is not None:
        stack_import_path(stack_file)
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ScenarioLoadError(
            f"Scenario module '{module_name}' (the stack file's `scenario`) cannot be imported: "
            f"{exc}. Name an importable module that defines steps(settings) (a module next "
            "to the stack file imports too).",
            ref=module_name,
        ) from exc


def load_scenario(
    module_name: str, settings: EnvkitSettings, stack_file: Path | None = None
) -> Scenario:
    """Import a scenario module (see `scenario_module`): `steps(settings)`, and optional
    `classify` / `not_ready` (its triage), `CLASSES` (its matrix), `TIER_LABELS` and
    `narrate` (what a step's evidence shows, for the demo)."""
    module = scenario_module(module_name, stack_file)
    return Scenario(
        module.steps(settings),
        getattr(module, "classify", None),
        getattr(module, "not_ready", None),
        tuple(getattr(module, "CLASSES", ())),
        dict(getattr(module, "TIER_LABELS", {})),
        getattr(module, "narrate", None),
    )


def run_steps(
    steps: Sequence[Step],
    ctx: StepContext,
    *,
    on_step: Callable[[StepResult], None] = lambda result: None,
    before_step: Callable[[Step], None] = lambda step: None,
) -> list[StepResult]:
    """Run `steps` in order; after the first failure the rest are skipped.

    `before_step` is called before each step that runs and `on_step` with each
    result (neither for skipped steps).
    """
    results: list[StepResult] = []
    failed = False
    for step in steps:
        if failed:
            results.append(StepResult(step.name, step.tier, "skipped"))
            continue
        before_step(step)
        result = _run_one(step, ctx)
        results.append(result)
        on_step(result)
        failed = result.status == "failed"
    return results


def _run_one(step: Step, ctx: StepContext) -> StepResult:
    started_at = utc_now()
    result = StepResult(step.name, step.tier, "passed", started_at)
    ctx.current = result
    ctx.log.write(f"step {step.tier}/{step.name}: start")
    started = time.perf_counter()
    try:
        result.result = step.run(ctx)
    except CheckFailed as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # a bug in a step is still that step's failure, with evidence
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        ctx.current = None
        result.duration_s = time.perf_counter() - started
    outcome = result.result if result.status == "passed" else f"FAILED: {result.error}"
    ctx.log.write(f"step {step.tier}/{step.name}: {outcome} ({result.duration_s:.2f} s)")
    return result


@contextmanager
def step_context(
    urls: dict[str, str],
    settings: EnvkitSettings,
    log_path: Path,
    redactor: Redactor,
    *,
    run_id: str = "",
) -> Iterator[StepContext]:
    """A context with a short-timeout HTTP client that ignores proxies (targets are local)."""
    with httpx.Client(timeout=30.0, trust_env=False) as client:
        log = OrchestratorLog(log_path, redactor)
        yield StepContext(urls, settings, log, client, run_id=run_id)
