"""What every command shares: the project it serves, its settings, errors as `Exit`, output.

The project root is where relative settings, `.env` and the default stack file are
taken from: envkit's repository for its own `invoke` tasks, the current directory for
the `envkit` console script. It travels in Invoke's configuration (`envkit.root`), so
one collection of tasks serves both.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit

from envkit.errors import EnvkitError, HealthcheckError
from envkit.program import command
from envkit.spec.settings import EnvkitSettings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status
    from rich.table import Table

T = TypeVar("T")
# A command's spinner shows once it has run this long: `up` on a warm engine has created its
# first containers by then, and rich (about 0.05 CPU-s to import) is not paid before them.
SPINNER_DELAY = 0.5


class _Console:
    """rich's Console for the commands' output, made (and rich imported) on first use."""

    def __init__(self) -> None:
        self._made: Console | None = None
        self._lock = threading.Lock()

    def get(self) -> Console:
        """The Console itself."""
        with self._lock:
            if self._made is None:
                from rich.console import Console

                # Logs and CI captures are not terminals: give tables room, not 80 columns.
                self._made = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
            return self._made

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


console = _Console()


def table_of(*columns: str, **options: Any) -> Table:
    """A rich Table with these column headers (rich imported only now)."""
    from rich.table import Table

    return Table(*columns, **options)


def guard(call: Callable[[], T]) -> T:
    """Run a library call; an envkit or probe error becomes Exit with its message (exit code 2)."""
    try:
        return call()
    except (EnvkitError, HealthcheckError) as exc:
        raise Exit(f"envkit: {exc}", code=2) from exc


def interrupted(kept: bool = False) -> Exit:
    """The Exit for Ctrl-C during a command that removes its stack on the way out (unless
    `kept`: a `--keep` run leaves it up)."""
    if kept:
        return Exit(
            f"envkit: interrupted; the stack was left up (--keep); `{command('clean')} --all` "
            "removes it.",
            code=130,
        )
    return Exit("envkit: interrupted; the stack's containers and network were removed.", code=130)


@contextmanager
def status_line(text: str, delay: float = SPINNER_DELAY) -> Iterator[Callable[[str], None]]:
    """A spinner saying `text`, shown once the body has run `delay` seconds; the function
    yielded adds the current step to it."""
    lock = threading.Lock()
    line = [text]
    shown: list[Status] = []
    done = threading.Event()

    def show() -> None:
        made = console.get()  # the import, outside the lock: `update` never waits for it
        with lock:
            if not done.is_set():
                shown.append(made.status(line[0]))
                shown[0].start()

    def update(message: str) -> None:
        with lock:
            line[0] = f"{text} — {message}"
            if shown:
                shown[0].update(line[0])

    timer = threading.Timer(delay, show)
    timer.daemon = True
    timer.start()
    try:
        yield update
    finally:
        timer.cancel()
        with lock:
            done.set()
            if shown:
                shown[0].stop()


@dataclass(frozen=True)
class Project:
    """The project a command serves: its root, `.env` and the settings built from them."""

    root: Path

    @classmethod
    def of(cls, c: Context) -> Project:
        """The project of this Invoke run: `envkit.root` from the config, else the cwd."""
        configured = c.config.get("envkit", {}).get("root")
        return cls(Path(configured).resolve() if configured else Path.cwd().resolve())

    @property
    def env_file(self) -> Path:
        """The project's `.env` file (it need not exist)."""
        return self.root / ".env"

    def settings(self, verbose: bool = False, stack: Path | None = None) -> EnvkitSettings:
        """envkit's settings and the stack's: `stack`, else the `up` stack's, else the default."""
        from envkit.evidence.redact import Redactor
        from envkit.logs import configure_logging
        from envkit.spec.settings import load_settings

        chosen = stack or self.current_stack()
        settings = guard(lambda: load_settings(self.env_file, stack=chosen, root=self.root))
        configure_logging(Redactor(settings.secret_values()), verbose=verbose)
        return settings

    def stack_settings(
        self, verbose: bool = False, images: list[str] | None = None, stack: Path | None = None
    ) -> EnvkitSettings:
        """Settings for a command that starts a stack: `--image` flags merged into the image
        override, its directories taken from where the command was run."""
        from envkit.spec.settings import with_image_overrides

        here = Path.cwd()  # override directories are taken from where the command was run
        settings = self.settings(verbose, stack)
        return guard(lambda: with_image_overrides(settings, images or [], here))

    def _core(self) -> EnvkitSettings:
        from envkit.spec.settings import load_settings

        # envkit's own paths first (unknown names not refused yet): they say where things are.
        return guard(lambda: load_settings(self.env_file, strict=False, root=self.root))

    def current_stack(self) -> Path:
        """The `up` stack's file when one is up, else the default stack."""
        from envkit.lifecycle.commands import up_stack_file

        core = self._core()
        return up_stack_file(core) or core.workspace.default_stack

    def stack_path(self, stack: str) -> Path:
        """The `--stack` file (from the current directory unless absolute), else the default."""
        if not stack:
            return self._core().workspace.default_stack
        path = Path(stack)
        return path if path.is_absolute() else Path.cwd() / path

    def scenario_ref(self, scenario: str) -> str | None:
        """`--scenario`: a module as given, a scenario file taken from the project root."""
        if not scenario.endswith(".toml"):
            return scenario or None
        return str(self.root / scenario)  # an absolute path stays as it is

    def from_root(self, path: str) -> Path:
        """A path named on the command line, taken from the project root unless absolute."""
        return (self.root / path).resolve()
