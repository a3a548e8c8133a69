"""A running stack: one network, one container per service, logs on disk, probes passed.

`Environment` is a context manager: leaving it tears everything down, whether
the body succeeded, failed, raised or was interrupted; a held one is removed by
the engine's reaper if this process dies (`envkit.lifecycle.hold`). Services
start as soon as their dependencies meet their condition (`started` or
`healthy`), so services of one dependency wave start in parallel; the first
service that cannot become ready stops the whole start with the evidence to fix it.

Where the services are reached from this machine: an isolated run on a local engine whose
network this machine reaches (`reaches_containers`) publishes no port and uses each
container's address on the run's network and its container port; `up`, `keep`, remote
engines, engines whose networks are out of reach (Docker Desktop, Podman) and
`engines.publish_ports = always` publish each service's port on the engine's host.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import docker
from docker.errors import APIError, NotFound
from testcontainers.core.network import Network

from envkit.engines.engine import Endpoint, current_endpoint, reaches_containers
from envkit.errors import (
    EnvkitError,
    PortInUseError,
    ServiceNotReady,
    ServiceStartFailed,
    StackAborted,
)
from envkit.evidence.redact import Redactor
from envkit.healthchecks import (
    HttpProbe,
    LogLineProbe,
    PostgresProbe,
    Probe,
    ProbeAborted,
    ProbeError,
    RetryPolicy,
    TcpProbe,
    wait_until_ready,
)
from envkit.lifecycle.containers import (
    LOOPBACK,
    SERVICE,
    EngineClient,
    ServiceContainer,
    container_state,
    network_address,
    owner_labels,
    run_network,
)
from envkit.lifecycle.hold import ReaperHold
from envkit.lifecycle.logstream import LogStream
from envkit.lifecycle.signals import deferred
from envkit.logs import log
from envkit.spec.settings import env_name
from envkit.spec.stack import ResolvedService, StackSpec

Mode = Literal["isolated", "up", "keep"]  # "up" and "keep" outlive their process
PublishPorts = Literal["auto", "always"]  # the setting `engines.publish_ports`
_POLL = 0.05
_MAX_PROBE_DELAY = 0.1  # seconds: a ready service is noticed within this, on average half
_CHAIN_CPU_SHARES = 4096
_STATE_CHECK_INTERVAL = 0.25  # the engine's default weight is 1024


def new_run_id(stack: str) -> str:
    """A sortable, unique run id such as `shop-20261122T051500-3f9a0c1e`."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stack}-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class ServiceRun:
    """One service in this run: its container, where to reach it, and its timings."""

    name: str
    image: str
    log_path: Path
    container_port: int | None
    scheme: str = "http"
    container: ServiceContainer | None = None
    stream: LogStream | None = None
    host: str = ""  # where this machine reaches it: the engine's host, or the container's address
    host_port: int | None = None
    created_at: float | None = None  # seconds since the environment began starting
    started_at: float | None = None
    ready_at: float | None = None
    started: threading.Event = field(default_factory=threading.Event)
    healthy: threading.Event = field(default_factory=threading.Event)

    def host_url(self) -> str | None:
        """E.g. `http://host:port` on the machine running envkit (None without a port)."""
        return f"{self.scheme}://{self.host}:{self.host_port}" if self.host_port else None

    def network_url(self) -> str | None:
        """E.g. `http://name:port` inside the run's network (None without a port)."""
        return f"{self.scheme}://{self.name}:{self.container_port}" if self.container_port else None

    @property
    def seconds_to_ready(self) -> float | None:
        """From container creation to probe success."""
        if self.ready_at is None or self.created_at is None:
            return None
        return self.ready_at - self.created_at


