"""Run the reaper: `python -m reaperd` (in its image) with Ryuk's settings from the environment.

RYUK_PORT (8080), RYUK_CONNECTION_TIMEOUT (60s: how long to wait for the first
client), RYUK_RECONNECTION_TIMEOUT (10s: the grace period after a client leaves).
The reaper talks to the engine at DOCKER_HOST when it is set (a tcp engine's own address),
else through the socket mounted at /var/run/docker.sock. ENVKIT_REAPER_TOKEN (set by envkit,
also the value of its container's `envkit.reaper.token` label) lets it find its own
container on the engine it reaches: when that engine does not run it (another engine's
socket was mounted), it refuses every filter rather than acknowledge a session it could
never remove.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any

from .protocol import (
    SESSION_LABEL,
    TOKEN_ENV,
    TOKEN_LABEL,
    Filter,
    FilterError,
    Registry,
    parse_duration,
)
from .server import Reaper

log = logging.getLogger("reaperd")
_OWN_NAME = re.compile(r"/?testcontainers-ryuk-(?P<session>[0-9a-f-]{8,64})")


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


def own_session(engine: Engine, token: str) -> str | None:
    """The session label this reaper may remove; with a `token`, only once the engine it
    reaches runs the container that carries the token (else `FilterError` saying so)."""
    if not token:
        return session_label(engine.client)
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
    return _label_for(str(found[0].name))


def session_label(client: Any) -> str | None:
    """The session label this reaper may remove, from its own container's name (found by
    its host name, the container's short ID).

    testcontainers names the reaper of session S `testcontainers-ryuk-S`; a reaper started
    any other way accepts every label filter, as Ryuk does.
    """
    try:
        name = client.containers.get(socket.gethostname()).name
    except Exception as exc:  # not in a container, or the engine refused: no restriction
        log.warning("cannot read this reaper's own container (%s); any label filter is taken", exc)
        return None
    return _label_for(str(name))


def _label_for(name: str) -> str | None:
    match = _OWN_NAME.fullmatch(name)
    if match is None:
        log.warning("container %s is not named after a session; any label filter is taken", name)
        return None
    return f"{SESSION_LABEL}={match['session']}"


async def serve(env: Mapping[str, str]) -> None:
    """Build the reaper from `env` and run it until it is finished or stopped."""
    engine = Engine()
    registry = Registry(
        grace=parse_duration(env.get("RYUK_RECONNECTION_TIMEOUT", "10s")),
        connect_timeout=parse_duration(env.get("RYUK_CONNECTION_TIMEOUT", "60s")),
    )

    async def required() -> str | None:
        return await asyncio.to_thread(own_session, engine, env.get(TOKEN_ENV, ""))

    def remove(flt: Filter) -> int:
        from .prune import prune  # imports the SDK: not before the socket listens

        return prune(engine.client, flt)

    reaper = Reaper(
        registry, remove,
        port=int(env.get("RYUK_PORT", "8080")), required_label=required,
    )  # fmt: skip
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
