"""envkit's Invoke tasks: thin wrappers that parse flags and call one library function each.

Run them through `./inv <task>` (sets up .venv on first use) or, inside the
venv, `invoke <task>`. `invoke --list` shows them all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.console import Console
from rich.table import Table

from envkit.errors import EnvkitError, HealthcheckError
from envkit.evidence.outcome import RepeatRow, RunOutcome
from envkit.lifecycle.state import UpState
from envkit.spec.settings import EnvkitSettings

# The repository is the project these tasks serve: passed down as the root, never entered.
ROOT = Path(__file__).resolve().parent
# Logs and CI captures are not terminals: give tables room instead of rich's 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
T = TypeVar("T")


def _settings(verbose: bool = False, stack: Path | None = None) -> EnvkitSettings:
    """envkit's settings and the stack's: `stack`, else the `up` stack's, else the default."""
    from envkit.evidence.redact import Redactor
    from envkit.logs import configure_logging
    from envkit.spec.settings import load_settings

    env_file = ROOT / ".env"
    chosen = stack or _current_stack(env_file)
    settings = _guard(lambda: load_settings(env_file, stack=chosen, root=ROOT))
    configure_logging(Redactor(settings.secret_values()), verbose=verbose)
    return settings


def _current_stack(env_file: Path) -> Path:
    """The `up` stack's file when one is up, else the default stack (the MGM stack)."""
    from envkit.lifecycle.commands import up_stack_file
    from envkit.spec.settings import load_settings

    # envkit's own paths first (unknown names not refused yet): they say where `up`'s state is.
    core = _guard(lambda: load_settings(env_file, strict=False, root=ROOT))
    return up_stack_file(core) or core.workspace.default_stack


def _guard(call: Callable[[], T]) -> T:
    """Run a library call; an envkit or probe error becomes Exit with its message (exit code 2)."""
    try:
        return call()
    except (EnvkitError, HealthcheckError) as exc:
        raise Exit(f"envkit: {exc}", code=2) from exc


def _stack_settings(
    verbose: bool = False, images: list[str] | None = None, stack: Path | None = None
) -> EnvkitSettings:
    """Settings for a task that starts a stack: `--image` flags merged into the image
    override, its directories taken from where the task was invoked."""
    from envkit.spec.settings import with_image_overrides

    here = Path.cwd()  # override directories are taken from where the task was invoked
    settings = _settings(verbose, stack)
    return _guard(lambda: with_image_overrides(settings, images or [], here))


@contextmanager
def _status(text: str) -> Iterator[Callable[[str], None]]:
    with console.status(text) as status:

        def update(message: str) -> None:
            status.update(f"{text} — {message}")

        yield update


@task(
    help={
        "stack": "Also show this stack file's own settings (default: the `up` stack's, else "
        "compose/tier-b.toml, the MGM stack).",
        "verbose": "Log debug detail too.",
    }
)
def config(c: Context, stack: str = "", verbose: bool = False) -> None:
    """Print envkit's and the stack's settings (secrets redacted) and where each came from."""
    from envkit.spec.settings import describe_sources

    path = _stack_path(stack) if stack else _current_stack(ROOT / ".env")
    settings = _settings(verbose, path)
    table = Table("setting", "value", "source", title=f"envkit configuration, stack {path}")
    for name, value, source in describe_sources(settings, ROOT / ".env"):
        table.add_row(name, value, source)
    console.print(table)


@task(help={"verbose": "Log debug detail too."})
def engine(c: Context, verbose: bool = False) -> None:
    """Find a reachable Docker engine; start Debian's dockerd when none answers and it is safe."""
    from envkit.engines.engine import ensure_engine

    settings = _settings(verbose)
    info = _guard(lambda: ensure_engine(settings.timeouts.engine_start_seconds))
    how = "started by envkit" if info.started_here else "already running"
    kind = "Podman" if info.kind == "podman" else "Docker"
    console.print(f"{kind} engine {info.server_version} at {info.endpoint} ({how})")


@task(help={"verbose": "Log debug detail too."})
def images(c: Context, verbose: bool = False) -> None:
    """Produce every image the stack needs: public ones if available, else built locally."""
    from envkit.engines.images import build_images

    settings = _settings(verbose)
    with _status("producing images") as progress:
        results = _guard(lambda: build_images(settings, progress))
    table = Table("role", "origin", "action", "seconds", "why", title="images")
    table.add_column("image", overflow="fold")
    for r in results.values():
        table.add_row(r.role, r.origin, r.action, f"{r.seconds:.1f}", r.reason, r.ref)
    console.print(table)


