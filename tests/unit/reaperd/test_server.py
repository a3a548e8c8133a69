"""envkit's reaper over real TCP on 127.0.0.1, with a recording stand-in for the engine."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from envkit.reaperd.protocol import ACK, Filter, Registry
from envkit.reaperd.server import Reaper

SESSION = "org.testcontainers.session-id=3f2a"
OTHER = "org.testcontainers.session-id=9b1c"  # another envkit process on the same engine
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


def _reaper(removals: Removals, grace: float, idle: float | None = None) -> Reaper:
    registry = Registry(grace=grace, connect_timeout=DEADLINE, idle=idle)
    return Reaper(registry, removals, host="127.0.0.1", port=0, tick=0.02)


Scenario = Callable[[Reaper], Awaitable[None]]


def _run(scenario: Scenario, reaper: Reaper) -> None:
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
    reaper = _reaper(removals, grace=0.2)

    async def scenario(reaper: Reaper) -> None:
        reader, writer, answer = await _send(reaper.bound_port or 0, b"label=envkit.run\n")
        assert answer == (
            b"ERR 'label=envkit.run' names no session: this reaper removes a session's "
            b"resources only; send label=org.testcontainers.session-id=<id> (further labels "
            b"narrow it)\n"
        )
        writer.write(f"label={SESSION}\n".encode())
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), DEADLINE) == ACK
        writer.close()

    _run(scenario, reaper)
    assert removals.filters == [Filter((SESSION,))]  # never the refused one


def test_each_process_s_filter_goes_only_when_its_own_connection_drops() -> None:
    removals = Removals()
    reaper = _reaper(removals, grace=0.2, idle=0.2)

    async def scenario(reaper: Reaper) -> None:
        port = reaper.bound_port or 0
        _, mine, answer = await _send(port, f"label={SESSION}\n".encode())
        assert answer == ACK
        _, theirs, answer = await _send(port, f"label={OTHER}\n".encode())
        assert answer == ACK
        mine.close()  # this process is killed; the other one lives on
        await asyncio.wait_for(asyncio.to_thread(removals.happened.wait), DEADLINE)
        assert removals.filters == [Filter((SESSION,))]
        await asyncio.sleep(0.5)  # longer than grace and idle: the other one is still held
        assert removals.filters == [Filter((SESSION,))]
        assert reaper.registry.holders(Filter((OTHER,))) != set()
        theirs.close()

    _run(scenario, reaper)  # and then it ends by itself, idle
    assert removals.filters == [Filter((SESSION,)), Filter((OTHER,))]


def test_a_stop_request_removes_what_no_client_holds_and_leaves_live_clients_runs() -> None:
    removals = Removals()
    reaper = _reaper(removals, grace=3600)  # only the stop can trigger a removal here

    async def scenario(reaper: Reaper) -> None:
        port = reaper.bound_port or 0
        _, gone, answer = await _send(port, f"label={SESSION}\n".encode())
        assert answer == ACK
        reader, live, answer = await _send(port, f"label={OTHER}\n".encode())
        assert answer == ACK
        gone.close()  # its process died: its filter waits out the (long) grace
        while not reaper.registry.released():
            await asyncio.sleep(0.01)
        reaper.stop.set()  # docker stop's SIGTERM
        await asyncio.wait_for(asyncio.to_thread(removals.happened.wait), DEADLINE)
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # the reaper went away
        live.close()

    _run(scenario, reaper)
    assert removals.filters == [Filter((SESSION,))]  # the live process's run is not touched


def test_a_reaper_that_is_exiting_acknowledges_no_filter() -> None:
    removals = Removals()
    reaper = _reaper(removals, grace=0.2)

    async def scenario(reaper: Reaper) -> None:
        reaper.closing = True  # as once it decided to exit, before its socket is closed
        _, writer, answer = await _send(reaper.bound_port or 0, f"label={SESSION}\n".encode())
        assert answer == b"ERR this reaper is exiting; start a new one\n"
        writer.close()

    _run(scenario, reaper)
    assert removals.filters == []  # nothing was taken, so nothing is removed


def _race_idle_exit(delay: float, removals: Removals, outcomes: list[str]) -> Scenario:
    async def scenario(reaper: Reaper) -> None:
        await asyncio.sleep(delay)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", reaper.bound_port or 0)
            writer.write(f"label={SESSION}\n".encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.readline(), DEADLINE)
        except ConnectionError:  # it had stopped accepting
            outcomes.append("refused")
            return
        if answer == ACK:
            outcomes.append("held")
            await asyncio.sleep(0.15)  # past idle and grace: a held filter keeps the reaper
            assert removals.filters == []
            assert reaper.registry.holders(Filter((SESSION,))) != set()
        else:
            assert answer in (b"", b"ERR this reaper is exiting; start a new one\n")
            outcomes.append("refused")
        writer.close()

    return scenario


def test_a_client_racing_the_idle_exit_is_either_held_or_refused_never_dropped() -> None:
    """A client that connects just as the reaper goes idle gets an ACK only from a reaper that
    then stays until that client leaves; otherwise no ACK at all (it starts a new reaper)."""
    outcomes: list[str] = []
    for round_ in range(20):
        removals = Removals()
        reaper = _reaper(removals, grace=0.05, idle=0.05)
        reaper.registry.connect_timeout = 0.05  # with no client, it exits at about 0.05-0.07 s
        _run(_race_idle_exit(0.03 + round_ * 0.004, removals, outcomes), reaper)
    assert len(outcomes) == 20  # each round ended one of the two ways (both are fine)


def test_a_failing_removal_does_not_end_the_reaper_before_the_others() -> None:
    removed: list[Filter] = []

    def flaky(flt: Filter) -> int:
        removed.append(flt)
        if flt.labels == (SESSION,):
            raise RuntimeError("the engine refused")
        return 1

    reaper = Reaper(
        Registry(grace=0.1, connect_timeout=DEADLINE), flaky, host="127.0.0.1", port=0, tick=0.02
    )

    async def scenario(reaper: Reaper) -> None:
        line = f"label={SESSION}\nlabel={OTHER}\n".encode()
        _, writer, answer = await _send(reaper.bound_port or 0, line)
        assert answer == ACK
        writer.close()

    _run(scenario, reaper)
    assert sorted(f.labels for f in removed) == [(SESSION,), (OTHER,)]


def test_a_reaper_that_cannot_hold_anything_refuses_every_filter_with_its_reason() -> None:
    from envkit.reaperd.protocol import FilterError

    removals = Removals()

    async def unfit() -> None:
        raise FilterError("the engine this reaper reaches does not run it")

    reaper = Reaper(
        Registry(grace=0.1, connect_timeout=DEADLINE), removals,
        host="127.0.0.1", port=0, tick=0.02, engine_check=unfit,
    )  # fmt: skip

    async def scenario(reaper: Reaper) -> None:
        reader, writer, answer = await _send(reaper.bound_port or 0, f"label={SESSION}\n".encode())
        assert answer == b"ERR the engine this reaper reaches does not run it\n"
        writer.write(f"label={OTHER}\n".encode())  # still refused, the connection still usable
        await writer.drain()
        again = await asyncio.wait_for(reader.readline(), DEADLINE)
        assert again == b"ERR the engine this reaper reaches does not run it\n"
        writer.close()

    _run(scenario, reaper)
    assert removals.filters == []  # nothing was held, so nothing is removed
