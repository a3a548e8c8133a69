"""The commands that run a scenario: `run`/`tier-b` (isolated), `orchestrate`, `replay`, `demo`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task, task

from envkit.cli.project import (
    Project,
    console,
    guard,
    interrupted,
    status_line,
    table_of,
)
from envkit.cli.stack import IMAGE_HELP, STACK_HELP
from envkit.program import command

if TYPE_CHECKING:
    from envkit.engines.engine import Endpoint
    from envkit.engines.pool import Slot
    from envkit.evidence.outcome import RunOutcome

SCENARIO_HELP = (
    "Run this scenario instead of the stack's: a scenario file (*.toml, path from the project "
    "root) or a Python module (pkg.module); recorded for replay."
)
RUN_HELP = {
    "stack": STACK_HELP,
    "only": "Run only one tier of the scenario (by the tier names its steps carry, "
    "e.g. tier-a or tier-b).",
    "scenario": SCENARIO_HELP,
    "keep": "After a failure, leave the stack running and say how to reach it.",
    "repeat": "Run N times, then print a table of outcomes and timings (flake hunting).",
    "override": "Misconfigure one service on purpose: SERVICE.VARIABLE=VALUE (repeatable), "
    "e.g. backend.API_TOKEN=wrong; recorded for replay.",
    "image": IMAGE_HELP + " Recorded for replay.",
    "fault": "Inject a runtime fault just before a step: STEP:KIND[:NAME=VALUE,...] "
    "(repeatable). envkit's kinds: stop-service (service=), http-post (service=, path=, the rest "
    "is the JSON body); a stack's scenario module adds its own (its FAULTS). Recorded for "
    "replay with its random seed.",
    "baseline": "On failure, diff the run against this run (a run id or artifact directory) or "
    "`latest-green` (the newest passed run of the stack) and append the diff to report.md.",
    "verbose": "Log debug detail too.",
    "engine": "Place the run(s) on this engine: an endpoint as DOCKER_HOST takes it (e.g. "
    "tcp://10.0.0.5:2375); at most ENVKIT_ENGINES__PER_ENGINE runs on it at once.",
    "pool": "Spread the runs over the engines of ENVKIT_ENGINES__POOL (also the default "
    "when that setting is set), at most ENVKIT_ENGINES__PER_ENGINE runs per engine at once.",
}


def _isolated_run_task(name: str, doc: str) -> Task[Any]:
    """`run` and `tier-b`: one body, one set of flags, under two names."""

    def isolated(
        c: Context,
        stack: str = "",
        only: str = "",
        keep: bool = False,
        repeat: int = 1,
        override: list[str] | None = None,
        scenario: str = "",
        image: list[str] | None = None,
        baseline: str = "",
        fault: list[str] | None = None,
        verbose: bool = False,
        engine: str = "",
        pool: bool = False,
    ) -> None:
        _run_isolated(
            c, name, stack, only, keep, repeat, override, scenario, image, baseline, fault,
            verbose, engine, pool,
        )  # fmt: skip

    isolated.__doc__ = doc
    iterable = ["override", "image", "fault"]
    made: Task[Any] = task(name=name, help=RUN_HELP, iterable=iterable)(isolated)
    return made


run_stack = _isolated_run_task(
    "run", "Run the stack's scenario in an isolated environment; exit non-zero on any failure."
)
tier_b = _isolated_run_task(
    "tier-b", "Prove the stack end to end: `run` under the name CI pipelines already call."
)


def _run_isolated(
    c: Context,
    name: str,
    stack: str,
    only: str,
    keep: bool,
    repeat: int,
    override: list[str] | None,
    scenario: str,
    image: list[str] | None,
    baseline: str,
    fault: list[str] | None,
    verbose: bool,
    engine: str = "",
    pool: bool = False,
) -> None:
    """`run` and `tier-b`: `repeat` isolated runs, each rendered; Exit 1 if any failed.

    With an engine pool (the setting, `--pool` or `--engine`) the runs spread over its
    engines, concurrently, each in a slot of its engine (see `envkit.engines.pool`)."""
    from envkit.engines.pool import EnginePool, pool_endpoints
    from envkit.evidence.history import mark_batch
    from envkit.lifecycle.signals import interruptible
    from envkit.scenario.batch import spread
    from envkit.scenario.faults import parse_fault
    from envkit.scenario.runner import parse_overrides, run_isolated

    project = Project.of(c)
    path = project.stack_path(stack)
    settings = project.stack_settings(verbose, image, path)
    overrides = guard(lambda: parse_overrides(override or []))
    faults = guard(lambda: [parse_fault(text) for text in fault or []])
    repeat = max(1, repeat)

    def one(progress: Callable[[str], None], endpoint: Endpoint | None) -> tuple[RunOutcome, Path]:
        return run_isolated(
            settings, path, only=only or None, keep=keep, overrides=overrides,
            progress=progress, scenario_ref=project.scenario_ref(scenario),
            baseline=baseline or None, faults=faults, endpoint=endpoint,
        )  # fmt: skip

    def show(outcome: RunOutcome, where: Path) -> None:
        outcomes.append((outcome, where))
        _render_outcome(outcome, where, kept=keep, name=name)
        if baseline and outcome.verdict != "passed" and (where / "diff.md").is_file():
            console.print(f"baseline diff: {where / 'diff.md'} (also at the end of report.md)")

    outcomes: list[tuple[RunOutcome, Path]] = []
    pooled = bool(engine or pool or settings.engines.pool)
    try:
        if pooled:
            endpoints = guard(lambda: pool_endpoints(settings.engines.pool_list(), engine, pool))
            lanes = EnginePool(
                endpoints, settings.engines.per_engine, settings.workspace.cache / "pool"
            )
            with status_line(f"{name}: {repeat} run(s) over {len(endpoints)} engine(s)") as line:

                def placed(number: int, slot: Slot) -> tuple[RunOutcome, Path]:
                    tag = f"run {number}/{repeat} on {slot.endpoint.url}"
                    return one(lambda message: line(f"{tag}: {message}"), slot.endpoint)

                with interruptible():  # SIGTERM too: no new runs; those under way finish
                    results = spread(lanes, repeat, placed)
                    while (item := guard(lambda: next(results, None))) is not None:
                        show(*item[1])
        else:
            for round_ in range(1, repeat + 1):
                with status_line(f"{name} run {round_}/{repeat}") as progress:
                    outcome, where = guard(lambda: one(progress, None))
                show(outcome, where)
    except KeyboardInterrupt:
        raise interrupted(kept=keep) from None
    if repeat > 1:
        guard(lambda: mark_batch(settings, [o.run_id for o, _ in outcomes]))
        _render_repeats(outcomes)
    failed = [o for o, _ in outcomes if o.verdict != "passed"]
    if failed:
        raise Exit(f"{name} FAILED in {len(failed)} of {len(outcomes)} run(s).", code=1)


def _render_outcome(outcome: RunOutcome, where: Path, kept: bool, name: str = "") -> None:
    table = table_of("step", "tier", "status", "s", "result / error", title=f"run {outcome.run_id}")
    for step in outcome.steps:
        text = step.result if step.status == "passed" else (step.error or "")
        table.add_row(step.name, step.tier, step.status, f"{step.duration_s:.2f}", text)
    console.print(table)
    verdict = "PASSED" if outcome.verdict == "passed" else "FAILED"
    console.print(
        f"{name or outcome.run_name} {verdict} in {outcome.timings.get('total', 0):.1f} s; "
        f"artifacts: {where}"
    )
    if outcome.failure is not None:
        f = outcome.failure
        console.print(
            f"failure class: {f.failure_class}; read first: {where / (f.first_log or '')}"
        )
        console.print(f"  {f.message}")
        if kept:
            for name, row in outcome.services.items():
                console.print(f"  kept running: {name} at {row.host_url}")
            console.print(f"  remove it with `{command('clean --all')}`")


def _render_repeats(outcomes: list[tuple[RunOutcome, Path]]) -> None:
    from envkit.evidence.outcome import RepeatRow

    rows = [RepeatRow.of(outcome) for outcome, _ in outcomes]
    tiers = list(dict.fromkeys(tier for r in rows for tier in r.tiers))  # one column per tier
    table = table_of("run", "verdict", "total s", "start s", *(f"{t} s" for t in tiers), "failure")
    for r in rows:
        seconds = (r.total_s, r.start_s, *(r.tiers.get(t, 0.0) for t in tiers))
        table.add_row(r.run_id, r.verdict, *(f"{s:.2f}" for s in seconds), r.failure_class or "")
    passed = sum(1 for r in rows if r.verdict == "passed")
    table.title = f"{passed}/{len(rows)} passed"
    console.print(table)


@task(
    help={
        "only": "Run only one tier of the scenario (e.g. tier-a or tier-b).",
        "scenario": SCENARIO_HELP,
    }
)
def orchestrate(c: Context, only: str = "", scenario: str = "") -> None:
    """Run the stack's scenario (or --scenario) against the stack `up` started."""
    from envkit.scenario.runner import orchestrate as run_checks

    project = Project.of(c)
    settings = project.settings()
    ref = project.scenario_ref(scenario)
    with status_line("orchestrating") as progress:
        outcome, where = guard(
            lambda: run_checks(settings, only=only or None, progress=progress, scenario_ref=ref)
        )
    _render_outcome(outcome, where, kept=False)
    if outcome.verdict != "passed":
        raise Exit("orchestrate FAILED.", code=1)


