"""Hold an isolated run on its engine's reaper, so it is removed even if this process dies.

This is testcontainers' session mechanism with envkit's reaper image (`envkit.reaperd`,
built by `invoke images` because Ryuk's image cannot be pulled everywhere): one reaper
container per process and engine, named after testcontainers' session id
(`testcontainers-ryuk-<session>`), holding a TCP connection to it that registered
`label=org.testcontainers.session-id=<session>`. testcontainers puts that label on each
container and network it creates. When this process dies (kill -9, a cancelled CI job, a
zombie its parent never reaps) the kernel closes the connections; after the grace period
(ENVKIT_REAPER__GRACE_SECONDS) each reaper removes the run's containers and network on its
own engine, with no later envkit command. Another process's runs carry another session.

A process that places runs on several engines (an engine pool) holds one reaper on each,
so a run is always held by a reaper on the engine it runs on. envkit starts each reaper
itself rather than through testcontainers' `Reaper.get_instance()`, a process-wide
singleton bound to the one engine of DOCKER_HOST. A reaper reaches its engine the way the
client does when that works from the engine's host too: a local engine's socket is
mounted (whatever its path: the second engine of the tests lives on this machine with a
socket of its own), a plain tcp engine is given as DOCKER_HOST (the engine's host address
is the engine's own), and an ssh or TLS engine's host socket, /var/run/docker.sock (or
TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE), is mounted. A mounted socket may belong to another
engine on that host (a host may run several engines; the tests' second engine does not
use /var/run/docker.sock): so each reaper gets a token that labels its own container and
refuses every session when the engine it reaches runs no container with that token;
envkit then stops with the reaper's reason rather than run unheld.

Only isolated runs are held. The `up` stack, `--keep` runs and runs started with
`hold=False` (a stack shared past the process that started it) must outlive their
process: `EngineClient` leaves the session label off what they create, so the reaper
never matches them; `down` and the host-side label reaper (`envkit.lifecycle.reaper`)
deal with them.

envkit starts a reaper once per engine, before a held run's network: testcontainers
would start it from inside `DockerContainer.start()`, which envkit calls from several
threads at once and for unheld stacks too. So `testcontainers_config.ryuk_disabled`
stays True. A connection made while the reaper is still starting can be accepted by the
engine's port proxy and dropped with the filter lost; so envkit trusts a connection once
the reaper answered `ACK`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import docker
from docker.errors import APIError, DockerException, NotFound
from testcontainers.core.config import ENABLE_FLAGS, testcontainers_config
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

from envkit.engines.engine import Endpoint, current_endpoint
from envkit.engines.images import ImageBuilder
from envkit.errors import ReaperError
from envkit.logs import Progress, log, no_progress
from envkit.reaperd.protocol import ERR, TOKEN_ENV, TOKEN_LABEL
from envkit.spec.settings import EnvkitSettings

REAPER_PORT = 8080  # where testcontainers expects Ryuk (and envkit's reaper listens)
TC_DISABLED = "TESTCONTAINERS_RYUK_DISABLED"
_OFF = (
    "To run without it (a killed run is then removed by the next envkit command, "
    "or `invoke clean`), set ENVKIT_REAPER__ENABLED=false or TESTCONTAINERS_RYUK_DISABLED=true."
)
_START_ERRORS = (DockerException, OSError)
ENGINE_SOCKET = "/var/run/docker.sock"  # where the reaper expects its engine's socket
REAPER_LABEL = "envkit.reaper"  # on the reaper container (it never carries the session label)
_lock = threading.Lock()
# Engine endpoint -> this process's acknowledged connection to its reaper there: open as long
# as the process lives (the kernel closes it when the process dies, which starts the reaping).
_connections: dict[str, socket.socket] = {}


def reaper_enabled(settings: EnvkitSettings) -> bool:
    """False when turned off: ENVKIT_REAPER__ENABLED=false or testcontainers' own switch."""
    tc_off = os.environ.get(TC_DISABLED, "").lower() in ENABLE_FLAGS
    return settings.reaper.enabled and not tc_off


