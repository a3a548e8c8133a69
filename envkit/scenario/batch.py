"""Spread a batch of runs over an engine pool: each run waits for a free slot, then runs there.

One thread per run the pool can take at once; the slots (`envkit.engines.pool`) keep this
process and every other one on the machine within K runs per engine. Results come back as
runs finish. Once `stop` is set, runs not yet started are not started; runs under way
finish and tear down (each is held by its engine's reaper should the process die).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from envkit.engines.pool import EnginePool, Slot

T = TypeVar("T")


def spread(
    pool: EnginePool,
    count: int,
    run: Callable[[int, Slot], T],
    stop: threading.Event | None = None,
) -> Iterator[tuple[int, T]]:
    """Run `run(number, slot)` for numbers 1 … `count`, each in a slot of `pool`; yield
    (number, result) as runs finish. An exception of a run is raised here (the others go on
    until `stop` is set by the caller)."""
    stop = stop or threading.Event()

    def one(number: int) -> T:
        with pool.slot(stop) as slot:
            return run(number, slot)

    workers = max(1, min(count, pool.capacity))
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pool-run")
    try:
        pending: dict[Future[T], int] = {executor.submit(one, n): n for n in range(1, count + 1)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                number = pending.pop(future)
                yield number, future.result()
    finally:
        stop.set()
        executor.shutdown(wait=True, cancel_futures=True)
