"""The scenario runner: `invoke run` (and its aliases) and `orchestrate`.

`run_isolated` runs `envkit.scenario.pipeline.run_scenario` on an `IsolatedStack` (images,
start, collect, teardown, manifest.json); `orchestrate` runs it on the `up`
stack. Whatever happens (a step fails, a service never gets ready, Ctrl-C), the
run's artifact directory ends up with every service log, the orchestrator log,
summary.json, junit.xml, report.md and (isolated runs) manifest.json and the
replay bundle. `envkit.scenario.replayer` replays a run from them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import DockerException

from envkit.engines.engine import (
    Endpoint,
    EngineInfo,
    ask,
    current_endpoint,
    docker_client,
    ensure_engine,
)
from envkit.engines.imagesources import ServiceImage, image_sources
from envkit.engines.rootfs import image_exists
from envkit.errors import EngineLostError, EnvkitError, OverrideError
from envkit.evidence.bundle import write_bundle
from envkit.evidence.diff import append_baseline_diff
from envkit.evidence.manifest import build_manifest, write_manifest
from envkit.evidence.outcome import RunOutcome, ServiceRow, StepResult, service_rows
from envkit.lifecycle.commands import connect, produce_images, require_up
from envkit.lifecycle.environment import Environment
from envkit.lifecycle.hold import reaper_for
from envkit.lifecycle.state import UpState
from envkit.logs import Progress, log, no_progress
from envkit.program import command
from envkit.scenario.faults import Fault, FaultInjector, check_faults, fault_kinds
from envkit.scenario.orchestrator import OrchestratorLog, Step
from envkit.scenario.pipeline import ScenarioRun, UpStack, new_run, run_scenario, scenario_for
from envkit.spec.settings import EnvkitSettings, with_image_overrides
from envkit.spec.stack import ResolvedService, StackSpec, load_stack, resolve_stack
from envkit.spec.workspace import Workspace

# What a call to an engine that went away raises (docker-py lets requests' errors through).
ENGINE_ERRORS = (EnvkitError, DockerException, requests.RequestException, OSError)
LOST_QUOTES = 12  # log lines quoted from a run whose engine was lost


def scenario_option(scenario_ref: str | None, workspace: Workspace) -> str | None:
    """How a `--scenario` is recorded for replay: a file relative to the project, or a module."""
    if scenario_ref and scenario_ref.endswith(".toml"):
        return workspace.display(Path(scenario_ref))
    return scenario_ref or None


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`["api.DB_PASSWORD=wrong"]` -> `{"api": {"DB_PASSWORD": "wrong"}}`."""
    overrides: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        service, dot, key = target.partition(".")
        if not (sep and dot and service and key):
            raise OverrideError(
                f"--override {item!r} is not SERVICE.VARIABLE=VALUE "
                "(e.g. --override api.DB_PASSWORD=wrong)."
            )
        overrides.setdefault(service, {})[key] = value
    return overrides


def _apply_overrides(
    resolved: dict[str, ResolvedService], overrides: Mapping[str, Mapping[str, str]]
) -> dict[str, ResolvedService]:
    unknown = sorted(set(overrides) - set(resolved))
    if unknown:
        raise OverrideError(
            f"--override names unknown service(s) {', '.join(unknown)}; "
            f"the stack has: {', '.join(sorted(resolved))}."
        )
    return {
        name: dataclasses.replace(svc, env={**svc.env, **overrides[name]})
        if name in overrides else svc
        for name, svc in resolved.items()
    }  # fmt: skip