class Environment:
    """Brings a resolved stack up in its own network and always takes it down again."""

    def __init__(
        self,
        stack: StackSpec,
        services: dict[str, ResolvedService],
        images: dict[str, str],
        *,
        run_id: str,
        artifact_dir: Path,
        redactor: Redactor,
        client: docker.DockerClient,
        mode: Mode = "isolated",
        reaper: ReaperHold | None = None,
        labels: dict[str, str] | None = None,
        endpoint: Endpoint | None = None,
        publish_ports: PublishPorts = "auto",
        network: Future[tuple[Network, str]] | None = None,
    ) -> None:
        self.stack = stack
        self.resolved = services
        self.run_id = run_id
        self.artifact_dir = artifact_dir
        self.redactor = redactor
        self.client = client
        # Held: removed by the engine's reaper if this process dies; `up` and `keep` outlive it.
        if reaper is not None and mode != "isolated":
            raise ValueError(f"a {mode!r} stack outlives its process; it cannot be held")
        if reaper is not None and network is not None:
            raise ValueError("a held run's network is created after the reaper holds it")
        self.reaper = reaper
        # The one client every container and the network of this run are created through.
        self.engine = EngineClient(client, held=reaper is not None)
        self.mode: Mode = mode
        # The engine `client` talks to (default: the current one): services' URLs and probes
        # use its host, and ports are published on that host's address, never 0.0.0.0.
        self.endpoint = endpoint or current_endpoint()
        self.host = self.endpoint.host
        self.bind_address = self.endpoint.bind_address()
        self.publish_ports: PublishPorts = publish_ports
        self.direct = False  # decided once the run's network exists (see `reached_directly`)
        # What the run's network and containers carry: the host-side reaper removes an unheld
        # run once the process they name is gone (`owner_labels`; default: this process).
        self.labels = labels or owner_labels(run_id, stack.name, mode)
        self.runs = {
            name: ServiceRun(
                name, images[name], artifact_dir / svc.spec.log, svc.spec.port, _scheme(svc)
            )
            for name, svc in services.items()
        }
        self.network: Network | None = None
        # The run's network, when the caller began creating it before this environment
        # (`network_in_background`): `start` waits for it instead of creating one.
        self._network_future = network
        self._head_start = _head_start(services)
        self._chained = _chained(services)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._kept = False
        self._collected = False
        self._torn_down = False
        self.started_at = datetime.now(UTC)

    @property
    def held(self) -> bool:
        """True when the engine's reaper removes this run if its process dies."""
        return self.reaper is not None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Environment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.teardown()

    def start(self) -> None:
        """Start every service and wait until each is ready; raise on the first that is not."""
        self._t0 = time.monotonic()
        if self.mode == "up":
            self._check_fixed_ports()
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        if self.reaper is not None:
            self.reaper.hold(self.client)  # before anything of the run exists on the engine
        if self._network_future is not None:
            self.network, gateway = self._network_future.result()
        else:
            self.network, gateway = run_network(self.engine, self.labels)
        self.direct = reached_directly(self.mode, self.publish_ports, self.endpoint, gateway)
        log.debug(
            "run {}: services reached {}", self.run_id,
            f"at their addresses on {gateway}'s network" if self.direct else "at published ports",
        )  # fmt: skip
        pool = ThreadPoolExecutor(max_workers=len(self.runs), thread_name_prefix="svc")
        futures: dict[Future[None], str] = {
            pool.submit(self._bring_up, name): name for name in self.runs
        }
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self._stop.set()
                wait(futures)
                raise _first_real_error(failed)
        except BaseException:
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def keep(self) -> None:
        """Leave the stack running when the context exits (for `invoke up` and `--keep`)."""
        self._kept = True

    def collect(self) -> None:
        """Stop every container so its log is complete on disk (teardown does this too)."""
        if self._collected:
            return
        self._collected = True
        self._stop.set()
        runs = [r for r in self.runs.values() if r.container is not None]
        with deferred(), ThreadPoolExecutor(max_workers=max(1, len(runs))) as pool:
            list(pool.map(_stop_container, runs))
        for run in runs:
            if run.stream is not None:
                run.stream.join(timeout=5)

    def teardown(self) -> None:
        """Remove every container and the network of this run; safe to call twice.

        A signal meanwhile (Ctrl-C, SIGTERM) waits until everything is removed.
        """
        if self._torn_down or self._kept:
            return
        self._torn_down = True
        with deferred():
            if self._network_future is not None:
                wait([self._network_future])  # a network still being created is removed too
            try:
                self.collect()
            finally:
                remove_run(self.client, self.run_id)
        log.debug("run {} torn down", self.run_id)

    # -- one service ----------------------------------------------------------------------------

    def _bring_up(self, name: str) -> None:
        run = self.runs[name]
        resolved = self.resolved[name]
        self._wait_for_dependencies(name)
        container = self._container_for(name, resolved)
        with self._lock:
            if self._stop.is_set():
                raise StackAborted(f"{name} was not started: the stack is being torn down.")
            run.created_at = self._now()
        try:
            container.create_and_start()
        except APIError as exc:
            raise self._start_error(name, resolved, exc) from exc
        run.container = container
        run.started_at = self._now()
        run.stream = LogStream(container.wrapped, run.log_path, self.redactor).start()
        if run.container_port is not None:
            self._locate(run, container)
        run.started.set()
        self._wait_until_ready(run, resolved)
        run.ready_at = self._now()
        run.healthy.set()
        log.info("{} ready in {:.2f} s", name, run.seconds_to_ready or 0.0)

    def _locate(self, run: ServiceRun, container: ServiceContainer) -> None:
        """Where this machine reaches the service: its published port on the engine's host,
        or (direct) its address on the run's network and its own port."""
        if not self.direct:
            try:
                run.host_port = int(container.get_exposed_port(run.container_port or 0))
            except Exception as exc:  # testcontainers' own errors: the container is not running
                raise self._exited_at_start(run) from exc
            run.host = self.host
            return
        assert self.network is not None
        wrapped = container.wrapped
        try:
            wrapped.reload()  # the address is assigned at start; create's inspect had none
        except APIError as exc:
            raise self._exited_at_start(run) from exc
        address = network_address(wrapped, self.network.name)
        if not address:  # an exited container keeps no address
            raise self._exited_at_start(run)
        run.host, run.host_port = address, run.container_port

    def _wait_for_dependencies(self, name: str) -> None:
        waits = [
            (dep, self.runs[dep].healthy if condition == "healthy" else self.runs[dep].started)
            for dep, condition in self.resolved[name].spec.depends_on.items()
        ]
        if not waits and name not in self._head_start:
            # A standalone service lets the ones others wait on start first: the engine
            # creates containers faster one batch at a time, and the critical path wins.
            waits = [(other, self.runs[other].started) for other in self._head_start]
        for dep, event in waits:
            while not event.wait(_POLL):
                if self._stop.is_set():
                    raise StackAborted(f"{name} was not started: {dep} did not get ready.")

    def _container_for(self, name: str, resolved: ResolvedService) -> ServiceContainer:
        fixed = resolved.fixed_port if self.mode == "up" else None
        # Under CPU contention the dependency chain, which bounds start-up, goes first.
        options = {"cpu_shares": _CHAIN_CPU_SHARES} if name in self._chained else {}
        assert self.network is not None
        return service_container(
            self.runs[name].image, resolved, self.run_id, self.network, self.labels, self.engine,
            fixed, bind_address=self.bind_address, publish=not self.direct, **options,
        )  # fmt: skip

    def _wait_until_ready(self, run: ServiceRun, resolved: ResolvedService) -> None:
        probe = self._probe(run, resolved)
        if probe is None:
            return

        last_check = -_STATE_CHECK_INTERVAL
        verdict: str | None = None

        def abort() -> str | None:
            # Inspecting a container costs the engine CPU: look at most every 0.25 s.
            nonlocal last_check, verdict
            if self._stop.is_set():
                return "the stack is being torn down"
            now = time.monotonic()
            if now - last_check >= _STATE_CHECK_INTERVAL:
                assert run.container is not None
                state = container_state(run.container.wrapped)
                running = state.status in ("running", "created")
                last_check, verdict = now, None if running else f"container {state.describe()}"
            return verdict

        policy = RetryPolicy(timeout=resolved.ready_timeout, max_delay=_MAX_PROBE_DELAY)
        try:
            wait_until_ready(probe, policy, abort=abort, service=run.name)
        except ProbeError as exc:
            raise self._not_ready(run, probe, exc) from exc

    def _probe(self, run: ServiceRun, resolved: ResolvedService) -> Probe | None:
        spec = resolved.probe
        if spec is None or spec.kind != "log":
            return port_probe(resolved, run.host or self.host, run.host_port or 0)
        assert spec.pattern is not None
        assert run.stream is not None
        return LogLineProbe(run.stream.text, spec.pattern, spec.count, run.log_path.name)

    # -- evidence -----------------------------------------------------------------------------

    def _not_ready(self, run: ServiceRun, probe: Probe, exc: ProbeError) -> EnvkitError:
        if isinstance(exc, ProbeAborted) and self._stop.is_set():
            return StackAborted(f"{run.name} stopped waiting: the stack is being torn down.")
        assert run.container is not None
        state = container_state(run.container.wrapped)
        if run.stream is not None:
            run.stream.join(timeout=1 if state.status == "exited" else 0)
        tail = _own_lines(run.stream.text(), probe) if run.stream is not None else ""
        if state.status == "exited":
            hint = (
                f"The container stopped by itself. Its log ({run.log_path}) usually says why: "
                "a missing or wrong setting, or a dependency it could not reach."
            )
        else:
            hint = (
                "The container runs but never passed its probe. If it is only slow, raise "
                f"ready_timeout for '{run.name}' in {self.stack.source} (or "
                "ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS); otherwise read its log."
            )
        return ServiceNotReady(
            service=run.name,
            probe=probe.describe(),
            elapsed=exc.elapsed,
            attempts=exc.attempts,
            last_error=exc.last_error or "(none recorded)",
            state=state.describe(),
            exit_code=state.exit_code,
            log_path=run.log_path,
            log_tail=tail,
            hint=hint,
        )

    def _start_error(self, name: str, resolved: ResolvedService, exc: APIError) -> EnvkitError:
        text = str(exc.explanation or exc)
        if resolved.fixed_port and (
            "port is already allocated" in text or "address already in use" in text
        ):
            return _port_taken(name, resolved, self.bind_address)
        return ServiceStartFailed(service=name, refused=text)

    def _exited_at_start(self, run: ServiceRun) -> EnvkitError:
        """The container stopped before its port could even be read: its exit code and log."""
        if self._stop.is_set():
            return StackAborted(f"{run.name} stopped: the stack is being torn down.")
        assert run.container is not None
        state = container_state(run.container.wrapped)
        if run.stream is not None:
            run.stream.join(timeout=2)
        return ServiceStartFailed(
            service=run.name,
            state=state.describe(),
            exit_code=state.exit_code,
            oom_killed=state.oom_killed,
            log_path=run.log_path,
            log_tail=run.stream.tail() if run.stream is not None else "",
        )

    def _check_fixed_ports(self) -> None:
        check_fixed_ports(self.resolved, self.host)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    # -- what callers read ----------------------------------------------------------------------

    def endpoints(self) -> dict[str, dict[str, Any]]:
        """Per service: image, URLs, state, timings (for tables, state files and reports)."""
        rows: dict[str, dict[str, Any]] = {}
        for name, run in self.runs.items():
            state = container_state(run.container.wrapped) if run.container else None
            rows[name] = {
                "image": run.image,
                "container": run.container.wrapped.name if run.container else None,
                # a published port on the engine's host, or (an isolated run on a local
                # engine) the container's own address and port on the run's network
                "host_url": run.host_url(),
                "host_port": run.host_port,
                "network_url": run.network_url(),
                "state": state.describe() if state else "not started",
                "log": str(run.log_path),
                "created_s": run.created_at,
                "started_s": run.started_at,
                "ready_s": run.ready_at,
                "seconds_to_ready": run.seconds_to_ready,
            }
        return rows


