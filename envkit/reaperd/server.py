"""The reaper's TCP side: take filters from held connections, remove what is due, then exit.

`Reaper.run()` listens, answers each filter line with `ACK`, and every tick hands the
filters whose grace is over to `prune` (in a worker thread, so removal never stalls
the clients' connections). A stop request (SIGTERM from `docker stop`) removes every
filter still registered at once, as Ryuk does, and ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

from .protocol import ACK, ERR, Filter, FilterError, Registry, parse_filter

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
        required_label: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        """`required_label` names the label every filter must hold (None: any); when it
        raises `FilterError`, every filter is refused with that message."""
        self.registry = registry
        self.prune = prune
        self.host = host
        self.port = port
        self.tick = tick
        self.stop = asyncio.Event()
        self.bound_port: int | None = None  # the port actually bound (port 0 picks one)
        self._required_label = required_label
        self._required: asyncio.Future[str | None] | None = None
        self._ids = itertools.count(1)
        self._listening = asyncio.Event()

    async def run(self) -> None:
        """Serve until finished (or stopped), removing what each due filter matches."""
        self._required = asyncio.ensure_future(self._find_required())
        server = await asyncio.start_server(self._client, self.host, self.port)
        self.bound_port = server.sockets[0].getsockname()[1]
        self._listening.set()
        log.info("%s listening on port %s", READY_LINE, self.bound_port)
        try:
            async with server:
                while not self.registry.finished():
                    for flt in self.registry.due():
                        await self._remove(flt)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), self.tick)
                    if self.stop.is_set():
                        log.info("stop requested: removing every registered filter now")
                        for flt in self.registry.pending():
                            await self._remove(flt)
                        break
        finally:
            self._required.cancel()
        log.info("nothing left to hold; exiting")

    async def listening(self) -> int:
        """Wait until the socket listens; return its port."""
        await self._listening.wait()
        assert self.bound_port is not None
        return self.bound_port

    async def _find_required(self) -> str | None:
        return await self._required_label() if self._required_label else None

    async def _remove(self, flt: Filter) -> None:
        log.info("removing what %s matches", flt)
        try:
            await asyncio.to_thread(self.prune, flt)
        except Exception:  # one failed removal must not end the reaper with others pending
            log.exception("removing %s failed", flt)
        self.registry.removed(flt)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(self._ids)
        peer = writer.get_extra_info("peername")
        self.registry.connected(conn)
        log.info("client %s connected from %s", conn, peer)
        try:
            assert self._required is not None
            try:
                required: str | None = await asyncio.shield(self._required)
                unfit: FilterError | None = None
            except FilterError as exc:  # this reaper cannot hold anything: say why to each line
                required, unfit = None, exc
            while line := await reader.readline():
                try:
                    if unfit is not None:
                        raise unfit
                    flt = parse_filter(line.decode(errors="replace"), required)
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
            self.registry.disconnected(conn)
            log.info("client %s disconnected", conn)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
