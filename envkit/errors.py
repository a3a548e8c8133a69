"""Every error envkit raises, in one hierarchy.

    EnvkitError                  root, never raised itself: the tasks turn any of these into
    │                            `Exit` with its message
    ├── SettingsError            a setting is invalid; names the setting and the fix
    ├── OptionError              a task's flag is invalid (`--only`, `--days`); names the flag
    │   │                        and a valid example
    │   ├── OverrideError        an `--override` is not SERVICE.VARIABLE=VALUE or names a
    │   │                        service the stack does not have
    │   └── FaultError           a `--fault` (a runtime fault to inject) is malformed, names a
    │                            step or service the run does not have, or could not be injected
    ├── StackError               a stack file is invalid; names the file, service and field
    ├── ScenarioError            a scenario file is invalid or a step's command cannot run;
    │                            names the file, step and field
    ├── ScenarioLoadError        the scenario to run cannot be found or imported (the stack
    │                            names none, a module does not import, a file is given where
    │                            only a module will do)
    ├── EngineError              no Docker engine could be found or started
    │   ├── ReaperError          the reaper that holds an isolated run did not start or did
    │   │                        not answer; names the setting that turns it off
    │   └── EngineLostError      the engine a run was placed on stopped answering mid-run;
    │                            carries the endpoint and the last log lines the run got
    ├── ImageError               an image could not be produced
    │   └── BuildError           a service's build context did not build; carries the
    │                            service, the context, the Dockerfile and the build log's tail
    ├── StepError                an external command (apt-get, debootstrap, pip, docker build)
    │                            failed; carries the command and the tail of its output
    ├── ServiceNotReady          a stack could not start: the probe's evidence plus the
    │                            container's state, exit code and log tail, and a hint
    ├── ServiceStartFailed       a container could not be started or exited at once: the
    │                            engine's refusal, or the exit code (OOM-killed or not) and
    │                            the log tail
    ├── PortInUseError           a fixed `up` port is taken; names the setting to change
    ├── StackAborted             a service was skipped because the stack is being torn down
    ├── RunStateError            the `up` stack (or a stack the Python API started) is not
    │                            as the command needs it (none is up, one already is, it is
    │                            partly running, it has no such service, it was removed);
    │                            says what to run or use instead
    ├── ReplayError              a run cannot be replayed: its artifact directory has no
    │                            readable manifest, or a file the run used is gone; carries
    │                            the path
    ├── RunLookupError           a run named to compare (an artifact directory or run id, or
    │                            the latest green run) cannot be found or read; carries the
    │                            path
    ├── HistoryError             the run history cannot be used (damaged, unwritable, newer
    │                            schema); carries its path, names ENVKIT_HISTORY_PATH
    ├── FileAccessError          a file envkit writes or reads (an artifact, a report, a doc)
    │                            could not be; carries the path, keeps the OS error as cause
    └── DocsError                a document envkit keeps in step lacks the markers of its
                                 generated part; carries the path

The probe library keeps its own hierarchy so it can be used without envkit; its
errors are re-exported here. They are not `EnvkitError`s: the environment turns a
`ProbeError` into `ServiceNotReady`, and the tasks turn any that escapes into
`Exit` as they do an `EnvkitError`.

    HealthcheckError             (healthchecks) root of the probe library's errors
    ├── ProbeFailed              one check found the service not ready (yet)
    └── ProbeError               a service's readiness probe did not pass; carries the
        │                        service, the probe, elapsed time, attempts, last error
        ├── ProbeTimeout         the probe kept failing until the deadline
        └── ProbeAborted         waiting stopped early (e.g. the container exited)

Messages are whole sentences that say what went wrong and what to do next. A private
base (`_PathError`, which adds `path`) is left out of the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# Re-exported (`X as X`) so envkit code can name every error it handles from one module.
from envkit.healthchecks import HealthcheckError as HealthcheckError
from envkit.healthchecks import ProbeAborted as ProbeAborted
from envkit.healthchecks import ProbeError as ProbeError
from envkit.healthchecks import ProbeFailed as ProbeFailed
from envkit.healthchecks import ProbeTimeout as ProbeTimeout


class EnvkitError(Exception):
    """Root of every error envkit raises on purpose."""


class SettingsError(EnvkitError):
    """One or more settings are invalid; `problems` holds one sentence per setting."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "setting is" if len(self.problems) == 1 else "settings are"
        super().__init__(f"{len(self.problems)} {noun} invalid:\n{lines}")


class EngineError(EnvkitError):
    """No Docker engine answered and none could be started here."""


class ReaperError(EngineError):
    """The reaper that removes a run if envkit's process dies could not start or answer."""


