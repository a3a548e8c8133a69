"""The state file `invoke up` leaves so `down`, `status` and `logs` find the running stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE_FILE = "up.json"


def state_path(root: Path) -> Path:
    """Where the `up` state file lives in the state directory `root`."""
    return root / STATE_FILE


def write_state(root: Path, state: dict[str, Any]) -> Path:
    """Write the state atomically (a reader never sees half a file)."""
    path = state_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(state, indent=2, default=str) + "\n")
    staging.replace(path)
    return path


def read_state(root: Path) -> dict[str, Any] | None:
    """The state of the stack `invoke up` left running, or None."""
    path = state_path(root)
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def clear_state(root: Path) -> None:
    """Forget the `up` stack."""
    state_path(root).unlink(missing_ok=True)
