"""Hold an isolated run on the engine's reaper, so it is removed even if this process dies.

This is testcontainers' own session mechanism pointed at envkit's reaper image
(`envkit.reaperd`, built by `invoke images` because Ryuk's image cannot be pulled
everywhere): `Reaper.get_instance()` starts one reaper container per process, named
after testcontainers' session id, holds a TCP connection to it and registers
`label=org.testcontainers.session-id=<session>`. testcontainers puts that label on each
container and network it creates. When this process dies (kill -9, a cancelled CI job,
a zombie its parent never reaps) the kernel closes the connection; after the grace
period (ENVKIT_REAPER__GRACE_SECONDS) the reaper removes the run's containers and
network, with no later envkit command. Another process's runs carry another session.

Only isolated runs are held. The `up` stack, `--keep` runs and runs started with
`hold=False` (a stack shared past the process that started it) must outlive their
process: `EngineClient` leaves the session label off what they create, so the reaper
never matches them; `down` and the host-side label reaper (`envkit.lifecycle.reaper`)
deal with them.

envkit starts the reaper itself, once, before a held run's network (it begins while the
run's images are checked, `ReaperHold.hold_soon`, since it takes seconds): testcontainers
would start it from inside `DockerContainer.start()`, which envkit calls from several
threads at once (two reapers racing for one name) and for unheld stacks too. So
`testcontainers_config.ryuk_disabled` stays True (that automatic start stays off).
testcontainers sends the session filter without reading the answer, and a connection
made while the reaper is still starting can be accepted by the engine's port proxy and
dropped with the filter lost; so envkit also holds a connection of its own, which it
trusts once the reaper answered `ACK`. Either connection keeps the session held.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import docker
from docker.errors import DockerException
from testcontainers.core.config import ENABLE_FLAGS, testcontainers_config
from testcontainers.core.container import Reaper
from testcontainers.core.exceptions import ContainerConnectException, ContainerStartException
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

from envkit.engines.engine import engine_host
from envkit.engines.images import ImageBuilder
from envkit.errors import ReaperError
from envkit.logs import Progress, log, no_progress
from envkit.spec.settings import EnvkitSettings

REAPER_PORT = 8080  # where testcontainers expects Ryuk (and envkit's reaper listens)
ACK_SECONDS = 20.0  # how long the reaper may take to start and acknowledge the session
TC_DISABLED = "TESTCONTAINERS_RYUK_DISABLED"
_OFF = (
    "To run without it (a killed run is then removed by the next envkit command, "
    "or `invoke clean`), set ENVKIT_REAPER__ENABLED=false or TESTCONTAINERS_RYUK_DISABLED=true."
)
_START_ERRORS = (DockerException, OSError, ContainerStartException, ContainerConnectException)
_lock = threading.Lock()
# This process's own acknowledged connection to its reaper: open as long as the process
# lives (the kernel closes it when the process dies, which is what starts the reaping).
_connection: socket.socket | None = None


def reaper_enabled(settings: EnvkitSettings) -> bool:
    """False when turned off: ENVKIT_REAPER__ENABLED=false or testcontainers' own switch."""
    tc_off = os.environ.get(TC_DISABLED, "").lower() in ENABLE_FLAGS
    return settings.reaper.enabled and not tc_off


class _Early:
    """A hold taken in a thread; `result()` waits for it and raises what it raised."""

    def __init__(self, reaper: ReaperHold, client: docker.DockerClient) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(reaper, client), name="reaper-hold", daemon=True
        )  # a daemon: Ctrl-C meanwhile must not wait for the reaper's ACK
        self._thread.start()

    def _run(self, reaper: ReaperHold, client: docker.DockerClient) -> None:
        try:
            reaper._take(client)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