def reached_directly(
    mode: Mode, publish_ports: PublishPorts, endpoint: Endpoint, gateway: str
) -> bool:
    """True when a run's services are reached at their addresses on its network (`gateway`'s),
    no port published: an isolated run, the setting `auto`, and an engine whose networks this
    machine reaches. `up` and `keep` stacks are reached later, from wherever their user is,
    at ports that do not move: they always publish."""
    if mode != "isolated" or publish_ports != "auto":
        return False
    return reaches_containers(endpoint, gateway)


def check_fixed_ports(services: dict[str, ResolvedService], host: str) -> None:
    """Refuse (PortInUseError) a fixed `up` port that something on this machine holds."""
    for name, resolved in services.items():
        port = resolved.fixed_port
        if port is None or host not in ("127.0.0.1", "localhost"):
            continue
        with socket.socket() as probe:
            # Like a server would: a port whose last connection lingers in TIME-WAIT is
            # free; one that something listens on still refuses the bind.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise _port_taken(name, resolved, LOOPBACK) from None


def network_in_background(
    client: docker.DockerClient, labels: dict[str, str]
) -> Future[tuple[Network, str]]:
    """Begin creating an unheld run's network (labelled `labels`) on a thread of its own, for
    `Environment(network=...)`: the engine takes about 0.1 s for it, which the images' checks
    can use. (A held run's network must wait for the reaper's hold.)"""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="network")
    try:
        return pool.submit(run_network, EngineClient(client), labels)
    finally:
        pool.shutdown(wait=False)  # the thread ends with its one task


