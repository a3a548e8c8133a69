"""`invoke tier-b` and `invoke replay`: isolated stack → scenario → collect → teardown.

Whatever happens (a step fails, a service never gets ready, Ctrl-C), the run's
artifact directory ends up with every service log, the orchestrator log,
summary.json, junit.xml, report.md and manifest.json. A run can be replayed
from its manifest: same non-secret settings, stack file, options and images.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker

from envkit.commands import (
    DEFAULT_STACK,
    artifact_dir_for,
    connect,
    produce_images,
    require_up,
    save_logs,
)
from envkit.environment import Environment, new_run_id
from envkit.errors import (
    BuildError,
    EnvkitError,
    OptionError,
    OverrideError,
    ReplayError,
    ScenarioLoadError,
    ServiceNotReady,
)
from envkit.history import record_run
from envkit.images import PROJECT_ROOT
from envkit.imagesources import ServiceImage, image_sources
from envkit.logs import Progress, log, no_progress
from envkit.manifest import SECRET_MARK, build_manifest, git_commit, read_manifest, write_manifest
from envkit.orchestrator import Scenario, load_scenario, run_steps, step_context
from envkit.orchestrator import orchestrator_log_name as orchestrator_log_name  # re-exported
from envkit.outcome import Failure, RunOutcome, StepResult, utc_now
from envkit.redact import Redactor
from envkit.rootfs import image_exists
from envkit.scenariofile import load_scenario_file
from envkit.settings import EnvkitSettings, load_settings, with_image_overrides
from envkit.signals import interruptible
from envkit.stack import ResolvedService, StackSpec, load_stack, resolve_stack

TIERS = ("tier-a", "tier-b")
BUILD_FAILED = "image-build-failed"  # a service's build context did not build
QUOTED_LINES = 12
# Machine-local paths: never replayed from a manifest.
MACHINE_LOCAL = ("ENVKIT_ARTIFACT_ROOT", "ENVKIT_CACHE_DIR", "ENVKIT_HISTORY_PATH")


def _scenario_for(
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
            '`scenario = "scenario.toml"` to its [stack] table, or pass --scenario.'
        )
    if ref.endswith(".toml"):
        path = Path(ref) if scenario_ref else stack.source.parent / ref
        scenario = load_scenario_file(path, stack, settings)
    else:
        scenario = load_scenario(ref, settings)
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


def scenario_option(scenario_ref: str | None) -> str | None:
    """How a `--scenario` is recorded for replay: a file relative to the project, or a module."""
    if scenario_ref and scenario_ref.endswith(".toml"):
        return _display(Path(scenario_ref).resolve())
    return scenario_ref or None


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """`["backend.Mgm__ApiKey=wrong"]` -> `{"backend": {"Mgm__ApiKey": "wrong"}}`."""
    overrides: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        service, dot, key = target.partition(".")
        if not (sep and dot and service and key):
            raise OverrideError(
                f"--override {item!r} is not SERVICE.VARIABLE=VALUE "
                "(e.g. --override backend.Twitch__EventSubSecret=wrong)."
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


def run_tier_b(
    settings: EnvkitSettings,
    stack_path: Path = DEFAULT_STACK,
    *,
    only: str | None = None,
    keep: bool = False,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    images: Mapping[str, str] | None = None,
    after_start: Callable[[Environment], None] | None = None,
    progress: Progress = no_progress,
    scenario_ref: str | None = None,
) -> tuple[RunOutcome, Path]:
    """Run the stack's scenario once; return the outcome and the artifact directory.

    `overrides` deliberately misconfigures services (service -> env); `images`
    prefers given image references per service (replay uses the original's; builds are
    not preferred but built again, found by their input hash); the image override in
    force is `settings.images.override`;
    `after_start` injects a runtime fault once the stack is ready (tests, demos;
    not recorded, so a replay does not repeat it); `scenario_ref` replaces the
    stack's scenario (a module, or a scenario file relative to the current directory).
    """
    settings = with_image_overrides(settings)  # override directories made absolute
    stack = load_stack(stack_path)
    resolved = _apply_overrides(resolve_stack(stack, settings), overrides or {})
    scenario = _scenario_for(stack, settings, only, scenario_ref)
    run_id = new_run_id(stack.name)
    artifact_dir = (PROJECT_ROOT / settings.artifact_root / run_id).resolve()
    artifact_dir.mkdir(parents=True, exist_ok=True)
    redactor = Redactor(settings.secret_values())
    outcome = RunOutcome(run_id, stack.name, "failed", utc_now(), "")
    outcome.replay_command = f"./inv replay {_display(artifact_dir)}"
    options = {"only": only, "overrides": {k: dict(v) for k, v in (overrides or {}).items()}}
    if scenario_ref:  # recorded only when given: the stack file names its own scenario
        options["scenario"] = scenario_option(scenario_ref)
    started = time.monotonic()
    env: Environment | None = None
    client: docker.DockerClient | None = None
    refs: dict[str, ServiceImage] = {}
    try:
        with interruptible():
            client = connect(settings)
            phase = time.monotonic()
            progress("images")
            refs = _images(settings, client, stack, images or {}, progress)
            outcome.timings["images"] = time.monotonic() - phase
            env = Environment(
                stack, resolved, {n: i.ref for n, i in refs.items()},
                run_id=run_id, artifact_dir=artifact_dir,
                redactor=redactor, client=client, mode="keep" if keep else "isolated",
            )  # fmt: skip
            _run_in(env, scenario, settings, outcome, progress, keep, after_start)
    except ServiceNotReady as exc:
        outcome.failure = _not_ready(scenario, exc)
    except KeyboardInterrupt:
        outcome.failure = Failure("interrupted", "The run was interrupted (Ctrl-C or SIGTERM).")
        raise
    except BuildError as exc:
        outcome.failure = Failure(BUILD_FAILED, str(exc))  # the message quotes the build log
    except EnvkitError as exc:
        outcome.failure = Failure("envkit-error", str(exc))
    finally:
        manifest = build_manifest(settings, stack_path, refs, client, options)
        write_manifest(manifest, artifact_dir, redactor)
        finish_outcome(outcome, env, scenario, started, artifact_dir, redactor, history=settings)
    return outcome, artifact_dir


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _images(
    settings: EnvkitSettings,
    client: docker.DockerClient,
    stack: StackSpec,
    preferred: Mapping[str, str],
    progress: Progress,
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
    produced = produce_images(settings, client, stack, progress, missing) if missing else {}
    return {name: present.get(name) or produced[name] for name in stack.services}


def _run_in(
    env: Environment,
    scenario: Scenario,
    settings: EnvkitSettings,
    outcome: RunOutcome,
    progress: Progress,
    keep: bool,
    after_start: Callable[[Environment], None] | None,
) -> None:
    passed = False
    try:
        phase = time.monotonic()
        progress(f"starting {len(env.runs)} services")
        env.start()
        outcome.timings["start"] = time.monotonic() - phase
        outcome.services = env.endpoints()
        if after_start is not None:
            after_start(env)
        urls = {n: row["host_url"] for n, row in outcome.services.items() if row["host_url"]}
        log_path = env.artifact_dir / orchestrator_log_name(env.stack)
        with step_context(urls, settings, log_path, env.redactor, run_id=env.run_id) as ctx:
            progress("running the checks")
            outcome.steps = run_steps(
                scenario.steps, ctx, on_step=lambda r: progress(f"{r.name}: {r.status}")
            )
        passed = all(r.status == "passed" for r in outcome.steps)
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
    if not passed:  # after collect: the logs the classifier quotes are complete
        outcome.failure = _step_failure(env, outcome.steps, scenario)


def collected_logs(artifact_dir: Path) -> dict[str, str]:
    """Every `*.log` of a run's artifact directory, by file name."""
    return {p.name: p.read_text(errors="replace") for p in artifact_dir.glob("*.log")}