STACK_HELP = "Stack file to use (default: compose/tier-b.toml, the MGM stack)."
IMAGE_HELP = (
    "Run SERVICE from another image: SERVICE=IMAGE (e.g. backend=registry.example/app:1.4) or "
    "SERVICE=DIR, a directory with a Dockerfile to build (starts with ./, / or ~); repeatable; "
    "adds to ENVKIT_IMAGES__OVERRIDE."
)


def _stack_path(stack: str) -> Path:
    path = Path(stack) if stack else ROOT / "compose" / "tier-b.toml"
    return path if path.is_absolute() else (Path.cwd() / path)


SCENARIO_HELP = (
    "Run this scenario instead of the stack's: a scenario file (*.toml, path from the project "
    "root) or a Python module (pkg.module); recorded for replay."
)


def _scenario_ref(scenario: str) -> str | None:
    if not scenario.endswith(".toml"):
        return scenario or None
    return str(ROOT / scenario)  # from the project root (an absolute path stays as it is)


def _from_root(path: str) -> Path:
    """A path named on the command line, taken from the project root unless absolute."""
    return (ROOT / path).resolve()


def _interrupted() -> Exit:
    return Exit("envkit: interrupted; the stack's containers and network were removed.", code=130)


@task(
    help={"stack": STACK_HELP, "image": IMAGE_HELP, "verbose": "Log debug detail too."},
    iterable=["image"],
)
def up(c: Context, stack: str = "", image: list[str] | None = None, verbose: bool = False) -> None:
    """Start the stack on its fixed 127.0.0.1 ports and leave it running (demo mode)."""
    from envkit.lifecycle.commands import up as start_stack

    path = _stack_path(stack)
    settings = _stack_settings(verbose, image, path)
    try:
        with _status("up") as progress:
            state = _guard(lambda: start_stack(settings, path, progress))
    except KeyboardInterrupt:
        raise _interrupted() from None
    _render_services(state, f"stack up: run {state.run_id}")
    console.print(f"logs: {state.artifact_dir} (live: `invoke logs`); remove with `invoke down`.")


def _render_services(state: UpState, title: str) -> None:
    table = Table("component", "state", "ready (s)", "host URL", "in-network URL", title=title)
    table.add_column("image", overflow="fold")
    for name, row in state.services.items():
        ready = row.seconds_to_ready
        table.add_row(
            name,
            row.state,
            f"{ready:.2f}" if isinstance(ready, float) else "-",
            row.host_url or "-",
            row.network_url or "-",
            row.image,
        )
    console.print(table)


@task
def down(c: Context) -> None:
    """Remove the stack `invoke up` started, keeping each service's whole log in its artifacts."""
    from envkit.lifecycle.commands import down as stop_stack

    settings = _settings()
    result = _guard(lambda: stop_stack(settings))
    console.print(f"removed run {result.run_id}: {result.removed} containers")
    for path in result.logs:
        console.print(f"  log kept: {path}")


@task
def status(c: Context) -> None:
    """Show the running `up` stack: each component, its state and URLs."""
    from envkit.lifecycle.commands import status as stack_status

    settings = _settings()
    state = _guard(lambda: stack_status(settings))
    _render_services(state, f"run {state.run_id} (up since {state.started_at})")


@task(help={"service": "Only this service's log.", "follow": "Keep printing new lines."})
def logs(c: Context, service: str = "", follow: bool = False) -> None:
    """Print the `up` stack's logs (secrets redacted)."""
    from envkit.lifecycle.commands import logs as stack_logs

    settings = _settings()
    try:
        for line in _guard(lambda: stack_logs(settings, service or None, follow)):
            print(line)
    except KeyboardInterrupt:
        pass


@task(
    help={
        "images": "Also remove envkit images that the current inputs no longer produce.",
        "all": "Also remove the `invoke up` stack.",
        "dry_run": "Only list what would be removed.",
    }
)
def clean(c: Context, images: bool = False, all: bool = False, dry_run: bool = False) -> None:
    """Remove stacks left by killed runs (only those whose process is gone), and stale images."""
    from envkit.engines.images import clean_images
    from envkit.lifecycle.commands import clean as reap_runs

    settings = _settings()
    verb = "would remove" if dry_run else "removed"
    report = _guard(lambda: reap_runs(settings, include_up=all, dry_run=dry_run))
    for run_id in report.runs:
        console.print(f"{verb} leftover run {run_id}")
    for run_id in report.kept_live:
        console.print(f"kept run {run_id}: its process is alive or it is the `up` stack")
    if images:
        removed, refused = _guard(lambda: clean_images(settings, dry_run=dry_run))
        for ref in removed:
            console.print(f"{verb} image {ref}")
        for ref, why in refused:
            console.print(f"kept image {ref}: {why}")
    console.print(f"{verb} {report.containers} containers from {len(report.runs)} runs")


