"""Run a stack in a child process for signal tests: prints the run id, then READY, then waits.

ENVKIT_REAPER__* variables of its own environment pass through (a test turns the
engine's reaper off to test the host-side one alone).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from envkit.lifecycle.commands import running_stack
from envkit.spec.settings import load_settings


def main() -> None:
    """Usage: python stack_runner.py STACK_FILE ARTIFACT_ROOT."""
    settings = load_settings(
        env_file=None,
        environ={
            "ENVKIT_ARTIFACT_ROOT": sys.argv[2],
            "ENVKIT_HISTORY_PATH": sys.argv[2] + "/history.sqlite",
            **{k: v for k, v in os.environ.items() if k.startswith("ENVKIT_REAPER__")},
        },
        stack=Path(sys.argv[1]),
    )
    with running_stack(settings, Path(sys.argv[1])) as env:
        print("READY", env.run_id, flush=True)
        time.sleep(600)


if __name__ == "__main__":
    main()
