"""A stack as a team's own Python uses it: open a file, start or attach, read, run, stop.

    stack = open_stack("compose/tier-b.toml")
    with stack.start() as running:          # isolated: its own network
        running.url("backend")               # http://172.18.0.5:8080 (or a published port)
        running.log_tail("backend", lines=20)
        running.run_scenario()               # the stack's scenario, evidence on disk

`Stack.attach()` gives the same `RunningStack` for the stack `invoke up` left running
(it stays running). Everything read from a container goes through the run's redactor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from envkit.errors import RunStateError
from envkit.evidence.outcome import RunOutcome, ServiceRow, service_rows
from envkit.evidence.redact import Redactor
from envkit.lifecycle.state import UpState
from envkit.logs import Progress, no_progress
from envkit.spec.settings import EnvkitSettings, load_settings
from envkit.spec.stack import StackSpec, load_stack

if TYPE_CHECKING:
    import docker

    from envkit.lifecycle.environment import Environment

DEFAULT_TAIL_LINES = 40


def open_stack(
    path: Path | str | None = None,
    *,
    env_file: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    root: Path | str | None = None,
) -> Stack:
    """Read a stack file and its settings (`.env` under `root` unless `env_file` names another)."""
    base = Path(root or Path.cwd()).resolve()
    stack_file = (base / path) if path is not None else None
    env = Path(env_file) if env_file is not None else base / ".env"
    settings = load_settings(
        env if env.is_absolute() else base / env, environ, stack=stack_file, root=base
    )
    stack_file = (stack_file or settings.workspace.default_stack).resolve()
    return Stack(stack_file, settings, load_stack(stack_file))


@dataclass(frozen=True)
class Stack:
    """A stack file with its settings: start it isolated, or attach to the `up` stack."""

    path: Path
    settings: EnvkitSettings
    spec: StackSpec

    @property
    def name(self) -> str:
        """The stack's name (`[stack] name`)."""
        return self.spec.name

    def __repr__(self) -> str:
        return f"Stack({self.name!r}, {str(self.path)!r})"

    @contextmanager
    def start(
        self,
        *,
        keep: bool = False,
        owner_pid: int | None = None,
        progress: Progress = no_progress,
        publish_ports: Literal["auto", "always"] | None = None,
    ) -> Iterator[RunningStack]:
        """Start the stack in its own network; tear it down after the block.

        Without `keep` the engine's reaper holds it: if this process dies, it is removed
        within seconds. With `keep` it stays running after the block and is not held
        (`RunningStack.remove()` ends it); `owner_pid` is then the process whose death lets
        envkit's host-side reaper (`clean`, the start of a run) remove it (default: this).
        Services are reached at their containers' addresses on a local engine whose
        networks this machine reaches, else at random published ports; `publish_ports`
        (default: `engines.publish_ports`, `always` with `keep`) decides.
        """
        from envkit.lifecycle.commands import running_stack

        with running_stack(
            self.settings, self.path, progress=progress, owner_pid=owner_pid, hold=not keep,
            publish_ports=publish_ports,
        ) as environment:  # fmt: skip
            if keep:
                environment.keep()
            yield RunningStack.of_environment(self, environment)

    def attach(self) -> RunningStack:
        """The stack `invoke up` left running from this stack file (it stays running)."""
        from envkit.lifecycle.commands import require_up, status

        _, state = require_up(self.settings)
        if state.stack.resolve() != self.path:
            raise RunStateError(
                f"The `up` stack (run {state.run_id}) was started from {state.stack}, not "
                f"{self.path}. Open that stack file, or `invoke down` and `invoke up --stack "
                f"{self.path}`.",
                run_id=state.run_id,
            )
        live = status(self.settings)
        gone = sorted(n for n, row in live.services.items() if row.state != "running")
        if gone:
            raise RunStateError(
                f"The `up` stack (run {state.run_id}) is not fully running: "
                f"{', '.join(f'{n} is {live.services[n].state}' for n in gone)}. "
                "`invoke down` and `invoke up` start it again.",
                run_id=state.run_id,
            )
        return RunningStack(self, state)


