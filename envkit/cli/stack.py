"""The commands around one stack: its settings, the engine, images, and the `up` stack."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from envkit.cli.project import (
    Project,
    console,
    guard,
    interrupted,
    status_line,
    table_of,
)
from envkit.lifecycle.state import UpState
from envkit.program import command

STACK_HELP = (
    "Stack file to use (default: the project's compose/tier-b.toml, else the stack bundled "
    "with envkit)."
)
IMAGE_HELP = (
    "Run SERVICE from another image: SERVICE=IMAGE (e.g. backend=registry.example/app:1.4) or "
    "SERVICE=DIR, a directory with a Dockerfile to build (starts with ./, / or ~); repeatable; "
    "adds to ENVKIT_IMAGES__OVERRIDE."
)


@task(
    help={
        "stack": "Also show this stack file's own settings (default: the `up` stack's, else "
        "the default stack).",
        "verbose": "Log debug detail too.",
    }
)
def config(c: Context, stack: str = "", verbose: bool = False) -> None:
    """Print envkit's and the stack's settings (secrets redacted) and where each came from."""
    from envkit.spec.settings import describe_sources

    project = Project.of(c)
    path = project.stack_path(stack) if stack else project.current_stack()
    settings = project.settings(verbose, path)
    table = table_of("setting", "value", "source", title=f"envkit configuration, stack {path}")
    for name, value, source in describe_sources(settings, project.env_file):
        table.add_row(name, value, source)
    console.print(table)


@task(help={"verbose": "Log debug detail too."})
def engine(c: Context, verbose: bool = False) -> None:
    """Find a reachable Docker engine; start Debian's dockerd when none answers and it is safe."""
    from envkit.engines.engine import ensure_engine

    settings = Project.of(c).settings(verbose)
    info = guard(lambda: ensure_engine(settings.timeouts.engine_start_seconds))
    how = "started by envkit" if info.started_here else "already running"
    kind = "Podman" if info.kind == "podman" else "Docker"
    console.print(f"{kind} engine {info.server_version} at {info.endpoint} ({how})")


@task(help={"verbose": "Log debug detail too."})
def images(c: Context, verbose: bool = False) -> None:
    """Produce every image the stack needs: public ones if available, else built locally."""
    from envkit.engines.images import build_images

    settings = Project.of(c).settings(verbose)
    with status_line("producing images") as progress:
        results = guard(lambda: build_images(settings, progress))
    table = table_of("role", "origin", "action", "seconds", "why", title="images")
    table.add_column("image", overflow="fold")
    for r in results.values():
        table.add_row(r.role, r.origin, r.action, f"{r.seconds:.1f}", r.reason, r.ref)
    console.print(table)


@task(
    help={"stack": STACK_HELP, "image": IMAGE_HELP, "verbose": "Log debug detail too."},
    iterable=["image"],
)
def up(c: Context, stack: str = "", image: list[str] | None = None, verbose: bool = False) -> None:
    """Start the stack on its fixed 127.0.0.1 ports and leave it running (demo mode)."""
    from envkit.lifecycle.commands import up as start_stack

    project = Project.of(c)
    path = project.stack_path(stack)
    settings = project.stack_settings(verbose, image, path)
    try:
        with status_line("up") as progress:
            state = guard(lambda: start_stack(settings, path, progress))
    except KeyboardInterrupt:
        raise interrupted() from None
    render_services(state, f"stack up: run {state.run_id}")
    console.print(
        f"logs: {state.artifact_dir} (live: `{command('logs')}`); remove with `{command('down')}`."
    )


def render_services(state: UpState, title: str) -> None:
    """The `up` stack's components as a table: state, readiness, URLs, image."""
    table = table_of("component", "state", "ready (s)", "host URL", "in-network URL", title=title)
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
    """Remove the stack `up` started, keeping each service's whole log in its artifacts."""
    from envkit.lifecycle.commands import down as stop_stack

    settings = Project.of(c).settings()
    result = guard(lambda: stop_stack(settings))
    console.print(f"removed run {result.run_id}: {result.removed} containers")
    for path in result.logs:
        console.print(f"  log kept: {path}")


@task
def status(c: Context) -> None:
    """Show the running `up` stack (each component, its state and URLs) and, with an engine
    pool, every engine: does it answer, its envkit runs, its busy slots."""
    from envkit.lifecycle.commands import pool_status, up_stack_file
    from envkit.lifecycle.commands import status as stack_status

    settings = Project.of(c).settings()
    if settings.engines.pool:
        table = table_of("engine", "answers", "runs", "busy slots", title="engine pool")
        for row in guard(lambda: pool_status(settings)):
            table.add_row(
                row.endpoint, "yes" if not row.problem else f"no: {row.problem}",
                ", ".join(row.runs) or "-", f"{row.busy_slots}/{row.per_engine}",
            )  # fmt: skip
        console.print(table)
        if up_stack_file(settings) is None:
            console.print("no `up` stack")
            return
    state = guard(lambda: stack_status(settings))
    where = f" on {state.engine}" if state.engine else ""
    render_services(state, f"run {state.run_id} (up since {state.started_at}{where})")


@task(help={"service": "Only this service's log.", "follow": "Keep printing new lines."})
def logs(c: Context, service: str = "", follow: bool = False) -> None:
    """Print the `up` stack's logs (secrets redacted)."""
    from envkit.lifecycle.commands import logs as stack_logs

    settings = Project.of(c).settings()
    try:
        for line in guard(lambda: stack_logs(settings, service or None, follow)):
            print(line)
    except KeyboardInterrupt:
        pass


@task(
    help={
        "images": "Also remove envkit images that the current inputs no longer produce.",
        "all": "Also remove the `up` stack.",
        "dry_run": "Only list what would be removed.",
    }
)
def clean(c: Context, images: bool = False, all: bool = False, dry_run: bool = False) -> None:
    """Remove stacks left by killed runs (only those whose process is gone), and stale images."""
    from envkit.engines.images import clean_images
    from envkit.lifecycle.commands import clean_pool

    settings = Project.of(c).settings()
    verb = "would remove" if dry_run else "removed"
    engines = guard(lambda: clean_pool(settings, include_up=all, dry_run=dry_run))
    pooled = len(engines) > 1
    for done in engines:
        on = f" on {done.endpoint}" if pooled else ""
        if done.report is None:
            console.print(
                f"skipped the engine at {done.endpoint}: it does not answer ({done.problem})"
            )
            continue
        for run_id in done.report.runs:
            console.print(f"{verb} leftover run {run_id}{on}")
        for run_id in done.report.kept_live:
            console.print(f"kept run {run_id}{on}: its process is alive or it is the `up` stack")
        if pooled:
            console.print(
                f"{done.endpoint}: {verb} {done.report.containers} containers from "
                f"{len(done.report.runs)} runs"
            )
    if images:
        removed, refused = guard(lambda: clean_images(settings, dry_run=dry_run))
        for ref in removed:
            console.print(f"{verb} image {ref}")
        for ref, why in refused:
            console.print(f"kept image {ref}: {why}")
    containers = sum(d.report.containers for d in engines if d.report)
    runs = sum(len(d.report.runs) for d in engines if d.report)
    console.print(f"{verb} {containers} containers from {runs} runs")