@dataclass(frozen=True)
class ReaperHold:
    """How this process holds its isolated runs on one engine: the reaper image there, its
    grace period, and the engine (default: the current one)."""

    image: str
    grace_seconds: float
    endpoint: Endpoint | None = None
    start_seconds: float = 60.0  # how long the reaper may take to start and acknowledge

    def hold(self, client: docker.DockerClient) -> None:
        """Start this process's reaper on the engine if needed and hold the session on an
        acknowledged connection (once per process and engine; `client` talks to it)."""
        endpoint = self.endpoint or current_endpoint()
        with _lock:
            sock = _connections.get(endpoint.url)
            if sock is not None and _open(sock):
                return
            if sock is not None:  # the reaper went away (removed by hand?): start anew
                log.warning("this process's reaper on {} is gone; starting a new one", endpoint.url)
                sock.close()
                del _connections[endpoint.url]
                _drop_reaper(client)
            try:
                _start_reaper(client, endpoint, self.image, self.grace_seconds)
                _connections[endpoint.url] = _acknowledged_connection(
                    client, endpoint, self.start_seconds
                )
            except _START_ERRORS as exc:
                _drop_reaper(client)
                raise ReaperError(
                    f"The reaper that removes this run if envkit is killed did not start on the "
                    f"engine at {endpoint.url} (image {self.image}): {_reason(exc)}. Check the "
                    "engine (`docker ps -a --filter name=testcontainers-ryuk` shows the reaper) "
                    f"and run again. {_OFF}"
                ) from exc
            except ReaperError:
                _drop_reaper(client)
                raise
            log.debug(
                "runs on {} held by reaper {} (session {})", endpoint.url, self.image, SESSION_ID
            )


def reaper_access(endpoint: Endpoint) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """How the reaper container reaches its engine: (environment, volumes) to give it."""
    parts = endpoint.url.split("://", 1)
    if endpoint.scheme == "unix" and len(parts) == 2:  # this machine: that very socket
        return {}, {parts[1]: {"bind": ENGINE_SOCKET, "mode": "rw"}}
    if endpoint.scheme == "tcp" and endpoint.tls is None:
        return {"DOCKER_HOST": endpoint.url}, {}
    # ssh, or tcp with TLS: the socket on the engine's host (TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE
    # names another path there, as for testcontainers' own reaper).
    host_socket = testcontainers_config.ryuk_docker_socket or ENGINE_SOCKET
    return {}, {host_socket: {"bind": ENGINE_SOCKET, "mode": "rw"}}


def _start_reaper(
    client: docker.DockerClient, endpoint: Endpoint, image: str, grace_seconds: float
) -> None:
    """Run this session's reaper on the engine (testcontainers' name, port and settings)."""
    environment, volumes = reaper_access(endpoint)
    # The reaper finds its own container by the token on the engine it reaches, so it knows
    # that engine is this one: a mounted socket may be another engine's (an ssh engine's
    # host may run several).
    token = uuid.uuid4().hex
    try:
        client.containers.run(
            image, name=reaper_name(), detach=True, auto_remove=True,
            privileged=testcontainers_config.ryuk_privileged,
            ports={f"{REAPER_PORT}/tcp": (endpoint.bind_address(), None)},
            environment={
                "RYUK_RECONNECTION_TIMEOUT": f"{grace_seconds:g}s", TOKEN_ENV: token, **environment
            },
            volumes=volumes, labels={REAPER_LABEL: SESSION_ID, TOKEN_LABEL: token},
        )  # fmt: skip
    except APIError as exc:
        if exc.status_code != 409:  # 409: this session's reaper is there already
            raise