@dataclass
class RunningStack:
    """A started stack: its services' URLs, settings and redacted logs; run its scenario."""

    stack: Stack
    state: UpState  # run id, artifact directory and each service's row
    _client: docker.DockerClient | None = field(default=None, repr=False)

    @classmethod
    def of_environment(cls, stack: Stack, environment: Environment) -> RunningStack:
        """The running stack an `Environment` just started."""
        state = UpState(
            environment.run_id, stack.path, environment.started_at.isoformat(),
            environment.artifact_dir, service_rows(environment.endpoints()),
        )  # fmt: skip
        return cls(stack, state, environment.client)

    def __repr__(self) -> str:
        urls = {name: row.host_url for name, row in self.state.services.items()}
        return f"RunningStack({self.stack.name!r}, run_id={self.run_id!r}, urls={urls!r})"

    @property
    def run_id(self) -> str:
        """The run's id (every container and the network carry it as the `envkit.run` label)."""
        return self.state.run_id

    @property
    def settings(self) -> EnvkitSettings:
        """The settings the stack was started with (envkit's and the stack's own)."""
        return self.stack.settings

    @property
    def endpoints(self) -> dict[str, ServiceRow]:
        """Each service's row: image, container, host URL and port, in-network URL, log."""
        return dict(self.state.services)

    @property
    def artifact_dir(self) -> Path:
        """Where the run's service logs (and `down`'s or `remove`'s full copies) go."""
        return self.state.artifact_dir

    @property
    def redactor(self) -> Redactor:
        """Masks every secret of the settings (and its common encodings)."""
        return Redactor(self.settings.secret_values())

    def url(self, service: str) -> str:
        """The service's URL from this machine, e.g. `http://127.0.0.1:49153`."""
        url = self._row(service).host_url
        if url is None:
            raise RunStateError(
                f"Service '{service}' of stack {self.stack.name} has no port, so it has "
                "no URL; give it `port = …` in the stack file.",
                run_id=self.run_id,
            )
        return url

    def logs(self, service: str) -> str:
        """The service's whole log so far, secrets masked."""
        self._row(service)
        container = self._container(service)
        return self.redactor(container.logs(timestamps=True).decode("utf-8", errors="replace"))

    def log_tail(self, service: str, lines: int = DEFAULT_TAIL_LINES) -> str:
        """The last `lines` lines of the service's log, secrets masked."""
        self._row(service)
        raw = self._container(service).logs(timestamps=True, tail=lines)
        return self.redactor(raw.decode("utf-8", errors="replace"))

    def run_scenario(
        self, only: str | None = None, *, scenario: str | None = None
    ) -> tuple[RunOutcome, Path]:
        """Run the stack's scenario (or `scenario`) against this stack; return the outcome and
        the scenario run's artifact directory (logs, summary.json, junit.xml, report.md)."""
        from envkit.scenario.runner import orchestrate

        return orchestrate(self.settings, only=only, scenario_ref=scenario, running=self.state)

    def remove(self) -> int:
        """Keep every service's whole log (redacted) in the artifacts, then remove the run;
        return how many containers went."""
        from envkit.lifecycle.commands import save_logs
        from envkit.lifecycle.environment import remove_run

        client = self._engine()
        save_logs(client, self.state, self.artifact_dir, self.redactor)
        return remove_run(client, self.run_id)

    def _row(self, service: str) -> ServiceRow:
        row = self.state.services.get(service)
        if row is None:
            known = ", ".join(sorted(self.state.services))
            raise RunStateError(
                f"No service '{service}' in stack {self.stack.name} ({self.stack.path}); "
                f"it has: {known}.",
                run_id=self.run_id,
            )
        return row

    def _container(self, service: str) -> Any:
        from envkit.lifecycle.containers import RUN, SERVICE

        found = self._engine().containers.list(
            all=True, filters={"label": [f"{RUN}={self.run_id}", f"{SERVICE}={service}"]}
        )
        if not found:
            raise RunStateError(
                f"Service '{service}' of run {self.run_id} has no container any more (the "
                "stack was removed).",
                run_id=self.run_id,
            )
        return found[0]

    def _engine(self) -> docker.DockerClient:
        if self._client is None:
            from envkit.engines.engine import docker_client, ensure_engine

            ensure_engine(self.settings.timeouts.engine_start_seconds)
            self._client = docker_client()
        return self._client