def _step_failure(env: Environment, results: list[StepResult], scenario: Scenario) -> Failure:
    failed = next(r for r in results if r.status == "failed")
    if scenario.classify is not None:
        return scenario.classify(failed, collected_logs(env.artifact_dir))
    step = next(s for s in scenario.steps if s.name == failed.name)
    run = env.runs.get(step.log_of)
    log_name = run.log_path.name if run else orchestrator_log_name(env.stack)
    tail = run.stream.tail(QUOTED_LINES) if run and run.stream else ""
    return Failure(f"step-failed:{failed.name}", failed.error or "", log_name, tail.splitlines())


def _not_ready(scenario: Scenario, exc: ServiceNotReady) -> Failure:
    message = str(exc).splitlines()[0] + f" Last probe error: {exc.last_error}; {exc.state}."
    if scenario.not_ready is not None:
        return scenario.not_ready(exc.log_path.name, exc.log_tail, message)
    quotes = exc.log_tail.splitlines()[-QUOTED_LINES:]
    return Failure("service-never-ready", message, exc.log_path.name, quotes)


def finish_outcome(
    outcome: RunOutcome,
    env: Environment | None,
    scenario: Scenario,
    started: float,
    artifact_dir: Path,
    redactor: Redactor,
    *,
    history: EnvkitSettings | None = None,
) -> None:
    """Complete the outcome and write the artifacts; with `history`, record the run too."""
    from envkit.artifacts import write_artifacts

    ran = {r.name for r in outcome.steps}
    outcome.steps += [
        StepResult(s.name, s.tier, "skipped") for s in scenario.steps if s.name not in ran
    ]
    for tier in TIERS:
        if any(r.tier == tier and r.status != "skipped" for r in outcome.steps):
            spent = sum(r.duration_s for r in outcome.steps if r.tier == tier)
            outcome.timings[tier.replace("-", "_")] = spent
    if env is not None and not outcome.services:
        outcome.services = env.endpoints()
    passed = bool(outcome.steps) and all(r.status == "passed" for r in outcome.steps)
    outcome.verdict = "passed" if passed and outcome.failure is None else "failed"
    outcome.timings["total"] = time.monotonic() - started
    outcome.ended_at = utc_now()
    write_artifacts(outcome, artifact_dir, redactor)
    if history is None:  # `orchestrate` and the demo reuse the `up` stack: not tier-b runs
        return
    try:
        record_run(history, outcome, artifact_dir, git_commit())
    except (EnvkitError, sqlite3.Error, OSError) as exc:  # the history must never fail a run
        log.warning("This run was not added to the history: {}", exc)


