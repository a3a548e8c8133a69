"""What the stack tasks do: `up`, `down`, `status`, `logs`, `clean`, and an isolated stack.

Each function takes the settings object and returns data; the tasks render it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import ImageNotFound, NotFound

from envkit.engines.builds import ensure_build
from envkit.engines.engine import (
    Endpoint,
    answering,
    configure_testcontainers,
    current_endpoint,
    docker_client,
    ensure_endpoint,
    ensure_engine,
)
from envkit.engines.images import ImageBuilder
from envkit.engines.imagesources import OVERRIDE_SETTING, ServiceImage, image_sources
from envkit.errors import ImageError, RunStateError
from envkit.evidence.redact import Redactor
from envkit.lifecycle.containers import RUN, SERVICE, container_state, owner_labels
from envkit.lifecycle.environment import (
    Environment,
    Mode,
    PublishPorts,
    check_fixed_ports,
    network_in_background,
    new_run_id,
    remove_run,
)
from envkit.lifecycle.hold import reaper_for
from envkit.lifecycle.reaper import ReapReport, Sweep, reap
from envkit.lifecycle.signals import interruptible
from envkit.lifecycle.state import UpState, clear_state, read_state, write_state
from envkit.logs import Progress, log, no_progress
from envkit.program import command
from envkit.spec.settings import EnvkitSettings, with_image_overrides
from envkit.spec.stack import StackSpec, load_stack, resolve_stack


def artifact_dir_for(settings: EnvkitSettings, run_id: str) -> Path:
    """Where a run's artifacts go: `<artifact root>/<run id>`, absolute."""
    return settings.workspace.artifacts / run_id


def _state_dir(settings: EnvkitSettings) -> Path:
    return settings.workspace.state


def connect(settings: EnvkitSettings, endpoint: Endpoint | None = None) -> docker.DockerClient:
    """Find or start the engine (`endpoint`, default the current one), point testcontainers at
    the current one, and remove orphaned runs there; return a client for the engine (an
    `Environment` hands it to testcontainers for its containers)."""
    client, sweep = open_engine(settings, endpoint)
    sweep.wait()
    return client


def open_engine(
    settings: EnvkitSettings, endpoint: Endpoint | None = None
) -> tuple[docker.DockerClient, Sweep]:
    """`connect`, but the removal of orphaned runs goes on in the background (`Sweep`) while
    the caller starts its own: call `wait()` on it once the run's containers are up."""
    endpoint, info = answering(endpoint, settings.timeouts.engine_start_seconds)
    configure_testcontainers()
    # The version the engine just named: the client need not ask for it again.
    client = endpoint.client(timeout=120, version=info.client_version)
    return client, Sweep(client)


def produce_images(
    settings: EnvkitSettings,
    client: docker.DockerClient,
    stack: StackSpec,
    progress: Progress,
    services: Collection[str] | None = None,
    endpoint: Endpoint | None = None,
) -> dict[str, ServiceImage]:
    """Every service's image (or those in `services`) on the engine `client` talks to
    (`endpoint`, default the current one): envkit's roles, references present or pulled,
    build contexts built (or found by their input hash), as the image override says."""
    sources = image_sources(stack, settings)
    wanted = {n: s for n, s in sources.items() if services is None or n in services}
    builder = ImageBuilder(settings, client, progress=progress, endpoint=endpoint)
    roles = builder.ensure({s.ref for s in wanted.values() if s.kind == "role"})
    images: dict[str, ServiceImage] = {}
    for name, source in wanted.items():  # builds after roles: a build may start FROM one
        if source.kind == "role":
            role = roles[source.ref]
            images[name] = ServiceImage(role.ref, source, action=role.action)
        elif source.kind == "build":
            built = ensure_build(client, stack.name, name, source, progress)
            images[name] = ServiceImage(built.ref, source, built.input_hash, built.action)
        else:
            ref, action = _literal_image(client, source.ref, name, source.override)
            images[name] = ServiceImage(ref, source, action=action)
    return images


