"""envkit's Invoke tasks for this repository: envkit's commands plus the repository's own.

The commands themselves live in the package (`envkit.cli`, also the `envkit` console
script); here they serve this checkout as the project root. Run them through
`./inv <task>` (sets up .venv on first use) or, inside the venv, `invoke <task>`.
`invoke --list` shows them all.
"""

from __future__ import annotations

import sys
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from envkit.cli import namespace
from envkit.cli.stack import engine

# The repository is the project these tasks serve: passed down as the root, never entered.
ROOT = Path(__file__).resolve().parent


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


ns = namespace(ROOT)
ns.add_task(run_tests)