def service_container(
    image: str,
    resolved: ResolvedService,
    run_id: str,
    network: Network,
    labels: dict[str, str],
    engine: EngineClient,
    fixed_port: int | None = None,
    *,
    bind_address: str = LOOPBACK,
    publish: bool = True,
    **engine_options: Any,
) -> ServiceContainer:
    """A service's container as its stack file describes it: command, environment, tmpfs
    mounts, memory and CPU limits, name and alias on the run's network, labels, and its
    port (unless `publish` is False, published on `bind_address` of the engine's host);
    `engine_options` go to the engine as they are (e.g. cpu_shares)."""
    spec = resolved.spec
    ports = None if spec.port is None or not publish else (spec.port, bind_address, fixed_port)
    container = ServiceContainer(image, engine, ports)  # host port None: the engine picks
    if spec.command:
        container.with_command(list(spec.command))
    for key, value in resolved.env.items():
        container.with_env(key, value)
    for path, options in spec.tmpfs.items():
        container.with_tmpfs_mount(path, options)
    container.with_name(f"envkit-{run_id}-{spec.name}")
    container.with_network(network).with_network_aliases(spec.name)
    container.with_kwargs(labels={**labels, SERVICE: spec.name}, **spec.limits, **engine_options)
    return container


def port_probe(resolved: ResolvedService, host: str, port: int) -> Probe | None:
    """The service's http, tcp or postgres probe against host:port (None without a probe)."""
    spec = resolved.probe
    if spec is None:
        return None
    if spec.kind == "http":
        return HttpProbe(f"http://{host}:{port}{spec.path}", spec.status, spec.body_contains)
    if spec.kind == "postgres":
        assert spec.user is not None
        assert spec.password is not None
        assert spec.database is not None
        return PostgresProbe(host, port, spec.user, spec.password, spec.database)
    return TcpProbe(host, port)