def classify_steps(outcome: RunOutcome, scenario: Scenario, artifact_dir: Path) -> None:
    """Name the root cause of the first failed step, if any, from the run's collected logs."""
    failed = [r for r in outcome.steps if r.status == "failed"]
    if failed and scenario.classify is not None:
        outcome.failure = scenario.classify(failed[0], collected_logs(artifact_dir))
    elif failed:
        outcome.failure = Failure(f"step-failed:{failed[0].name}", failed[0].error or "")


def orchestrate(
    settings: EnvkitSettings,
    *,
    only: str | None = None,
    progress: Progress = no_progress,
    scenario_ref: str | None = None,
) -> tuple[RunOutcome, Path]:
    """Run the scenario (`scenario_ref`, else the stack's) against the `up` stack (it stays up)."""
    client, state = require_up(settings)
    stack = load_stack(Path(state["stack"]))
    scenario = _scenario_for(stack, settings, only, scenario_ref)
    run_id = new_run_id(stack.name)
    artifact_dir = artifact_dir_for(settings, run_id)
    redactor = Redactor(settings.secret_values())
    outcome = RunOutcome(run_id, stack.name, "failed", utc_now(), "", services=state["services"])
    outcome.replay_command = "./inv orchestrate" + (f" --only {only}" if only else "")
    if scenario_ref:
        outcome.replay_command += f" --scenario {scenario_option(scenario_ref)}"
    started = time.monotonic()
    urls = {n: row["host_url"] for n, row in state["services"].items() if row.get("host_url")}
    log_path = artifact_dir / orchestrator_log_name(stack)
    # interruptible: SIGTERM, like Ctrl-C, ends a running command step's process group.
    with interruptible(), step_context(urls, settings, log_path, redactor, run_id=run_id) as ctx:
        outcome.steps = run_steps(
            scenario.steps, ctx, on_step=lambda r: progress(f"{r.name}: {r.status}")
        )
    phase = time.monotonic()
    save_logs(client, state, artifact_dir, redactor)
    outcome.timings["collect"] = time.monotonic() - phase
    classify_steps(outcome, scenario, artifact_dir)
    finish_outcome(outcome, None, scenario, started, artifact_dir, redactor)
    return outcome, artifact_dir


