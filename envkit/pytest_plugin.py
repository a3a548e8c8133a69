"""envkit's pytest plugin: the `envkit_stack` fixture, one stack per test session.

Loaded through the `pytest11` entry point. Until a test asks for `envkit_stack` it does
nothing: no Docker contact, no import of the Docker SDK or testcontainers (this module
imports only pytest and the standard library at the top).

Under pytest-xdist with the default session scope, the workers share one stack: the first
worker to ask starts it under a file lock in the session's shared temp folder and writes a
state file (the run's services, run id, artifacts) that the others attach through. The run's
owner, for envkit's reaper, is the xdist controller, so a crashed session's stack is removed
by the next `invoke clean` or run. Each worker records under the lock when its session ends;
the last of them removes the stack by its run label. A worker that ended before the stack
existed is not counted, so then the controller removes it when the whole session ends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from envkit.api import RunningStack, Stack

SCOPES = ("session", "package", "module", "class", "function")
FIXTURE = "envkit_stack"
STATE_FILE = "envkit-stack.json"
LOCK_FILE = "envkit-stack.lock"
DEFAULT_LOG_LINES = 40


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's command-line options, each with an ini twin."""
    group = parser.getgroup("envkit", "envkit: a containerized stack for the tests")
    group.addoption(
        "--envkit-stack", dest="envkit_stack", metavar="FILE",
        help="stack file the envkit_stack fixture starts (ini: envkit_stack; default: "
        "compose/tier-b.toml under the rootdir)",
    )  # fmt: skip
    group.addoption(
        "--envkit-reuse-up", dest="envkit_reuse_up", action="store_true", default=None,
        help="use the stack `invoke up` left running instead of starting one; it stays up "
        "(ini: envkit_reuse_up)",
    )  # fmt: skip
    group.addoption(
        "--envkit-scope", dest="envkit_scope", metavar="SCOPE",
        help=f"scope of the envkit_stack fixture: {', '.join(SCOPES)} (ini: envkit_scope; "
        "default: session)",
    )  # fmt: skip
    group.addoption(
        "--envkit-env-file", dest="envkit_env_file", metavar="FILE",
        help="the .env file of the stack's settings (ini: envkit_env_file; default: .env "
        "under the rootdir)",
    )  # fmt: skip
    parser.addini("envkit_stack", "stack file of the envkit_stack fixture (relative: rootdir)")
    parser.addini("envkit_reuse_up", "use the `invoke up` stack", type="bool", default=False)
    parser.addini("envkit_scope", "scope of the envkit_stack fixture", default="session")
    parser.addini("envkit_env_file", ".env file of the stack's settings (relative: rootdir)")
    parser.addini(
        "envkit_log_lines", "log lines per service in a failed test's report",
        default=str(DEFAULT_LOG_LINES),
    )  # fmt: skip


@dataclass(frozen=True)
class Options:
    """The plugin's options for one session, command line over ini."""

    stack: Path | None
    reuse_up: bool
    scope: str
    env_file: Path | None
    root: Path
    log_lines: int

    @classmethod
    def of(cls, config: pytest.Config) -> Options:
        """Read and check the options; a bad one is a usage error naming it and the fix."""
        here = config.invocation_params.dir
        root = config.rootpath
        stack = _path(config.getoption("envkit_stack"), here, config.getini("envkit_stack"), root)
        env_file = _path(
            config.getoption("envkit_env_file"), here, config.getini("envkit_env_file"), root
        )
        scope = config.getoption("envkit_scope") or config.getini("envkit_scope") or "session"
        if scope not in SCOPES:
            raise pytest.UsageError(
                f"--envkit-scope {scope!r} is not a pytest fixture scope; use one of: "
                f"{', '.join(SCOPES)}."
            )
        if stack is not None and not stack.is_file():
            raise pytest.UsageError(
                f"--envkit-stack {stack}: no such stack file. Pass the path of a stack file "
                "(relative to the current directory; in the ini file, to the rootdir)."
            )
        if env_file is not None and not env_file.is_file():
            raise pytest.UsageError(
                f"--envkit-env-file {env_file}: no such file. Pass an existing .env file, or "
                "leave the option out to read .env under the rootdir when there is one."
            )
        lines = str(config.getini("envkit_log_lines"))
        if not lines.isdigit() or int(lines) < 1:
            raise pytest.UsageError(
                f"envkit_log_lines = {lines!r} is not a positive whole number of lines."
            )
        reuse = config.getoption("envkit_reuse_up")
        reuse_up = bool(config.getini("envkit_reuse_up") if reuse is None else reuse)
        return cls(stack, reuse_up, scope, env_file, root, int(lines))

    def open(self) -> Stack:
        """The stack file with its settings (no Docker contact yet)."""
        from envkit.api import open_stack

        return open_stack(self.stack, env_file=self.env_file, root=self.root)


def _path(given: str | None, here: Path, ini: Any, root: Path) -> Path | None:
    if given:
        return (here / given).resolve()
    return (root / str(ini)).resolve() if ini else None


_OPTIONS = pytest.StashKey[Options]()


