"""Hold an isolated run on its engine's reaper, so it is removed even if this process dies.

This is testcontainers' session mechanism with envkit's reaper image (`envkit.reaperd`,
built by `invoke images` because Ryuk's image cannot be pulled everywhere). Each process
holds a TCP connection to the reaper on the engine that registered
`label=org.testcontainers.session-id=<session>`, its own testcontainers session; testcontainers
puts that label on each container and network it creates. When this process dies (kill -9,
a cancelled CI job, a zombie its parent never reaps) the kernel closes the connection;
after the grace period (ENVKIT_REAPER__GRACE_SECONDS) the reaper removes what carries that
connection's session label, on its own engine, with no later envkit command.

One reaper container on an engine serves every envkit process there (and every thread:
one connection per process and engine). Its name is fixed by what it must agree on with
its clients: `envkit-reaper-<hash>` of its image (so envkit versions do not share one), the
grace period, the idle time and how it reaches the engine. It takes filters from any
session but only session filters, so no client can make it remove another session's
resources; a dropped connection releases only that connection's filters. With no client
for ENVKIT_REAPER__IDLE_SECONDS it exits, and the engine removes it (auto-remove). The
first process to need it starts it; the others find it running and only connect.

Races, each settled by the engine or by the reaper's `ACK`: two processes creating it at
once (the engine refuses the second name: that one uses the winner's); a reaper created and
never started by a process killed in between (the next one starts it; the host-side reaper,
`envkit.lifecycle.reaper`, removes one left so for a minute); a reaper exiting as a process
connects (it answers no `ACK` once it decided to exit, and the process retries until a new
one runs); a port proxy that accepts a connection while the reaper is still starting and
drops it. So a process trusts its hold only once the reaper answered `ACK`.

A process that places runs on several engines (an engine pool) holds a reaper on each, so
a run is always held by a reaper on the engine it runs on. envkit starts reapers itself
rather than through testcontainers' `Reaper.get_instance()`, a process-wide singleton bound
to the one engine of DOCKER_HOST, started from inside `DockerContainer.start()` (which envkit
calls from several threads at once and for unheld stacks too); so
`testcontainers_config.ryuk_disabled` stays True. A reaper reaches its engine the way the
client does when that works from the engine's host too: a local engine's socket is mounted
(whatever its path: the second engine of the tests lives on this machine with a socket of
its own), a plain tcp engine is given as DOCKER_HOST (the engine's host address is the
engine's own), and an ssh or TLS engine's host socket, /var/run/docker.sock (or
TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE), is mounted. A mounted socket may belong to another
engine on that host (a host may run several engines; the tests' second engine does not
use /var/run/docker.sock): so each reaper gets a token that labels its own container and
refuses every session when the engine it reaches runs no container with that token;
envkit then stops with the reaper's reason rather than run unheld.

`reaper_for` starts holding in the background (`ReaperHold.begin`), so a reaper that must be
started does so while the run's images are checked; `Environment.start` waits for the
`ACK` (`ReaperHold.hold`) before anything of the run exists on the engine.

Only isolated runs are held. The `up` stack, `--keep` runs and runs started with
`hold=False` (a stack shared past the process that started it) must outlive their
process: `EngineClient` leaves the session label off what they create, so the reaper
never matches them; `down` and the host-side label reaper deal with them.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container
from testcontainers.core.config import ENABLE_FLAGS, testcontainers_config
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

from envkit.engines.engine import Endpoint, current_endpoint
from envkit.engines.images import ImageBuilder
from envkit.errors import ReaperError
from envkit.logs import Progress, log, no_progress
from envkit.reaperd.protocol import ERR, EXITING, TOKEN_ENV, TOKEN_LABEL
from envkit.spec.settings import EnvkitSettings

REAPER_PORT = 8080  # where testcontainers expects Ryuk (and envkit's reaper listens)
TC_DISABLED = "TESTCONTAINERS_RYUK_DISABLED"
_OFF = (
    "To run without it (a killed run is then removed by the next envkit command, "
    "or `invoke clean`), set ENVKIT_REAPER__ENABLED=false or TESTCONTAINERS_RYUK_DISABLED=true."
)
_START_ERRORS = (DockerException, OSError)
ENGINE_SOCKET = "/var/run/docker.sock"  # where the reaper expects its engine's socket
REAPER_LABEL = "envkit.reaper"  # on the reaper container (it never carries a session label)
NAME_PREFIX = "envkit-reaper-"
# Between attempts to reach a reaper that is starting or going away: the first pause is
# short, each next one twice as long up to this (a new reaper listens about 0.1 s after its
# container started, and every run that started it waits for that).
_RETRY_SECONDS = 0.1
_FIRST_RETRY_SECONDS = 0.0125
_lock = threading.Lock()


@dataclass
class _Hold:
    """This process's hold on one reaper: an acknowledged connection, or why there is none."""

    done: threading.Event = field(default_factory=threading.Event)
    sock: socket.socket | None = None  # open as long as the process lives
    error: Exception | None = None
    reported: bool = False  # `error` was raised to a caller: the next hold tries anew


