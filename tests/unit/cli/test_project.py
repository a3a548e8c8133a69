"""What every command shares: the interruption message says what really happened."""

from __future__ import annotations

import threading
import time

import pytest

from envkit.cli import project
from envkit.cli.project import interrupted


def test_an_interruption_says_whether_the_stack_was_removed_or_kept() -> None:
    assert interrupted().code == 130
    assert str(interrupted().message) == (
        "envkit: interrupted; the stack's containers and network were removed."
    )
    kept = interrupted(kept=True)
    assert kept.code == 130
    assert "the stack was left up (--keep)" in str(kept.message)
    assert "were removed" not in str(kept.message)


class FakeStatus:
    """What rich's Status does for `status_line`, recorded."""

    def __init__(self, text: str) -> None:
        self.lines = [text]
        self.started = threading.Event()
        self.stopped = False

    def start(self) -> None:
        self.started.set()

    def update(self, text: str) -> None:
        self.lines.append(text)

    def stop(self) -> None:
        self.stopped = True


class FakeConsole:
    def __init__(self) -> None:
        self.statuses: list[FakeStatus] = []

    def get(self) -> FakeConsole:
        return self

    def status(self, text: str) -> FakeStatus:
        self.statuses.append(FakeStatus(text))
        return self.statuses[-1]


def test_a_command_that_ends_before_the_spinner_delay_shows_no_spinner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeConsole()
    monkeypatch.setattr(project, "console", fake)
    with project.status_line("up", delay=3600) as update:
        update("starting 6 services")
    assert fake.statuses == []


def test_the_spinner_shows_the_latest_step_once_the_delay_is_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeConsole()
    monkeypatch.setattr(project, "console", fake)
    with project.status_line("up", delay=0.01) as update:
        update("producing images")  # before or after it shows: the spinner says the latest
        for _ in range(600):  # up to a minute on a busy machine; it shows within ms
            if fake.statuses and fake.statuses[0].started.is_set():
                break
            time.sleep(0.1)
        assert fake.statuses, "the spinner never showed"
        update("starting 6 services")
    status = fake.statuses[0]
    assert status.lines[-1] == "up — starting 6 services"
    assert status.lines[0] in ("up", "up — producing images")
    assert status.stopped
