"""The reaper's TCP side: take filters from held connections, remove what is due, then exit.

`Reaper.run()` listens, answers each filter line with `ACK`, and every tick hands the
filters whose grace is over to `prune` (in a worker thread, so removal never stalls
the clients' connections). Once the registry is finished (idle), the reaper stops
accepting before it exits and refuses filters from then on: a client that connected just
then gets no `ACK`, so it never trusts a reaper that is going away, and starts a new one.

A stop request (SIGTERM from `docker stop`) removes at once what no client holds any more
(filters in their grace period) and ends the run. Unlike Ryuk, it leaves held filters
alone: the reaper is shared, and their owners are alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

from .protocol import ACK, ERR, EXITING, Filter, FilterError, Registry, parse_filter

log = logging.getLogger("reaperd")

Prune = Callable[[Filter], object]  # its result (e.g. a count) is only logged
READY_LINE = "Started!"  # testcontainers' Ryuk prints this once it listens


class Reaper:
    """One reaper: a registry of filters, a listening socket and a pruning loop."""

    def __init__(
        self,
        registry: Registry,
        prune: Prune,
        *,
        host: str = "0.0.0.0",
        port: int = 8080,
        tick: float = 0.2,
        engine_check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`engine_check` raises `FilterError` when this reaper cannot remove anything where it
        runs (it reaches another engine): every filter is then refused with that message."""
        self.registry = registry
        self.prune = prune
        self.host = host
        self.port = port
        self.tick = tick
        self.stop = asyncio.Event()
        self.bound_port: int | None = None  # the port actually bound (port 0 picks one)
        self.closing = False  # set once the reaper decided to exit: no filter is taken after
        self._ids = itertools.count(1)
        self._writers: set[asyncio.StreamWriter] = set()
        self._listening = asyncio.Event()
        self._engine_check = engine_check
        self._checked: asyncio.Future[None] | None = None  # the one check, shared by clients

    async def run(self) -> None:
        """Serve until finished (or stopped), removing what each due filter matches."""
        if self._engine_check is not None:
            self._checked = asyncio.ensure_future(self._engine_check())
        server = await asyncio.start_server(self._client, self.host, self.port)
        self.bound_port = server.sockets[0].getsockname()[1]
        self._listening.set()
        log.info("%s listening on port %s", READY_LINE, self.bound_port)
        try:
            while not self.registry.finished():
                for flt in self.registry.due():
                    await self._remove(flt)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.tick)
                if self.stop.is_set():
                    held = len(self.registry.pending()) - len(self.registry.released())
                    log.info("stop requested: removing what no client holds; %d held left", held)
                    for flt in self.registry.released():
                        await self._remove(flt)
                    break
        finally:
            # Set in the same step as the last check above (no await in between): no filter
            # is acknowledged from here on, and the socket stops accepting.
            self.closing = True
            server.close()
            # After an idle end, only connections that came after that step are left (none
            # was open at it, or the registry would not be finished) and they hold nothing;
            # after a stop, held ones too. Newer Pythons' wait_closed() would wait for them.
            for writer in list(self._writers):
                writer.close()
            await server.wait_closed()
        log.info("exiting")

    async def listening(self) -> int:
        """Wait until the socket listens; return its port."""
        await self._listening.wait()
        assert self.bound_port is not None
        return self.bound_port

    async def _remove(self, flt: Filter) -> None:
        log.info("removing what %s matches", flt)
        try:
            await asyncio.to_thread(self.prune, flt)
        except Exception:  # one failed removal must not end the reaper with others pending
            log.exception("removing %s failed", flt)
        self.registry.removed(flt)

    async def _unfit(self) -> FilterError | None:
        """Why this reaper can hold nothing (from `engine_check`), or None when it can."""
        if self._checked is None:
            return None
        try:
            await asyncio.shield(self._checked)
        except FilterError as exc:
            return exc
        except Exception as exc:  # the check itself broke: holding unchecked is not safe
            return FilterError(f"this reaper could not check the engine it reaches ({exc})")
        return None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(self._ids)
        peer = writer.get_extra_info("peername")
        self.registry.connected(conn)
        self._writers.add(writer)
        log.info("client %s connected from %s", conn, peer)
        try:
            unfit = await self._unfit()
            while line := await reader.readline():
                if self.closing:  # it came in as the reaper went idle: it must find another
                    log.info("client %s: refused, this reaper is exiting", conn)
                    writer.write(ERR + f"{EXITING}\n".encode())
                    await writer.drain()
                    break
                try:
                    if unfit is not None:
                        raise unfit
                    flt = parse_filter(line.decode(errors="replace"))
                except FilterError as exc:
                    log.warning("client %s: refused filter: %s", conn, exc)
                    writer.write(ERR + f"{exc}\n".encode())
                else:
                    self.registry.hold(conn, flt)
                    log.info("client %s holds %s", conn, flt)
                    writer.write(ACK)
                await writer.drain()
        except (ConnectionError, ValueError) as exc:  # reset, or a line past the stream's limit
            log.info("client %s: %s", conn, exc)
        finally:
            self._writers.discard(writer)
            self.registry.disconnected(conn)
            log.info("client %s disconnected", conn)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