RUN_HELP = {
    "stack": STACK_HELP,
    "only": "Run only one tier of the scenario (MGM: tier-a, the enrollment gate, or tier-b).",
    "scenario": SCENARIO_HELP,
    "keep": "After a failure, leave the stack running and say how to reach it.",
    "repeat": "Run N times, then print a table of outcomes and timings (flake hunting).",
    "override": "Misconfigure one service on purpose: SERVICE.VARIABLE=VALUE (repeatable), "
    "e.g. backend.Twitch__EventSubSecret=wrong; recorded for replay.",
    "image": IMAGE_HELP + " Recorded for replay.",
    "verbose": "Log debug detail too.",
}


@task(name="run", help=RUN_HELP, iterable=["override", "image"])
def run_stack(
    c: Context,
    stack: str = "",
    only: str = "",
    keep: bool = False,
    repeat: int = 1,
    override: list[str] | None = None,
    scenario: str = "",
    image: list[str] | None = None,
    verbose: bool = False,
) -> None:
    """Run the stack's scenario in an isolated environment; exit non-zero on any failure."""
    _run_isolated("run", stack, only, keep, repeat, override, scenario, image, verbose)


@task(help=RUN_HELP, iterable=["override", "image"])
def tier_b(
    c: Context,
    stack: str = "",
    only: str = "",
    keep: bool = False,
    repeat: int = 1,
    override: list[str] | None = None,
    scenario: str = "",
    image: list[str] | None = None,
    verbose: bool = False,
) -> None:
    """Prove the MGM stack end to end (`run` under the name MGM's CI knows)."""
    _run_isolated("tier-b", stack, only, keep, repeat, override, scenario, image, verbose)


def _run_isolated(
    name: str,
    stack: str,
    only: str,
    keep: bool,
    repeat: int,
    override: list[str] | None,
    scenario: str,
    image: list[str] | None,
    verbose: bool,
) -> None:
    """`run` and `tier-b`: `repeat` isolated runs, each rendered; Exit 1 if any failed."""
    from envkit.scenario.runner import parse_overrides, run_isolated

    path = _stack_path(stack)
    settings = _stack_settings(verbose, image, path)
    overrides = _guard(lambda: parse_overrides(override or []))
    outcomes = []
    for round_ in range(1, max(1, repeat) + 1):
        try:
            with _status(f"{name} run {round_}/{repeat}") as progress:
                outcome, where = _guard(
                    lambda: run_isolated(
                        settings,
                        path,
                        only=only or None,
                        keep=keep,
                        overrides=overrides,
                        progress=progress,
                        scenario_ref=_scenario_ref(scenario),
                    )
                )
        except KeyboardInterrupt:
            raise _interrupted() from None
        outcomes.append((outcome, where))
        _render_outcome(outcome, where, kept=keep, name=name)
    if repeat > 1:
        _render_repeats(outcomes)
    failed = [o for o, _ in outcomes if o.verdict != "passed"]
    if failed:
        raise Exit(f"{name} FAILED in {len(failed)} of {len(outcomes)} run(s).", code=1)


def _render_outcome(outcome: RunOutcome, where: Path, kept: bool, name: str = "") -> None:
    table = Table("step", "tier", "status", "s", "result / error", title=f"run {outcome.run_id}")
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
            console.print("  remove it with `invoke clean --all`")


def _render_repeats(outcomes: list[tuple[RunOutcome, Path]]) -> None:
    rows = [RepeatRow.of(outcome) for outcome, _ in outcomes]
    tiers = list(dict.fromkeys(tier for r in rows for tier in r.tiers))  # one column per tier
    table = Table("run", "verdict", "total s", "start s", *(f"{t} s" for t in tiers), "failure")
    for r in rows:
        seconds = (r.total_s, r.start_s, *(r.tiers.get(t, 0.0) for t in tiers))
        table.add_row(r.run_id, r.verdict, *(f"{s:.2f}" for s in seconds), r.failure_class or "")
    passed = sum(1 for r in rows if r.verdict == "passed")
    table.title = f"{passed}/{len(rows)} passed"
    console.print(table)


@task(
    help={
        "only": "Run only one tier of the scenario (MGM: tier-a or tier-b).",
        "scenario": SCENARIO_HELP,
    }
)
def orchestrate(c: Context, only: str = "", scenario: str = "") -> None:
    """Run the stack's scenario (or --scenario) against the stack `invoke up` started."""
    from envkit.scenario.runner import orchestrate as run_checks

    settings = _settings()
    ref = _scenario_ref(scenario)
    with _status("orchestrating") as progress:
        outcome, where = _guard(
            lambda: run_checks(settings, only=only or None, progress=progress, scenario_ref=ref)
        )
    _render_outcome(outcome, where, kept=False)
    if outcome.verdict != "passed":
        raise Exit("orchestrate FAILED.", code=1)