@dataclass(frozen=True)
class ReaperHold:
    """How this process holds its isolated runs: the reaper image and its grace period."""

    image: str
    grace_seconds: float
    _early: list[_Early] = field(default_factory=list, compare=False, repr=False)

    def hold_soon(self, client: docker.DockerClient) -> None:
        """Begin `hold()` in a thread: the reaper takes seconds to start and acknowledge, and
        the caller meanwhile does what creates nothing of the run (checking its images).
        The next `hold()` waits for it and raises what it raised, without a second try."""
        self._early.append(_Early(self, client))

    def hold(self, client: docker.DockerClient) -> None:
        """Start this process's reaper if needed and hold the session on an acknowledged
        connection (once per process; `client` is the engine the reaper runs on)."""
        if self._early:
            self._early.pop().result()  # raises what the early attempt raised
        self._take(client)

    def _take(self, client: docker.DockerClient) -> None:
        global _connection
        with _lock:
            if _connection is not None and _open(_connection):
                return
            if _connection is not None:  # the reaper went away (removed by hand?): start anew
                log.warning("this process's reaper is gone; starting a new one")
                _connection.close()
                _connection = None
                _drop_reaper()
            testcontainers_config.ryuk_image = self.image
            testcontainers_config.ryuk_reconnection_timeout = f"{self.grace_seconds:g}s"
            try:
                Reaper.get_instance()  # testcontainers' session: the reaper and its connection
                _connection = _acknowledged_connection(client, ACK_SECONDS)
            except _START_ERRORS as exc:
                _drop_reaper()
                raise ReaperError(
                    f"The reaper that removes this run if envkit is killed did not start on the "
                    f"engine (image {self.image}): {_reason(exc)}. Check the engine "
                    "(`docker ps -a --filter name=testcontainers-ryuk` shows the reaper) and run "
                    f"again. {_OFF}"
                ) from exc
            except ReaperError:
                _drop_reaper()
                raise
            log.debug("runs held by reaper {} (session {})", self.image, SESSION_ID)


def reaper_for(
    settings: EnvkitSettings, client: docker.DockerClient, progress: Progress = no_progress
) -> ReaperHold | None:
    """The hold for this process's isolated runs (its image produced), or None when it is off."""
    if not reaper_enabled(settings):
        log.warning("the reaper is off: a killed run stays until the next envkit command")
        return None
    image = ImageBuilder(settings, client, progress).ensure(["reaper"])["reaper"].ref
    return ReaperHold(image, settings.reaper.grace_seconds)


def session_filter() -> bytes:
    """The filter line that holds this process's session (what testcontainers sends too)."""
    return f"label={LABEL_SESSION_ID}={SESSION_ID}\r\n".encode()


def reaper_name() -> str:
    """The name testcontainers gives this process's reaper container."""
    return f"testcontainers-ryuk-{SESSION_ID}"


def _acknowledged_connection(client: docker.DockerClient, timeout: float) -> socket.socket:
    """A connection to this session's reaper that registered the session and got its ACK."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            sock = _connect(client)
        except (OSError, DockerException, LookupError) as exc:
            last = _reason(exc)
        else:
            try:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock.sendall(session_filter())
                answer = sock.recv(64)
            except OSError as exc:  # a timeout, or a reset from a port proxy
                answer, last = b"", _reason(exc)
            if answer.startswith(b"ACK"):
                sock.settimeout(None)
                return sock
            last = f"answered {answer!r}" if answer else last
            sock.close()
        time.sleep(0.2)
    raise ReaperError(
        f"The reaper on the engine did not acknowledge this session within {timeout:g} s "
        f"({last}), so a killed run would not be removed. Check that the engine's published "
        f"ports are reachable from here (TC_HOST names the engine's address). {_OFF}"
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


def _connect(client: docker.DockerClient) -> socket.socket:
    container = client.containers.get(reaper_name())
    bindings = (container.ports or {}).get(f"{REAPER_PORT}/tcp") or []
    if not bindings:
        raise LookupError(f"{reaper_name()} publishes no port {REAPER_PORT} (yet)")
    return socket.create_connection((engine_host(), int(bindings[0]["HostPort"])), timeout=2)


def _drop_reaper() -> None:
    with contextlib.suppress(DockerException, OSError):
        Reaper.delete_instance()


def _reason(exc: BaseException) -> str:
    text = (
        str(getattr(exc, "explanation", None) or exc)
        if isinstance(exc, DockerException)
        else str(exc)
    )
    return text.splitlines()[0][:300] if text.strip() else type(exc).__name__
