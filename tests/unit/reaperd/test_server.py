"""envkit's reaper over real TCP on 127.0.0.1, with a recording stand-in for the engine."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from envkit.reaperd.protocol import ACK, Filter, Registry
from envkit.reaperd.server import Reaper

SESSION = "org.testcontainers.session-id=3f2a"
DEADLINE = 30.0  # generous: the tests wait for events, never assert durations


class Removals:
    """Records each filter the reaper removes (it calls from a worker thread)."""

    def __init__(self) -> None:
        self.filters: list[Filter] = []
        self.happened = threading.Event()

    def __call__(self, flt: Filter) -> int:
        self.filters.append(flt)
        self.happened.set()
        return 0


def _reaper(removals: Removals, grace: float, required: str | None = None) -> Reaper:
    async def label() -> str | None:
        return required

    registry = Registry(grace=grace, connect_timeout=DEADLINE)
    return Reaper(registry, removals, host="127.0.0.1", port=0, tick=0.02, required_label=label)


def _run(scenario: Callable[[Reaper], Awaitable[None]], reaper: Reaper) -> None:
    async def main() -> None:
        served = asyncio.create_task(reaper.run())
        await reaper.listening()
        await scenario(reaper)
        await asyncio.wait_for(served, DEADLINE)  # the reaper ends by itself

    asyncio.run(main())


async def _send(port: int, line: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(line)
    await writer.drain()
    return reader, writer, await asyncio.wait_for(reader.readline(), DEADLINE)


def test_a_filter_is_acknowledged_held_while_connected_and_removed_after_the_client_left() -> None:
    removals = Removals()
    reaper = _reaper(removals, grace=0.2)

    async def scenario(reaper: Reaper) -> None:
        _, writer, answer = await _send(reaper.bound_port or 0, f"label={SESSION}\r\n".encode())
        assert answer == ACK
        await asyncio.sleep(0.5)  # longer than the grace: a held filter is not removed
        assert removals.filters == []
        writer.close()  # what the kernel does when the owning process dies

    _run(scenario, reaper)
    assert removals.filters == [Filter((SESSION,))]


def test_a_refused_filter_gets_an_error_line_and_the_connection_stays_usable() -> None:
    removals = Removals()
    reaper = _reaper(removals, grace=0.2, required=SESSION)

    async def scenario(reaper: Reaper) -> None:
        reader, writer, answer = await _send(reaper.bound_port or 0, b"label=envkit.run\n")
        assert answer.startswith(b"ERR 'label=envkit.run' lacks label=" + SESSION.encode())
        writer.write(f"label={SESSION}\n".encode())
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), DEADLINE) == ACK
        writer.close()

    _run(scenario, reaper)
    assert removals.filters == [Filter((SESSION,))]  # never the refused one


def test_a_stop_request_removes_every_registered_filter_at_once() -> None:
    removals = Removals()
    reaper = _reaper(removals, grace=3600)  # only the stop can trigger a removal here

    async def scenario(reaper: Reaper) -> None:
        _, writer, answer = await _send(reaper.bound_port or 0, f"label={SESSION}\n".encode())
        assert answer == ACK
        reaper.stop.set()  # docker stop's SIGTERM
        await asyncio.wait_for(asyncio.to_thread(removals.happened.wait), DEADLINE)
        writer.close()

    _run(scenario, reaper)
    assert removals.filters == [Filter((SESSION,))]


def test_a_failing_removal_does_not_end_the_reaper_before_the_others() -> None:
    removed: list[Filter] = []

    def flaky(flt: Filter) -> int:
        removed.append(flt)
        if flt.labels == ("a=1",):
            raise RuntimeError("the engine refused")
        return 1

    async def label() -> str | None:
        return None

    reaper = Reaper(
        Registry(grace=0.1, connect_timeout=DEADLINE), flaky,
        host="127.0.0.1", port=0, tick=0.02, required_label=label,
    )  # fmt: skip

    async def scenario(reaper: Reaper) -> None:
        _, writer, answer = await _send(reaper.bound_port or 0, b"label=a=1\nlabel=b=2\n")
        assert answer == ACK
        writer.close()

    _run(scenario, reaper)
    assert sorted(f.labels for f in removed) == [("a=1",), ("b=2",)]


def test_a_reaper_that_cannot_hold_anything_refuses_every_filter_with_its_reason() -> None:
    from envkit.reaperd.protocol import FilterError

    removals = Removals()

    async def unfit() -> str | None:
        raise FilterError("the engine this reaper reaches does not run it")

    reaper = Reaper(
        Registry(grace=0.1, connect_timeout=DEADLINE), removals,
        host="127.0.0.1", port=0, tick=0.02, required_label=unfit,
    )  # fmt: skip

    async def scenario(reaper: Reaper) -> None:
        reader, writer, answer = await _send(reaper.bound_port or 0, f"label={SESSION}\n".encode())
        assert answer == b"ERR the engine this reaper reaches does not run it\n"
        writer.write(b"label=a=1\n")  # any filter: still refused, the connection still usable
        await writer.drain()
        again = await asyncio.wait_for(reader.readline(), DEADLINE)
        assert again == b"ERR the engine this reaper reaches does not run it\n"
        writer.close()

    _run(scenario, reaper)
    assert removals.filters == []  # nothing was held, so nothing is removed