def run_isolated(
    settings: EnvkitSettings,
    stack_path: Path | None = None,
    *,
    only: str | None = None,
    keep: bool = False,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    images: Mapping[str, str] | None = None,
    after_start: Callable[[Environment], None] | None = None,
    progress: Progress = no_progress,
    scenario_ref: str | None = None,
    baseline: str | None = None,
    faults: Sequence[Fault] = (),
    bundle_root: Path | None = None,
    endpoint: Endpoint | None = None,
) -> tuple[RunOutcome, Path]:
    """Run the stack's scenario once; return the outcome and the artifact directory.

    `endpoint` is the engine the run is placed on (default: the current one, DOCKER_HOST or
    the docker context); its report, summary, manifest and history record name it.

    `overrides` deliberately misconfigures services (service -> env); `images`
    prefers given image references per service (replay uses the original's; builds are
    not preferred but built again, found by their input hash); the image override in
    force is `settings.images.override`;
    `after_start` is called once the stack is ready (not recorded, so a replay does not
    repeat it); `faults` are runtime faults injected just before their steps, recorded
    (with their seeds) so a replay injects them again; `scenario_ref` replaces the
    stack's scenario (a module, or a scenario file relative to the current directory);
    `baseline` (a run, or `latest-green`) is diffed against a failed run, see
    `envkit.evidence.diff.append_baseline_diff` (a diff that cannot be made is logged);
    the replay bundle takes the stack's files' paths from `bundle_root` (default: the
    project root; a replay gives the bundle it runs).
    """
    settings = with_image_overrides(settings)  # override directories made absolute
    workspace = settings.workspace
    stack_path = stack_path or workspace.default_stack
    stack = load_stack(stack_path)
    resolved = _apply_overrides(resolve_stack(stack, settings), overrides or {})
    scenario = scenario_for(stack, settings, only, scenario_ref)
    run = new_run(settings, stack, scenario, record_history=True)
    replay_command = command(f"replay {workspace.display(run.artifact_dir)}")
    endpoint = endpoint or current_endpoint()
    run = dataclasses.replace(run, replay_command=replay_command, engine=endpoint.url)
    seeded = [fault.seeded() for fault in faults]
    kinds = fault_kinds(scenario_ref or stack.scenario, stack.source) if seeded else {}
    check_faults(seeded, kinds, [s.name for s in scenario.steps], resolved)
    options: dict[str, Any] = {
        "only": only, "overrides": {k: dict(v) for k, v in (overrides or {}).items()},
    }  # fmt: skip
    if scenario_ref:  # recorded only when given: the stack file names its own scenario
        options["scenario"] = scenario_option(scenario_ref, workspace)
    if seeded:
        options["faults"] = [fault.to_data() for fault in seeded]
    target = IsolatedStack(
        run, resolved, images or {}, options, stack_path, keep, after_start, progress,
        injector=FaultInjector(seeded, kinds, OrchestratorLog(run.orchestrator_log, run.redactor)),
        bundle_root=bundle_root or workspace.root, scenario_ref=scenario_ref, endpoint=endpoint,
    )  # fmt: skip
    outcome = run_scenario(run, target, observer=target, progress=progress)
    if baseline and outcome.verdict != "passed":
        try:
            append_baseline_diff(settings, run.artifact_dir, baseline, run.redactor, os.environ)
        except EnvkitError as exc:  # the diff explains a failure; it must not hide it
            log.warning("No baseline diff was added to report.md: {}", exc)
    return outcome, run.artifact_dir


