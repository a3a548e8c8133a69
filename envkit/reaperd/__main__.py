"""Run the reaper: `python -m reaperd` (in its image) with Ryuk's settings from the environment.

RYUK_PORT (8080), RYUK_CONNECTION_TIMEOUT (60s: how long to wait for the first
client), RYUK_RECONNECTION_TIMEOUT (10s: the grace period after a client leaves) and
envkit's own REAPER_IDLE_TIMEOUT (60s: how long the reaper stays with no client before it
exits). The reaper talks to the engine at DOCKER_HOST when it is set (a tcp engine's own
address), else through the socket mounted at /var/run/docker.sock.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from .protocol import Filter, Registry, parse_duration
from .server import Reaper

log = logging.getLogger("reaperd")


class Engine:
    """The Docker client, made on first use: the socket listens before the SDK is imported."""

    @functools.cached_property
    def client(self) -> Any:
        """A client for the engine: DOCKER_HOST, else the socket mounted into this container."""
        import docker

        url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return docker.DockerClient(base_url=url, timeout=60)


async def serve(env: Mapping[str, str]) -> None:
    """Build the reaper from `env` and run it until it is finished or stopped."""
    engine = Engine()
    registry = Registry(
        grace=parse_duration(env.get("RYUK_RECONNECTION_TIMEOUT", "10s")),
        connect_timeout=parse_duration(env.get("RYUK_CONNECTION_TIMEOUT", "60s")),
        idle=parse_duration(env.get("REAPER_IDLE_TIMEOUT", "60s")),
    )

    def remove(flt: Filter) -> int:
        from .prune import prune  # imports the SDK: not before the socket listens

        return prune(engine.client, flt)

    reaper = Reaper(registry, remove, port=int(env.get("RYUK_PORT", "8080")))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, reaper.stop.set)
    await reaper.run()


def main() -> int:
    """Entry point."""
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s reaperd %(message)s"
    )
    try:
        asyncio.run(serve(os.environ))
    except ValueError as exc:  # a bad RYUK_* setting
        log.error("cannot start: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
