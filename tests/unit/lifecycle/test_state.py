"""The `up` state file: written whole in its one layout, read back typed, forgotten, refused when
damaged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from envkit.errors import RunStateError
from envkit.evidence.outcome import ServiceRow
from envkit.lifecycle.state import UpState, clear_state, read_state, state_path, write_state

# The state file exactly as the previous (dict-based) envkit wrote it: it must still read.
PREVIOUS = """{
  "run_id": "mgm-20261122T101500-3f9a0c1e",
  "stack": "/p/compose/mgm.toml",
  "started_at": "2026-11-22T10:15:00.123456+00:00",
  "artifact_dir": "/p/artifacts/mgm-20261122T101500-3f9a0c1e",
  "services": {
    "backend": {
      "image": "envkit/services:abc",
      "container": "mgm-20261122T101500-3f9a0c1e-backend",
      "host_url": "http://127.0.0.1:18080",
      "host_port": 18080,
      "network_url": "http://backend:8080",
      "state": "running",
      "log": "/p/artifacts/mgm-20261122T101500-3f9a0c1e/backend.log",
      "created_s": 0.01,
      "started_s": 0.2,
      "ready_s": 1.5,
      "seconds_to_ready": 1.49
    },
    "db": {
      "image": "postgres:16",
      "container": null,
      "host_url": null,
      "host_port": null,
      "network_url": null,
      "state": "not started",
      "log": "/p/artifacts/mgm-20261122T101500-3f9a0c1e/db.log",
      "created_s": null,
      "started_s": null,
      "ready_s": null,
      "seconds_to_ready": null
    }
  }
}
"""

STATE = UpState(
    run_id="mgm-20261122T101500-3f9a0c1e",
    stack=Path("/p/compose/mgm.toml"),
    started_at="2026-11-22T10:15:00.123456+00:00",
    artifact_dir=Path("/p/artifacts/mgm-20261122T101500-3f9a0c1e"),
    services={
        "backend": ServiceRow(
            image="envkit/services:abc",
            container="mgm-20261122T101500-3f9a0c1e-backend",
            host_url="http://127.0.0.1:18080",
            host_port=18080,
            network_url="http://backend:8080",
            state="running",
            log="/p/artifacts/mgm-20261122T101500-3f9a0c1e/backend.log",
            created_s=0.01,
            started_s=0.2,
            ready_s=1.5,
            seconds_to_ready=1.49,
        ),
        "db": ServiceRow(
            image="postgres:16",
            state="not started",
            log="/p/artifacts/mgm-20261122T101500-3f9a0c1e/db.log",
        ),
    },
)


def test_a_state_file_of_the_previous_version_reads_typed(tmp_path: Path) -> None:
    state_path(tmp_path).write_text(PREVIOUS)
    assert read_state(tmp_path) == STATE


def test_the_state_is_written_in_the_previous_versions_layout(tmp_path: Path) -> None:
    root = tmp_path / "state" / "nested"  # created on first write
    path = write_state(root, STATE)
    assert path == state_path(root) == root / "up.json"
    assert path.read_text() == PREVIOUS
    assert read_state(root) == STATE
    assert [p.name for p in root.iterdir()] == ["up.json"]  # the staging file is gone


def test_keys_a_row_does_not_know_are_ignored(tmp_path: Path) -> None:
    data = json.loads(PREVIOUS)
    data["services"]["backend"]["url"] = "http://old"
    state_path(tmp_path).write_text(json.dumps(data))
    assert read_state(tmp_path) == STATE


def test_status_replaces_only_the_states_it_saw() -> None:
    seen = STATE.with_service_states({"db": "exited (1)"})
    assert seen.services["db"].state == "exited (1)"
    assert seen.services["backend"] == STATE.services["backend"]
    assert STATE.services["db"].state == "not started"  # the original is unchanged


def test_a_second_write_replaces_the_first(tmp_path: Path) -> None:
    write_state(tmp_path, STATE)
    other = dataclasses.replace(STATE, run_id="other", services={})
    write_state(tmp_path, other)
    assert read_state(tmp_path) == other


def test_no_file_means_no_stack_and_clearing_is_idempotent(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    assert read_state(tmp_path / "missing") is None
    write_state(tmp_path, STATE)
    clear_state(tmp_path)
    assert read_state(tmp_path) is None
    assert not state_path(tmp_path).exists()
    clear_state(tmp_path)  # nothing to forget is not an error


GOOD = {"run_id": "mgm-1", "stack": "s.toml", "started_at": "t", "artifact_dir": "a"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"run_id": "mgm-1", "serv', "Unterminated string starting at: line 1 column 21"),
        (b"", "Expecting value: line 1 column 1 (char 0)"),
        (b"\xff\xfe{}", "'utf-8' codec can't decode byte 0xff in position 0"),
        (json.dumps(["mgm-1"]).encode(), "it names no run id"),
        (json.dumps({"services": {}}).encode(), "it names no run id"),
        (json.dumps({"run_id": 7}).encode(), "it names no run id"),
        (json.dumps({"run_id": "mgm-1", "services": {}}).encode(), "its stack is missing"),
        (json.dumps({**GOOD, "artifact_dir": 3}).encode(), "its artifact_dir is missing or not"),
        (json.dumps(GOOD).encode(), "its services are missing or not a table per service"),
        (json.dumps({**GOOD, "services": {"db": 1}}).encode(), "not a table per service"),
    ],
)
def test_a_damaged_file_is_refused_with_the_way_out(
    tmp_path: Path, content: bytes, why: str
) -> None:
    state_path(tmp_path).write_bytes(content)
    with pytest.raises(RunStateError) as info:
        read_state(tmp_path)
    message = str(info.value)
    assert message.startswith(f"The `up` state file {state_path(tmp_path)} is damaged (")
    assert why in message
    assert message.endswith(
        "so envkit cannot tell which stack is up. `./inv clean --all` removes the `up` stack "
        "and this file; then start again with `./inv up`."
    )
    clear_state(tmp_path)  # the way out the message names works on a damaged file
    assert read_state(tmp_path) is None