# (engine endpoint, reaper name) -> this process's hold there. The kernel closes each
# connection when the process dies, which starts the reaping.
_holds: dict[tuple[str, str], _Hold] = {}


def _release_holds() -> None:
    """At exit, close every held connection as the kernel would a moment later (the reaper
    sees the same), so that Python does not warn of unclosed sockets at the end of a test
    session that held its runs."""
    for held in list(_holds.values()):
        if held.sock is not None:
            held.sock.close()


atexit.register(_release_holds)


def reaper_enabled(settings: EnvkitSettings) -> bool:
    """False when turned off: ENVKIT_REAPER__ENABLED=false or testcontainers' own switch."""
    tc_off = os.environ.get(TC_DISABLED, "").lower() in ENABLE_FLAGS
    return settings.reaper.enabled and not tc_off


@dataclass(frozen=True)
class ReaperHold:
    """How this process holds its isolated runs on one engine: the reaper image there, its
    grace period and idle time, and the engine (default: the current one)."""

    image: str
    grace_seconds: float
    endpoint: Endpoint | None = None
    start_seconds: float = 60.0  # how long the reaper may take to start and acknowledge
    idle_seconds: float = 60.0  # how long the shared reaper stays with no client

    def name(self) -> str:
        """The shared reaper's container name on this hold's engine."""
        return reaper_name(self.image, self.grace_seconds, self.idle_seconds, self._endpoint())

    def begin(self, client: docker.DockerClient) -> None:
        """Start holding this process's session in the background (see `hold`); an earlier
        attempt that failed is tried anew."""
        self._current(client, retry_failed=True)

    def hold(self, client: docker.DockerClient) -> None:
        """Hold this process's session on the engine's reaper (`client` talks to the engine),
        starting the reaper if none runs; return once it acknowledged. Once per process and
        engine: later calls return at once while the connection stays open."""
        current = self._current(client, retry_failed=False)
        current.done.wait()
        if current.error is not None:
            current.reported = True
            raise current.error

    def _endpoint(self) -> Endpoint:
        return self.endpoint or current_endpoint()

    def _current(self, client: docker.DockerClient, *, retry_failed: bool) -> _Hold:
        """This process's hold on the reaper, a new attempt begun if there is none, if its
        connection dropped, or if it failed (once that was reported, unless `retry_failed`)."""
        endpoint = self._endpoint()
        key = (endpoint.url, self.name())
        with _lock:
            current = _holds.get(key)
            if current is not None and current.done.is_set():
                if current.sock is not None and not _open(current.sock):
                    log.warning(
                        "this process's connection to the reaper on {} dropped; holding anew",
                        endpoint.url,
                    )
                    current.sock.close()
                    current = None
                elif current.error is not None and (current.reported or retry_failed):
                    current = None
            if current is None:
                current = _holds[key] = _Hold()
                threading.Thread(
                    target=self._acquire, args=(client, endpoint, current),
                    name="envkit-reaper-hold", daemon=True,
                ).start()  # fmt: skip
            return current

    def _acquire(self, client: docker.DockerClient, endpoint: Endpoint, into: _Hold) -> None:
        """Get an acknowledged connection into `into` (or the error users read)."""
        try:
            try:
                into.sock = _acknowledged_connection(client, endpoint, self)
            except _START_ERRORS as exc:
                raise ReaperError(
                    f"The reaper that removes this run if envkit is killed did not start on "
                    f"the engine at {endpoint.url} (image {self.image}): {_reason(exc)}. Check "
                    f"the engine (`docker ps -a --filter label={REAPER_LABEL}` shows the "
                    f"reaper) and run again. {_OFF}"
                ) from exc
            log.debug(
                "runs on {} held by reaper {} (session {})", endpoint.url, self.name(), SESSION_ID
            )
        except Exception as exc:  # handed to the thread that waits in `hold`
            into.error = exc
        finally:
            into.done.set()


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


def reaper_name(image: str, grace_seconds: float, idle_seconds: float, endpoint: Endpoint) -> str:
    """The name of the reaper every envkit process with these settings shares on `endpoint`."""
    environment, volumes = reaper_access(endpoint)
    key = json.dumps(
        [image, f"{grace_seconds:g}", f"{idle_seconds:g}", environment, volumes], sort_keys=True
    )
    return NAME_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:12]


def reaper_for(
    settings: EnvkitSettings,
    client: docker.DockerClient,
    progress: Progress = no_progress,
    endpoint: Endpoint | None = None,
) -> ReaperHold | None:
    """The hold for this process's isolated runs on the engine `client` talks to (`endpoint`,
    default the current one), its image produced there and the hold begun in the background;
    None when the reaper is off."""
    if not reaper_enabled(settings):
        log.warning("the reaper is off: a killed run stays until the next envkit command")
        return None
    image = ImageBuilder(settings, client, progress, endpoint).ensure(["reaper"])["reaper"].ref
    section = settings.reaper
    reaper = ReaperHold(
        image, section.grace_seconds, endpoint, section.start_seconds, section.idle_seconds
    )
    reaper.begin(client)
    return reaper


