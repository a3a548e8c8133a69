"""Every error envkit raises, in one hierarchy.

    EnvkitError                  root: the tasks turn it into `Exit` with its message
    ├── SettingsError            a setting is invalid; names the setting and the fix
    ├── EngineError              no Docker engine could be found or started
    ├── ImageError               an image could not be produced
    └── StepError                an external command (apt-get, debootstrap, pip, docker build)
                                 failed; carries the command and the tail of its output

Messages are whole sentences that say what went wrong and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence


class EnvkitError(Exception):
    """Root of every error envkit raises on purpose."""


class SettingsError(EnvkitError):
    """One or more settings are invalid; `problems` holds one sentence per setting."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "setting is" if len(self.problems) == 1 else "settings are"
        super().__init__(f"{len(self.problems)} {noun} invalid:\n{lines}")


class EngineError(EnvkitError):
    """No Docker engine answered and none could be started here."""


class ImageError(EnvkitError):
    """An image the stack needs could not be found, pulled or built."""


class StepError(EnvkitError):
    """An external command failed; carries the command and the tail of its output."""

    def __init__(self, step: str, command: Sequence[str], output_tail: str, hint: str) -> None:
        self.step = step
        self.command = list(command)
        self.output_tail = output_tail
        message = (
            f"Step '{step}' failed: {' '.join(self.command)}\n"
            f"--- last lines of its output ---\n{output_tail}\n--- hint ---\n{hint}"
        )
        super().__init__(message)