class EngineLostError(EngineError):
    """The engine a run was placed on stopped answering while the run was using it."""

    def __init__(self, message: str, endpoint: str, quotes: list[str] | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.quotes = quotes or []


class ImageError(EnvkitError):
    """An image the stack needs could not be found, pulled or built."""


class BuildError(ImageError):
    """A service's image could not be built from its build context; carries the build log's tail."""

    def __init__(self, *, service: str, context: Path, dockerfile: str, log_tail: str) -> None:
        self.service = service
        self.context = context
        self.dockerfile = dockerfile
        self.log_tail = log_tail
        quoted = "\n".join(f"  | {line}" for line in log_tail.splitlines()) or "  | (empty)"
        super().__init__(
            f"The image of {service} could not be built from the context {context} "
            f"(Dockerfile {context / dockerfile}); no container was started.\n"
            f"  build log (last lines):\n{quoted}\n"
            f"hint: fix the step above (`docker build -f {context / dockerfile} {context}` "
            "repeats it by hand), or run an image instead: "
            f"ENVKIT_IMAGES__OVERRIDE={service}=IMAGE."
        )


class StepError(EnvkitError):
    """An external command failed; carries the command and the tail of its output."""

    def __init__(self, step: str, command: Sequence[str], output_tail: str, hint: str) -> None:
        self.step = step
        self.command = list(command)
        self.output_tail = output_tail
        message = (
            f"Step '{step}' failed: {' '.join(self.command)}\n"
            f"--- last lines of its output ---\n{output_tail}\n--- hint ---\n{hint}"
        )
        super().__init__(message)


class PortInUseError(EnvkitError):
    """A fixed host port that `invoke up` needs is taken on 127.0.0.1."""


class StackAborted(EnvkitError):
    """A service was not started or not waited for because the stack is being torn down."""


class ServiceNotReady(EnvkitError):
    """A service never became ready: names the probe and carries the container's evidence."""

    def __init__(
        self,
        *,
        service: str,
        probe: str,
        elapsed: float,
        attempts: int,
        last_error: str,
        state: str,
        exit_code: int | None,
        log_path: Path,
        log_tail: str,
        hint: str,
    ) -> None:
        self.service = service
        self.probe = probe
        self.elapsed = elapsed
        self.attempts = attempts
        self.last_error = last_error
        self.state = state
        self.exit_code = exit_code
        self.log_path = log_path
        self.log_tail = log_tail
        self.hint = hint
        quoted = "\n".join(f"  | {line}" for line in log_tail.splitlines()) or "  | (empty)"
        super().__init__(
            f"{service} never became ready.\n"
            f"  probe:      {probe}\n"
            f"  waited:     {elapsed:.1f} s, {attempts} attempts\n"
            f"  last error: {last_error}\n"
            f"  container:  {state}\n"
            f"  log:        {log_path} (last lines below)\n{quoted}\n"
            f"hint: {hint}"
        )


class ServiceStartFailed(EnvkitError):
    """A service's container was refused by the engine or exited before it could be probed."""

    def __init__(
        self,
        *,
        service: str,
        refused: str = "",
        state: str = "",
        exit_code: int | None = None,
        oom_killed: bool = False,
        log_path: Path | None = None,
        log_tail: str = "",
    ) -> None:
        self.service = service
        self.refused = refused  # the engine's words when it refused to create or start it
        self.state = state
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.log_path = log_path
        self.log_tail = log_tail
        if refused:
            what = f"The engine refused to start {service}: {refused}"
            hint = "check the service's image and command in the stack file"
        else:
            oom = ", killed for going over its memory limit" if oom_killed else ""
            what = f"{service} exited at start with code {exit_code}{oom} ({state})"
            hint = (
                "raise its `memory` limit in the stack file"
                if oom_killed
                else "its log says why: a bad command, a missing or wrong setting"
            )
        quoted = "\n".join(f"  | {line}" for line in log_tail.splitlines()) or "  | (empty)"
        where = f"  log: {log_path} (last lines below)\n{quoted}\n" if log_path else ""
        super().__init__(f"{what}; no check ran.\n{where}hint: {hint}.")


class StackError(EnvkitError):
    """A stack file is invalid; `problems` holds one sentence per problem, each with its fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{len(self.problems)} {noun} in the stack:\n{lines}")


class ScenarioError(EnvkitError):
    """A scenario file is invalid; `problems` holds one sentence per problem, each with its fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{len(self.problems)} {noun} in the scenario:\n{lines}")


class OptionError(EnvkitError):
    """A task's flag is invalid; `option` names it (e.g. "--days")."""

    def __init__(self, message: str, *, option: str) -> None:
        self.option = option
        super().__init__(message)


class FaultError(OptionError):
    """A runtime fault is malformed, names an unknown step or service, or could not be injected."""

    def __init__(self, message: str) -> None:
        super().__init__(message, option="--fault")


class OverrideError(OptionError):
    """An `--override` is malformed or names a service the stack does not have."""

    def __init__(self, message: str) -> None:
        super().__init__(message, option="--override")


class ScenarioLoadError(EnvkitError):
    """The scenario to run cannot be found or imported; `ref` is what was asked for, if any."""

    def __init__(self, message: str, *, ref: str | None = None) -> None:
        self.ref = ref
        super().__init__(message)


class RunStateError(EnvkitError):
    """A running stack is not in the state the call needs; `run_id` names it when one exists."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(message)


class _PathError(EnvkitError):
    """An error about one file or directory, which `path` names."""

    def __init__(self, message: str, *, path: Path) -> None:
        self.path = path
        super().__init__(message)


class ReplayError(_PathError):
    """A run cannot be replayed: no readable manifest, or a file the run used is gone."""


class RunLookupError(_PathError):
    """A run to compare cannot be found, or its artifact directory has no readable summary."""


class HistoryError(_PathError):
    """The run history at `path` cannot be read, written or understood."""


class FileAccessError(_PathError):
    """A file envkit must write or read could not be; the OS error is the cause."""


class DocsError(_PathError):
    """A document envkit keeps in step lacks the markers around its generated part."""