@task(
    help={
        "run": "The run to replay: its artifact directory (e.g. artifacts/<run id>) or the .zip "
        "GitHub Actions gives for download.",
        "strict": "Refuse to run when anything differs from the recorded run (git commit, "
        "stack content, image inputs, envkit version).",
    }
)
def replay(c: Context, run: str, strict: bool = False) -> None:
    """Rerun a recorded run from its bundle: say what differs first, then whether the same
    failure class came back."""
    from envkit.scenario.replayer import replay as replay_run

    project = Project.of(c)
    project.settings()
    console.print(f"replaying {run}")

    def say(line: str) -> None:
        console.print(f"  differs: {line}")

    try:
        with status_line("replaying") as progress:
            result = guard(
                lambda: replay_run(
                    project.from_root(run),
                    progress=progress,
                    root=project.root,
                    strict=strict,
                    say=say,
                )
            )
    except KeyboardInterrupt:
        raise interrupted() from None
    outcome, original = result.outcome, result.original_class
    _render_outcome(outcome, result.artifact_dir, kept=False)
    remaining = [d for d in result.differences if d.remains]
    exact = "exactly" if not remaining else f"with {len(remaining)} difference(s) left"
    same = "the same as" if result.same_class else "DIFFERENT from"
    console.print(
        f"replay of {run} ({exact}): {result.failure_class or 'passed'}, {same} the original "
        f"({original or 'passed'})"
    )
    for difference in remaining:
        console.print(f"  differed: {difference}")
    if outcome.verdict != "passed":
        raise Exit("replayed run FAILED.", code=1)


@task(help={"pause": "Wait for Enter between steps (for a live audience)."})
def demo(c: Context, pause: bool = False) -> None:
    """Bring the stack up and walk through Tier A and Tier B step by step; leave it up."""
    from envkit.scenario.demo import run_demo

    settings = Project.of(c).stack_settings()
    try:
        result = guard(lambda: run_demo(settings, say=console.print, pause=pause))
    except KeyboardInterrupt:
        message = f"demo interrupted; the stack is still up (`{command('down')}` removes it)."
        raise Exit(message, code=130) from None
    if result.verdict != "passed":
        raise Exit("demo: a check FAILED (see above); the stack is still up for a look.", code=1)
