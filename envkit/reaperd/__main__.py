"""Run the reaper: `python -m reaperd` (in its image) with Ryuk's settings from the environment.

RYUK_PORT (8080), RYUK_CONNECTION_TIMEOUT (60s: how long to wait for the first
client), RYUK_RECONNECTION_TIMEOUT (10s: the grace period after a client leaves) and
envkit's own REAPER_IDLE_TIMEOUT (60s: how long the reaper stays with no client before it
exits). The reaper talks to the engine at DOCKER_HOST when it is set (a tcp engine's own
address), else through the socket mounted at /var/run/docker.sock. ENVKIT_REAPER_TOKEN (set
by envkit, also the value of its container's `envkit.reaper.token` label) lets it find its
own container on the engine it reaches: when that engine does not run it (another engine's
socket was mounted), it refuses every filter rather than acknowledge a session it could
never remove.
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

from .protocol import TOKEN_ENV, TOKEN_LABEL, Filter, FilterError, Registry, parse_duration
from .server import Reaper

log = logging.getLogger("reaperd")


class Engine:
    """The Docker client, made on first use: the socket listens before the SDK is imported."""

    @property
    def url(self) -> str:
        """DOCKER_HOST, else the socket mounted into this container."""
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    @functools.cached_property
    def client(self) -> Any:
        """A client for the engine at `url`."""
        import docker

        return docker.DockerClient(base_url=self.url, timeout=60)


def check_engine(engine: Engine, token: str) -> None:
    """Raise `FilterError` unless the engine this reaper reaches runs the container carrying
    `token` (this reaper's own); no token (a reaper not started by envkit): no check."""
    if not token:
        return
    try:
        found = engine.client.containers.list(all=True, filters={"label": f"{TOKEN_LABEL}={token}"})
    except Exception as exc:  # unreachable, or the socket is not an engine's
        raise FilterError(
            f"this reaper reaches no engine at {engine.url} ({exc}), so it could remove nothing"
        ) from exc
    if not found:
        raise FilterError(
            f"the engine this reaper reaches at {engine.url} does not run it (no container there "
            f"carries {TOKEN_LABEL}={token}): that is another engine, where it would never "
            "remove this session; it needs the socket of the engine it runs on"
        )


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

    async def engine_check() -> None:
        await asyncio.to_thread(check_engine, engine, env.get(TOKEN_ENV, ""))

    reaper = Reaper(
        registry, remove, port=int(env.get("RYUK_PORT", "8080")), engine_check=engine_check
    )
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