def pytest_configure(config: pytest.Config) -> None:
    """Check the options once, before any test runs."""
    config.stash[_OPTIONS] = Options.of(config)


def _scope(fixture_name: str, config: pytest.Config) -> Any:
    return config.stash[_OPTIONS].scope


@pytest.fixture(scope=_scope)
def envkit_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The running stack of `--envkit-stack`: URLs, settings, redacted logs, its scenario."""
    options = request.config.stash[_OPTIONS]
    stack = options.open()
    if options.reuse_up:
        yield stack.attach()
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and request.scope == "session":
        yield SharedStack(tmp_path_factory.getbasetemp().parent).join(stack, worker)
        return  # the last worker to end its session removes it (see pytest_sessionfinish)
    with stack.start() as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used the stack gets each service's log tail and the artifact path."""
    report = yield
    running = getattr(item, "funcargs", {}).get(FIXTURE)
    if report.failed and running is not None:
        lines = item.config.stash[_OPTIONS].log_lines
        for service in running.endpoints:
            try:
                tail = running.log_tail(service, lines)
            except Exception as exc:  # a report must not fail because a log cannot be read
                tail = f"(log not readable: {running.redactor(str(exc))})"
            report.sections.append((f"envkit: {service} log, last {lines} lines", tail))
        report.sections.append(
            ("envkit: run", f"run {running.run_id}; artifacts in {running.artifact_dir}")
        )
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under xdist: count this worker out, and the last one (or else the controller) removes
    the session's shared stack."""
    config = session.config
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and hasattr(config, "workerinput"):
        shared = SharedStack(_basetemp(config).parent)  # the controller's basetemp
        shared.leave(worker, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), config)
    elif getattr(config.option, "dist", "no") != "no":
        SharedStack(_basetemp(config)).leave("controller", 0, config)


def _basetemp(config: pytest.Config) -> Path:
    # pytest keeps its TempPathFactory there; pytest-xdist reads the same attribute to give each
    # worker `<the controller's basetemp>/<worker id>`.
    factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
    return factory.getbasetemp()


@dataclass(frozen=True)
class SharedStack:
    """One session's stack shared by the xdist workers through a state file under a lock."""

    root: Path  # the session's shared temp folder

    @property
    def state_file(self) -> Path:
        """The started stack (`up`-state layout), its users and the workers that ended."""
        return self.root / STATE_FILE

    def _lock(self) -> Any:
        from filelock import FileLock

        return FileLock(str(self.root / LOCK_FILE))

    def join(self, stack: Stack, worker: str) -> RunningStack:
        """Start the stack if no worker did yet (else attach to it) and count this worker in."""
        from envkit.api import RunningStack
        from envkit.errors import RunStateError
        from envkit.evidence.redact import Redactor
        from envkit.lifecycle.state import UpState

        with self._lock():
            data = self._read()
            if data is None:
                try:
                    # The controller owns it: it outlives every worker, and when it dies the
                    # reaper removes the stack. The workers on this machine reach it as an
                    # isolated stack is reached: at its containers' addresses where they can.
                    with stack.start(
                        keep=True, owner_pid=os.getppid(),
                        publish_ports=stack.settings.engines.publish_ports,
                    ) as running:  # fmt: skip
                        state = running.state
                except Exception as exc:  # any failure: the other workers must not retry
                    redact = Redactor(stack.settings.secret_values())
                    self._write({"error": redact(f"{type(exc).__name__}: {exc}")})
                    raise
                data = {"state": json.loads(state.to_json()), "users": [], "ended": []}
            elif "error" in data:
                raise RunStateError(
                    "The session's stack did not start on another xdist worker:\n"
                    + str(data["error"])
                )
            elif data.get("removed"):
                raise RunStateError(
                    f"The session's stack (run {data['state']['run_id']}) was already removed."
                )
            data["users"].append(worker)
            self._write(data)
        return RunningStack(stack, UpState.from_json(json.dumps(data["state"])))

    def leave(self, who: str, workers: int, config: pytest.Config) -> None:
        """Record that `who` ended its session; remove the stack when all `workers` have."""
        if not self.state_file.is_file():
            return  # no stack in this session: nothing to do, no Docker contact
        with self._lock():
            data = self._read()
            if data is None or "state" not in data or data.get("removed"):
                return
            if who != "controller":
                data["ended"] = sorted({*data.get("ended", []), who})
            if who == "controller" or len(data["ended"]) >= workers:
                self._remove(data, config)
                data["removed"] = True
            self._write(data)

    def _remove(self, data: dict[str, Any], config: pytest.Config) -> None:
        from envkit.api import RunningStack
        from envkit.lifecycle.state import UpState

        state = UpState.from_json(json.dumps(data["state"]))
        RunningStack(config.stash[_OPTIONS].open(), state).remove()

    def _read(self) -> dict[str, Any] | None:
        if not self.state_file.is_file():
            return None
        data: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        return data

    def _write(self, data: dict[str, Any]) -> None:
        staging = self.state_file.with_suffix(".tmp")
        staging.write_text(json.dumps(data, indent=2), encoding="utf-8")
        staging.replace(self.state_file)