def stack_images(
    settings: EnvkitSettings, client: docker.DockerClient, stack: StackSpec, progress: Progress
) -> dict[str, str]:
    """Image reference per service (see `produce_images`)."""
    return {n: i.ref for n, i in produce_images(settings, client, stack, progress).items()}


def _literal_image(
    client: docker.DockerClient, ref: str, service: str, override: bool = False
) -> tuple[str, str]:
    try:
        client.images.get(ref)
        return ref, "present"
    except ImageNotFound:
        try:
            client.images.pull(ref)
        except docker.errors.APIError as exc:
            how = "`docker load` it, or name an image it has"
            if override:
                how += (
                    f" in {OVERRIDE_SETTING} (or --image); a directory to build must start "
                    "with ./, / or ~"
                )
            raise ImageError(
                f"Service {service} needs image {ref}, which the engine does not have and could "
                f"not pull ({exc.explanation}). {how[0].upper()}{how[1:]}."
            ) from exc
    return ref, "pulled"


@contextmanager
def running_stack(
    settings: EnvkitSettings,
    stack_path: Path | None = None,
    *,
    mode: str = "isolated",
    progress: Progress = no_progress,
    client: docker.DockerClient | None = None,
    hold: bool = True,
    owner_pid: int | None = None,
    publish_ports: PublishPorts | None = None,
) -> Iterator[Environment]:
    """Start the stack in its own network and yield it; always tear it down afterwards.

    Ctrl-C and SIGTERM interrupt cleanly (teardown still runs). An isolated stack is
    held: if this process dies, the engine's reaper removes it within seconds. With
    `hold=False` (and for `up`) it is not, so it may outlive this process: call `keep()`
    on the environment to leave it running, and remove it later (`remove_run`, `clean`).
    `owner_pid` names the process whose end lets the host-side label reaper remove the
    run (default: this one). A held stack on a local engine publishes no port when
    `engines.publish_ports` allows (see `envkit.lifecycle.environment`); an unheld one does,
    unless `publish_ports` (default: the setting when held, else `always`) says otherwise.
    """
    settings = with_image_overrides(settings)  # override directories made absolute
    stack = load_stack(stack_path or settings.workspace.default_stack)
    resolved = resolve_stack(stack, settings)
    sweep = None
    if client is None:
        client, sweep = open_engine(settings)
    try:
        held = hold and mode != "up"
        reaper = reaper_for(settings, client, progress) if held else None
        run_id = new_run_id(stack.name)
        kind: Mode = "up" if mode == "up" else "isolated"
        # An unheld run's network is made while the images are checked (a held one's waits
        # for the reaper's hold, which `start` takes).
        network = None
        state_dir = None
        if kind == "up":  # it exists from the start: a run it does not record was never finished
            state_dir = _state_dir(settings)
            state_dir.mkdir(parents=True, exist_ok=True)
        labels = owner_labels(run_id, stack.name, kind, owner_pid, state_dir)
        if reaper is None:
            if kind == "up":  # a taken port is refused before anything exists on the engine
                check_fixed_ports(resolved, current_endpoint().host)
            network = network_in_background(client, labels)
        try:
            images = stack_images(settings, client, stack, progress)
        except BaseException:
            if network is not None:
                wait([network])
                remove_run(client, run_id)
            raise
        environment = Environment(
            stack, resolved, images,
            run_id=run_id, artifact_dir=artifact_dir_for(settings, run_id),
            redactor=Redactor(settings.secret_values()), client=client,
            mode=kind, reaper=reaper, labels=labels, network=network,
            # an unheld stack may be kept and reached later, from anywhere: its ports are published
            publish_ports=publish_ports or (settings.engines.publish_ports if hold else "always"),
        )  # fmt: skip
        with interruptible(), environment:
            progress(f"starting {len(resolved)} services")
            try:
                environment.start()
            finally:
                if sweep is not None:
                    sweep.wait()
            yield environment
    finally:
        if sweep is not None:
            sweep.wait()  # a failure before the start still waits for it and reports it