@dataclasses.dataclass
class IsolatedStack:
    """A stack of the run's own as a pipeline target: images, start, collect, teardown, manifest."""

    run: ScenarioRun
    resolved: dict[str, ResolvedService]
    preferred: Mapping[str, str]  # service -> image reference to prefer (replay)
    options: dict[str, Any]  # recorded in the manifest for replay
    stack_path: Path
    keep: bool
    after_start: Callable[[Environment], None] | None
    progress: Progress
    injector: FaultInjector | None = None  # the runtime faults to inject, and those injected
    bundle_root: Path | None = None  # the stack's files' paths in the bundle are taken from it
    scenario_ref: str | None = None  # a --scenario given for the run (bundled too)
    endpoint: Endpoint | None = None  # the engine the run is placed on (None: the current one)
    client: docker.DockerClient | None = None
    env: Environment | None = None
    refs: dict[str, ServiceImage] = dataclasses.field(default_factory=dict)
    lost: bool = False  # the engine stopped answering during the run

    def start(self, outcome: RunOutcome) -> dict[str, ServiceRow]:
        """Produce the images, start every service in its own network, wait until ready."""
        run = self.run
        self.client = connect(run.settings, self.endpoint)
        phase = time.monotonic()
        self.progress("images")
        # A --keep run may have to outlive this process, so the engine's reaper must not hold it.
        # First: a reaper that must be started starts while the services' images are checked.
        reaper = (
            None
            if self.keep
            else reaper_for(run.settings, self.client, self.progress, self.endpoint)
        )
        self.refs = _images(
            run.settings, self.client, run.stack, self.preferred, self.progress, self.endpoint
        )
        outcome.timings["images"] = time.monotonic() - phase
        self.env = Environment(
            run.stack, self.resolved, {n: i.ref for n, i in self.refs.items()},
            run_id=run.run_id, artifact_dir=run.artifact_dir, redactor=run.redactor,
            client=self.client, mode="keep" if self.keep else "isolated", reaper=reaper,
            endpoint=self.endpoint, publish_ports=run.settings.engines.publish_ports,
        )  # fmt: skip
        phase = time.monotonic()
        self.progress(f"starting {len(self.env.runs)} services")
        try:
            self.env.start()
        except ENGINE_ERRORS as exc:
            self._raise_if_lost(exc)
            raise
        outcome.timings["start"] = time.monotonic() - phase
        services = self.services()
        if self.after_start is not None:
            self.after_start(self.env)
        return services

    def before_step(self, step: Step) -> None:
        """Inject the runtime faults due before `step`."""
        if self.injector is not None and self.env is not None:
            self.injector.before_step(step, self.env)

    def after_step(self, result: StepResult) -> None:
        """E.g. `emit-enrollment: passed`."""
        self.progress(f"{result.name}: {result.status}")

    def close(self, outcome: RunOutcome, passed: bool) -> None:
        """Collect every log and tear down; with `keep`, a failed run's stack stays up."""
        outcome.events = list(self.injector.events) if self.injector is not None else []
        if self.env is None:
            return
        # Before collect stops them: a service that died during the steps shows as exited.
        outcome.services = self.services()
        if self.keep and not passed:
            self.env.keep()
            return
        phase = time.monotonic()
        try:
            try:
                self.env.collect()  # a signal held back meanwhile is delivered at its end...
                outcome.timings["collect"] = time.monotonic() - phase
            finally:  # ...and the stack is removed all the same
                phase = time.monotonic()
                self.env.teardown()
                outcome.timings["teardown"] = time.monotonic() - phase
        except ENGINE_ERRORS as exc:
            self._raise_if_lost(exc)  # nothing is left to tear down on an engine that is gone
            raise

    def _raise_if_lost(self, exc: BaseException) -> None:
        """Raise `EngineLostError` (from `exc`) when the run's engine no longer answers."""
        endpoint = self.endpoint or current_endpoint()
        answer = ask(endpoint)
        if isinstance(answer, EngineInfo):
            return
        self.lost = True
        runs = self.env.runs if self.env is not None else {}
        quotes = [f"{name}: {line}" for name, r in runs.items() for line in _tail(r.log_path, 2)][
            -LOST_QUOTES:
        ]
        raise EngineLostError(
            f"The engine at {endpoint.url} stopped answering during run {self.run.run_id} "
            f"({answer}); the run failed with it, and runs on other engines go on. The last "
            f"lines its services logged are below and in the run's logs. Check that engine "
            f"(`docker -H {endpoint.url} version`), or take it out of the pool.",
            endpoint.url,
            quotes,
        ) from exc

    def services(self) -> dict[str, ServiceRow]:
        """Each service's row (none before the environment exists)."""
        return service_rows(self.env.endpoints()) if self.env is not None else {}

    def log_names(self) -> dict[str, str]:
        """Service -> its log's file name in the artifact directory."""
        runs = self.env.runs if self.env is not None else {}
        return {name: r.log_path.name for name, r in runs.items()}

    def record(self) -> None:
        """The replay bundle and manifest.json: redacted settings, stack file and its own
        files, options, images and their inputs or digests, the faults injected."""
        run = self.run
        bundle = write_bundle(
            run.artifact_dir, self.stack_path, self.bundle_root or run.settings.workspace.root,
            run.redactor, self.scenario_ref,
        )  # fmt: skip
        events = self.injector.events if self.injector is not None else []
        manifest = build_manifest(
            run.settings, self.stack_path, self.refs, None if self.lost else self.client,
            self.options, bundle=bundle, faults=events, endpoint=run.engine,
        )  # fmt: skip
        write_manifest(manifest, run.artifact_dir, run.redactor)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _images(
    settings: EnvkitSettings,
    client: docker.DockerClient,
    stack: StackSpec,
    preferred: Mapping[str, str],
    progress: Progress,
    endpoint: Endpoint | None = None,
) -> dict[str, ServiceImage]:
    sources = image_sources(stack, settings)
    present: dict[str, ServiceImage] = {}
    for service, ref in preferred.items():
        if service not in sources or sources[service].kind == "build":
            continue  # a build is built again from its context (found by its input hash)
        if image_exists(client, ref):
            present[service] = ServiceImage(ref, sources[service])
        else:
            log.warning("{}: image {} of the original run is not here; using current", service, ref)
    missing = [name for name in stack.services if name not in present]
    produced = (
        produce_images(settings, client, stack, progress, missing, endpoint) if missing else {}
    )
    return {name: present.get(name) or produced[name] for name in stack.services}


def orchestrate(
    settings: EnvkitSettings,
    *,
    only: str | None = None,
    progress: Progress = no_progress,
    scenario_ref: str | None = None,
    running: UpState | None = None,
) -> tuple[RunOutcome, Path]:
    """Run the scenario (`scenario_ref`, else the stack's) against the `up` stack (it stays up).

    `running` names another running stack to use instead (e.g. one the Python API started);
    it stays up too, and the run has no replay command.
    """
    if running is None:
        client, state = require_up(settings)
        line = command("orchestrate") + (f" --only {only}" if only else "")
        if scenario_ref:
            line += f" --scenario {scenario_option(scenario_ref, settings.workspace)}"
    else:
        ensure_engine(settings.timeouts.engine_start_seconds)
        client, state, line = docker_client(), running, ""
    stack = load_stack(state.stack)
    scenario = scenario_for(stack, settings, only, scenario_ref)
    run = new_run(settings, stack, scenario, replay_command=line)
    target = UpStack(client, state, run.artifact_dir, run.redactor)
    return run_scenario(run, target, progress=progress), run.artifact_dir
