"""The state file `invoke up` leaves so `down`, `status` and `logs` find the running stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envkit.errors import RunStateError

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
    """The state of the stack `invoke up` left running, or None; a broken file is an error."""
    path = state_path(root)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunStateError(_broken(path, str(exc))) from exc
    if not (isinstance(data, dict) and isinstance(data.get("run_id"), str)):
        raise RunStateError(_broken(path, "it names no run id"))
    state: dict[str, Any] = data
    return state


def _broken(path: Path, why: str) -> str:
    return (
        f"The `up` state file {path} is damaged ({why}), so envkit cannot tell which stack is "
        "up. `invoke clean --all` removes the `up` stack and this file; then start again with "
        "`invoke up`."
    )


def clear_state(root: Path) -> None:
    """Forget the `up` stack."""
    state_path(root).unlink(missing_ok=True)