@dataclasses.dataclass(frozen=True)
class Replay:
    """A replayed run: its outcome and artifacts, the original's failure class, what differs."""

    outcome: RunOutcome
    artifact_dir: Path
    original_class: str | None
    image_changes: list[str]  # one sentence per build whose inputs changed since the original


def replay(
    artifact_dir: Path,
    env_file: Path | None = PROJECT_ROOT / ".env",
    progress: Progress = no_progress,
) -> Replay:
    """Rerun a recorded run and say how it compares with the original.

    Non-secret settings (the image override among them), the stack file, the options and
    (where present) the images come from the original's manifest; secrets come from this
    machine's environment and `.env`, as they are never written to artifacts. Build
    contexts are built again; one whose input hash differs from the recorded one is named
    in `image_changes` (the replay runs the current tree all the same).
    """
    manifest = read_manifest(artifact_dir)
    environ = dict(os.environ)
    for name, value in manifest.get("settings", {}).items():
        if value != SECRET_MARK and name not in MACHINE_LOCAL:
            environ[name] = value
    settings = load_settings(env_file, environ)
    stack_file = Path(manifest["stack"]["file"])
    stack_file = stack_file if stack_file.is_absolute() else PROJECT_ROOT / stack_file
    if not stack_file.is_file():
        raise ReplayError(
            f"The run's stack file {stack_file} is not here; it cannot be replayed.",
            path=stack_file,
        )
    options = manifest.get("options", {})
    recorded = manifest.get("images", {})
    images = {s: i["ref"] for s, i in recorded.items() if i.get("ref")}
    original = _original_class(artifact_dir)
    outcome, where = run_tier_b(
        settings, stack_file, only=options.get("only"), overrides=options.get("overrides"),
        images=images, progress=progress, scenario_ref=_replayed_scenario(options),
    )  # fmt: skip
    now = read_manifest(where).get("images", {})
    return Replay(outcome, where, original, build_changes(recorded, now))


def build_changes(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """A sentence for each service whose build inputs hash differently now than recorded."""
    changes = []
    for service, before in sorted(recorded.items()):
        old = (before or {}).get("build") or {}
        new = (now.get(service) or {}).get("build") or {}
        before_hash, now_hash = old.get("input_hash"), new.get("input_hash")
        if before_hash and now_hash and before_hash != now_hash:
            changes.append(
                f"{service}: the build context {new.get('context')} is not what the original "
                f"run built (input hash {before_hash} then, {now_hash} now; "
                f"context then: {old.get('context')}); this replay ran the current tree."
            )
    return changes


def _replayed_scenario(options: Mapping[str, Any]) -> str | None:
    """The original run's `--scenario`, its file found from the project root; None if none."""
    ref = options.get("scenario")
    if not isinstance(ref, str) or not ref:
        return None
    if not ref.endswith(".toml"):
        return ref
    path = Path(ref) if Path(ref).is_absolute() else PROJECT_ROOT / ref
    if not path.is_file():
        raise ReplayError(
            f"The run's scenario file {path} is not here; it cannot be replayed.", path=path
        )
    return str(path)


def _original_class(artifact_dir: Path) -> str | None:
    try:
        summary: dict[str, Any] = json.loads((artifact_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    failure = summary.get("failure") or {}
    value = failure.get("failure_class")
    return str(value) if value else None
