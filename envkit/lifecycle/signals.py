"""Turn Ctrl-C and SIGTERM into one clean interruption, so teardown always runs to the end."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
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

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
