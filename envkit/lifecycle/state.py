"""The state file `invoke up` leaves so `down`, `status` and `logs` find the running stack."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from envkit.errors import RunStateError
from envkit.program import command

if TYPE_CHECKING:
    from envkit.evidence.outcome import ServiceRow

STATE_FILE = "up.json"


@dataclass(frozen=True)
class UpState:
    """The stack `invoke up` left running: its run, stack file, artifacts and services."""

    run_id: str
    stack: Path  # the stack file it was started from
    started_at: str  # ISO 8601
    artifact_dir: Path
    services: dict[str, ServiceRow]
    engine: str = ""  # the endpoint of the engine it runs on ("": the current one)

    def to_json(self) -> str:
        """The state file's text (the layout every version of envkit writes and reads)."""
        data = {
            "run_id": self.run_id,
            "stack": str(self.stack),
            "started_at": self.started_at,
            "artifact_dir": str(self.artifact_dir),
            "services": {name: dataclasses.asdict(row) for name, row in self.services.items()},
        }
        if self.engine:  # the current engine's stack keeps the layout older envkits read
            data["engine"] = self.engine
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> UpState:
        """The state a state file's text holds; ValueError says what is wrong with it."""
        data = json.loads(text)
        if not (isinstance(data, dict) and isinstance(data.get("run_id"), str)):
            raise ValueError("it names no run id")
        for key in ("stack", "started_at", "artifact_dir"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"its {key} is missing or not text")
        services = data.get("services")
        if not (
            isinstance(services, dict) and all(isinstance(r, Mapping) for r in services.values())
        ):
            raise ValueError("its services are missing or not a table per service")
        from envkit.evidence.outcome import ServiceRow  # the report code, only when a file is read

        try:
            rows = {name: ServiceRow.from_mapping(row) for name, row in services.items()}
        except TypeError as exc:  # a row key that is not text
            raise ValueError(f"a service row is unreadable: {exc}") from exc
        return cls(
            data["run_id"], Path(data["stack"]), data["started_at"], Path(data["artifact_dir"]),
            rows, str(data.get("engine") or ""),
        )  # fmt: skip

    def with_service_states(self, states: Mapping[str, str]) -> UpState:
        """The same state with each service's `state` replaced by `states` (as `status` sees)."""
        services = {
            name: dataclasses.replace(row, state=states.get(name, row.state))
            for name, row in self.services.items()
        }
        return dataclasses.replace(self, services=services)


def state_path(root: Path) -> Path:
    """Where the `up` state file lives in the state directory `root`."""
    return root / STATE_FILE


def write_state(root: Path, state: UpState) -> Path:
    """Write the state atomically (a reader never sees half a file)."""
    path = state_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.write_text(state.to_json())
    staging.replace(path)
    return path


def read_state(root: Path) -> UpState | None:
    """The state of the stack `invoke up` left running, or None; a broken file is an error."""
    path = state_path(root)
    if not path.is_file():
        return None
    try:
        return UpState.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSON and UTF-8 errors are ValueErrors too
        raise RunStateError(_broken(path, str(exc))) from exc


def _broken(path: Path, why: str) -> str:
    return (
        f"The `up` state file {path} is damaged ({why}), so envkit cannot tell which stack is "
        f"up. `{command('clean --all')}` removes the `up` stack and this file; then start "
        f"again with `{command('up')}`."
    )


def clear_state(root: Path) -> None:
    """Forget the `up` stack."""
    state_path(root).unlink(missing_ok=True)