def up(
    settings: EnvkitSettings, stack_path: Path | None = None, progress: Progress = no_progress
) -> UpState:
    """Start the stack on the fixed ports and leave it running; return what `status` shows."""
    stack_path = stack_path or settings.workspace.default_stack
    resolve_stack(load_stack(stack_path), settings)  # refuse mistakes before the engine
    client, sweep = open_engine(settings)
    try:
        current = read_state(_state_dir(settings))
        if current and _live_containers(client, current.run_id):
            raise RunStateError(
                f"A stack is already up (run {current.run_id}). `{command('status')}` shows "
                f"it; `{command('down')}` removes it before you start another.",
                run_id=current.run_id,
            )
        with running_stack(
            settings, stack_path, mode="up", progress=progress, client=client
        ) as env:
            env.keep()
            sweep.wait()
            # Only now: the stack's rows are the first thing `up` needs from the evidence code.
            from envkit.evidence.outcome import service_rows

            state = UpState(
                env.run_id, env.stack.source, env.started_at.isoformat(), env.artifact_dir,
                service_rows(env.endpoints()), env.endpoint.url,
            )  # fmt: skip
            write_state(_state_dir(settings), state)
    finally:
        sweep.wait()
    return state


def save_logs(
    client: docker.DockerClient, state: UpState, target: Path, redactor: Redactor
) -> list[str]:
    """Write each `up` container's whole log (redacted) into `target`; return the paths."""
    saved = []
    for container in _live_containers(client, state.run_id):
        row = state.services.get(container.labels.get(SERVICE, container.name))
        name = Path(row.log).name if row else ""
        if name:
            target.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(redactor.bytes(container.logs(timestamps=True)))
            saved.append(str(target / name))
    return saved


def _live_containers(client: docker.DockerClient, run_id: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"{RUN}={run_id}"}))


def up_stack_file(settings: EnvkitSettings) -> Path | None:
    """The stack file of the stack `invoke up` left running (None when none is up)."""
    state = read_state(_state_dir(settings))
    return state.stack if state else None


def require_up(settings: EnvkitSettings) -> tuple[docker.DockerClient, UpState]:
    """A client and the state of the `up` stack, or an error saying to start one."""
    state = read_state(_state_dir(settings))
    if state is None:
        raise RunStateError(f"No stack is up. Start one with `{command('up')}`.")
    return up_engine(settings, state).client(timeout=120), state


def up_engine(settings: EnvkitSettings, state: UpState) -> Endpoint:
    """The engine the `up` stack runs on (the one `up` recorded), once it answers."""
    from envkit.engines.pool import endpoint_of

    current = current_endpoint()
    if not state.engine or state.engine == current.url:
        return ensure_endpoint(None, settings.timeouts.engine_start_seconds)
    return ensure_endpoint(endpoint_of(state.engine, "the `up` state file"))


@dataclass(frozen=True)
class DownResult:
    """What `down` did: the run it removed, how many containers, and the logs it kept."""

    run_id: str
    removed: int
    logs: list[str]


def down(settings: EnvkitSettings) -> DownResult:
    """Save each container's whole log into the run's artifacts, then remove the stack."""
    client, state = require_up(settings)
    redactor = Redactor(settings.secret_values())
    saved = save_logs(client, state, state.artifact_dir, redactor)
    removed = remove_run(client, state.run_id)
    clear_state(_state_dir(settings))
    return DownResult(state.run_id, removed, saved)


def status(settings: EnvkitSettings) -> UpState:
    """The `up` stack's services with their live container state."""
    client, state = require_up(settings)
    live = {c.labels.get(SERVICE): c for c in _live_containers(client, state.run_id)}
    return state.with_service_states(
        {
            name: container_state(live[name]).describe() if name in live else "gone"
            for name in state.services
        }
    )