@task(help={"run": "The artifact directory of the run to replay, e.g. artifacts/mgm-…"})
def replay(c: Context, run: str) -> None:
    """Rerun a recorded run (settings, stack, options, images from its manifest; secrets local)."""
    from envkit.scenario.runner import replay as replay_run

    _settings()
    try:
        with _status("replaying") as progress:
            result = _guard(lambda: replay_run(_from_root(run), progress=progress, root=ROOT))
    except KeyboardInterrupt:
        raise _interrupted() from None
    outcome, original = result.outcome, result.original_class
    _render_outcome(outcome, result.artifact_dir, kept=False)
    now = outcome.failure.failure_class if outcome.failure else None
    same = "the same as" if now == original else "DIFFERENT from"
    console.print(
        f"replay of {run}: {now or 'passed'}, {same} the original ({original or 'passed'})"
    )
    for change in result.image_changes:
        console.print(f"  image changed: {change}")
    if outcome.verdict != "passed":
        raise Exit("replayed run FAILED.", code=1)


@task(help={"limit": "How many of the most recent runs to list."})
def history(c: Context, limit: int = 20) -> None:
    """List recent tier-b runs from the local history (verdict, class, timings, commit)."""
    from envkit.evidence.history import recent_runs

    settings = _settings()
    table = Table("run", "started", "verdict", "failure class", "total s", "commit")
    for run in _guard(lambda: recent_runs(settings, limit)):
        table.add_row(
            run.run_id, run.started_at, run.verdict, run.failure_class or "",
            f"{run.total_s:.1f}", (run.git_commit or "")[:10],
        )  # fmt: skip
    console.print(table)


@task(
    help={
        "days": "Window of the report, in days back from now.",
        "out": "Directory to write health-report.md and health-report.json into.",
    }
)
def health_report(c: Context, days: int = 30, out: str = "") -> None:
    """Rolling statistics over the history: runs, pass rate, p50/p95 time, classes, slowest."""
    from envkit.evidence.health import build_health_report, write_health_report

    settings = _settings()
    report = _guard(lambda: build_health_report(settings, days))
    print(report.markdown())  # markdown as is: no wrapping, no markup interpretation
    if out:
        for path in _guard(lambda: write_health_report(report, _from_root(out))):
            console.print(f"wrote {path}")


@task(help={"json": "Print the decision as JSON (for the alert workflow)."})
def alert(c: Context, json: bool = False) -> None:
    """Open one alert when the latest two completed runs failed; resolve it on a green run."""
    from envkit.evidence.alert import evaluate_alert

    settings = _settings()
    decision = _guard(lambda: evaluate_alert(settings))
    # Plain print: the JSON is read by a workflow and must not be wrapped or styled.
    print(decision.to_json() if json else decision.describe())


@task(help={"pause": "Wait for Enter between steps (for a live audience)."})
def demo(c: Context, pause: bool = False) -> None:
    """Bring the stack up and walk through Tier A and Tier B step by step; leave it up."""
    from envkit.scenario.demo import run_demo

    settings = _stack_settings()
    try:
        result = _guard(lambda: run_demo(settings, say=console.print, pause=pause))
    except KeyboardInterrupt:
        message = "demo interrupted; the stack is still up (`invoke down` removes it)."
        raise Exit(message, code=130) from None
    if result.verdict != "passed":
        raise Exit("demo: a check FAILED (see above); the stack is still up for a look.", code=1)


@task(
    name="test",
    help={
        "pytest_args": "Extra arguments for pytest, e.g. '-k settings -x'.",
        "unit": "Run only the unit tests (no Docker).",
    },
)
def run_tests(c: Context, pytest_args: str = "", unit: bool = False) -> None:
    """Lint (ruff), type-check (mypy) and run the tests; integration tests use a real engine."""
    py = sys.executable
    c.run(f"{py} -m ruff check .", echo=True)
    c.run(f"{py} -m ruff format --check .", echo=True)
    c.run(f"{py} -m mypy", echo=True)
    if not unit:
        engine(c)
    target = "tests/unit" if unit else "tests"
    c.run(f"{py} -m pytest {target} {pytest_args}", echo=True, pty=False)


ns = Collection(
    config, engine, images, up, down, status, logs, clean, run_stack, tier_b, orchestrate, replay,
    history, health_report, alert, demo, run_tests,
)  # fmt: skip
