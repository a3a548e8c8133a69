"""Turn Ctrl-C and SIGTERM into one clean interruption, so teardown always runs to the end.

`interruptible` makes the first signal a `KeyboardInterrupt`; `deferred` holds
signals back while containers are stopped and removed, then delivers the first
one, so a signal during teardown never leaves half a run on the engine.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from envkit.logs import log


@contextmanager
def interruptible() -> Iterator[None]:
    """The first SIGINT/SIGTERM raises KeyboardInterrupt; later ones are ignored while we clean up.

    Without this, SIGTERM would kill the process with its containers still
    running, and a second Ctrl-C could cut teardown short.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired.is_set():
            log.warning("still removing containers; please wait")
            return
        fired.set()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    with _handling(handler):
        yield


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back until the block is done, then deliver the first one.

    Delivered to the handler that was in force before (`interruptible`'s raises
    KeyboardInterrupt or ignores a second signal; the default one ends the
    process), once the block, e.g. removing a run's containers, has finished.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if not held:
            log.warning("{} received: finishing the removal of containers first", _name(signum))
        held.append(signum)

    try:
        with _handling(hold):
            yield
    finally:
        if held:  # the handlers in force before are back: they get it
            signal.raise_signal(held[0])


@contextmanager
def _handling(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM inside the block; the previous handlers after it."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _name(signum: int) -> str:
    return signal.Signals(signum).name
