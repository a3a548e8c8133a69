"""envkit's Invoke tasks: thin wrappers that parse flags and call one library function each.

Run them through `./inv <task>` (sets up .venv on first use) or, inside the
venv, `invoke <task>`. `invoke --list` shows them all.
"""

from __future__ import annotations

import os
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

from envkit.errors import EnvkitError
from envkit.settings import EnvkitSettings

ROOT = Path(__file__).resolve().parent
# Logs and CI captures are not terminals: give tables room instead of rich's 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
T = TypeVar("T")


def _settings(verbose: bool = False) -> EnvkitSettings:
    from envkit.logs import configure_logging
    from envkit.redact import Redactor
    from envkit.settings import load_settings

    os.chdir(ROOT)
    settings = _guard(lambda: load_settings(ROOT / ".env"))
    configure_logging(Redactor(settings.secret_values()), verbose=verbose)
    return settings


def _guard(call: Callable[[], T]) -> T:
    """Run a library call; an EnvkitError becomes Exit with its message (exit code 2)."""
    try:
        return call()
    except EnvkitError as exc:
        raise Exit(f"envkit: {exc}", code=2) from exc


@contextmanager
def _status(text: str) -> Iterator[Callable[[str], None]]:
    with console.status(text) as status:

        def update(message: str) -> None:
            status.update(f"{text} — {message}")

        yield update


@task(help={"verbose": "Log debug detail too."})
def config(c: Context, verbose: bool = False) -> None:
    """Print the resolved configuration (secrets redacted) and where each value came from."""
    from envkit.settings import describe_sources

    settings = _settings(verbose)
    table = Table("setting", "value", "source", title="envkit configuration")
    for name, value, source in describe_sources(settings, ROOT / ".env"):
        table.add_row(name, value, source)
    console.print(table)


@task(help={"verbose": "Log debug detail too."})
def engine(c: Context, verbose: bool = False) -> None:
    """Find a reachable Docker engine; start Debian's dockerd when none answers and it is safe."""
    from envkit.engine import ensure_engine

    settings = _settings(verbose)
    info = _guard(lambda: ensure_engine(settings.timeouts.engine_start_seconds))
    how = "started by envkit" if info.started_here else "already running"
    console.print(f"Docker engine {info.server_version} at {info.endpoint} ({how})")


@task(help={"verbose": "Log debug detail too."})
def images(c: Context, verbose: bool = False) -> None:
    """Produce every image the stack needs: public ones if available, else built locally."""
    from envkit.images import build_images

    settings = _settings(verbose)
    with _status("producing images") as progress:
        results = _guard(lambda: build_images(settings, progress))
    table = Table("role", "origin", "action", "seconds", "why", title="images")
    table.add_column("image", overflow="fold")
    for r in results.values():
        table.add_row(r.role, r.origin, r.action, f"{r.seconds:.1f}", r.reason, r.ref)
    console.print(table)


@task(
    help={
        "images": "Remove envkit images that the current inputs no longer produce.",
        "dry_run": "Only list what would be removed.",
    }
)
def clean(c: Context, images: bool = False, dry_run: bool = False) -> None:
    """Remove what envkit left behind (for now: stale images, with --images)."""
    from envkit.images import clean_images

    settings = _settings()
    if not images:
        raise Exit(
            "Nothing to clean without --images yet: removing leftover stacks arrives with the "
            "composer. Try `invoke clean --images`.",
            code=2,
        )
    removed, refused = _guard(lambda: clean_images(settings, dry_run=dry_run))
    verb = "would remove" if dry_run else "removed"
    for ref in removed:
        console.print(f"{verb} {ref}")
    for ref, why in refused:
        console.print(f"kept {ref}: {why}")
    if not removed and not refused:
        console.print("no stale envkit images")


@task(help={"verbose": "Log debug detail too."})
def tier_b(c: Context, verbose: bool = False) -> None:
    """Prove the MGM stack end to end (today: engine and images; the rest is not built yet)."""
    from envkit.images import build_images

    settings = _settings(verbose)
    with _status("tier-b: producing images") as progress:
        results = _guard(lambda: build_images(settings, progress))
    for r in results.values():
        console.print(f"image {r.role}: {r.ref} ({r.origin}, {r.action}, {r.seconds:.1f} s)")
    raise Exit(
        "tier-b NOT RUN: engine and images are ready, but starting the stack and the Tier A/B "
        "checks are not built yet (composer and orchestrator). Nothing was proven.",
        code=3,
    )


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


ns = Collection(config, engine, images, clean, tier_b, run_tests)
