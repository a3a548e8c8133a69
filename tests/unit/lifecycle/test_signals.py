"""Ctrl-C and SIGTERM become one KeyboardInterrupt; later signals cannot cut teardown short."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from envkit.lifecycle.signals import deferred, interruptible
from envkit.logs import log


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The messages envkit logs at WARNING while the test runs."""
    seen: list[str] = []
    # envkit's loggers are off until a command configures logging; whether an earlier test
    # did must not matter here. (Left on: more of this module's warnings harm no later test.)
    log.enable("envkit.lifecycle.signals")
    sink = log.add(lambda message: seen.append(message.record["message"]), level="WARNING")
    yield seen
    log.remove(sink)


@pytest.fixture
def previous_handlers() -> Iterator[list[int]]:
    """Own handlers for SIGINT and SIGTERM (restored afterwards) that record what reaches them."""
    reached: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        reached.append(signum)

    saved = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield reached
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_first_signal_interrupts_with_its_name(
    sig: signal.Signals, previous_handlers: list[int]
) -> None:
    with pytest.raises(KeyboardInterrupt) as info, interruptible():
        os.kill(os.getpid(), sig)
    assert info.value.args == (sig.name,)
    assert previous_handlers == []  # envkit's handler took it, not the one before


def test_signals_during_teardown_are_ignored_so_teardown_finishes(
    previous_handlers: list[int], warnings: list[str]
) -> None:
    torn_down: list[bool] = []

    def run_then_tear_down() -> None:
        with interruptible():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            finally:  # teardown, as an Environment's __exit__ runs it
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGINT)
                torn_down.append(True)

    with pytest.raises(KeyboardInterrupt) as info:
        run_then_tear_down()
    assert info.value.args == ("SIGTERM",)  # the first signal's interrupt, not a later one
    assert torn_down == [True]
    assert warnings == ["still removing containers; please wait"] * 2
    assert previous_handlers == []


def test_the_handlers_before_are_back_afterwards(previous_handlers: list[int]) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with interruptible():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in before} == before
    with pytest.raises(KeyboardInterrupt), interruptible():
        os.kill(os.getpid(), signal.SIGINT)
    assert {sig: signal.getsignal(sig) for sig in before} == before
    os.kill(os.getpid(), signal.SIGTERM)  # outside: the previous handler gets it again
    assert previous_handlers == [signal.SIGTERM]


def test_off_the_main_thread_it_changes_nothing(previous_handlers: list[int]) -> None:
    # Python lets only the main thread install handlers; elsewhere the block just runs.
    before = signal.getsignal(signal.SIGTERM)
    inside: list[object] = []

    def worker() -> None:
        with interruptible():
            inside.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert inside == [before]


def test_a_signal_while_deferred_is_delivered_once_the_block_is_done(
    previous_handlers: list[int], warnings: list[str]
) -> None:
    finished = []
    with deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert previous_handlers == []  # held back: the removal goes on
        finished.append(True)
    assert finished == [True]
    assert previous_handlers == [signal.SIGTERM]  # the first one, once
    assert warnings == ["SIGTERM received: finishing the removal of containers first"]


def test_a_signal_held_back_during_teardown_still_interrupts(previous_handlers: list[int]) -> None:
    steps = []

    def tear_down() -> None:
        with interruptible():
            with deferred():
                os.kill(os.getpid(), signal.SIGINT)
                steps.append("removed")
            steps.append("after")  # not reached: the held signal interrupts here

    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        tear_down()
    assert steps == ["removed"]


def test_deferred_without_a_signal_changes_nothing(previous_handlers: list[int]) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with deferred():
        pass
    assert signal.getsignal(signal.SIGTERM) is before
    assert previous_handlers == []
