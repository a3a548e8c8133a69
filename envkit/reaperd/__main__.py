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
import http.client
import json
import logging
import os
import signal
import socket
import sys
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .protocol import TOKEN_ENV, TOKEN_LABEL, Filter, FilterError, Registry, parse_duration
from .server import Reaper

log = logging.getLogger("reaperd")


class Engine:
    """The engine this reaper reaches. The Docker SDK is made on first use: the socket listens
    before it is imported, and the first ACK does not wait for it (see `labelled`)."""

    @property
    def url(self) -> str:
        """DOCKER_HOST, else the socket mounted into this container."""
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    @functools.cached_property
    def client(self) -> Any:
        """A client for the engine at `url`."""
        import docker

        return docker.DockerClient(base_url=self.url, timeout=60)

    def labelled(self, label: str) -> int:
        """How many containers (running or not) carry `label` ("key=value") on this engine.

        The token check before the first ACK asks this. On a socket or a plain tcp engine
        it is one GET through the standard library's HTTP client: importing the SDK costs
        the reaper about 0.1 CPU-s, the largest part of a new reaper's time to its first
        ACK, which every run that starts a reaper waits for. Other engines go through the
        SDK."""
        scheme, _, rest = self.url.partition("://")
        connection: http.client.HTTPConnection
        if scheme == "unix":
            connection = _UnixConnection(rest)
        elif scheme in ("tcp", "http") and rest:
            connection = http.client.HTTPConnection(rest.rstrip("/"), timeout=_ENGINE_TIMEOUT)
        else:
            return len(self.client.containers.list(all=True, filters={"label": label}))
        query = urllib.parse.urlencode({"all": "1", "filters": json.dumps({"label": [label]})})
        try:
            connection.request("GET", f"/containers/json?{query}")
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise OSError(f"the engine answered {response.status} {response.reason}")
        found = json.loads(body)
        if not isinstance(found, list):
            raise OSError("the engine answered something other than a container list")
        return len(found)


_ENGINE_TIMEOUT = 60.0


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the engine's unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=_ENGINE_TIMEOUT)
        self._path = path

    def connect(self) -> None:
        """Connect to the socket at the path given."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def check_engine(engine: Engine, token: str) -> None:
    """Raise `FilterError` unless the engine this reaper reaches runs the container carrying
    `token` (this reaper's own); no token (a reaper not started by envkit): no check."""
    if not token:
        return
    try:
        found = engine.labelled(f"{TOKEN_LABEL}={token}")
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
