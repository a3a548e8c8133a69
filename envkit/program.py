"""The command users run envkit through, for every message that says what to run next.

From envkit's own repository checkout that is `./inv`; from an installed envkit (the
Python API, the pytest plugin) it is `envkit`; the console script sets `envkit` for the
length of its run (`running_as`). The replay command in
report.md and manifest.json, and hints such as "remove it with `./inv down`", are
built with `command`, so they name the program the user actually ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

REPOSITORY_PROGRAM = "./inv"
INSTALLED_PROGRAM = "envkit"


def _default_program() -> str:
    checkout = Path(__file__).resolve().parents[1]
    in_repository = (checkout / "inv").is_file() and (checkout / "tasks.py").is_file()
    return REPOSITORY_PROGRAM if in_repository else INSTALLED_PROGRAM


DEFAULT_PROGRAM = _default_program()
_PROGRAM: ContextVar[str] = ContextVar("envkit_program", default=DEFAULT_PROGRAM)


def program_name() -> str:
    """The program the current command was run through: `./inv` or `envkit`."""
    return _PROGRAM.get()


def command(arguments: str) -> str:
    """`arguments` as a command line the user can type, e.g. `command("down")` -> `./inv down`."""
    return f"{_PROGRAM.get()} {arguments}"


@contextmanager
def running_as(program: str) -> Iterator[None]:
    """Name `program` in every hint built inside the block (the previous name after it)."""
    token = _PROGRAM.set(program)
    try:
        yield
    finally:
        _PROGRAM.reset(token)