def _head_start(services: dict[str, ResolvedService]) -> list[str]:
    """Services with no dependencies that others depend on: they start before standalone ones."""
    needed = {dep for svc in services.values() for dep in svc.spec.depends_on}
    return sorted(n for n in needed if n in services and not services[n].spec.depends_on)


def _scheme(service: ResolvedService) -> str:
    kind = service.probe.kind if service.probe else "http"
    return {"postgres": "postgresql", "tcp": "tcp", "log": "tcp"}.get(kind, "http")


def _chained(services: dict[str, ResolvedService]) -> set[str]:
    """Services that depend on another or that another depends on."""
    needed = {dep for svc in services.values() for dep in svc.spec.depends_on}
    return needed | {n for n, svc in services.items() if svc.spec.depends_on}


def _port_taken(name: str, resolved: ResolvedService, address: str) -> PortInUseError:
    ref = resolved.spec.fixed_port
    setting = ""
    if isinstance(ref, str) and ref.startswith("${") and ref.endswith("}"):
        setting = f" ({env_name(ref[2:-1])})"
    return PortInUseError(
        f"Port {resolved.fixed_port} on {address}, the fixed port of {name}{setting}, is taken. "
        f"Stop whatever listens there (`ss -ltnp 'sport = :{resolved.fixed_port}'` shows it) "
        f"or choose another port{' with ' + setting.strip(' ()') if setting else ''}."
    )


def _own_lines(text: str, probe: Probe, lines: int = 30) -> str:
    """The last `lines` lines of a service's log, less the request lines of its own probe.

    A probe polling a service that is not ready fills its log with its own requests;
    the lines that say why (a dependency it cannot reach) are the service's others.
    """
    path = urlsplit(probe.url).path if isinstance(probe, HttpProbe) else ""
    path = path if len(path) > 1 else ""  # a probe of "/" would hide every line
    kept = [line for line in text.splitlines() if not path or f" {path}" not in line]
    return "\n".join(kept[-lines:])


def _first_real_error(failed: list[Future[None]]) -> BaseException:
    errors = [f.exception() for f in failed]
    real = [e for e in errors if e is not None and not isinstance(e, StackAborted)]
    chosen = (real or errors)[0]
    assert chosen is not None
    return chosen


def _stop_container(run: ServiceRun) -> None:
    container = run.container.wrapped if run.container else None
    if container is None:
        return
    with contextlib.suppress(APIError, NotFound):
        container.stop(timeout=3)  # a graceful stop lets the log stream catch the last lines


def remove_run(
    client: docker.DockerClient, run_id: str, on_error: Callable[[str], None] = log.warning
) -> int:
    """Remove every container and network labelled with `run_id`; return how many containers."""
    label = {"label": f"envkit.run={run_id}"}
    removed = 0
    # sparse: no inspect per container, which fails if someone else removed it meanwhile.
    for container in client.containers.list(all=True, sparse=True, filters=label):
        try:
            container.remove(force=True, v=True)
            removed += 1
        except NotFound:
            pass
        except APIError as exc:
            on_error(f"could not remove container {container.short_id}: {exc.explanation}")
    for network in client.networks.list(filters=label):
        for attempt in range(5):
            try:
                network.remove()
                break
            except NotFound:
                break
            except APIError as exc:
                if attempt == 4:
                    on_error(f"could not remove network {network.name}: {exc.explanation}")
                time.sleep(0.2)
    return removed