def session_filter() -> bytes:
    """The filter line that holds this process's session (what testcontainers sends too)."""
    return f"label={LABEL_SESSION_ID}={SESSION_ID}\r\n".encode()


def _acknowledged_connection(
    client: docker.DockerClient, endpoint: Endpoint, reaper: ReaperHold
) -> socket.socket:
    """A connection to the shared reaper that registered this session and got its ACK,
    the reaper started (or a stuck one started, or a dead one removed) as needed."""
    name = reaper.name()
    deadline = time.monotonic() + reaper.start_seconds
    last = "no answer yet"
    pause = min(_FIRST_RETRY_SECONDS, _RETRY_SECONDS)
    while True:
        container = _find(client, name)
        status = container.status if container is not None else "absent"
        started = False
        if container is None:
            # Then look again at once: ours, or the one that won the name.
            started = _start_reaper(client, endpoint, reaper, name)
        elif status == "created":  # its creator died before starting it, or is about to
            with contextlib.suppress(NotFound):  # removed meanwhile: the next look tells
                container.start()
        elif status in ("exited", "dead"):  # gone idle; an engine without auto-remove keeps it
            with contextlib.suppress(NotFound, APIError):  # APIError: removal already under way
                container.remove(force=True)
        elif status == "running":
            try:
                sock = _register(container, endpoint, deadline)
            except (OSError, LookupError) as exc:
                last = _reason(exc)
            else:
                if isinstance(sock, socket.socket):
                    return sock
                last = sock
        else:
            last = f"the reaper is {status}"
        if time.monotonic() >= deadline:
            raise ReaperError(
                f"The reaper {name} on the engine did not acknowledge this session within "
                f"{reaper.start_seconds:g} s ({last}), so a killed run would not be removed. "
                "Check that the engine's published ports are reachable from here (TC_HOST "
                f"names the engine's address). {_OFF}"
            )
        if not started:
            time.sleep(pause)
            pause = min(pause * 2, _RETRY_SECONDS)


def _find(client: docker.DockerClient, name: str) -> Container | None:
    try:
        return client.containers.get(name)
    except NotFound:
        return None


def _start_reaper(
    client: docker.DockerClient, endpoint: Endpoint, reaper: ReaperHold, name: str
) -> bool:
    """Create and start the shared reaper; False when another process created it first."""
    environment, volumes = reaper_access(endpoint)
    # The reaper finds its own container by this token on the engine it reaches, so it knows
    # that engine is this one: a mounted socket may be another engine's (an ssh engine's
    # host may run several).
    token = uuid.uuid4().hex
    try:
        container = client.containers.create(
            reaper.image, name=name, detach=True, auto_remove=True,
            privileged=testcontainers_config.ryuk_privileged,
            ports={f"{REAPER_PORT}/tcp": (endpoint.bind_address(), None)},
            environment={
                "RYUK_RECONNECTION_TIMEOUT": f"{reaper.grace_seconds:g}s",
                "REAPER_IDLE_TIMEOUT": f"{reaper.idle_seconds:g}s",
                TOKEN_ENV: token,
                **environment,
            },
            volumes=volumes,
            labels={REAPER_LABEL: name.removeprefix(NAME_PREFIX), TOKEN_LABEL: token},
        )  # fmt: skip
    except APIError as exc:
        if exc.status_code == 409:  # the name is taken: another process won, use that one
            return False
        raise
    try:
        container.start()  # a process that found it "created" meanwhile may have started it
    except DockerException:
        # Never started, so nobody holds anything on it: leave no stuck reaper behind.
        with contextlib.suppress(DockerException):
            container.reload()
            if container.status == "created":
                container.remove(force=True)
        raise
    return True


def _register(container: Container, endpoint: Endpoint, deadline: float) -> socket.socket | str:
    """Send this session's filter to `container`: the connection once it answered `ACK`,
    else what it answered."""
    bindings = (container.ports or {}).get(f"{REAPER_PORT}/tcp") or []
    if not bindings:
        raise LookupError(f"{container.name} publishes no port {REAPER_PORT} (yet)")
    sock = socket.create_connection((endpoint.host, int(bindings[0]["HostPort"])), timeout=2)
    try:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.sendall(session_filter())
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(256)
            if not chunk:
                break
            answer += chunk
    except OSError as exc:  # a timeout, or a reset from a port proxy
        sock.close()
        return _reason(exc)
    if answer.startswith(b"ACK"):
        sock.settimeout(None)
        return sock
    sock.close()
    if answer.startswith(ERR) and EXITING.encode() not in answer:
        # The reaper itself refused (it reaches another engine): asking again changes nothing.
        raise ReaperError(_refused(endpoint, answer))
    return f"answered {answer.decode(errors='replace').strip()!r}" if answer else "no answer yet"


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


def _reason(exc: BaseException) -> str:
    text = (
        str(getattr(exc, "explanation", None) or exc)
        if isinstance(exc, DockerException)
        else str(exc)
    )
    return text.splitlines()[0][:300] if text.strip() else type(exc).__name__
