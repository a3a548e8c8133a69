"""envkit's command line: one Invoke collection of tasks, and the `envkit` console script.

`namespace()` is the collection; envkit's repository adds its own tasks (`test`) to it
in `tasks.py` and passes the repository as the project root. `program` is an Invoke
`Program` over the same collection: the `envkit` console script (`main`), which serves
the project in the current directory and names itself in every hint it prints.
"""

from __future__ import annotations

from pathlib import Path

from invoke.collection import Collection
from invoke.program import Program

from envkit import __version__
from envkit.cli.history import alert, diff, health_report, history
from envkit.cli.project import guard
from envkit.cli.runs import demo, orchestrate, replay, run_stack, tier_b
from envkit.cli.stack import clean, config, down, engine, images, logs, status, up
from envkit.program import running_as

PROGRAM = "envkit"

__all__ = ["PROGRAM", "EnvkitProgram", "guard", "main", "namespace", "program"]


def namespace(root: Path | None = None) -> Collection:
    """A new collection of envkit's commands serving the project at `root` (default: the cwd)."""
    ns = Collection(
        config, engine, images, up, down, status, logs, clean, run_stack, tier_b, orchestrate,
        replay, history, diff, health_report, alert, demo,
    )  # fmt: skip
    ns.configure({"envkit": {"root": str(root) if root else ""}})
    return ns


class EnvkitProgram(Program):
    """Invoke's `Program` for the console script: hints printed during a run name `envkit`."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        """Run the command line `argv` (default: sys.argv) as the `envkit` program."""
        with running_as(PROGRAM):
            super().run(argv, exit)


program = EnvkitProgram(namespace=namespace(), name=PROGRAM, binary=PROGRAM, version=__version__)


def main() -> None:
    """The `envkit` console script's entry point."""
    program.run()
