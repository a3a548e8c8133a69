"""Host package installs are serialised: concurrent callers install a missing tool once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from envkit.engines import debian


def test_two_threads_needing_one_tool_run_apt_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed = threading.Event()
    commands: list[list[str]] = []

    def fake_run(step: str, command: list[str]) -> None:
        commands.append(command)
        time.sleep(0.05)  # long enough for the other thread to arrive and wait
        if "install" in command:
            installed.set()

    monkeypatch.setattr(debian, "LOCK_FILE", tmp_path / "apt.lock")
    monkeypatch.setattr(debian, "run", fake_run)
    monkeypatch.setattr(debian.shutil, "which", lambda cmd: "/x" if installed.is_set() else None)
    threads = [
        threading.Thread(target=debian.ensure_command, args=("tool", "pkg", "test"))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    installs = [c for c in commands if "install" in c]
    assert len(installs) == 1
    assert installs[0][-1] == "pkg"


def test_a_failed_step_carries_its_output(tmp_path: Path) -> None:
    with pytest.raises(debian.StepError) as info:
        debian.run("listing", ["ls", str(tmp_path / "missing")])
    assert "Step 'listing' failed: ls " in str(info.value)
    assert "No such file or directory" in str(info.value)