def reaper_for(
    settings: EnvkitSettings,
    client: docker.DockerClient,
    progress: Progress = no_progress,
    endpoint: Endpoint | None = None,
) -> ReaperHold | None:
    """The hold for this process's isolated runs on the engine `client` talks to (`endpoint`,
    default the current one), its image produced there; None when the reaper is off."""
    if not reaper_enabled(settings):
        log.warning("the reaper is off: a killed run stays until the next envkit command")
        return None
    image = ImageBuilder(settings, client, progress, endpoint).ensure(["reaper"])["reaper"].ref
    return ReaperHold(image, settings.reaper.grace_seconds, endpoint, settings.reaper.start_seconds)


def session_filter() -> bytes:
    """The filter line that holds this process's session (what testcontainers sends too)."""
    return f"label={LABEL_SESSION_ID}={SESSION_ID}\r\n".encode()


def reaper_name() -> str:
    """The name testcontainers gives this process's reaper container."""
    return f"testcontainers-ryuk-{SESSION_ID}"


def _acknowledged_connection(
    client: docker.DockerClient, endpoint: Endpoint, timeout: float
) -> socket.socket:
    """A connection to this session's reaper that registered the session and got its ACK."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            sock = _connect(client, endpoint)
        except (OSError, DockerException, LookupError) as exc:
            last = _reason(exc)
        else:
            try:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock.sendall(session_filter())
                answer = _answer(sock)
            except OSError as exc:  # a timeout, or a reset from a port proxy
                answer, last = b"", _reason(exc)
            if answer.startswith(b"ACK"):
                sock.settimeout(None)
                return sock
            sock.close()
            if answer.startswith(ERR):  # the reaper itself refused: asking again changes nothing
                raise ReaperError(_refused(endpoint, answer))
            last = f"answered {answer!r}" if answer else last
        time.sleep(0.2)
    raise ReaperError(
        f"The reaper on the engine did not acknowledge this session within {timeout:g} s "
        f"({last}), so a killed run would not be removed. Check that the engine's published "
        f"ports are reachable from here (TC_HOST names the engine's address). {_OFF}"
    )


def _answer(sock: socket.socket, limit: int = 2048) -> bytes:
    """The reaper's answer line (`ACK`, or `ERR` and why), or what came before it closed."""
    answer = b""
    while not answer.endswith(b"\n") and len(answer) < limit:
        chunk = sock.recv(limit - len(answer))
        if not chunk:
            break
        answer += chunk
    return answer


def _refused(endpoint: Endpoint, answer: bytes) -> str:
    why = answer.removeprefix(ERR).decode(errors="replace").strip()
    where = ""
    if mounts := reaper_access(endpoint)[1]:
        socket_path = next(iter(mounts))
        where = (
            f" It was given {socket_path} on the engine's host as that engine's socket: "
            "if the engine's socket is elsewhere there, set TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE "
            "to its path."
        )
    return (
        f"The reaper on the engine at {endpoint.url} refused to hold this session: {why}.{where} "
        f"{_OFF}"
    )


def _open(sock: socket.socket) -> bool:
    """True while the reaper's end of `sock` is open (it never sends after its ACK)."""
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True  # nothing to read, and not closed
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)


def _connect(client: docker.DockerClient, endpoint: Endpoint) -> socket.socket:
    container = client.containers.get(reaper_name())
    bindings = (container.ports or {}).get(f"{REAPER_PORT}/tcp") or []
    if not bindings:
        raise LookupError(f"{reaper_name()} publishes no port {REAPER_PORT} (yet)")
    return socket.create_connection((endpoint.host, int(bindings[0]["HostPort"])), timeout=2)


def _drop_reaper(client: docker.DockerClient) -> None:
    with contextlib.suppress(NotFound, DockerException, OSError):
        client.containers.get(reaper_name()).remove(force=True)


def _reason(exc: BaseException) -> str:
    text = (
        str(getattr(exc, "explanation", None) or exc)
        if isinstance(exc, DockerException)
        else str(exc)
    )
    return text.splitlines()[0][:300] if text.strip() else type(exc).__name__