def logs(settings: EnvkitSettings, service: str | None, follow: bool) -> Iterator[str]:
    """Lines of the `up` stack's logs (one service or all), redacted; follows when asked."""
    client, state = require_up(settings)
    containers = {c.labels.get(SERVICE): c for c in _live_containers(client, state.run_id)}
    if service is not None and service not in containers:
        known = ", ".join(sorted(k for k in containers if k))
        raise RunStateError(
            f"No service '{service}' in the running stack; it has: {known}.",
            run_id=state.run_id,
        )
    chosen = {k: v for k, v in containers.items() if service is None or k == service}
    redactor = Redactor(settings.secret_values())
    lines: queue.Queue[str | None] = queue.Queue()
    width = max(len(k or "") for k in chosen)

    def pump(name: str, container: Any) -> None:
        try:
            for raw in container.logs(stream=True, follow=follow, timestamps=True):
                for line in raw.decode(errors="replace").splitlines():
                    lines.put(f"{name:<{width}} | {redactor(line)}")
        except NotFound:
            pass
        finally:
            lines.put(None)

    for name, container in chosen.items():
        threading.Thread(target=pump, args=(name, container), daemon=True).start()
    open_streams = len(chosen)
    while open_streams:
        item = lines.get()
        if item is None:
            open_streams -= 1
        else:
            yield item


def clean(settings: EnvkitSettings, include_up: bool = False, dry_run: bool = False) -> ReapReport:
    """Remove runs left by killed processes (and the `up` stack too with `include_up`) on the
    current engine."""
    ensure_engine(settings.timeouts.engine_start_seconds)
    client = docker_client()
    report = reap(client, include_up=include_up, dry_run=dry_run)
    if include_up and not dry_run:
        clear_state(_state_dir(settings))
    log.debug("clean: {}", report)
    return report


@dataclass(frozen=True)
class EngineClean:
    """What `clean` did on one engine: its report, or why the engine could not be asked."""

    endpoint: str
    report: ReapReport | None
    problem: str = ""


def engines_of(settings: EnvkitSettings) -> list[Endpoint]:
    """Every engine envkit may have runs on: the current one, then the pool's."""
    from envkit.engines.pool import endpoint_of

    found = {current_endpoint().url: current_endpoint()}
    for url in settings.engines.pool_list():
        found.setdefault(url, endpoint_of(url, "ENVKIT_ENGINES__POOL"))
    return list(found.values())


def clean_pool(
    settings: EnvkitSettings, include_up: bool = False, dry_run: bool = False
) -> list[EngineClean]:
    """`clean` on every engine of the pool (and the current one); an engine that does not
    answer is reported, not fatal."""
    from envkit.engines.engine import EngineInfo, ask

    done = []
    for endpoint in engines_of(settings):
        if endpoint == current_endpoint():
            done.append(EngineClean(endpoint.url, clean(settings, include_up, dry_run)))
            continue
        answer = ask(endpoint)
        if not isinstance(answer, EngineInfo):
            done.append(EngineClean(endpoint.url, None, answer))
            continue
        client = endpoint.client(timeout=120)
        try:
            report = reap(client, include_up=include_up, dry_run=dry_run)
            done.append(EngineClean(endpoint.url, report))
        finally:
            client.close()
    return done


@dataclass(frozen=True)
class EngineStatus:
    """One engine of the pool as `status` sees it: does it answer, its runs, its busy slots."""

    endpoint: str
    problem: str  # why it does not answer ("" when it does)
    runs: list[str]  # envkit runs with a container there
    busy_slots: int
    per_engine: int


def pool_status(settings: EnvkitSettings) -> list[EngineStatus]:
    """Every engine of the pool (and the current one): what answers, which runs, busy slots."""
    from envkit.engines.engine import EngineInfo, ask
    from envkit.engines.pool import EnginePool

    endpoints = engines_of(settings)
    lanes = EnginePool(endpoints, settings.engines.per_engine, settings.workspace.cache / "pool")
    busy = lanes.busy()
    rows = []
    for endpoint in endpoints:
        answer = ask(endpoint)
        runs: list[str] = []
        if isinstance(answer, EngineInfo):
            client = endpoint.client(timeout=30)
            try:
                found = client.containers.list(sparse=True, filters={"label": RUN})
                runs = sorted({str((c.attrs.get("Labels") or {}).get(RUN)) for c in found})
            finally:
                client.close()
        problem = "" if isinstance(answer, EngineInfo) else answer
        rows.append(EngineStatus(endpoint.url, problem, runs, busy[endpoint.url], lanes.per_engine))
    return rows
