"""Where a project's files live: one `Workspace` instead of module constants and `os.chdir`.

The user's project root (default: the current directory when the settings are
built) is where relative settings resolve: the artifact root, the cache, the
history file, `.env`, the default stack file. envkit's own files (the services'
code, `constraints.txt`, the stacks bundled under `compose/`) are a different
place, `envkit_home`: the installed `envkit` package, where the repository links its
top-level `services/`, `healthchecks/`, `compose/` and `constraints.txt` in, so a
checkout and a wheel look alike. It is never the project root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envkit.spec.settings import EnvkitSettings

# The envkit package: its image inputs and bundled stacks travel with the code, wherever
# the project is.
_ENVKIT_HOME = Path(__file__).resolve().parents[1]
DEFAULT_STACK_FILE = Path("compose") / "tier-b.toml"


@dataclass(frozen=True)
class Workspace:
    """The absolute paths one settings object and one project root give."""

    root: Path  # the project directory relative paths are taken from
    artifacts: Path  # <artifact root>; a run's artifacts go to <artifacts>/<run id>
    cache: Path  # image work directories, `up` state
    history: Path  # the run history's SQLite file
    env_file: Path
    envkit_home: Path = _ENVKIT_HOME  # services/, constraints.txt, compose/ (envkit's own)

    @classmethod
    def of(cls, settings: EnvkitSettings, root: Path | None = None) -> Workspace:
        """The workspace of `settings` under `root` (default: the current directory)."""
        base = (root or Path.cwd()).resolve()
        return cls(
            root=base,
            artifacts=(base / settings.artifact_root).resolve(),
            cache=(base / settings.cache_dir).resolve(),
            history=(base / settings.history_path).resolve(),
            env_file=base / ".env",
        )

    @property
    def state(self) -> Path:
        """Where `invoke up` keeps the state of the stack it left running."""
        return self.cache / "state"

    @property
    def default_stack(self) -> Path:
        """The stack file used when none is named: the project's `compose/tier-b.toml`, else
        stack that ships with envkit (`compose/tier-b.toml` of the package)."""
        own = self.root / DEFAULT_STACK_FILE
        return own if own.is_file() else self.envkit_home / DEFAULT_STACK_FILE

    def resolve(self, path: Path | str) -> Path:
        """`path` as given when absolute, else taken from the project root."""
        given = Path(path)
        return given if given.is_absolute() else self.root / given

    def display(self, path: Path) -> str:
        """`path` relative to the project root when it lies inside it, else absolute."""
        absolute = path.resolve()
        try:
            return str(absolute.relative_to(self.root))
        except ValueError:
            return str(absolute)
