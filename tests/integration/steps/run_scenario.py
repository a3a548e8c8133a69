"""Run `tier-b` in a child process for the signal test: python run_scenario.py STACK ROOT ONLY."""

from __future__ import annotations

import sys
from pathlib import Path

from envkit.scenario.runner import run_isolated
from envkit.spec.settings import load_settings


def main() -> None:
    """Run the stack's scenario, one tier, with artifacts and history under ROOT."""
    root = sys.argv[2]
    settings = load_settings(
        env_file=None,
        environ={"ENVKIT_ARTIFACT_ROOT": root, "ENVKIT_HISTORY_PATH": root + "/history.sqlite"},
        stack=Path(sys.argv[1]),
    )
    run_isolated(settings, Path(sys.argv[1]), only=sys.argv[3])


if __name__ == "__main__":
    main()
