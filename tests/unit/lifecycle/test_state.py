"""The `up` state file: written whole, read back, forgotten, and refused when damaged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from envkit.errors import RunStateError
from envkit.lifecycle.state import clear_state, read_state, state_path, write_state

STATE = {
    "run_id": "mgm-20261122T101500-3f9a0c1e",
    "stack": "compose/mgm.toml",
    "services": {"backend": {"url": "http://127.0.0.1:18080"}},
}


def test_state_written_is_state_read(tmp_path: Path) -> None:
    root = tmp_path / "state" / "nested"  # created on first write
    path = write_state(root, STATE)
    assert path == state_path(root) == root / "up.json"
    assert read_state(root) == STATE
    assert [p.name for p in root.iterdir()] == ["up.json"]  # the staging file is gone


def test_values_json_cannot_hold_are_written_as_text(tmp_path: Path) -> None:
    started = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    write_state(tmp_path, {"run_id": "r", "artifact_dir": tmp_path / "a", "started": started})
    assert read_state(tmp_path) == {
        "run_id": "r",
        "artifact_dir": str(tmp_path / "a"),
        "started": "2026-11-22 10:15:00+00:00",
    }


def test_a_second_write_replaces_the_first(tmp_path: Path) -> None:
    write_state(tmp_path, STATE)
    write_state(tmp_path, {"run_id": "other"})
    assert read_state(tmp_path) == {"run_id": "other"}


def test_no_file_means_no_stack_and_clearing_is_idempotent(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    assert read_state(tmp_path / "missing") is None
    write_state(tmp_path, STATE)
    clear_state(tmp_path)
    assert read_state(tmp_path) is None
    assert not state_path(tmp_path).exists()
    clear_state(tmp_path)  # nothing to forget is not an error


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"run_id": "mgm-1", "serv', "Unterminated string starting at: line 1 column 21"),
        (b"", "Expecting value: line 1 column 1 (char 0)"),
        (b"\xff\xfe{}", "'utf-8' codec can't decode byte 0xff in position 0"),
        (json.dumps(["mgm-1"]).encode(), "it names no run id"),
        (json.dumps({"services": {}}).encode(), "it names no run id"),
        (json.dumps({"run_id": 7}).encode(), "it names no run id"),
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
        "so envkit cannot tell which stack is up. `invoke clean --all` removes the `up` stack "
        "and this file; then start again with `invoke up`."
    )
    clear_state(tmp_path)  # the way out the message names works on a damaged file
    assert read_state(tmp_path) is None
